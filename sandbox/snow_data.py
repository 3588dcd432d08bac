"""The ServiceNow emulator's data: tables, seed rows, and what an instance does on a write.

Everything is stored as a string, as on an instance. Inserts and updates go through
``ServiceNowInstance.insert``/``update``: unknown and system fields are ignored, lengths cut to the
column's size, priority derived from impact x urgency, journal fields (``work_notes``,
``comments``) written to ``sys_journal_field`` instead of the record (``sys_created_by`` the
writer's user_name), and two data policies: a short description is mandatory, and a Resolved
(6) or Closed (7) incident needs a close code and close notes (the other task tables' are in
``snow_tables``). A close code that is not an active
``sys_choice`` of ``incident.close_code`` is dropped silently before the policy looks, as on an
instance. No HTTP here: ``snow_routes`` answers requests, ``snow_query`` reads ``sysparm_query``.

Users (password ``demo`` for all): ``admin`` (everything), ``bob.martin`` (itil: creates and
updates incidents, writes work notes and comments, deletes nothing), ``desk.integration`` (itil
and ``snc_basic_auth_api_access``: keeps Basic auth when the restriction is enforced) and
``viewer`` (reads only); ``ana.lopez`` and ``ana.lopez2`` share ``ana@example.com`` and
``old.timer`` is inactive (the caller lookup's fallbacks). Roles are rows of
``sys_user_has_role`` (an admin may add some through the Table API); ``sys_properties`` holds the Basic-auth restriction
(``glide.authenticate.basic_auth.restriction.{active,enforce,enforcement_date}``, inactive on a
fresh instance): once ``enforce`` is true and the date has passed, Basic auth is refused to users
without ``snc_basic_auth_api_access`` who are not Web-Service-Access-Only (``snow_auth``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from anomaly_desk.sandbox.snow_query import EncodedQuery, sort_key
from anomaly_desk.sandbox.snow_tables import (
    DATA_POLICIES,
    DEPENDENT_ON,
    INACTIVE_STATES,
    NEW_STATE,
    NUMBERS,
    OWN_COLUMNS,
    PARENT,
    TABLE_CHOICES,
    TABLE_LABELS,
    TASK_COLUMNS,
    TASK_TABLES,
    chain,
    columns,
    label_of,
    state_label,
    task_schema,
)

if TYPE_CHECKING:
    from anomaly_desk.sandbox.oauth import AuthState
    from anomaly_desk.sandbox.webhooks import WebhookHub

Record = dict[str, str]
CREDENTIALS = {"admin": "demo", "viewer": "demo", "bob.martin": "demo", "desk.integration": "demo"}
BASIC_AUTH_ROLE = "snc_basic_auth_api_access"  # exempt from the Basic-auth restriction
ROLES = {  # the seeded sys_user_has_role rows
    "admin": frozenset({"admin"}),
    "bob.martin": frozenset({"itil"}),
    "desk.integration": frozenset({"itil", BASIC_AUTH_ROLE}),
    "viewer": frozenset(),
}
ROLE_NAMES = ("admin", "itil", BASIC_AUTH_ROLE)
RESTRICTION = "glide.authenticate.basic_auth.restriction"
PROPERTIES = [  # name, value, type, description
    (f"{RESTRICTION}.active", "false", "boolean", "Identify accounts using Basic authentication"),
    (
        f"{RESTRICTION}.enforce",
        "false",
        "boolean",
        "Block Basic authentication for accounts without an exception from the enforcement date",
    ),
    (
        f"{RESTRICTION}.enforcement_date",
        "",
        "string",
        "When enforcement begins (UTC, yyyy-MM-dd HH:mm:ss)",
    ),
]
ITIL_WRITES = frozenset((table, action) for table in TASK_TABLES for action in ("Insert", "Update"))
RESOLVED_STATES = frozenset({"6", "7"})  # Resolved, Closed: the close information is mandatory
MAX_LENGTH = {("incident", "short_description"): 160, ("incident", "description"): 4000}

# field kinds: "string", "int", "bool", "datetime", "choice", "journal", "ref:<table>"
SCHEMA: dict[str, dict[str, str]] = {
    "incident": {
        "sys_id": "string",
        "number": "string",
        "short_description": "string",
        "description": "string",
        "state": "choice",
        "priority": "choice",
        "urgency": "choice",
        "impact": "choice",
        "category": "choice",
        "subcategory": "choice",
        "assignment_group": "ref:sys_user_group",
        "assigned_to": "ref:sys_user",
        "caller_id": "ref:sys_user",
        "opened_by": "ref:sys_user",
        "opened_at": "datetime",
        "resolved_at": "datetime",
        "closed_at": "datetime",
        "resolved_by": "ref:sys_user",
        "closed_by": "ref:sys_user",
        "close_code": "choice",
        "close_notes": "string",
        "due_date": "datetime",
        "active": "bool",
        "correlation_id": "string",
        "correlation_display": "string",
        "work_notes": "journal",
        "comments": "journal",
        "sys_class_name": "string",
        "sys_created_on": "datetime",
        "sys_created_by": "string",
        "sys_updated_on": "datetime",
        "sys_updated_by": "string",
        "sys_mod_count": "int",
    },
    "sys_journal_field": {
        "sys_id": "string",
        "element_id": "string",
        "element": "string",
        "name": "string",
        "value": "string",
        "sys_created_on": "datetime",
        "sys_created_by": "string",
    },
    "sys_choice": {
        "sys_id": "string",
        "name": "string",
        "element": "string",
        "value": "string",
        "label": "string",
        "sequence": "int",
        "dependent_value": "string",
        "inactive": "bool",
        "language": "string",
    },
    "sys_user": {
        "sys_id": "string",
        "user_name": "string",
        "name": "string",
        "first_name": "string",
        "last_name": "string",
        "email": "string",
        "title": "string",
        "active": "bool",
        "web_service_access_only": "bool",
        "sys_created_on": "datetime",
        "sys_updated_on": "datetime",
    },
    "sys_user_role": {
        "sys_id": "string",
        "name": "string",
        "description": "string",
        "sys_created_on": "datetime",
        "sys_updated_on": "datetime",
    },
    "sys_user_has_role": {
        "sys_id": "string",
        "user": "ref:sys_user",
        "role": "ref:sys_user_role",
        "state": "string",
        "inherited": "bool",
        "sys_created_on": "datetime",
        "sys_updated_on": "datetime",
    },
    "sys_properties": {
        "sys_id": "string",
        "name": "string",
        "value": "string",
        "type": "string",
        "description": "string",
        "sys_created_on": "datetime",
        "sys_created_by": "string",
        "sys_updated_on": "datetime",
        "sys_updated_by": "string",
    },
    "sys_user_group": {
        "sys_id": "string",
        "name": "string",
        "description": "string",
        "email": "string",
        "manager": "ref:sys_user",
        "active": "bool",
        "sys_created_on": "datetime",
        "sys_updated_on": "datetime",
    },
}
SCHEMA.update({table: task_schema(table) for table in TASK_TABLES if table != "incident"})
SCHEMA["sys_dictionary"] = {
    "sys_id": "string",
    "name": "string",
    "element": "string",
    "column_label": "string",
    "internal_type": "string",
    "max_length": "int",
    "mandatory": "bool",
    "reference": "string",
    "choice": "int",
    "default_value": "string",
    "read_only": "bool",
    "active": "bool",
    "dependent_on_field": "string",
}
SCHEMA["sys_db_object"] = {
    "sys_id": "string",
    "name": "string",
    "label": "string",
    "super_class": "ref:sys_db_object",
    "number_ref": "string",
}
DISPLAY_FIELD = {
    **{table: "number" for table in TASK_TABLES},
    "sys_dictionary": "column_label",
    "sys_db_object": "label",
    "incident": "number",
    "sys_user": "name",
    "sys_user_group": "name",
    "sys_choice": "label",
    "sys_journal_field": "value",
    "sys_user_role": "name",
    "sys_user_has_role": "sys_id",
    "sys_properties": "name",
}
NUMBER_PREFIX = {table: prefix for table, (prefix, _) in NUMBERS.items()}

# the default priority lookup rules: (impact, urgency) -> priority
PRIORITY_MATRIX = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("1", "3"): "3",
    ("2", "1"): "2",
    ("2", "2"): "3",
    ("2", "3"): "4",
    ("3", "1"): "3",
    ("3", "2"): "4",
    ("3", "3"): "5",
}

CHOICES: dict[str, list[tuple[str, str, str]]] = {  # element -> (value, label, dependent_value)
    "state": [
        ("1", "New", ""),
        ("2", "In Progress", ""),
        ("3", "On Hold", ""),
        ("6", "Resolved", ""),
        ("7", "Closed", ""),
        ("8", "Canceled", ""),
    ],
    "impact": [("1", "1 - High", ""), ("2", "2 - Medium", ""), ("3", "3 - Low", "")],
    "urgency": [("1", "1 - High", ""), ("2", "2 - Medium", ""), ("3", "3 - Low", "")],
    "priority": [
        ("1", "1 - Critical", ""),
        ("2", "2 - High", ""),
        ("3", "3 - Moderate", ""),
        ("4", "4 - Low", ""),
        ("5", "5 - Planning", ""),
    ],
    "category": [
        ("inquiry", "Inquiry / Help", ""),
        ("software", "Software", ""),
        ("hardware", "Hardware", ""),
        ("network", "Network", ""),
        ("database", "Database", ""),
        ("data_quality", "Data Quality", ""),
    ],
    "subcategory": [
        ("antivirus", "Antivirus", "inquiry"),
        ("email", "Email", "inquiry"),
        ("internal application", "Internal Application", "inquiry"),
        ("email", "Email", "software"),
        ("os", "Operating System", "software"),
        ("cpu", "CPU", "hardware"),
        ("disk", "Disk", "hardware"),
        ("memory", "Memory", "hardware"),
        ("dhcp", "DHCP", "network"),
        ("dns", "DNS", "network"),
        ("vpn", "VPN", "network"),
        ("db2", "DB2", "database"),
        ("sql server", "MS SQL Server", "database"),
        ("oracle", "Oracle", "database"),
        ("completeness", "Completeness", "data_quality"),
        ("validity", "Validity", "data_quality"),
        ("freshness", "Freshness", "data_quality"),
    ],
    "close_code": [
        (code, code, "")
        for code in (
            "Duplicate",
            "Known error",
            "No resolution provided",
            "Resolved by caller",
            "Resolved by change",
            "Resolved by problem",
            "Resolved by request",
            "Solution provided",
            "Workaround provided",
            "User error",
            # the codes before the Utah release, kept inactive on upgraded instances
            "Solved (Work Around)",
            "Solved (Permanently)",
            "Not Solved (Not Reproducible)",
            "Closed/Resolved by Caller",
        )
    ],
}
INACTIVE_CHOICES = frozenset(
    {
        ("close_code", "Solved (Work Around)"),
        ("close_code", "Solved (Permanently)"),
        ("close_code", "Not Solved (Not Reproducible)"),
        ("close_code", "Closed/Resolved by Caller"),
    }
)
LABELS = {  # the field labels a data policy names
    ("incident", "short_description"): "Short description",
    ("incident", "close_code"): "Resolution code",
    ("incident", "close_notes"): "Resolution notes",
}
USERS = [  # user_name, first, last, title
    ("admin", "System", "Administrator", "Administrator"),
    ("alice.nguyen", "Alice", "Nguyen", "Data Engineer"),
    ("bob.martin", "Bob", "Martin", "Data Engineer"),
    ("carla.diaz", "Carla", "Diaz", "Analytics Lead"),
    ("desk.integration", "Anomaly Desk", "Integration", "Integration user"),
    ("viewer", "Read", "Only", "Auditor"),
]
# people whose email is not their own: two active users share one address (as after a merger),
# and a former colleague's account is inactive
ODD_USERS = [  # user_name, first, last, title, email, active
    ("ana.lopez", "Ana", "Lopez", "Data Steward", "ana@example.com", "true"),
    ("ana.lopez2", "Ana", "Lopez", "Data Steward (EMEA)", "ana@example.com", "true"),
    ("old.timer", "Olga", "Timer", "Former DBA", "olga.timer@example.com", "false"),
]
GROUPS = [  # name, description, manager user_name
    ("Data Platform", "Owns pipelines, warehouses and data quality", "carla.diaz"),
    ("Service Desk", "First line support", "admin"),
    ("Database", "Database administration", "bob.martin"),
    ("Network", "Network operations", "admin"),
]


class SnError(Exception):
    """An error ServiceNow answers with: status code plus message and detail."""

    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def seed_id(*parts: str) -> str:
    """Stable 32-hex sys_ids for seed rows, so tests and demos can name them."""
    return hashlib.md5(":".join(parts).encode(), usedforsecurity=False).hexdigest()


def now() -> str:
    """An instance's timestamp format (UTC): ``2024-01-01 09:00:00``."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_string(value: object) -> str:
    """Everything a client sends is stored the way the instance stores it: as a string."""
    if isinstance(value, Mapping):
        value = value.get("value", value.get("display_value", ""))
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(as_string(item) for item in value)
    return str(value)


def parse_glide_date(value: str) -> datetime | None:
    """A ``sys_properties`` date (``2025-01-01 00:00:00`` or ``2025-01-01``, UTC), or None."""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.strip(), pattern)
        except ValueError:
            continue
    return None


def _column_length(table: str, field: str) -> int | None:
    """A task table's column size from its dictionary (None: not a task table's column)."""
    if table not in PARENT or table == "incident":
        return None  # incident keeps its own sizes (MAX_LENGTH)
    column = columns(table).get(field)
    return column[3] if column and column[2] in ("string", "html") else None


def check_login(user: str, password: str) -> bool:
    return user in CREDENTIALS and CREDENTIALS[user] == password


class ServiceNowInstance:
    """In-memory instance. ``records(table)`` shows state to tests; ``reset()`` reseeds."""

    webhooks: WebhookHub | None = None  # where the incident Business Rule posts; None: off
    auth: AuthState  # OAuth clients and tokens (``/oauth_token.do``), shared with Jira

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Record]] = {}
        self.counters: dict[str, int] = {}
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        self.tables = {name: {} for name in SCHEMA}
        self.counters = {table: start for table, (_, start) in NUMBERS.items()}
        stamp = "2024-01-01 09:00:00"
        for user_name, first, last, title in USERS:
            self.put(
                "sys_user",
                {
                    "sys_id": seed_id("sys_user", user_name),
                    "user_name": user_name,
                    "name": f"{first} {last}",
                    "first_name": first,
                    "last_name": last,
                    "email": f"{user_name}@example.com",
                    "title": title,
                    "active": "true",
                    "web_service_access_only": "false",
                    "sys_created_on": stamp,
                    "sys_updated_on": stamp,
                },
            )
        for user_name, first, last, title, email, active in ODD_USERS:
            self.put(
                "sys_user",
                {
                    "sys_id": seed_id("sys_user", user_name),
                    "user_name": user_name,
                    "name": f"{first} {last}",
                    "first_name": first,
                    "last_name": last,
                    "email": email,
                    "title": title,
                    "active": active,
                    "web_service_access_only": "false",
                    "sys_created_on": stamp,
                    "sys_updated_on": stamp,
                },
            )
        for role in ROLE_NAMES:
            self.put(
                "sys_user_role",
                {
                    "sys_id": seed_id("sys_user_role", role),
                    "name": role,
                    "sys_created_on": stamp,
                    "sys_updated_on": stamp,
                },
            )
        for user_name, roles in ROLES.items():
            for role in sorted(roles):
                self.put(
                    "sys_user_has_role",
                    {
                        "sys_id": seed_id("sys_user_has_role", user_name, role),
                        "user": seed_id("sys_user", user_name),
                        "role": seed_id("sys_user_role", role),
                        "state": "active",
                        "inherited": "false",
                        "sys_created_on": stamp,
                        "sys_updated_on": stamp,
                    },
                )
        for name, value, kind, description in PROPERTIES:
            self.put(
                "sys_properties",
                {
                    "sys_id": seed_id("sys_properties", name),
                    "name": name,
                    "value": value,
                    "type": kind,
                    "description": description,
                    "sys_created_on": stamp,
                    "sys_created_by": "system",
                    "sys_updated_on": stamp,
                    "sys_updated_by": "system",
                },
            )
        for name, description, manager in GROUPS:
            self.put(
                "sys_user_group",
                {
                    "sys_id": seed_id("sys_user_group", name),
                    "name": name,
                    "description": description,
                    "email": name.lower().replace(" ", "-") + "@example.com",
                    "manager": seed_id("sys_user", manager),
                    "active": "true",
                    "sys_created_on": stamp,
                    "sys_updated_on": stamp,
                },
            )
        for element, rows in CHOICES.items():
            for sequence, (value, label, dependent) in enumerate(rows, start=1):
                self.put(
                    "sys_choice",
                    {
                        "sys_id": seed_id("sys_choice", element, value, dependent),
                        "name": "incident",
                        "element": element,
                        "value": value,
                        "label": label,
                        "sequence": str(sequence),
                        "dependent_value": dependent,
                        "inactive": "true" if (element, value) in INACTIVE_CHOICES else "false",
                        "language": "en",
                    },
                )
        self._seed_tables()

    def _seed_tables(self) -> None:
        """``sys_db_object``, ``sys_dictionary`` and the other tables' ``sys_choice`` rows."""
        for name, label in TABLE_LABELS.items():
            parent = PARENT.get(name)
            self.put(
                "sys_db_object",
                {
                    "sys_id": seed_id("sys_db_object", name),
                    "name": name,
                    "label": label,
                    "super_class": seed_id("sys_db_object", parent) if parent else "",
                },
            )
            own = TASK_COLUMNS if name == "task" else OWN_COLUMNS.get(name, [])
            entries = [("", label, "collection", 40, False, "", "0", ""), *own]
            for element, column_label, kind, length, mandatory, ref, choice, default in entries:
                self.put(
                    "sys_dictionary",
                    {
                        "sys_id": seed_id("sys_dictionary", name, element),
                        "name": name,
                        "element": element,
                        "column_label": column_label,
                        "internal_type": kind,
                        "max_length": str(length),
                        "mandatory": "true" if mandatory else "false",
                        "reference": ref,
                        "choice": choice,
                        "default_value": default,
                        "read_only": "true" if element.startswith("sys_") else "false",
                        "active": "true",
                        "dependent_on_field": DEPENDENT_ON.get((name, element), ""),
                    },
                )
        for (name, element), rows in TABLE_CHOICES.items():
            for sequence, (value, label) in enumerate(rows, start=1):
                self.put(
                    "sys_choice",
                    {
                        "sys_id": seed_id("sys_choice", name, element, value),
                        "name": name,
                        "element": element,
                        "value": value,
                        "label": label,
                        "sequence": str(sequence * 100),  # after incident's on a shared list
                        "dependent_value": "",
                        "inactive": "false",
                        "language": "en",
                    },
                )

    def records(self, table: str) -> list[Record]:
        return [dict(record) for record in self.tables[table].values()]

    def put(self, table: str, values: Record) -> Record:
        """Store a row as given, every other field of the table empty."""
        record = {field: "" for field in SCHEMA[table]}
        record.update(values)
        self.tables[table][record["sys_id"]] = record
        return record

    # -- users, roles and the Basic-auth restriction ---------------------------------------

    def user_record(self, user_name: str) -> Record | None:
        return self.tables["sys_user"].get(seed_id("sys_user", user_name)) or next(
            (u for u in self.tables["sys_user"].values() if u["user_name"] == user_name), None
        )

    def roles_of(self, user_name: str) -> frozenset[str]:
        """The names of the roles ``sys_user_has_role`` gives the user."""
        user = self.user_record(user_name)
        if user is None:
            return frozenset()
        roles = self.tables["sys_user_role"]
        return frozenset(
            roles[row["role"]]["name"]
            for row in self.tables["sys_user_has_role"].values()
            if row["user"] == user["sys_id"] and row["role"] in roles and row["state"] != "inactive"
        )

    def require_writer(self, user: str, action: str, table: str) -> None:
        roles = self.roles_of(user)
        if "admin" not in roles and not ("itil" in roles and (table, action) in ITIL_WRITES):
            raise SnError(
                403,
                "Operation Failed",
                f"ACL Exception {action} Failed due to security constraints",
            )

    def property(self, name: str) -> str | None:
        row = next((p for p in self.tables["sys_properties"].values() if p["name"] == name), None)
        return row["value"] if row is not None else None

    def set_property(self, name: str, value: str) -> None:
        stamp = now()
        for row in self.tables["sys_properties"].values():
            if row["name"] == name:
                row.update(value=value, sys_updated_on=stamp, sys_updated_by="system")
                return
        self.put(
            "sys_properties",
            {
                "sys_id": seed_id("sys_properties", name),
                "name": name,
                "value": value,
                "type": "string",
                "sys_created_on": stamp,
                "sys_created_by": "system",
                "sys_updated_on": stamp,
                "sys_updated_by": "system",
            },
        )

    def basic_auth_restriction(self) -> dict[str, str]:
        """The restriction's properties: ``{"active", "enforce", "enforcement_date"}``."""
        return {
            key: self.property(f"{RESTRICTION}.{key}") or ""
            for key in ("active", "enforce", "enforcement_date")
        }

    def set_basic_auth_restriction(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self.set_property(f"{RESTRICTION}.{key}", value)

    def basic_auth_enforced(self) -> bool:
        """``enforce`` is true and the enforcement date (none: at once) has passed."""
        settings = self.basic_auth_restriction()
        if settings["enforce"].strip().lower() != "true":
            return False
        date = settings["enforcement_date"].strip()
        if not date:
            return True
        starts = parse_glide_date(date)
        return starts is not None and starts <= datetime.now(UTC).replace(tzinfo=None)

    def basic_auth_refused(self, user_name: str) -> bool:
        """Whether the restriction refuses this user's Basic-auth API calls right now."""
        if not self.basic_auth_enforced():
            return False
        user = self.user_record(user_name)
        exempt_account = user is not None and user["web_service_access_only"] == "true"
        return not exempt_account and BASIC_AUTH_ROLE not in self.roles_of(user_name)

    # -- reads ---------------------------------------------------------------------------

    @staticmethod
    def table(name: str) -> str:
        """``name`` when it is a table of the instance, else the instance's 400."""
        if name not in SCHEMA:
            raise SnError(400, f"Invalid table {name}")
        return name

    def get(self, table: str, sys_id: str) -> Record:
        record = self.tables[table].get(sys_id)
        if record is None:
            raise SnError(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        return record

    def select(self, table: str, query: EncodedQuery) -> list[Record]:
        """The rows of ``table`` matching ``query``, in its order."""
        rows = [
            record
            for record in self.tables[table].values()
            if query.matches(partial(self.field_value, table, record))
        ]
        for field, descending in reversed(query.order):
            rows.sort(key=partial(self.order_key, table, field), reverse=descending)
        return rows

    def field_value(self, table: str, record: Record, path: str) -> str | None:
        """A field's stored value, following ``ref.field`` dot-walks; None when unknown."""
        head, _, rest = path.partition(".")
        kind = SCHEMA[table].get(head)
        if kind is None:
            return None
        value = record.get(head, "")
        if not rest:
            return value
        if not kind.startswith("ref:"):
            return None
        target = kind[4:]
        referenced = self.tables[target].get(value)
        if referenced is None:
            return "" if rest in SCHEMA[target] else None
        return self.field_value(target, referenced, rest)

    def order_key(self, table: str, field: str, record: Record) -> int | str:
        """What ORDERBY ``field`` sorts on: a reference by its display value."""
        kind = SCHEMA[table].get(field, "")
        if kind.startswith("ref:"):
            return sort_key(self.display(table, field, record.get(field, "")))
        return sort_key(self.field_value(table, record, field) or "")

    def display(self, table: str, field: str, value: str) -> str:
        """The display value: a choice's label, a referenced record's display field."""
        kind = SCHEMA[table].get(field, "string")
        if kind == "journal":
            return ""
        if kind == "choice":
            if field == "state" and table != "incident" and table in PARENT:
                return state_label(table, value) or value
            for owner in chain(table):  # a table without its own choices has its parent's
                rows = [
                    row
                    for row in self.tables["sys_choice"].values()
                    if row["name"] == owner and row["element"] == field
                ]
                if rows:
                    return next((row["label"] for row in rows if row["value"] == value), value)
            return value
        if kind.startswith("ref:"):
            target = kind[4:]
            referenced = self.tables[target].get(value)
            return referenced.get(DISPLAY_FIELD[target], "") if referenced else ""
        return value

    @staticmethod
    def owner(table: str, path: str) -> tuple[str, str]:
        """The table and field a dot-walked path ends on."""
        parts = path.split(".")
        for part in parts[:-1]:
            table = SCHEMA[table][part][4:]
        return table, parts[-1]

    # -- writes --------------------------------------------------------------------------

    def insert(self, table: str, user: str, body: Mapping[str, object]) -> Record:
        self.require_writer(user, "Insert", table)
        stamp = now()
        sys_id = as_string(body.get("sys_id")) or uuid.uuid4().hex
        if sys_id in self.tables[table]:
            raise SnError(403, "Operation Failed", f"Error during insert of {table} (duplicate)")
        record = {field: "" for field in SCHEMA[table]}
        record.update({"sys_id": sys_id, "sys_created_on": stamp, "sys_updated_on": stamp})
        record.update({"sys_created_by": user, "sys_updated_by": user, "sys_mod_count": "0"})
        if table == "incident":
            self.counters[table] += 1
            record.update(
                number=f"{NUMBER_PREFIX[table]}{self.counters[table]:07d}",
                state="1",
                impact="3",
                urgency="3",
                active="true",
                opened_at=stamp,
                opened_by=seed_id("sys_user", user),
                sys_class_name="incident",
            )
        elif table in NUMBERS:
            self.counters[table] += 1
            defaults = {
                name: column[7]
                for name, column in columns(table).items()
                if column[7] and not column[7].startswith("javascript:")
            }
            record.update(defaults)
            record.update(
                number=f"{NUMBER_PREFIX[table]}{self.counters[table]:07d}",
                state=NEW_STATE[table],
                active="true",
                opened_at=stamp,
                opened_by=seed_id("sys_user", user),
                sys_class_name=table,
            )
        journal = self._apply(table, record, body, user, stamp)
        self._check_policy(table, record)
        self.tables[table][sys_id] = record
        self._journal(table, record, journal, user, stamp)
        return record

    def update(self, table: str, sys_id: str, user: str, body: Mapping[str, object]) -> Record:
        current = self.get(table, sys_id)
        self.require_writer(user, "Update", table)
        record = dict(current)
        stamp = now()
        journal = self._apply(table, record, body, user, stamp)
        self._check_policy(table, record)
        record.update(sys_updated_on=stamp, sys_updated_by=user)
        if "sys_mod_count" in record:
            record["sys_mod_count"] = str(int(record["sys_mod_count"] or 0) + 1)
        self.tables[table][sys_id] = record
        self._journal(table, record, journal, user, stamp)
        return record

    def delete(self, table: str, sys_id: str, user: str) -> None:
        self.require_writer(user, "Delete", table)
        self.get(table, sys_id)
        del self.tables[table][sys_id]

    def _apply(
        self, table: str, record: Record, body: Mapping[str, object], user: str, stamp: str
    ) -> dict[str, str]:
        """Copy known, writable fields; return journal entries instead of storing them."""
        journal: dict[str, str] = {}
        before = record.get("state", "")
        for field, raw in body.items():
            kind = SCHEMA[table].get(field)
            if kind is None or field in ("sys_id", "number") or field.startswith("sys_"):
                continue  # unknown and system fields are ignored, as on an instance
            value = as_string(raw)
            if kind == "journal":
                if value.strip():
                    journal[field] = value
                continue
            if (
                (table, field) == ("incident", "close_code")
                and value
                and not self.is_choice(table, field, value)
            ):
                continue  # not one of the instance's close codes: dropped without a word
            limit = MAX_LENGTH.get((table, field)) or _column_length(table, field)
            record[field] = value[:limit] if limit else value
        if table == "incident":
            self._incident_rules(record, before, user, stamp)
        elif table in INACTIVE_STATES:
            self._task_rules(table, record, before, user, stamp)
        return journal

    @staticmethod
    def _task_rules(table: str, record: Record, before: str, user: str, stamp: str) -> None:
        """``active`` follows the state; closing stamps who and when."""
        closed = record["state"] in INACTIVE_STATES[table]
        record["active"] = "false" if closed else "true"
        if closed and before not in INACTIVE_STATES[table]:
            record.update(closed_at=stamp, closed_by=seed_id("sys_user", user))
        if not closed:
            record.update(closed_at="", closed_by="")

    @staticmethod
    def _incident_rules(record: Record, before: str, user: str, stamp: str) -> None:
        """What the instance's business rules do to an incident on every save."""
        derived = PRIORITY_MATRIX.get((record["impact"], record["urgency"]))
        record["priority"] = derived or record.get("priority") or "5"
        state = record["state"]
        record["active"] = "false" if state in ("7", "8") else "true"
        user_id = seed_id("sys_user", user)
        if state == "6" and before != "6":
            record.update(resolved_at=stamp, resolved_by=user_id)
        if state == "7" and before != "7":
            record.update(closed_at=stamp, closed_by=user_id)
            if not record["resolved_at"]:
                record.update(resolved_at=stamp, resolved_by=user_id)
        if state in ("1", "2", "3") and before in RESOLVED_STATES:  # reopened
            record.update(resolved_at="", resolved_by="", closed_at="", closed_by="")

    def is_choice(self, table: str, field: str, value: str) -> bool:
        """Whether ``value`` is an active choice of ``table.field``."""
        return any(
            row["name"] == table
            and row["element"] == field
            and row["value"] == value
            and row["inactive"] != "true"
            for row in self.tables["sys_choice"].values()
        )

    @staticmethod
    def _check_policy(table: str, record: Record) -> None:
        """The data policies: the fields a save must have, or the instance's 403 naming them by
        label. The dictionary's mandatory flag is not one: forms enforce it, the API does not."""
        missing = []
        if table == "incident":
            if not record["short_description"].strip():
                missing.append("short_description")
            if record["state"] in RESOLVED_STATES:
                missing += [f for f in ("close_code", "close_notes") if not record[f].strip()]
        for name, states, fields in DATA_POLICIES:
            if name == table and (not states or record.get("state") in states):
                missing += [f for f in fields if not record.get(f, "").strip() and f not in missing]
        if missing:
            labels = ", ".join(
                LABELS.get((table, field)) or label_of(table, field) for field in missing
            )
            raise SnError(
                403,
                "Operation Failed",
                f"Data Policy Exception: \n\tThe following fields are mandatory: {labels}\n",
            )

    def _journal(
        self, table: str, record: Record, entries: dict[str, str], user: str, stamp: str
    ) -> None:
        for element, value in entries.items():
            self.put(
                "sys_journal_field",
                {
                    "sys_id": uuid.uuid4().hex,
                    "element_id": record["sys_id"],
                    "element": element,
                    "name": table,
                    "value": value,
                    "sys_created_on": stamp,
                    "sys_created_by": user,
                },
            )
