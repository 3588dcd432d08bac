"""The ServiceNow connection every part of the client builds on: the HTTP client and its
request loop (the Table API's ``result``, its errors), reading rows, a row as a ``Ticket``, and
where a ticket lives (its table and sys_id)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import JsonValue

from anomaly_desk.core.connections import Platform, ServiceNowConnection
from anomaly_desk.core.formatting.plain import servicenow_text
from anomaly_desk.core.providers.base import Ticket, TicketRef
from anomaly_desk.core.providers.errors import AuthError, NotFoundError, ValidationError
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
from anomaly_desk.core.providers.servicenow_fields import TableForm
from anomaly_desk.core.providers.servicenow_tables import KNOWN, spec_for, table_of_key

T = TypeVar("T")

CHOICE_FIELDS: tuple[ChoiceField, ...] = (
    "category",
    "subcategory",
    "urgency",
    "impact",
    "priority",
)
REFERENCE_FIELDS: tuple[ReferenceField, ...] = ("assignment_group", "assigned_to", "caller_id")
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


class ServiceNowBase:
    """One instance; one ``httpx.AsyncClient`` for the connection's lifetime."""

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
        refuse_caret(ticket.key, "key", self.name)
        found = await self._query(f"number={ticket.key.strip().upper()}", limit=1, table=table)
        if not found:
            raise NotFoundError(f"No {table} {ticket.key}", status=None, connection=self.name)
        return table, found[0].id

    def _path(self, sys_id: str | None = None, table: str | None = None) -> str:
        path = f"/api/now/table/{table or self.table}"
        return f"{path}/{sys_id}" if sys_id else path

    async def _query(self, query: str, limit: int, table: str | None = None) -> list[Ticket]:
        table = table or self.table
        params = {**read_params(), "sysparm_query": query, "sysparm_limit": str(limit)}
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
        table = stored_value(row.get("sys_class_name")) or table
        spec = spec_for(table)
        sys_id, state = stored_value(row.get("sys_id")), stored_value(row.get("state"))
        extra: dict[str, JsonValue] = {"state_code": state}
        for name in CHOICE_FIELDS:
            extra[name], extra[f"{name}_label"] = (
                stored_value(row.get(name)),
                shown_value(row.get(name)),
            )
        for ref in REFERENCE_FIELDS:
            extra[ref], extra[f"{ref}_name"] = stored_value(row.get(ref)), shown_value(row.get(ref))
        extra["description"] = stored_value(row.get("description"))
        extra["correlation_id"] = stored_value(row.get("correlation_id"))
        return Ticket(
            key=stored_value(row.get("number")),
            id=sys_id,
            url=f"{self.url}/nav_to.do?uri={quote(f'{table}.do?sys_id={sys_id}', safe='')}",
            summary=stored_value(row.get("short_description")),
            state=spec.states.get(state) or shown_value(row.get("state")) or state,
            state_category=None,
            updated=_iso(stored_value(row.get("sys_updated_on"))),
            extra=extra,
            table=table,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: JsonBody = None,
    ) -> JsonValue:
        """The ``result`` of one Table API call through the shared loop (reads retry). Every
        text in a body goes out through ``servicenow_text`` (idempotent): whatever part of the
        client wrote it, no control character and no ``[code]`` tag reaches the instance."""
        if self._missing:
            raise AuthError(self._missing, connection=self.name)
        if isinstance(json, Mapping):
            json = {k: servicenow_text(v) if isinstance(v, str) else v for k, v in json.items()}
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


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def read_params() -> dict[str, str]:
    return {
        "sysparm_display_value": "all",
        "sysparm_exclude_reference_link": "true",
        "sysparm_fields": READ_FIELDS,
    }


def refuse_caret(text: str, field: str, connection: str) -> None:
    """``^`` separates encoded-query terms and has no escape: user text must not carry one."""
    if "^" in text:
        message = "'^' cannot be used in a ServiceNow query"
        raise ValidationError(message, field_errors={field: message}, connection=connection)


def stored_value(item: ServiceNowField | None) -> str:
    """The stored value of a field read with ``sysparm_display_value=all`` (or a bare value)."""
    return str(item.get("value", "")) if isinstance(item, dict) else str(item or "")


def shown_value(item: ServiceNowField | None) -> str:
    """What people see of a field (a choice's label, a reference's name)."""
    return str(item.get("display_value", "")) if isinstance(item, dict) else str(item or "")


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


def _iso(stamp: str) -> str | None:
    """Instance times are UTC ``YYYY-MM-DD HH:MM:SS``."""
    if not stamp:
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()
    except ValueError:
        return stamp
