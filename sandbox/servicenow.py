"""A ServiceNow Table API emulator: incident, journal, choices, users and groups in memory.

It answers like a real instance for what our client and ``pysnc`` use: ``{"result": ...}``
envelopes with every value a string, reference fields as ``{"link", "value"}``, the three
``sysparm_display_value`` modes, encoded queries, pagination headers, journal fields that land in
``sys_journal_field`` and read back empty, priority derived from impact x urgency, and the
``{"error": {"message", "detail"}, "status": "failure"}`` error body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

Record = dict[str, str]
JSON_TYPE = "application/json;charset=UTF-8"
CREDENTIALS = {"admin": "demo", "viewer": "demo"}  # viewer may read but not write
WRITERS = frozenset({"admin"})
DEFAULT_LIMIT = 10000  # glide.rest.query.limit on a fresh instance
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
        "close_code": "string",
        "close_notes": "string",
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
        "sys_created_on": "datetime",
        "sys_updated_on": "datetime",
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
DISPLAY_FIELD = {
    "incident": "number",
    "sys_user": "name",
    "sys_user_group": "name",
    "sys_choice": "label",
    "sys_journal_field": "value",
}
NUMBER_PREFIX = {"incident": "INC"}

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
        ("4", "Awaiting User Info", ""),
        ("5", "Awaiting Problem", ""),
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
}
USERS = [  # user_name, first, last, title
    ("admin", "System", "Administrator", "Administrator"),
    ("alice.nguyen", "Alice", "Nguyen", "Data Engineer"),
    ("bob.martin", "Bob", "Martin", "Data Engineer"),
    ("carla.diaz", "Carla", "Diaz", "Analytics Lead"),
    ("viewer", "Read", "Only", "Auditor"),
]
GROUPS = [  # name, description, manager user_name
    ("Data Platform", "Owns pipelines, warehouses and data quality", "carla.diaz"),
    ("Service Desk", "First line support", "admin"),
    ("Database", "Database administration", "bob.martin"),
    ("Network", "Network operations", "admin"),
]
_FIELD = re.compile(r"[a-z0-9_.]+")
_OPERATORS = (
    "ISNOTEMPTY",
    "ISEMPTY",
    "ANYTHING",
    "NOT LIKE",
    "NOTLIKE",
    "LIKE",
    "STARTSWITH",
    "ENDSWITH",
    "NOT IN",
    "NOTIN",
    "IN",
    "!=",
    ">=",
    "<=",
    "=",
    ">",
    "<",
)


class SnError(Exception):
    """An error answered as ServiceNow does: status code plus message and detail."""

    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail

    def response(self) -> Response:
        body = {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}
        headers = {"WWW-Authenticate": 'BASIC realm="Service-now"'} if self.status == 401 else {}
        return Response(_dumps(body), self.status, headers=headers, media_type=JSON_TYPE)


def seed_id(*parts: str) -> str:
    """Stable 32-hex sys_ids for seed rows, so tests and demos can name them."""
    return hashlib.md5(":".join(parts).encode(), usedforsecurity=False).hexdigest()


def _dumps(body: Any) -> bytes:
    """Compact JSON, as the instance sends it."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _as_string(value: Any) -> str:
    """Everything a client sends is stored the way the instance stores it: as a string."""
    if isinstance(value, dict):
        value = value.get("value", value.get("display_value", ""))
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_as_string(item) for item in value)
    return str(value)


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class EncodedQuery:
    """``a=1^ORb=2^c!=3^NQd=4^ORDERBYDESCe``: OR-ed queries of AND-ed groups of OR-ed terms."""

    queries: tuple[tuple[tuple[Condition, ...], ...], ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending)

    @classmethod
    def parse(cls, text: str) -> EncodedQuery:
        queries: list[tuple[tuple[Condition, ...], ...]] = []
        order: list[tuple[str, bool]] = []
        for part in text.split("^NQ"):
            groups: list[list[Condition]] = []
            for term in part.split("^"):
                if not term or term == "EQ" or term.startswith("GROUPBY"):
                    continue
                if term.startswith("ORDERBYDESC"):
                    order.append((term[len("ORDERBYDESC") :], True))
                elif term.startswith("ORDERBY"):
                    order.append((term[len("ORDERBY") :], False))
                elif term.startswith("OR") and groups:
                    groups[-1].append(_condition(term[2:]))
                else:
                    groups.append([_condition(term)])
            if groups:
                queries.append(tuple(tuple(group) for group in groups))
        return cls(tuple(queries), tuple(order))


def _condition(term: str) -> Condition:
    match = _FIELD.match(term)
    field = match.group(0) if match else ""
    rest = term[len(field) :]
    for op in _OPERATORS:
        if rest.startswith(op):
            return Condition(field, op, rest[len(op) :])
    return Condition(field, "INVALID", rest)


def _compare(op: str, actual: str, wanted: str) -> bool:
    low, want = actual.lower(), wanted.lower()
    if op in ("ISEMPTY", "ISNOTEMPTY"):
        return (actual == "") == (op == "ISEMPTY")
    checks: dict[str, Callable[[], bool]] = {
        "ANYTHING": lambda: True,
        "=": lambda: low == want,
        "!=": lambda: low != want,
        "LIKE": lambda: want in low,
        "NOT LIKE": lambda: want not in low,
        "NOTLIKE": lambda: want not in low,
        "STARTSWITH": lambda: low.startswith(want),
        "ENDSWITH": lambda: low.endswith(want),
        "IN": lambda: low in {v.strip().lower() for v in wanted.split(",")},
        "NOT IN": lambda: low not in {v.strip().lower() for v in wanted.split(",")},
        "NOTIN": lambda: low not in {v.strip().lower() for v in wanted.split(",")},
    }
    if op in checks:
        return checks[op]()
    left, right = _sort_key(actual), _sort_key(wanted)
    if type(left) is not type(right):
        left, right = str(left), str(right)
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}.get(
        op, False
    )


def _sort_key(value: str) -> Any:
    return int(value) if value.lstrip("-").isdigit() else value.lower()


class ServiceNowEmulator:
    """In-memory instance. ``records(table)`` shows state to tests; ``reset()`` reseeds."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Record]] = {}
        self.counters: dict[str, int] = {}
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        self.tables = {name: {} for name in SCHEMA}
        self.counters = {"incident": 10000}
        stamp = "2024-01-01 09:00:00"
        for user_name, first, last, title in USERS:
            self._put(
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
                    "sys_created_on": stamp,
                    "sys_updated_on": stamp,
                },
            )
        for name, description, manager in GROUPS:
            self._put(
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
                self._put(
                    "sys_choice",
                    {
                        "sys_id": seed_id("sys_choice", element, value, dependent),
                        "name": "incident",
                        "element": element,
                        "value": value,
                        "label": label,
                        "sequence": str(sequence),
                        "dependent_value": dependent,
                        "inactive": "false",
                        "language": "en",
                    },
                )

    def records(self, table: str) -> list[Record]:
        return [dict(record) for record in self.tables[table].values()]

    def _put(self, table: str, values: Record) -> Record:
        record = {field: "" for field in SCHEMA[table]}
        record.update(values)
        self.tables[table][record["sys_id"]] = record
        return record

    # -- routing -------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        routes: list[BaseRoute] = []
        for prefix in ("/api/now/table", "/api/now/v1/table", "/api/now/v2/table"):
            routes.append(Route(prefix + "/{table}", self._collection, methods=methods))
            routes.append(Route(prefix + "/{table}/{sys_id}", self._member, methods=methods))
        routes.append(Route("/api/now/{rest:path}", self._unknown, methods=methods))
        return routes

    async def _unknown(self, request: Request) -> Response:
        return SnError(400, "Requested URI does not represent any resource").response()

    async def _collection(self, request: Request) -> Response:
        try:
            user = self._authenticate(request)
            table = self._table(request.path_params["table"])
            if request.method == "GET":
                return self._list(request, table)
            if request.method == "POST":
                return self._insert(request, table, user, await self._body(request))
            raise SnError(405, "Method not Supported", "Requested method is not supported")
        except SnError as error:
            return error.response()

    async def _member(self, request: Request) -> Response:
        try:
            user = self._authenticate(request)
            table = self._table(request.path_params["table"])
            sys_id = request.path_params["sys_id"]
            if request.method == "GET":
                return self._json(
                    {"result": self._render(request, table, self._get(table, sys_id))}
                )
            if request.method in ("PUT", "PATCH"):
                return self._update(request, table, sys_id, user, await self._body(request))
            if request.method == "DELETE":
                self._require_writer(user, "Delete")
                self._get(table, sys_id)
                del self.tables[table][sys_id]
                return Response(status_code=204)
            raise SnError(405, "Method not Supported", "Requested method is not supported")
        except SnError as error:
            return error.response()

    # -- request plumbing ----------------------------------------------------------------

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(token).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            if user in CREDENTIALS and CREDENTIALS[user] == password:
                return user
        raise SnError(401, "User Not Authenticated", "Required to provide Auth information")

    @staticmethod
    def _require_writer(user: str, action: str) -> None:
        if user not in WRITERS:
            raise SnError(
                403,
                "Operation Failed",
                f"ACL Exception {action} Failed due to security constraints",
            )

    def _table(self, name: str) -> str:
        if name not in SCHEMA:
            raise SnError(400, f"Invalid table {name}")
        return name

    def _get(self, table: str, sys_id: str) -> Record:
        record = self.tables[table].get(sys_id)
        if record is None:
            raise SnError(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        return record

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            raise SnError(400, "Exception while reading request", "No request body")
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise SnError(
                400, "Exception while reading request", f"The payload is not valid JSON: {error}"
            ) from error
        if isinstance(body, list):  # the instance works on the first record only
            body = body[0] if body else {}
        if not isinstance(body, dict):
            raise SnError(400, "Exception while reading request", "Expected a JSON object")
        return body

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(_dumps(body), status, headers=headers, media_type=JSON_TYPE)

    # -- reads ---------------------------------------------------------------------------

    def _list(self, request: Request, table: str) -> Response:
        params = request.query_params
        query = EncodedQuery.parse(params.get("sysparm_query", ""))
        rows = [r for r in self.tables[table].values() if self._matches(table, r, query)]
        for field, descending in reversed(query.order):
            rows.sort(
                key=lambda r, f=field: _sort_key(self._order_value(table, r, f)), reverse=descending
            )
        try:
            limit = int(params.get("sysparm_limit") or DEFAULT_LIMIT)
            offset = int(params.get("sysparm_offset") or 0)
        except ValueError as error:
            raise SnError(400, "Invalid sysparm_limit or sysparm_offset", str(error)) from error
        limit, offset = max(limit, 1), max(offset, 0)
        page = rows[offset : offset + limit]
        headers = {"X-Total-Count": str(len(rows))}
        if params.get("sysparm_suppress_pagination_header", "").lower() != "true":
            headers["Link"] = self._links(request, len(rows), limit, offset)
        result = [self._render(request, table, record) for record in page]
        return self._json({"result": result}, headers=headers)

    @staticmethod
    def _links(request: Request, total: int, limit: int, offset: int) -> str:
        base = str(request.url.replace(query="")).rstrip("?")
        params = dict(request.query_params)

        def link(at: int, rel: str) -> str:
            query = urlencode({**params, "sysparm_limit": limit, "sysparm_offset": at})
            return f'<{base}?{query}>;rel="{rel}"'

        last = max(((total - 1) // limit) * limit, 0)
        links = [link(0, "first")]
        if offset > 0:
            links.append(link(max(offset - limit, 0), "prev"))
        if offset + limit < total:
            links.append(link(offset + limit, "next"))
        links.append(link(last, "last"))
        return ",".join(links)

    def _field_value(self, table: str, record: Record, path: str) -> str | None:
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
        return self._field_value(target, referenced, rest)

    def _order_value(self, table: str, record: Record, field: str) -> str:
        kind = SCHEMA[table].get(field, "")
        if kind.startswith("ref:"):
            return self._display(table, field, record.get(field, ""))
        return self._field_value(table, record, field) or ""

    def _matches(self, table: str, record: Record, query: EncodedQuery) -> bool:
        if not query.queries:
            return True
        return any(
            all(any(self._holds(table, record, c) for c in group) for group in groups)
            for groups in query.queries
        )

    def _holds(self, table: str, record: Record, condition: Condition) -> bool:
        actual = self._field_value(table, record, condition.field)
        if actual is None or condition.op == "INVALID":
            return False  # an invalid condition returns no rows
        return _compare(condition.op, actual, condition.value)

    def _display(self, table: str, field: str, value: str) -> str:
        kind = SCHEMA[table].get(field, "string")
        if kind == "journal":
            return ""
        if kind == "choice":
            for row in self.tables["sys_choice"].values():
                if row["name"] == table and row["element"] == field and row["value"] == value:
                    return row["label"]
            return value
        if kind.startswith("ref:"):
            target = kind[4:]
            referenced = self.tables[target].get(value)
            return referenced.get(DISPLAY_FIELD[target], "") if referenced else ""
        return value

    def _render(self, request: Request, table: str, record: Record) -> dict[str, Any]:
        params = request.query_params
        mode = params.get("sysparm_display_value", "false").lower()
        no_link = params.get("sysparm_exclude_reference_link", "false").lower() == "true"
        wanted = [f.strip() for f in params.get("sysparm_fields", "").split(",") if f.strip()]
        fields: Iterable[str] = wanted or SCHEMA[table].keys()
        base = str(request.base_url).rstrip("/")
        out: dict[str, Any] = {}
        for path in fields:
            value = self._field_value(table, record, path)
            if value is None:
                continue  # real instances omit unknown fields
            owner, leaf = self._owner(table, path)
            kind = SCHEMA[owner].get(leaf, "string")
            if kind == "journal":
                value = ""
            display = self._display(owner, leaf, value)
            if kind.startswith("ref:") and value:
                link = f"{base}/api/now/table/{kind[4:]}/{value}"
                shown: dict[str, str] = {
                    "false": {"link": link, "value": value},
                    "true": {"display_value": display, "link": link},
                }.get(mode, {"display_value": display, "link": link, "value": value})
                if no_link:
                    shown.pop("link")
                    out[path] = shown if mode == "all" else next(iter(shown.values()))
                else:
                    out[path] = shown
            elif mode == "true":
                out[path] = display
            elif mode == "all":
                out[path] = {"display_value": display, "value": value}
            else:
                out[path] = value
        return out

    @staticmethod
    def _owner(table: str, path: str) -> tuple[str, str]:
        """The table and field a dot-walked path ends on."""
        parts = path.split(".")
        for part in parts[:-1]:
            table = SCHEMA[table][part][4:]
        return table, parts[-1]

    # -- writes --------------------------------------------------------------------------

    def _insert(self, request: Request, table: str, user: str, body: dict[str, Any]) -> Response:
        self._require_writer(user, "Insert")
        now = _now()
        sys_id = _as_string(body.get("sys_id")) or uuid.uuid4().hex
        if sys_id in self.tables[table]:
            raise SnError(403, "Operation Failed", "Error during insert of incident (duplicate)")
        record = {field: "" for field in SCHEMA[table]}
        record.update({"sys_id": sys_id, "sys_created_on": now, "sys_updated_on": now})
        record.update({"sys_created_by": user, "sys_updated_by": user, "sys_mod_count": "0"})
        if table == "incident":
            self.counters[table] += 1
            record.update(
                number=f"{NUMBER_PREFIX[table]}{self.counters[table]:07d}",
                state="1",
                impact="3",
                urgency="3",
                active="true",
                opened_at=now,
                opened_by=seed_id("sys_user", user),
                sys_class_name="incident",
            )
        journal = self._apply(table, record, body)
        self._check_policy(table, record)
        self.tables[table][sys_id] = record
        self._journal(table, record, journal, user, now)
        location = f"{str(request.base_url).rstrip('/')}/api/now/table/{table}/{sys_id}"
        return self._json(
            {"result": self._render(request, table, record)}, 201, {"Location": location}
        )

    def _update(
        self, request: Request, table: str, sys_id: str, user: str, body: dict[str, Any]
    ) -> Response:
        current = self._get(table, sys_id)
        self._require_writer(user, "Update")
        record = dict(current)
        journal = self._apply(table, record, body)
        self._check_policy(table, record)
        now = _now()
        record.update(sys_updated_on=now, sys_updated_by=user)
        if "sys_mod_count" in record:
            record["sys_mod_count"] = str(int(record["sys_mod_count"] or 0) + 1)
        self.tables[table][sys_id] = record
        self._journal(table, record, journal, user, now)
        return self._json({"result": self._render(request, table, record)})

    def _apply(self, table: str, record: Record, body: dict[str, Any]) -> dict[str, str]:
        """Copy known, writable fields; return journal entries instead of storing them."""
        journal: dict[str, str] = {}
        for field, raw in body.items():
            kind = SCHEMA[table].get(field)
            if kind is None or field in ("sys_id", "number") or field.startswith("sys_"):
                continue  # unknown and system fields are ignored, as on an instance
            value = _as_string(raw)
            if kind == "journal":
                if value.strip():
                    journal[field] = value
                continue
            limit = MAX_LENGTH.get((table, field))
            record[field] = value[:limit] if limit else value
        if table == "incident":
            derived = PRIORITY_MATRIX.get((record["impact"], record["urgency"]))
            record["priority"] = derived or record.get("priority") or "5"
            if record["state"] in ("7", "8"):
                record["active"] = "false"
            if record["state"] == "6" and not record["resolved_at"]:
                record["resolved_at"] = _now()
        return journal

    @staticmethod
    def _check_policy(table: str, record: Record) -> None:
        if table == "incident" and not record["short_description"].strip():
            raise SnError(
                403,
                "Operation Failed",
                "Data Policy Exception: \n"
                "\tThe following fields are mandatory: Short description\n",
            )

    def _journal(
        self, table: str, record: Record, entries: dict[str, str], user: str, now: str
    ) -> None:
        for element, value in entries.items():
            self._put(
                "sys_journal_field",
                {
                    "sys_id": uuid.uuid4().hex,
                    "element_id": record["sys_id"],
                    "element": element,
                    "name": table,
                    "value": value,
                    "sys_created_on": now,
                    "sys_created_by": user,
                },
            )
