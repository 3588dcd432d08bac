"""ServiceNow tickets (incidents, problems, changes, any table extending ``task``) through the
Table API, behind the ``Provider`` protocol.

One ``httpx.AsyncClient`` per connection, driven by the shared loop of ``http``: reads retry
transient failures a couple of times; writes never do, and a write that got no answer is reported
``ambiguous`` so the sync engine looks for its effect (``find_created``) before repeating it. The
password lives only in the HTTP client's auth.

Two-way sync polls the table (``sys_updated_on``) and ``sys_journal_field`` (work notes and
additional comments, ``sys_created_by`` = the writer's user_name: ours when it is the configured
user's), resolves with state 6 and a close code read from ``sys_choice`` (never 7, Closed), and
reopens to state 2; other tables by their own states (``servicenow_tables``). A ticket's table
comes with its ``TicketRef`` (the link remembers it); without one, the number's prefix or the
connection's ``table``. The create form is read from ``sys_dictionary`` (``servicenow_fields``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import JsonValue

from anomaly_desk.core.connections import Platform, ServiceNowConnection
from anomaly_desk.core.formatting.block import anomaly_block
from anomaly_desk.core.formatting.notes import link_note
from anomaly_desk.core.formatting.plain import block_to_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.base import (
    NoteTag,
    Option,
    ProviderKind,
    Ticket,
    TicketChange,
    TicketComment,
    TicketFields,
    TicketRef,
    TicketText,
)
from anomaly_desk.core.providers.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.http import (
    READ_RETRY,
    BadAnswer,
    ErrorText,
    JsonBody,
    ReadRetry,
    RequestLoop,
    basic_auth_client,
)
from anomaly_desk.core.providers.oauth import OAuth
from anomaly_desk.core.providers.payloads import (
    ChoiceField,
    Incident,
    ReferenceField,
    ServiceNowField,
    ServiceNowRow,
)
from anomaly_desk.core.providers.servicenow_fields import (
    CHOICE_READ_FIELDS,
    DICTIONARY_FIELDS,
    TableForm,
    build_form,
    refused_fields,
)
from anomaly_desk.core.providers.servicenow_tables import (
    CHANGE_API,
    INCIDENT,
    KNOWN,
    TableSpec,
    spec_for,
    table_of_key,
)
from anomaly_desk.core.views import CreateFormView, TicketTypeView, UserView
from anomaly_desk.core.vocabulary import FieldKind

T = TypeVar("T")
log = logging.getLogger(__name__)

CORRELATION_DISPLAY = "Anomaly Desk"
SHORT_DESCRIPTION_MAX = 160  # incident.short_description max_length on a base instance
DESCRIPTION_MAX = 4000  # incident.description max_length; longer text is cut by the instance
TRUNCATED = "… [truncated]"
NOTE_LOOKBACK = 1000  # newest work notes counted by note_baseline and has_note
# the default priority lookup rules: (impact, urgency) -> priority
PRIORITY_MATRIX = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("2", "1"): "2",
    ("2", "2"): "3",
    ("1", "3"): "3",
    ("3", "1"): "3",
    ("2", "3"): "4",
    ("3", "2"): "4",
    ("3", "3"): "5",
}
PRIORITY_WORDS = {"critical": "1", "high": "2", "moderate": "3", "low": "4", "planning": "5"}
LEVEL_WORDS = {"high": "1", "medium": "2", "low": "3"}
CHOICE_FIELDS: tuple[ChoiceField, ...] = (
    "category",
    "subcategory",
    "urgency",
    "impact",
    "priority",
)
REFERENCE_FIELDS: tuple[ReferenceField, ...] = ("assignment_group", "assigned_to", "caller_id")
TEXT_FIELDS = ("short_description", "description", "category", "subcategory")
FIELD_ALIASES = {"summary": "short_description"}
WRITABLE = frozenset(
    {*TEXT_FIELDS, "priority", "urgency", "impact", "assignment_group", "assigned_to", "caller_id"}
)
READ_FIELDS = (
    "sys_id,number,short_description,description,state,priority,urgency,impact,category,"
    "subcategory,assignment_group,assigned_to,caller_id,correlation_id,sys_updated_on,"
    "sys_class_name"
)
LABEL_TO_FIELD = {
    "short description": "short_description",
    "description": "description",
    "assignment group": "assignment_group",
    "assigned to": "assigned_to",
    "caller": "caller_id",
    "category": "category",
    "subcategory": "subcategory",
    "impact": "impact",
    "urgency": "urgency",
    "priority": "priority",
    "resolution code": "close_code",
    "resolution notes": "close_notes",
}
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
# Two-way sync: rows are re-read this far back (a write's sys_updated_on is when it began, and
# clocks drift); the caller recognises what it has seen by journal sys_id and state.
OVERLAP = timedelta(minutes=2)
CHANGE_FIELDS = "sys_id,number,state,short_description,sys_updated_on,sys_updated_by,sys_class_name"
JOURNAL_FIELDS = "sys_id,element_id,element,value,sys_created_on,sys_created_by"
CHANGES_BATCH = 100  # sys_ids per query (they go in the URL)
JOURNAL_PAGE = 1000
STATE_FIELDS = "sys_id,number,state"
DEFAULT_CLOSE_NOTES = "Resolved by Anomaly Desk: the anomaly was archived."
FORM_TTL = 300.0  # seconds a table's form (dictionary, choices) is reused
FORM_LEVELS = 4  # parent tables followed through sys_db_object.super_class
USER_FIELDS = "sys_id,name,email,user_name,active"
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


RESTRICTION = "glide.authenticate.basic_auth.restriction"
RESTRICTION_KEYS = ("active", "enforce", "enforcement_date")


@dataclass(frozen=True, slots=True)
class BasicAuthRestriction:
    """ServiceNow's blocking of basic auth (Australia release; KB3025707), as the instance's
    ``sys_properties`` say. ``readable`` False: the account may not read them (``reason``)."""

    readable: bool
    active: bool = False
    enforce: bool = False
    enforcement_date: str | None = None  # when enforcement begins, as the property has it
    reason: str = ""

    @property
    def applies(self) -> bool:
        """Active, enforced or scheduled: basic auth stops (or will stop) working."""
        return self.active or self.enforce or self.enforcement_date is not None


class ServiceNowClient:
    """A ServiceNow instance as a ``Provider``: incidents, work notes and drop-down choices."""

    kind: ProviderKind = "servicenow"

    def __init__(
        self,
        conn: ServiceNowConnection,
        platform: Platform | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: ReadRetry = READ_RETRY,
    ) -> None:
        self.name = conn.name
        self.url = conn.url
        self.table = conn.table
        # the ticket types offered, the default first
        self.tables = list(dict.fromkeys([conn.table, *conn.tables]))
        self._forms: dict[str, tuple[float, TableForm]] = {}
        self._creating: dict[int, str] = {}  # anomaly id -> the table of its latest create
        self.username = conn.username
        self.close_code = conn.close_code
        self.platform = platform or Platform()
        self.auth_mode = conn.auth
        password = conn.password.get_secret_value() if conn.password else ""
        client_secret = conn.client_secret.get_secret_value() if conn.client_secret else ""
        self._secret = client_secret if conn.uses_oauth else password
        self._missing = self._missing_secret(conn.auth, password, client_secret)
        self._client = basic_auth_client(conn, conn.url, conn.username, password, transport)
        self.oauth: OAuth | None = None
        if conn.uses_oauth:
            grant_password = conn.auth == "oauth_password"
            self.oauth = OAuth(
                provider="ServiceNow",
                connection=self.name,
                token_url=f"{conn.url}/oauth_token.do",
                client_id=conn.client_id or "",
                client_secret=client_secret,
                username=conn.username if grant_password else None,
                password=password if grant_password else None,
                body="form",
            )
            self._client.auth = self.oauth
        self._loop = RequestLoop(
            self._client,
            SERVICENOW,
            connection=self.name,
            url=conn.url,
            timeout=conn.timeout,
            secret=password or client_secret,
            retry=retry,
        )

    @staticmethod
    def _missing_secret(auth: str, password: str, client_secret: str) -> str | None:
        """What the connection lacks to authenticate in its mode, as a message; None: nothing."""
        if auth in ("basic", "oauth_password") and not password:
            return "No password configured for this connection"
        if auth != "basic" and not client_secret:
            return "No client secret configured for this connection"
        return None

    def __repr__(self) -> str:
        return (
            f"ServiceNowClient(name={self.name!r}, url={self.url!r}, user={self.username!r}, "
            f"auth={self.auth_mode!r})"
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the protocol --------------------------------------------------------------------

    async def check(self) -> str:
        await self._request(
            "GET", self._path(), params={"sysparm_limit": "1", "sysparm_fields": "sys_id"}
        )
        return self.username

    async def basic_auth_restriction(self) -> BasicAuthRestriction:
        """The instance's basic-auth restriction (``sys_properties``
        ``glide.authenticate.basic_auth.restriction.*``), when this account may read it."""
        query = "nameIN" + ",".join(f"{RESTRICTION}.{key}" for key in RESTRICTION_KEYS)
        try:
            rows = await self._rows("sys_properties", query, "name,value", limit=10)
        except (AuthError, NotFoundError) as exc:
            return BasicAuthRestriction(readable=False, reason=exc.plain())
        if not rows:  # an older release, or the rows hidden from this account by ACLs
            reason = "none of its properties is visible to this account"
            return BasicAuthRestriction(readable=False, reason=reason)
        values = {
            str(row.get("name", "")).removeprefix(f"{RESTRICTION}."): str(row.get("value", ""))
            for row in rows
        }
        return BasicAuthRestriction(
            readable=True,
            active=_flag(values.get("active")),
            enforce=_flag(values.get("enforce")),
            enforcement_date=values.get("enforcement_date", "").strip() or None,
        )

    async def create_ticket(
        self,
        anomaly: Anomaly,
        fields: TicketFields,
        *,
        text: TicketText | None = None,
        operator_email: str | None = None,
    ) -> Ticket:
        """A row on ``fields["table"]`` (else the connection's table); change requests through
        the Change Management API. Dictionary-mandatory fields are checked before the write, a
        data policy's refusal is mapped to its fields; the caller is looked up by email."""
        table = self._table_field(fields.get("table"))
        values: TicketFields = {
            FIELD_ALIASES.get(k, k): v
            for k, v in fields.items()
            if k != "table" and v not in (None, "")
        }
        warnings: list[str] = []
        form = None
        if table != INCIDENT.name or set(values) - WRITABLE:
            form = await self._form_or_none(table)
        body = await self._create_body(anomaly, table, values, text, form, warnings)
        if operator_email and "caller_id" not in values:
            await self._caller(table, operator_email, form, body, warnings)
        if form is not None:
            self._check_mandatory(table, form, body)
        self._creating[anomaly.id] = table  # where find_created looks if no answer comes
        try:
            row = await self._create(table, body)
        except ProviderError as exc:
            if not (isinstance(exc, UnavailableError) and exc.ambiguous):
                self._creating.pop(anomaly.id, None)
            if isinstance(exc, ValidationError):
                raise await self._refusal(table, exc, form) from None
            raise
        self._creating.pop(anomaly.id, None)
        ticket = self._ticket(row, table)
        return replace(ticket, warnings=tuple(warnings)) if warnings else ticket

    async def _create(self, table: str, body: dict[str, str]) -> Incident:
        """``POST`` the row: the Table API, or for a change request the Change Management API
        (its answer wraps every value as ``{"value", "display_value"}``)."""
        special = CHANGE_API.get(table)
        if special is not None:
            return await self._answer(Incident, "POST", special, json=body)
        return await self._answer(
            Incident, "POST", self._path(table=table), params=_read_params(), json=body
        )

    async def _refusal(
        self, table: str, exc: ValidationError, form: TableForm | None
    ) -> ValidationError:
        """A data policy's 403 with its fields named by their ids, from the dictionary's
        labels (the instance names them by label)."""
        if exc.status != 403 or "mandatory" not in exc.message:
            return exc
        if form is None:
            try:
                form = await self._form_or_none(table)
            except ProviderError:
                form = None  # the instance's words stand
        labels = {**LABEL_TO_FIELD, **(form.labels if form else {})}
        errors = refused_fields(exc.message, labels) or exc.field_errors
        return ValidationError(
            exc.message, field_errors=errors, status=exc.status, connection=self.name
        )

    def _check_mandatory(self, table: str, form: TableForm, body: dict[str, str]) -> None:
        """The dictionary's mandatory columns (without a default) must be in the body: refused
        here, by field, rather than by the instance after a half-done write."""
        missing = {
            spec.id: f"{spec.name} is mandatory on {form.label}"
            for spec in form.fields
            if spec.required and not str(body.get(spec.id, "")).strip()
        }
        if missing:
            names = ", ".join(sorted(missing))
            raise ValidationError(
                f"Mandatory field(s) missing for a {table}: {names}",
                field_errors=missing,
                connection=self.name,
            )

    def _table_field(self, raw: JsonValue) -> str:
        """The ticket's table: ``fields["table"]`` or the connection's; a name only."""
        if raw is None or raw == "":
            return self.table
        name = str(raw).strip()
        if not IDENTIFIER.match(name):
            message = f"not a ServiceNow table name: {name!r}"
            raise ValidationError(message, field_errors={"table": message}, connection=self.name)
        return name

    async def _caller(
        self,
        table: str,
        email: str,
        form: TableForm | None,
        body: dict[str, str],
        warnings: list[str],
    ) -> None:
        """``caller_id`` from the operator's email: exactly one active ``sys_user`` with it;
        otherwise left empty and the reason added to ``warnings``."""
        field = INCIDENT.caller if table == INCIDENT.name else None
        if form is not None and "caller_id" in form.columns:
            field = "caller_id"
        if field is None:
            warnings.append(f"caller not set: a {table} has no caller field ({email})")
            return
        email = email.strip()
        if "^" in email or not email:  # ``^`` would start another term of the query
            warnings.append(f"caller left empty: {email!r} cannot be looked up safely")
            return
        try:
            rows = await self._rows("sys_user", f"email={email}", USER_FIELDS, limit=10)
        except (AuthError, NotFoundError, ValidationError) as exc:
            warnings.append(f"caller left empty: users are not readable ({exc.plain()})")
            return
        same = [row for row in rows if row.get("email", "").casefold() == email.casefold()]
        active = [row for row in same if _flag(row.get("active"))]
        if len(active) == 1:
            body[field] = active[0]["sys_id"]
        elif len(active) > 1:
            warnings.append(
                f"caller left empty: {len(active)} active ServiceNow users have {email}"
            )
        elif same:
            warnings.append(f"caller left empty: the ServiceNow user with {email} is inactive")
        else:
            warnings.append(f"caller left empty: no ServiceNow user has {email}")

    async def find_created(self, anomaly_id: int) -> list[Ticket]:
        """On the table of this anomaly's unconfirmed create, else on every offered table."""
        query = (
            f"correlation_id={anomaly_id}^correlation_display={CORRELATION_DISPLAY}"
            "^ORDERBYsys_created_on"
        )
        remembered = self._creating.get(anomaly_id)
        found: list[Ticket] = []
        for table in [remembered] if remembered else self.tables:
            try:
                found += await self._query(query, limit=50, table=table)
            except (NotFoundError, ValidationError):
                if table == self.table or remembered:
                    raise
        return found

    async def get_ticket(self, key: str) -> Ticket:
        key = key.strip()
        if SYS_ID.match(key):
            row = await self._answer(Incident, "GET", self._path(key), params=_read_params())
            return self._ticket(row, self.table)
        _refuse_caret(key, "key", self.name)
        table = self._table_of_key(key)
        found = await self._query(f"number={key.upper()}", limit=1, table=table)
        if not found:
            raise NotFoundError(f"No {table} {key}", status=None, connection=self.name)
        return found[0]

    async def search(self, text: str, limit: int = 20) -> list[Ticket]:
        text = " ".join(text.split())
        _refuse_caret(text, "q", self.name)
        query = f"numberLIKE{text}^ORshort_descriptionLIKE{text}^" if text else ""
        table = self._table_of_key(text) if text else self.table
        return await self._query(query + "ORDERBYDESCsys_updated_on", limit=limit, table=table)

    async def add_note(self, ticket: TicketRef, text: str, tag: NoteTag | None = None) -> None:
        """A work note; it cannot carry ``tag`` (journal entries have no metadata we can set)."""
        table, sys_id = await self._address(ticket)
        params = {"sysparm_fields": "sys_id"}
        await self._request(
            "PATCH", self._path(sys_id, table), params=params, json={"work_notes": text}
        )

    async def note_baseline(self, ticket: TicketRef, text: str) -> int:
        return await self._identical_notes(ticket, text)

    async def has_note(self, ticket: TicketRef, text: str, tag: NoteTag) -> bool:
        """Landed iff the ticket now has more work notes with this text than before the send.

        ``tag.baseline`` was counted before this job's first send when an earlier job on this
        ticket had the same text (else 0: any identical note is this one). What remains: a person
        typing exactly this text on the incident between the count and the check makes a lost
        note look landed.
        """
        return await self._identical_notes(ticket, text) > tag.baseline

    async def _identical_notes(self, ticket: TicketRef, text: str) -> int:
        """Work notes on the record whose text is ``text`` (among the newest NOTE_LOOKBACK).

        The comparison is ours, exact: the instance's ``value=`` is case-insensitive on most
        databases and ``^`` in the text cannot be put in an encoded query.
        """
        _, sys_id = await self._address(ticket)
        query = f"element_id={sys_id}^element=work_notes^ORDERBYDESCsys_created_on"
        rows = await self._rows("sys_journal_field", query, "value", limit=NOTE_LOOKBACK)
        wanted = text.strip()
        return sum(str(row.get("value", "")).strip() == wanted for row in rows)

    def _ref_table(self, ticket: TicketRef) -> str:
        """The record's table: the ref's, else by the number's prefix, else the default."""
        if ticket.table:
            return ticket.table
        return table_of_key(ticket.key, [self.table, *self.tables, *KNOWN]) or self.table

    def _table_of_key(self, key: str) -> str:
        return table_of_key(key, [self.table, *self.tables, *KNOWN]) or self.table

    async def _address(self, ticket: TicketRef) -> tuple[str, str]:
        """The record's table and sys_id (read by its number when the ref has no sys_id)."""
        table = self._ref_table(ticket)
        if SYS_ID.match(ticket.id):
            return table, ticket.id
        _refuse_caret(ticket.key, "key", self.name)
        found = await self._query(f"number={ticket.key.strip().upper()}", limit=1, table=table)
        if not found:
            raise NotFoundError(f"No {table} {ticket.key}", status=None, connection=self.name)
        return table, found[0].id

    # -- ticket types, forms and people ---------------------------------------------------

    async def ticket_types(self) -> list[TicketTypeView]:
        """The offered tables, labelled by ``sys_db_object`` when this account may read it."""
        labels: dict[str, str] = {}
        try:
            rows = await self._rows(
                "sys_db_object", f"nameIN{','.join(self.tables)}", "name,label", limit=100
            )
            labels = {row.get("name", ""): row.get("label", "") for row in rows}
        except (AuthError, NotFoundError, ValidationError):
            pass
        return [
            TicketTypeView(id=name, name=labels.get(name) or spec_for(name).label)
            for name in self.tables
        ]

    async def create_form(self, ticket_type: str | None = None) -> CreateFormView:
        table = self._table_field(ticket_type)
        form = await self._form(table, fresh=True)  # the desk caches it; a refresh is a refresh
        return CreateFormView(
            connection=self.name,
            ticket_type=TicketTypeView(id=table, name=form.label),
            fields=list(form.fields),
        )

    async def find_users(self, query: str, limit: int = 20) -> list[UserView]:
        """Active users whose name, email or user name contains ``query``."""
        text = " ".join(query.split())
        _refuse_caret(text, "q", self.name)
        where = (
            f"nameLIKE{text}^ORemailLIKE{text}^ORuser_nameLIKE{text}^active=true^ORDERBYname"
            if text
            else "active=true^ORDERBYname"
        )
        rows = await self._rows("sys_user", where, USER_FIELDS, limit=max(1, min(limit, 100)))
        return [
            UserView(
                id=row["sys_id"],
                name=row.get("name") or row.get("user_name", ""),
                email=row.get("email") or None,
            )
            for row in rows
        ]

    async def _form_or_none(self, table: str) -> TableForm | None:
        """The table's form, or None when the dictionary is not readable to this account."""
        try:
            return await self._form(table)
        except (AuthError, NotFoundError):
            return None

    async def _form(self, table: str, *, fresh: bool = False) -> TableForm:
        """``sys_dictionary`` of the table and its parents, ``sys_choice`` of its choice
        columns: kept ``FORM_TTL`` seconds for the creates that check against it."""
        held = self._forms.get(table)
        if held is not None and not fresh and time.monotonic() - held[0] < FORM_TTL:
            return held[1]
        label, chain = await self._lineage(table)
        rows = await self._rows(
            "sys_dictionary", f"nameIN{','.join(chain)}", DICTIONARY_FIELDS, limit=5000
        )
        if not any(row.get("name") == table for row in rows):
            message = f"{table} is not a table of this instance (no dictionary entries)"
            raise ValidationError(message, field_errors={"table": message}, connection=self.name)
        choice_columns = sorted(
            {row.get("element", "") for row in rows if row.get("choice", "0") in ("1", "3")} - {""}
        )
        choices: list[ServiceNowRow] = []
        if choice_columns:
            choices = await self._rows(
                "sys_choice",
                f"nameIN{','.join(chain)}^elementIN{','.join(choice_columns)}^language=en"
                "^ORDERBYsequence",
                CHOICE_READ_FIELDS,
                limit=5000,
            )
        form = build_form(table, label, rows, choices, chain)
        self._forms[table] = (time.monotonic(), form)
        return form

    async def _lineage(self, table: str) -> tuple[str, list[str]]:
        """The table's label and its chain of tables up to ``task`` (from ``sys_db_object``;
        unreadable: the table and ``task``)."""
        chain, label, name = [table], spec_for(table).label, table
        try:
            for _ in range(FORM_LEVELS):
                rows = await self._rows(
                    "sys_db_object", f"name={name}", "name,label,super_class.name", limit=1
                )
                if not rows:
                    break
                if name == table:
                    label = rows[0].get("label") or label
                parent = rows[0].get("super_class.name", "")
                if not parent or parent in chain:
                    break
                chain.append(parent)
                if parent == "task":
                    break
                name = parent
        except (AuthError, NotFoundError, ValidationError):
            pass  # not readable (or no such table here): the table and task
        if table != "task" and "task" not in chain:
            chain.append("task")
        return label, chain

    async def link(self, anomaly: Anomaly, key: str) -> Ticket:
        ticket = await self.get_ticket(key)
        block = anomaly_block(anomaly, self.platform.name, self.platform.url)
        text = block_to_text(block)
        current = str(ticket.extra.get("description") or "")
        if text in current:
            return ticket  # already linked: the description carries the block
        note = link_note(anomaly.id, block.link, self.platform.name)
        body: dict[str, str] = {"work_notes": note}
        combined = f"{current.rstrip()}\n\n{text}" if current.strip() else text
        if len(combined) <= DESCRIPTION_MAX:
            body["description"] = combined
        else:  # the instance would cut the block off; the journal has room for it
            body["work_notes"] = f"{note}\n\n{text}"
        table = ticket.table or self.table
        row = await self._answer(
            Incident, "PATCH", self._path(ticket.id, table), params=_read_params(), json=body
        )
        return self._ticket(row, table)

    async def options(self) -> dict[str, list[Option]]:
        choices, groups, users = await asyncio.gather(
            self._rows(
                "sys_choice",
                f"name={self.table}^elementIN{','.join(CHOICE_FIELDS)}^inactive=false"
                "^language=en^ORDERBYelement^ORDERBYsequence",
                "element,value,label,dependent_value,sequence",
            ),
            self._rows("sys_user_group", "active=true^ORDERBYname", "sys_id,name"),
            self._rows("sys_user", "active=true^ORDERBYname", "sys_id,user_name,name"),
        )
        out: dict[str, list[Option]] = {name: [] for name in CHOICE_FIELDS}
        for row in choices:
            element, option = row["element"], Option(row["value"], row["label"])
            if element == "subcategory" and row.get("dependent_value"):
                out.setdefault(f"subcategory:{row['dependent_value']}", []).append(option)
            if option not in out.setdefault(element, []):
                out[element].append(option)
        out["assignment_group"] = [Option(g["sys_id"], g["name"]) for g in groups]
        people = [Option(u["sys_id"], f"{u['name']} ({u['user_name']})") for u in users]
        out["assigned_to"] = people
        out["caller_id"] = list(people)
        return out

    # -- two-way ---------------------------------------------------------------------------

    async def account(self) -> str:
        """The configured user's ``user_name``: what ``sys_created_by``/``sys_updated_by`` say."""
        return self.username

    async def changes(self, tickets: list[TicketRef], since: str | None) -> list[TicketChange]:
        """Records among ``tickets`` updated since ``since`` (re-read ``OVERLAP`` further
        back), with their work notes and comments created since ``since``; one query per table."""
        after = _since(since, self.name)
        by_table: dict[str, list[str]] = {}
        for ref in tickets:
            table = self._ref_table(ref)
            if SYS_ID.match(ref.id):
                by_table.setdefault(table, []).append(ref.id)
            elif ref.key:
                try:
                    by_table.setdefault(table, []).append((await self._address(ref))[1])
                except NotFoundError:
                    log.info("%s: %s no longer exists; left out of the poll", self.name, ref.key)
        rows: list[tuple[str, Incident]] = []
        for table, table_ids in by_table.items():
            found = await self._changed_rows(table, list(dict.fromkeys(table_ids)), after)
            rows.extend((table, row) for row in found)
        if not rows:
            return []
        notes = await self._journal_since([_value(row.get("sys_id")) for _, row in rows], after)
        return [
            self._change(row, notes.get(_value(row.get("sys_id")), []), table)
            for table, row in rows
        ]

    async def _changed_rows(
        self, table: str, ids: list[str], after: datetime | None
    ) -> list[Incident]:
        rows: list[Incident] = []
        for start in range(0, len(ids), CHANGES_BATCH):
            chunk = ids[start : start + CHANGES_BATCH]
            query = f"sys_idIN{','.join(chunk)}"
            if after is not None:
                query += f"^sys_updated_on>={_stamp(after - OVERLAP)}"
            params = {
                "sysparm_query": query + "^ORDERBYsys_updated_on",
                "sysparm_fields": CHANGE_FIELDS,
                "sysparm_display_value": "all",
                "sysparm_exclude_reference_link": "true",
                "sysparm_limit": str(len(chunk)),
            }
            rows.extend(
                await self._answer(list[Incident], "GET", self._path(table=table), params=params)
            )
        return rows

    async def _journal_since(
        self, ids: list[str], after: datetime | None
    ) -> dict[str, list[TicketComment]]:
        """Work notes and additional comments of the records, created since ``after``, oldest
        first, by record sys_id."""
        out: dict[str, list[TicketComment]] = {}
        seen: set[str] = set()
        mine = self.username.casefold()
        for start in range(0, len(ids), CHANGES_BATCH):
            query = f"element_idIN{','.join(ids[start : start + CHANGES_BATCH])}"
            query += "^elementINwork_notes,comments"
            if after is not None:
                query += f"^sys_created_on>={_stamp(after)}"
            offset = 0
            while True:
                params = {
                    "sysparm_query": query + "^ORDERBYsys_created_on",
                    "sysparm_fields": JOURNAL_FIELDS,
                    "sysparm_display_value": "false",
                    "sysparm_exclude_reference_link": "true",
                    "sysparm_limit": str(JOURNAL_PAGE),
                    "sysparm_offset": str(offset),
                }
                page = await self._answer(
                    list[ServiceNowRow],
                    "GET",
                    self._path(table="sys_journal_field"),
                    params=params,
                )
                for row in page:
                    sys_id, who = row.get("sys_id", ""), row.get("sys_created_by", "")
                    if sys_id in seen:
                        continue  # a page boundary moved under a new entry
                    seen.add(sys_id)
                    stamp = row.get("sys_created_on", "")
                    out.setdefault(row.get("element_id", ""), []).append(
                        TicketComment(
                            id=sys_id,
                            author_id=who,
                            author=who,
                            text=row.get("value", ""),
                            created=_iso_z(stamp) or stamp,
                            ours=who.casefold() == mine,
                        )
                    )
                offset += len(page)
                if len(page) < JOURNAL_PAGE:
                    break
        return out

    def _change(self, row: Incident, comments: list[TicketComment], table: str) -> TicketChange:
        ticket = self._ticket(row, table)
        stamp = _value(row.get("sys_updated_on"))
        ticket = replace(
            ticket,
            updated=_iso_z(stamp) or ticket.updated,
            extra={k: v for k, v in ticket.extra.items() if v not in ("", None)},
        )
        state = _value(row.get("state"))
        return TicketChange(
            ticket=ticket,
            done=state in spec_for(ticket.table or table).done,
            state_by=_value(row.get("sys_updated_by")) or None,
            comments=tuple(comments),
        )

    async def move_to_done(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """Incident: state 6 (Resolved) with the configured close code and ``note`` as close
        notes; never 7 (Closed: the instance closes a resolved incident itself, and a closed one
        is final). Other tables: their own resolving state (problem 106, change 3, task 3)."""
        table = self._ref_table(ticket)
        spec = spec_for(table)
        row = await self._state_row(ticket, table)
        number, state = row.get("number") or ticket.key, row.get("state", "")
        if state in spec.done:
            return f"{number} is already {spec.states.get(state, state)}: left alone"
        body = {"state": spec.resolve}
        code = ""
        if "close_code" in spec.resolve_fields:
            code = body["close_code"] = await self._close_code(table)
        if "close_notes" in spec.resolve_fields:
            body["close_notes"] = note.strip() or DEFAULT_CLOSE_NOTES
        elif note.strip():
            body["work_notes"] = note
        try:
            after = await self._patch_state(row.get("sys_id") or ticket.id, body, table)
        except ValidationError as exc:
            if exc.status != 403:
                raise
            _, _, wanted = " ".join(exc.message.split()).partition("mandatory:")
            sent = f" (close code sent: {code!r})" if code else ""
            problem = (
                f"{number} cannot be resolved: the instance's data policy requires "
                f"{wanted.strip() or 'more fields'}{sent}"
            )
            raise ValidationError(
                problem, field_errors=exc.field_errors, status=exc.status, connection=self.name
            ) from exc
        self._check_state(number, after, spec.resolve, spec)
        return None

    async def reopen(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """Incident: state 2 (In Progress) with ``note`` as a work note, from Resolved only;
        problem: 104 (Fix in Progress) from 106. A closed record is final: left alone."""
        table = self._ref_table(ticket)
        spec = spec_for(table)
        row = await self._state_row(ticket, table)
        number, state = row.get("number") or ticket.key, row.get("state", "")
        name = spec.states.get(state, state)
        if state in spec.done and (state not in spec.reopen_from or not spec.reopen):
            return (
                f"{number} is {name}: a {name.lower()} {spec.label.lower()} cannot be reopened;"
                " left alone"
            )
        if state not in spec.reopen_from:
            return f"{number} is not resolved ({name}): left alone"
        body = {"state": spec.reopen}
        if note.strip():
            body["work_notes"] = note
        after = await self._patch_state(row.get("sys_id") or ticket.id, body, table)
        self._check_state(number, after, spec.reopen, spec)
        return None

    async def _state_row(self, ticket: TicketRef, table: str) -> ServiceNowRow:
        """sys_id, number and state (stored values) of the ticket's record."""
        params = {
            "sysparm_fields": STATE_FIELDS,
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        if SYS_ID.match(ticket.id):
            return await self._answer(
                ServiceNowRow, "GET", self._path(ticket.id, table), params=params
            )
        key = ticket.key.strip().upper()
        _refuse_caret(key, "key", self.name)
        params |= {"sysparm_query": f"number={key}", "sysparm_limit": "1"}
        rows = await self._answer(
            list[ServiceNowRow], "GET", self._path(table=table), params=params
        )
        if not rows:
            raise NotFoundError(f"No {table} {key}", status=None, connection=self.name)
        return rows[0]

    async def _patch_state(self, sys_id: str, body: dict[str, str], table: str) -> ServiceNowRow:
        params = {
            "sysparm_fields": STATE_FIELDS,
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        return await self._answer(
            ServiceNowRow, "PATCH", self._path(sys_id, table), params=params, json=body
        )

    def _check_state(self, number: str, row: ServiceNowRow, wanted: str, spec: TableSpec) -> None:
        """A business rule may refuse a state change without an error: the answer tells."""
        state = row.get("state", "")
        if state != wanted:
            problem = (
                f"{number} stayed {spec.states.get(state, state or 'unchanged')} "
                f"(asked for {spec.states.get(wanted, wanted)}): a business rule on the instance "
                "refused it"
            )
            raise ValidationError(problem, field_errors={"state": problem}, connection=self.name)

    async def _close_code(self, table: str) -> str:
        """The configured close code as the instance stores it (a label is taken too); one the
        instance does not offer is refused here, as the instance would drop it silently. A
        table other than incident has its own codes: its first one when the configured one is
        not among them (a change's "successful")."""
        wanted = self.close_code.strip()
        try:
            rows = await self._rows(
                "sys_choice",
                f"name={table}^element=close_code^inactive=false^ORDERBYsequence",
                "value,label",
            )
        except AuthError:
            return wanted  # the choices are not readable: the instance judges the code
        if not rows:
            return wanted
        for row in rows:
            if row.get("value") == wanted:
                return wanted
        for row in rows:
            if wanted.casefold() in (
                row.get("value", "").casefold(),
                row.get("label", "").casefold(),
            ):
                return row["value"]
        if table != INCIDENT.name and rows[0].get("value"):
            return rows[0]["value"]
        valid = ", ".join(dict.fromkeys(row.get("value", "") for row in rows if row.get("value")))
        problem = f"close code {wanted!r} is not one of the instance's: {valid} (set close_code)"
        raise ValidationError(problem, field_errors={"close_code": problem}, connection=self.name)

    # -- building requests ---------------------------------------------------------------

    async def _create_body(
        self,
        anomaly: Anomaly,
        table: str,
        values: TicketFields,
        text: TicketText | None,
        form: TableForm | None,
        warnings: list[str],
    ) -> dict[str, str]:
        """The row to write: the desk's fields (incident: impact × urgency for the priority),
        any other column the table's dictionary has, the anomaly block (or the template's
        description), the correlation. Over-long text is cut with a marker, never refused."""
        allowed = set(WRITABLE) | (set(form.columns) if form is not None else set())
        if form is None and table != INCIDENT.name:
            allowed |= {name for name in values if IDENTIFIER.match(name)}  # the instance judges
        allowed -= {"number", "correlation_id", "correlation_display", "sys_id"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            errors = {name: f"not a field Anomaly Desk sets on a {table}" for name in unknown}
            raise ValidationError(
                f"Unknown field(s): {', '.join(unknown)}",
                field_errors=errors,
                connection=self.name,
            )
        block_text = block_to_text(anomaly_block(anomaly, self.platform.name, self.platform.url))
        if text is not None and text.description:
            block_text = text.description.strip()
        body = {name: str(values[name]).strip() for name in TEXT_FIELDS if name in values}
        title = body.get("short_description", "") or (text.title if text and text.title else "")
        short_max = (form.max_length("short_description") if form else None) or (
            SHORT_DESCRIPTION_MAX
        )
        body["short_description"] = _clip(title, short_max)
        if len(" ".join(title.split())) > short_max:
            warnings.append(f"short description cut to {short_max} characters")
        long_max = (form.max_length("description") if form else None) or DESCRIPTION_MAX
        body["description"] = _description(body.get("description", ""), block_text, long_max)
        if table == INCIDENT.name:
            body.update(self._levels(values))
        else:
            for name in ("impact", "urgency", "priority"):
                if name in values:
                    body[name] = _choice_value(values[name], name, form)
        if "assignment_group" in values:
            body["assignment_group"] = await self._resolve_group(str(values["assignment_group"]))
        for name in ("assigned_to", "caller_id"):
            if name in values:
                body[name] = await self._resolve_user(name, str(values[name]))
        for name, raw in values.items():
            if name in body or name in WRITABLE:
                continue
            body[name] = await self._column_value(name, raw, form)
        body["correlation_id"] = str(anomaly.id)
        body["correlation_display"] = CORRELATION_DISPLAY
        return body

    async def _column_value(self, name: str, raw: JsonValue, form: TableForm | None) -> str:
        """A dictionary column's value as the Table API takes it: a person by sys_id (a user
        name or email is looked up), a choice by value (its label is taken too)."""
        spec = form.spec(name) if form is not None else None
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, list):
            return ",".join(str(item) for item in raw)
        if spec is not None and spec.kind == FieldKind.USER:
            return await self._resolve_user(name, str(raw).strip())
        if spec is not None and spec.kind == FieldKind.OPTION:
            return _choice_value(raw, name, form)
        return str(raw).strip() if not isinstance(raw, dict) else str(raw.get("value", ""))

    def _levels(self, values: TicketFields) -> dict[str, str]:
        """Impact and urgency that make the instance derive the chosen priority."""
        impact = _level(values.get("impact"), LEVEL_WORDS, "impact", self.name)
        urgency = _level(values.get("urgency"), LEVEL_WORDS, "urgency", self.name)
        priority = _level(values.get("priority"), PRIORITY_WORDS, "priority", self.name)
        out = {k: v for k, v in (("impact", impact), ("urgency", urgency)) if v}
        if priority is None:
            return out
        matches = [
            pair
            for pair, derived in PRIORITY_MATRIX.items()
            if derived == priority
            and (impact is None or pair[0] == impact)
            and (urgency is None or pair[1] == urgency)
        ]
        if not matches:
            given = [
                f"{name} {value}" for name, value in (("impact", impact), ("urgency", urgency))
            ]
            given = [text for text in given if not text.endswith(" None")]
            source = f"from {' and '.join(given)}" if given else "from any impact and urgency"
            message = (
                f"Priority {priority} cannot come {source}"
                " (ServiceNow derives priority from impact × urgency)"
            )
            raise ValidationError(message, field_errors={"priority": message}, connection=self.name)
        out["impact"], out["urgency"] = matches[0]
        out["priority"] = priority
        return out

    async def _resolve_group(self, value: str) -> str:
        if SYS_ID.match(value):
            return value
        _refuse_caret(value, "assignment_group", self.name)
        rows = await self._rows("sys_user_group", f"name={value}", "sys_id,name", limit=2)
        if len(rows) != 1:
            message = f"No group named {value!r}" if not rows else f"Several groups named {value!r}"
            raise ValidationError(
                message, field_errors={"assignment_group": message}, connection=self.name
            )
        return rows[0]["sys_id"]

    async def _resolve_user(self, field: str, value: str) -> str:
        if SYS_ID.match(value):
            return value
        _refuse_caret(value, field, self.name)
        rows = await self._rows(
            "sys_user", f"user_name={value}^ORname={value}^ORemail={value}", "sys_id", limit=2
        )
        if len(rows) != 1:
            message = f"No user {value!r}" if not rows else f"Several users match {value!r}"
            raise ValidationError(message, field_errors={field: message}, connection=self.name)
        return rows[0]["sys_id"]

    # -- reading -------------------------------------------------------------------------

    def _path(self, sys_id: str | None = None, table: str | None = None) -> str:
        path = f"/api/now/table/{table or self.table}"
        return f"{path}/{sys_id}" if sys_id else path

    async def _query(self, query: str, limit: int, table: str | None = None) -> list[Ticket]:
        table = table or self.table
        params = {**_read_params(), "sysparm_query": query, "sysparm_limit": str(limit)}
        rows = await self._answer(list[Incident], "GET", self._path(table=table), params=params)
        return [self._ticket(row, table) for row in rows]

    async def _rows(
        self, table: str, query: str, fields: str, limit: int = 1000
    ) -> list[ServiceNowRow]:
        params = {
            "sysparm_query": query,
            "sysparm_fields": fields,
            "sysparm_limit": str(limit),
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
        }
        return await self._answer(
            list[ServiceNowRow], "GET", self._path(table=table), params=params
        )

    def _ticket(self, row: Incident, table: str) -> Ticket:
        """A row of ``table`` (its ``sys_class_name`` when the answer has it: a child table)."""
        table = _value(row.get("sys_class_name")) or table
        spec = spec_for(table)
        sys_id, state = _value(row.get("sys_id")), _value(row.get("state"))
        extra: dict[str, JsonValue] = {"state_code": state}
        for name in CHOICE_FIELDS:
            extra[name], extra[f"{name}_label"] = _value(row.get(name)), _shown(row.get(name))
        for ref in REFERENCE_FIELDS:
            extra[ref], extra[f"{ref}_name"] = _value(row.get(ref)), _shown(row.get(ref))
        extra["description"] = _value(row.get("description"))
        extra["correlation_id"] = _value(row.get("correlation_id"))
        return Ticket(
            key=_value(row.get("number")),
            id=sys_id,
            url=f"{self.url}/nav_to.do?uri={quote(f'{table}.do?sys_id={sys_id}', safe='')}",
            summary=_value(row.get("short_description")),
            state=spec.states.get(state) or _shown(row.get("state")) or state,
            state_category=None,
            updated=_iso(_value(row.get("sys_updated_on"))),
            extra=extra,
            table=table,
        )

    # -- HTTP ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: JsonBody = None,
    ) -> JsonValue:
        """The ``result`` of one Table API call through the shared loop (reads retry)."""
        if self._missing:
            raise AuthError(self._missing, connection=self.name)
        return await self._loop.request(method, path, params=params, json=json)

    async def _answer(
        self,
        shape: type[T],
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: JsonBody = None,
    ) -> T:
        """The ``result`` read as ``shape`` (see ``payloads``): the one point where the Table
        API's JSON becomes typed. A cast, not a check: the callers keep their guards."""
        return cast(T, await self._request(method, path, params=params, json=json))


class ServiceNowDialect:
    """How the Table API answers: ``{"result": ...}``; errors as ``{"error": {message, detail}}``,
    a data policy's refusal as a 403 naming the mandatory fields."""

    name = "ServiceNow"

    def error_text(self, response: httpx.Response) -> ErrorText:
        message, detail = _error_text(response)
        text = f"{message}: {detail}" if detail and detail != message else message
        if response.status_code == 403 and "Data Policy Exception" in (detail or ""):
            return ErrorText(text, _mandatory(detail or ""), refused_fields=True)
        return ErrorText(text)

    def decode(self, response: httpx.Response) -> JsonValue:
        """The ``result`` of a Table API answer; anything else is not a working instance."""
        try:
            result: JsonValue = response.json()["result"]
        except (ValueError, KeyError, TypeError):
            kind = response.headers.get("content-type", "unknown content").split(";")[0]
            raise BadAnswer(
                f"Expected a Table API answer, got {kind} (is the instance asleep or behind SSO?)"
            ) from None
        return result


SERVICENOW = ServiceNowDialect()


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _read_params() -> dict[str, str]:
    return {
        "sysparm_display_value": "all",
        "sysparm_exclude_reference_link": "true",
        "sysparm_fields": READ_FIELDS,
    }


def _refuse_caret(text: str, field: str, connection: str) -> None:
    """``^`` separates encoded-query terms and has no escape: user text must not carry one."""
    if "^" in text:
        message = "'^' cannot be used in a ServiceNow query"
        raise ValidationError(message, field_errors={field: message}, connection=connection)


def _level(raw: JsonValue, words: dict[str, str], field: str, connection: str) -> str | None:
    """``2``, ``"2"``, ``"2 - High"`` or ``"High"`` → ``"2"``."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip().lower()
    code = text[0] if text[:1].isdigit() else words.get(text.split(" - ")[-1].strip())
    if code is None or code not in set(words.values()):
        message = f"Unknown {field} {raw!r}"
        raise ValidationError(message, field_errors={field: message}, connection=connection)
    return code


def _value(item: ServiceNowField | None) -> str:
    """The stored value of a field read with ``sysparm_display_value=all`` (or a bare value)."""
    return str(item.get("value", "")) if isinstance(item, dict) else str(item or "")


def _shown(item: ServiceNowField | None) -> str:
    """What people see of a field (a choice's label, a reference's name)."""
    return str(item.get("display_value", "")) if isinstance(item, dict) else str(item or "")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _description(user_text: str, block_text: str, limit: int = DESCRIPTION_MAX) -> str:
    """User text first, then the anomaly block; only the user text is ever shortened (and the
    block itself only when it alone is over the limit)."""
    if len(block_text) > limit:
        block_text = block_text[: max(limit - len(TRUNCATED), 0)] + TRUNCATED
    if not user_text:
        return block_text
    room = limit - len(block_text) - 2
    if len(user_text) > room:
        user_text = user_text[: max(room - len(TRUNCATED), 0)] + TRUNCATED
    return f"{user_text}\n\n{block_text}"


def _choice_value(raw: JsonValue, name: str, form: TableForm | None) -> str:
    """A choice given by value or label ("2 - High" → "2" when the table lists that label)."""
    text = str(raw).strip()
    spec = form.spec(name) if form is not None else None
    if spec is None or not spec.choices:
        return text
    for choice in spec.choices:
        if text == choice.value:
            return text
    for choice in spec.choices:
        if text.casefold() == choice.label.casefold():
            return choice.value
    return text


def _error_text(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message") or response.reason_phrase)
        detail = error.get("detail")
        return message, str(detail) if detail else None
    return response.reason_phrase or f"HTTP {response.status_code}", None


def _mandatory(detail: str) -> dict[str, str]:
    """``The following fields are mandatory: Short description`` → ``{"short_description": …}``."""
    _, _, labels = detail.partition("mandatory:")
    out = {}
    for label in labels.split(","):
        label = label.strip()
        if label:
            out[LABEL_TO_FIELD.get(label.lower(), label.lower().replace(" ", "_"))] = "mandatory"
    return out


def _since(since: str | None, connection: str) -> datetime | None:
    """The cursor of ``changes``: None, or an ISO time (a time without an offset is UTC)."""
    if since is None:
        return None
    try:
        when = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"not an ISO time: {since!r}", connection=connection) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _stamp(when: datetime) -> str:
    """An encoded query's date-time: UTC ``YYYY-MM-DD HH:MM:SS`` (floored to the second)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso_z(stamp: str) -> str | None:
    """An instance time (UTC ``YYYY-MM-DD HH:MM:SS``) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def _iso(stamp: str) -> str | None:
    """Instance times are UTC ``YYYY-MM-DD HH:MM:SS``."""
    if not stamp:
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()
    except ValueError:
        return stamp
