"""Jira Cloud client (REST v3) behind the ``Provider`` protocol.

Only documented Cloud endpoints: create and read issues, comments, the enhanced JQL search
(``/search/jql``; the old ``/search`` answers 410), createmeta and user search for drop-downs,
``/myself`` for the connection check and the integration's account, changelogs
(``/changelog/bulkfetch``) and transitions for two-way sync. Requests go through the shared loop of ``http`` (errors
become the typed errors of ``errors`` with Jira's own messages; reads retry a transient failure,
writes never do: the sync engine decides).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar, cast
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import JsonValue

from anomaly_desk.core.connections import JiraConnection, Platform
from anomaly_desk.core.formatting.adf import (
    adf_json,
    adf_to_text,
    block_to_adf,
    text_to_adf,
    truncate_doc,
    truncate_text,
)
from anomaly_desk.core.formatting.block import anomaly_block
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
    Params,
    ReadRetry,
    RequestLoop,
    basic_auth_client,
)
from anomaly_desk.core.providers.http import public_url as public_url  # check.py's, too
from anomaly_desk.core.providers.jira_fields import (
    SUMMARY_LIMIT,
    FieldShape,
    FieldValueError,
    JiraForm,
    convert,
    is_empty,
    jira_form,
)
from anomaly_desk.core.providers.oauth import OAuth
from anomaly_desk.core.providers.payloads import (
    JiraBulkChangelogPage,
    JiraChangeHistory,
    JiraChangelogPage,
    JiraComment,
    JiraCommentPage,
    JiraCreated,
    JiraFieldMeta,
    JiraFieldsPage,
    JiraIssue,
    JiraIssueFields,
    JiraIssueType,
    JiraIssueTypesPage,
    JiraPriority,
    JiraProject,
    JiraSearchPage,
    JiraStatus,
    JiraStatusCategory,
    JiraTransition,
    JiraTransitionField,
    JiraTransitionsPage,
    JiraUser,
)
from anomaly_desk.core.views import CreateFormView, TicketTypeView, UserView
from anomaly_desk.core.vocabulary import FieldKind

log = logging.getLogger(__name__)
T = TypeVar("T")

API = "/rest/api/3"
FORM_TTL = 300.0  # seconds a project's issue types and create screens are reused
CREATEMETA_PAGE = 50
# Fields build_fields fills from the connection or converts itself; the rest follow the screen.
SYSTEM_FIELDS = frozenset(
    {"project", "issuetype", "issue_type", "summary", "description", "labels", "priority"}
)
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
TICKET_FIELDS = "summary,status,updated,created,priority,assignee,issuetype,project,labels"
NOTE_LOOKBACK = 100  # newest comments searched by has_note
NOTE_PROPERTY = "anomaly-desk"  # comment property naming the outbox job a comment came from
HISTORY_TYPE = "anomaly-desk"  # historyMetadata.type of the transitions this client makes
# Two-way sync: changes are re-read this far back (the search index lags behind writes, and
# JQL dates have minutes only); the caller recognises what it has seen by comment id and state.
OVERLAP = timedelta(minutes=2)
UNKNOWN_ZONE_MARGIN = timedelta(hours=12)  # UTC-12 is the earliest zone
CHANGE_FIELDS = "summary,status,updated"
CHANGES_BATCH = 100  # issue keys per JQL query
CHANGELOG_BATCH = 1000  # issues per changelog bulk fetch (Jira's limit)
CHANGELOG_PAGE = 100  # entries per page of one issue's changelog
COMMENT_PAGE = 100
READ_CONCURRENCY = 4  # per-issue reads (comments, changelogs) in flight at once
_KEY = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*-\d+)\b")
# "An issue with key 'DQ-9' does not exist for field 'key'." / "The issue key 'X' … is invalid."
_GONE_KEY = re.compile(r"[Ii]ssue (?:with )?key '([^']+)'")
# Cloud account ids: 24 hex digits (legacy) or "<number>:<uuid>".
_ACCOUNT_ID = re.compile(r"^(?:[0-9a-f]{24}|\d+:[0-9a-f-]{36})$", re.IGNORECASE)


def jql_string(value: str) -> str:
    """A JQL string literal: quotes and backslashes escaped, so text never becomes syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_terms(text: str) -> list[str]:
    """Words for a text search; Lucene's special characters (``+-&|!(){}[]^~*?:\\/``) dropped."""
    return re.findall(r"\w+", text)[:8]


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time (Jira's ``2024-01-15T10:30:00.000+0000``, ``…Z``) as an aware datetime;
    a time without an offset is UTC. None for nothing or something that is not a time."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def iso_utc(when: datetime) -> str:
    """``2024-01-15T10:30:00.123Z``: UTC, milliseconds when there are any."""
    spec = "milliseconds" if when.microsecond else "seconds"
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def since_time(since: str | None, connection: str) -> datetime | None:
    """The cursor of ``changes``: None, or an ISO time (anything else is the caller's bug)."""
    if since is None:
        return None
    when = parse_time(since)
    if when is None:
        raise ValidationError(f"not an ISO time: {since!r}", connection=connection)
    return when


async def bounded(calls: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the calls with at most ``limit`` in flight; the answers in the calls' order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


def _more(batch: list[T], seen: int, total: int | None) -> bool:
    """Whether an offset-paged answer has another page (no ``total``: it had them all)."""
    return bool(batch) and total is not None and seen < int(total)


def _category(status: JiraStatus | None) -> str | None:
    """A status's category key: ``new``, ``indeterminate`` or ``done``."""
    category = (status or {}).get("statusCategory") or {}
    return category.get("key")


def _target_category(transition: JiraTransition) -> str | None:
    target = transition.get("to") or {}
    category = target.get("statusCategory") or {}
    return category.get("key")


def _names(transitions: list[JiraTransition]) -> str:
    return ", ".join(str(t.get("name") or t["id"]) for t in transitions) or "none"


def _status_change(history: JiraChangeHistory) -> bool:
    return any(
        "status" in (item.get("fieldId"), item.get("field")) for item in history.get("items") or []
    )


def _author_id(history: JiraChangeHistory) -> str | None:
    author = history.get("author")
    return str(author["accountId"]) if author and author.get("accountId") else None


def _jira_messages(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """Jira's own words from ``{"errorMessages": [...], "errors": {field: message}}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    field_errors: dict[str, str] = {}
    messages: list[str] = []
    if isinstance(body, dict):
        messages = [str(m) for m in body.get("errorMessages") or [] if m]
        errors = body.get("errors")
        if isinstance(errors, dict):
            field_errors = {str(k): str(v) for k, v in errors.items()}
        for key in ("message", "errorMessage"):
            if isinstance(body.get(key), str) and body[key]:
                messages.append(body[key])
    if not messages and field_errors:
        messages = [f"{name}: {text}" for name, text in field_errors.items()]
    if not messages:
        snippet = re.sub(r"<[^>]+>|\s+", " ", response.text or "").strip()[:200]
        messages = [snippet or response.reason_phrase or "no details"]
    return "; ".join(messages), field_errors


class JiraDialect:
    """How Jira answers: JSON bodies; errors as ``errorMessages`` and ``errors`` by field."""

    name = "Jira"

    def error_text(self, response: httpx.Response) -> ErrorText:
        message, field_errors = _jira_messages(response)
        return ErrorText(message, field_errors)

    def decode(self, response: httpx.Response) -> JsonValue:
        try:
            value: JsonValue = response.json() if response.content else None
        except ValueError:
            raise BadAnswer(
                f"Jira answered {response.status_code} with a body that is not JSON"
            ) from None
        return value


JIRA = JiraDialect()


class JiraClient:
    """One Jira Cloud site; one ``httpx.AsyncClient`` for the connection's lifetime."""

    kind: ProviderKind = "jira"
    name: str

    def __init__(
        self,
        conn: JiraConnection,
        platform: Platform | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: ReadRetry = READ_RETRY,
    ) -> None:
        self.conn = conn
        self.name = conn.name
        self.platform = platform or Platform()
        self.url = public_url(conn.url)  # the site: browse links, tenant_info
        self.auth_mode = conn.auth
        self.cloud_id = conn.cloud_id  # scoped_token / OAuth: read from tenant_info when None
        self._cloud_lock = asyncio.Lock()
        self._me: JiraUser | None = None  # /myself, read once
        self._bulkfetch = True  # False once the site answered 404 to /changelog/bulkfetch
        # createmeta, read again after FORM_TTL: project → issue types, (project, type) → screen
        self._types_cache: dict[str, tuple[float, list[JiraIssueType]]] = {}
        self._form_cache: dict[tuple[str, str], tuple[float, JiraForm]] = {}
        oauth = conn.auth == "oauth_client_credentials"
        held = conn.client_secret if oauth else conn.token
        secret = held.get_secret_value() if held else ""
        self._has_token = bool(secret)
        # credentials travel only in the Authorization header
        self._http = basic_auth_client(conn, self.api_url, conn.email, secret, transport)
        self.oauth: OAuth | None = None
        if oauth:
            self.oauth = OAuth(
                provider="Atlassian",
                connection=self.name,
                token_url=f"{conn.auth_url}/oauth/token",
                client_id=conn.client_id or "",
                client_secret=secret,
                body="json",
            )
            self._http.auth = self.oauth
        self._loop = RequestLoop(
            self._http,
            JIRA,
            connection=self.name,
            url=self.api_url,
            timeout=conn.timeout,
            secret=secret,
            retry=retry,
        )

    @property
    def api_url(self) -> str:
        """Where the REST API is called: the site (basic), else
        ``{api_url}/ex/jira/{cloud_id}`` (the cloud id once it is known)."""
        if self.auth_mode == "basic":
            return self.url
        base = f"{public_url(self.conn.api_url)}/ex/jira"
        return f"{base}/{self.cloud_id}" if self.cloud_id else base

    def __repr__(self) -> str:
        return (
            f"JiraClient(name={self.name!r}, url={self.url!r}, email={self.conn.email!r}, "
            f"auth={self.auth_mode!r})"
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ transport

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: JsonBody = None,
        expect: tuple[int, ...] = (200,),
    ) -> JsonValue:
        """One call through the shared loop: reads retry transient failures, writes go once."""
        if not self._has_token:
            raise AuthError(
                "no client secret configured (set client_secret_env, client_secret_keyring or "
                "client_secret_vault)"
                if self.auth_mode == "oauth_client_credentials"
                else "no API token configured (set token_env or token_keyring)",
                connection=self.name,
            )
        if self.auth_mode != "basic" and self.cloud_id is None:
            await self.discover_cloud_id()
        return await self._loop.request(method, path, params=params, json=json, expect=expect)

    async def discover_cloud_id(self) -> str:
        """The site's cloud id from ``{url}/_edge/tenant_info`` (unauthenticated), read once;
        the API base moves to ``{api_url}/ex/jira/{cloud_id}``."""
        async with self._cloud_lock:
            if self.cloud_id is None:
                self.cloud_id = await self._tenant_info()
                self._http.base_url = httpx.URL(self.api_url)
                self._loop.url = self.api_url
                log.info("%s: cloud id %s (from %s)", self.name, self.cloud_id, self.url)
        return self.cloud_id

    async def _tenant_info(self) -> str:
        where = f"{self.url}/_edge/tenant_info"
        advice = "; set cloud_id in the connection to skip this"
        try:
            response = await self._http.get(where, auth=None)
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot read the cloud id from {where}: {type(exc).__name__}",
                connection=self.name,
            ) from None
        status = response.status_code
        try:
            body = response.json() if status == 200 else None
        except ValueError:
            body = None
        cloud_id = body.get("cloudId") if isinstance(body, dict) else None
        if isinstance(cloud_id, str) and cloud_id.strip():
            return cloud_id.strip()
        if status >= 500 or status == 429:
            raise UnavailableError(
                f"cannot read the cloud id from {where}", status=status, connection=self.name
            )
        problem = "no cloudId in the answer" if status == 200 else "no tenant info here"
        raise ProviderError(
            f"cannot read the cloud id from {where}: {problem}{advice}",
            status=status,
            connection=self.name,
        )

    async def _answer(
        self,
        shape: type[T],
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: JsonBody = None,
        expect: tuple[int, ...] = (200,),
    ) -> T:
        """The answer read as ``shape`` (see ``payloads``): the one point where Jira's JSON
        becomes typed. A cast, not a check: the callers keep their guards against odd values."""
        answer = await self._request(method, path, params=params, json=json, expect=expect)
        return cast(T, answer)

    # ------------------------------------------------------------------ protocol

    async def check(self) -> str:
        me = await self._answer(JiraUser, "GET", f"{API}/myself")
        return str(me.get("emailAddress") or me.get("displayName") or me.get("accountId"))

    async def create_ticket(
        self,
        anomaly: Anomaly,
        fields: TicketFields,
        *,
        text: TicketText | None = None,
        operator_email: str | None = None,
    ) -> Ticket:
        """Create the issue; the operator becomes its reporter where the screen has one, else a
        watcher. What could not be done is in the ticket's ``warnings``, never a failed create."""
        extra = set(fields) - SYSTEM_FIELDS - {"assignee"}
        email = (operator_email or "").strip()
        form = await self._form_for(fields) if extra or email else None
        payload = await self.build_fields(anomaly, fields, text=text, form=form)
        warnings: list[str] = []
        account: str | None = None
        chosen = not is_empty(fields.get("reporter"))  # a reporter the form names wins
        if email and not chosen:
            account, problem = await self._operator_account(email)
            if problem:
                warnings.append(problem)
            elif form is not None and form.reporter_settable:
                payload["reporter"] = {"accountId": account}
        try:
            created = await self._create(payload)
        except ValidationError as exc:
            # listed on the screen, but not settable after all (no Modify Reporter permission)
            if chosen or "reporter" not in exc.field_errors or "reporter" not in payload:
                raise
            payload.pop("reporter", None)
            created = await self._create(payload)
        key, issue_id = str(created["key"]), str(created["id"])
        if account and "reporter" not in payload:
            warnings.append(await self._watch(key, account, email, payload))
        try:
            ticket = await self.get_ticket(key)
        except ProviderError:
            # The issue exists; a failed read-back must not look like a failed create.
            ticket = Ticket(
                key=key, id=issue_id, url=self.browse_url(key), summary=str(payload["summary"])
            )
        return replace(ticket, warnings=tuple(warnings)) if warnings else ticket

    async def _create(self, payload: dict[str, JsonValue]) -> JiraCreated:
        return await self._answer(
            JiraCreated, "POST", f"{API}/issue", json={"fields": payload}, expect=(200, 201)
        )

    async def _watch(self, key: str, account: str, email: str, payload: TicketFields) -> str:
        """The operator as a watcher; a failure is told, not raised (the issue exists)."""
        project = payload.get("project")
        where = (
            str(project.get("key") or project.get("id"))
            if isinstance(project, dict)
            else self.conn.project
        )
        try:
            await self._request(
                "POST",
                f"{API}/issue/{quote(key, safe='')}/watchers",
                json=account,
                expect=(200, 204),
            )
        except ProviderError as exc:
            return (
                f"reporter is not settable in {where}; {email} could not be added as a "
                f"watcher: {exc.plain()}"
            )
        return f"reporter is not settable in {where}; {email} added as a watcher"

    async def _operator_account(self, email: str) -> tuple[str | None, str | None]:
        """The one active Jira account with this email, or why there is none to use."""
        try:
            found = await self._answer(
                list[JiraUser],
                "GET",
                f"{API}/user/search",
                params={"query": email, "maxResults": 50},
            )
        except ProviderError as exc:
            return None, f"reporter not set: cannot look up {email} in Jira ({exc.plain()})"
        wanted = email.casefold()
        matches = [
            u
            for u in found or []
            if u.get("active", True) and str(u.get("emailAddress") or "").casefold() == wanted
        ]
        if len(matches) == 1:
            return str(matches[0]["accountId"]), None
        if not matches:
            return None, f"reporter not set: no active Jira account has {email}"
        return None, f"reporter not set: {len(matches)} Jira accounts have {email}"

    async def build_fields(
        self,
        anomaly: Anomaly,
        fields: TicketFields,
        *,
        text: TicketText | None = None,
        form: JiraForm | None = None,
    ) -> dict[str, JsonValue]:
        """The ``fields`` object of a create request, from the form's loose values.

        With the issue type's create screen (``form``), every other field is converted by its
        schema; without it, or for a field not on it, values go as given and Jira judges them.
        """
        extra = dict(fields)
        summary = extra.pop("summary", None) or (text.title if text else None)
        summary = " ".join(str(summary or self.default_summary(anomaly)).split())
        intro = extra.pop("description", None)
        payload: dict[str, JsonValue] = {
            "project": self._project(extra.pop("project", None)),
            "issuetype": self._issuetype(extra.pop("issuetype", extra.pop("issue_type", None))),
            # Jira refuses newlines in a summary, and more than 255 characters
            "summary": truncate_text(summary or "?", SUMMARY_LIMIT),
            "description": self._description(anomaly, intro, text),
            "labels": [*self._labels(extra.pop("labels", None), anomaly.id)],
        }
        priority = extra.pop("priority", None)
        if priority:
            payload["priority"] = self._priority(priority)
        assignee = extra.pop("assignee", None)
        if assignee:
            payload["assignee"] = await self.resolve_user(assignee, "assignee")
        shapes = form.shapes if form else {}
        for name, value in extra.items():
            shape = shapes.get(name)
            if shape is None and name != "reporter":
                payload[name] = value  # not on the screen we know: Jira judges it
            elif not is_empty(value):
                payload[name] = await self._field_value(shape, name, value)
        return payload

    def _description(
        self, anomaly: Anomaly, intro: JsonValue, text: TicketText | None
    ) -> dict[str, JsonValue]:
        """The operator's words, then the anomaly block (or the template's text instead)."""
        words = str(intro).strip() if intro else ""
        if text and text.description and text.description.strip():
            body = "\n\n".join(part for part in (words, text.description.strip()) if part)
            return adf_json(truncate_doc(text_to_adf(body)))
        block = anomaly_block(anomaly, self.platform.name, self.platform.url)
        return adf_json(block_to_adf(block, words or None))

    async def _field_value(
        self, shape: FieldShape | None, name: str, value: JsonValue
    ) -> JsonValue:
        """One screen field's value as Jira takes it; a value of the wrong kind is refused
        here, naming the field."""
        if shape is None or shape.spec.kind == FieldKind.USER:
            if shape is not None and shape.many:
                items = value if isinstance(value, list) else str(value).split(",")
                return [await self.resolve_user(v, name) for v in items if not is_empty(v)]
            return await self.resolve_user(value, name)
        try:
            return convert(shape, value)
        except FieldValueError as exc:
            raise ValidationError(
                exc.message, field_errors={exc.field: exc.message}, connection=self.name
            ) from None

    def default_summary(self, anomaly: Anomaly) -> str:
        what = anomaly.message or anomaly.description or anomaly.location or anomaly.type
        return f"{self.platform.name} anomaly {anomaly.id}: {what}"

    def _project(self, value: JsonValue) -> dict[str, JsonValue]:
        if isinstance(value, dict):
            return value
        key = str(value or self.conn.project).strip()
        return {"id": key} if key.isdigit() else {"key": key}

    def _issuetype(self, value: JsonValue) -> dict[str, JsonValue]:
        if isinstance(value, dict):
            return value
        name = str(value or self.conn.issue_type).strip()
        return {"id": name} if name.isdigit() else {"name": name}

    @staticmethod
    def _priority(value: JsonValue) -> dict[str, JsonValue]:
        if isinstance(value, dict):
            return value
        name = str(value).strip()
        if name.isdigit():
            return {"id": name}
        canonical = next((p for p in PRIORITIES if p.lower() == name.lower()), name)
        return {"name": canonical}

    def _labels(self, value: JsonValue, anomaly_id: int) -> list[str]:
        """Labels as given (list or comma string) plus ours; Jira forbids spaces in a label."""
        raw: list[JsonValue] | list[str]
        if isinstance(value, str):
            raw = value.split(",")
        elif isinstance(value, list):
            raw = value
        elif not value:
            raw = []
        else:
            problem = "labels are a list or a comma-separated string"
            raise ValidationError(problem, field_errors={"labels": problem}, connection=self.name)
        labels = ["-".join(str(item).split()) for item in raw]
        labels += [self.conn.label, f"anomaly-{anomaly_id}"]
        return list(dict.fromkeys(label for label in labels if label))

    async def resolve_assignee(self, value: JsonValue) -> dict[str, JsonValue]:
        """``{"accountId": ...}`` from an account id, an email or a display name."""
        return await self.resolve_user(value, "assignee")

    async def resolve_user(self, value: JsonValue, field: str) -> dict[str, JsonValue]:
        """``{"accountId": ...}`` for a user field from an account id, an email or a name."""
        if isinstance(value, dict):
            return value
        wanted = str(value).strip()
        if _ACCOUNT_ID.match(wanted):
            return {"accountId": wanted}
        found = await self._answer(
            list[JiraUser], "GET", f"{API}/user/search", params={"query": wanted}
        )
        users = [
            u
            for u in found or []
            if u.get("accountType", "atlassian") == "atlassian" and u.get("active", True)
        ]
        exact = [
            u
            for u in users
            if wanted.lower()
            in {str(u.get("emailAddress", "")).lower(), str(u.get("displayName", "")).lower()}
        ]
        chosen = exact if exact else users
        if len(chosen) == 1:
            return {"accountId": chosen[0]["accountId"]}
        problem = (
            f"no Jira user matches '{wanted}'"
            if not chosen
            else f"'{wanted}' matches {len(chosen)} Jira users; choose one"
        )
        raise ValidationError(problem, field_errors={field: problem}, connection=self.name)

    # ------------------------------------------------------------------ forms and people

    async def ticket_types(self) -> list[TicketTypeView]:
        """The project's issue types that can be created on their own (no sub-tasks); read
        afresh (the desk caches the answer), and kept for the creates that follow."""
        types = await self._issue_types(self.conn.project, fresh=True)
        return [
            TicketTypeView(id=str(t["id"]), name=str(t["name"]))
            for t in types
            if not t.get("subtask")
        ]

    async def create_form(self, ticket_type: str | None = None) -> CreateFormView:
        """The create screen of an issue type (an id or a name; None: the connection's), read
        afresh like ``ticket_types``."""
        project = self.conn.project
        wanted = (ticket_type or self.conn.issue_type).strip()
        chosen = await self._issue_type(project, wanted, fresh=True)
        if chosen is None:
            names = ", ".join(t.name for t in await self.ticket_types()) or "none"
            raise NotFoundError(
                f"{project} has no issue type {wanted!r} (it has: {names})",
                status=404,
                connection=self.name,
            )
        form = await self._form(project, str(chosen["id"]), fresh=True)
        return CreateFormView(
            connection=self.name,
            ticket_type=TicketTypeView(id=str(chosen["id"]), name=str(chosen["name"])),
            fields=form.visible(),
            reporter_settable=form.reporter_settable,
        )

    async def find_users(self, query: str, limit: int = 20) -> list[UserView]:
        """Active people (not apps) whose name or email starts with ``query``."""
        wanted = query.strip()
        if not wanted:
            return []
        found = await self._answer(
            list[JiraUser],
            "GET",
            f"{API}/user/search",
            params={"query": wanted, "maxResults": max(1, min(limit, 1000))},
        )
        people = [
            UserView(
                id=str(u["accountId"]),
                name=str(u.get("displayName") or u["accountId"]),
                email=u.get("emailAddress") or None,
            )
            for u in found or []
            if u.get("active", True) and u.get("accountType", "atlassian") == "atlassian"
        ]
        return people[:limit]

    async def _form_for(self, fields: TicketFields) -> JiraForm | None:
        """The create screen of the project and issue type ``fields`` name (the connection's
        by default); None when Jira does not know them (the create then says why)."""
        project = self._project(fields.get("project"))
        where = str(project.get("key") or project.get("id") or self.conn.project)
        kind = fields.get("issuetype", fields.get("issue_type"))
        if isinstance(kind, dict):
            kind = kind.get("id") or kind.get("name")
        try:
            chosen = await self._issue_type(where, str(kind or self.conn.issue_type).strip())
            return await self._form(where, str(chosen["id"])) if chosen else None
        except (NotFoundError, ValidationError) as exc:
            log.info("%s: no create screen for %s: %s", self.name, where, exc)
            return None

    async def _issue_type(
        self, project: str, wanted: str, *, fresh: bool = False
    ) -> JiraIssueType | None:
        types = await self._issue_types(project, fresh=fresh)
        exact = next((t for t in types if str(t["id"]) == wanted or t["name"] == wanted), None)
        folded = wanted.casefold()
        return exact or next((t for t in types if str(t["name"]).casefold() == folded), None)

    async def _issue_types(self, project: str, *, fresh: bool = False) -> list[JiraIssueType]:
        """``createmeta/{project}/issuetypes``, every page, reused for ``FORM_TTL``."""
        cached = self._types_cache.get(project)
        if cached and not fresh and time.monotonic() - cached[0] < FORM_TTL:
            return cached[1]
        path = f"{API}/issue/createmeta/{quote(project, safe='')}/issuetypes"
        found: list[JiraIssueType] = []
        while True:
            params = {"startAt": len(found), "maxResults": CREATEMETA_PAGE}
            page = await self._answer(JiraIssueTypesPage, "GET", path, params=params)
            batch = page.get("issueTypes") or page.get("values") or []
            found.extend(batch)
            if not _more(batch, len(found), page.get("total")):
                break
        self._types_cache[project] = (time.monotonic(), found)
        return found

    async def _form(self, project: str, type_id: str, *, fresh: bool = False) -> JiraForm:
        """``createmeta/{project}/issuetypes/{id}``, every page, reused for ``FORM_TTL``."""
        cached = self._form_cache.get((project, type_id))
        if cached and not fresh and time.monotonic() - cached[0] < FORM_TTL:
            return cached[1]
        path = (
            f"{API}/issue/createmeta/{quote(project, safe='')}/issuetypes/{quote(type_id, safe='')}"
        )
        metas: list[JiraFieldMeta] = []
        while True:
            params = {"startAt": len(metas), "maxResults": CREATEMETA_PAGE}
            page = await self._answer(JiraFieldsPage, "GET", path, params=params)
            batch = page.get("fields") or page.get("results") or []
            metas.extend(batch)
            if not _more(batch, len(metas), page.get("total")):
                break
        form = jira_form(metas)
        self._form_cache[(project, type_id)] = (time.monotonic(), form)
        return form

    async def find_created(self, anomaly_id: int) -> list[Ticket]:
        jql = (
            f"labels = {jql_string(self.conn.label)} AND labels = "
            f"{jql_string(f'anomaly-{anomaly_id}')} ORDER BY created ASC"
        )
        return await self._search_jql(jql, 50)

    async def get_ticket(self, key: str) -> Ticket:
        issue = await self._answer(
            JiraIssue,
            "GET",
            f"{API}/issue/{quote(key.strip(), safe='')}",
            params={"fields": TICKET_FIELDS},
        )
        return self.to_ticket(issue)

    async def search(self, text: str, limit: int = 20) -> list[Ticket]:
        """Keys are looked up directly (JQL naming a missing key is a 400); words search summaries."""
        keys = list(dict.fromkeys(k.upper() for k in _KEY.findall(text)))
        words = search_terms(_KEY.sub(" ", text))
        found: list[Ticket] = []
        lookups = await asyncio.gather(*(self._maybe_get(key) for key in keys[:10]))
        found.extend(ticket for ticket in lookups if ticket)
        if words:
            clauses = " AND ".join(f"summary ~ {jql_string(word + '*')}" for word in words)
            found.extend(await self._search_jql(f"{clauses} ORDER BY updated DESC", limit))
        elif not keys:
            project = jql_string(self.conn.project)
            found.extend(
                await self._search_jql(f"project = {project} ORDER BY updated DESC", limit)
            )
        unique: dict[str, Ticket] = {}
        for ticket in found:
            unique.setdefault(ticket.key, ticket)
        return list(unique.values())[:limit]

    async def _maybe_get(self, key: str) -> Ticket | None:
        try:
            return await self.get_ticket(key)
        except NotFoundError:
            return None

    async def _search_jql(self, jql: str, limit: int) -> list[Ticket]:
        """The enhanced search, following ``nextPageToken`` until ``limit`` tickets."""
        tickets: list[Ticket] = []
        token: str | None = None
        while len(tickets) < limit:
            params: dict[str, str | int] = {
                "jql": jql,
                "fields": TICKET_FIELDS,
                "maxResults": min(100, limit - len(tickets)),
            }
            if token:
                params["nextPageToken"] = token
            page = await self._answer(JiraSearchPage, "GET", f"{API}/search/jql", params=params)
            tickets.extend(self.to_ticket(issue) for issue in page.get("issues") or [])
            token = page.get("nextPageToken")
            if page.get("isLast", not token) or not token:
                break
        return tickets[:limit]

    async def add_note(self, ticket: TicketRef, text: str, tag: NoteTag | None = None) -> None:
        if not text.strip():
            problem = "Comment body can not be empty!"
            raise ValidationError(problem, field_errors={"comment": problem}, connection=self.name)
        body: dict[str, JsonValue] = {"body": adf_json(truncate_doc(text_to_adf(text)))}
        if tag is not None:  # set with the comment, in the same request: never one without other
            body["properties"] = [{"key": NOTE_PROPERTY, "value": {"job": tag.nonce}}]
        await self._request(
            "POST",
            f"{API}/issue/{quote(ticket.key, safe='')}/comment",
            json=body,
            expect=(200, 201),
        )

    async def note_baseline(self, ticket: TicketRef, text: str) -> int:
        return 0  # comments carry the job's nonce: nothing to count

    async def has_note(self, ticket: TicketRef, text: str, tag: NoteTag) -> bool:
        """This job's comment is the one whose ``anomaly-desk`` property names its nonce."""
        page = await self._answer(
            JiraCommentPage,
            "GET",
            f"{API}/issue/{quote(ticket.key, safe='')}/comment",
            params={
                "orderBy": "-created",
                "maxResults": str(NOTE_LOOKBACK),
                "expand": "properties",
            },
        )
        wanted = " ".join(text.split())
        for comment in (page.get("comments") if page else None) or []:
            properties = comment.get("properties")
            ours = [
                prop.get("value")
                for prop in properties or []
                if isinstance(prop, dict) and prop.get("key") == NOTE_PROPERTY
            ]
            if any(isinstance(v, dict) and v.get("job") == tag.nonce for v in ours):
                return True
            if ours or (properties is not None and not tag.legacy):
                continue  # another job's comment, or a comment that is not ours
            # No marker to go by: a job stored before jobs had one (its earlier attempt wrote
            # none), or a site that did not expand the properties. Fall back to the text, which
            # may take an older identical note for this one (the lesser harm: never doubled).
            if " ".join(adf_to_text(comment.get("body")).split()) == wanted:
                if properties is None:
                    log.warning("%s: comments came back without properties", self.name)
                return True
        return False

    async def link(self, anomaly: Anomaly, key: str) -> Ticket:
        """Linking is local: Jira is only read, to prove the issue exists and get its state."""
        return await self.get_ticket(key)

    async def options(self) -> dict[str, list[Option]]:
        project = quote(self.conn.project, safe="")
        types_page, users = await asyncio.gather(
            self._answer(JiraIssueTypesPage, "GET", f"{API}/issue/createmeta/{project}/issuetypes"),
            self._answer(
                list[JiraUser],
                "GET",
                f"{API}/user/assignable/search",
                params={"project": self.conn.project, "maxResults": 100},
            ),
        )
        types = types_page.get("issueTypes") or types_page.get("values") or []
        issue_types = [
            Option(str(t["name"]), str(t["name"])) for t in types if not t.get("subtask")
        ]
        return {
            "issuetype": issue_types,
            "priority": await self._priority_options(project, types),
            "assignee": [
                Option(
                    str(u["accountId"]),
                    f"{u['displayName']} <{u['emailAddress']}>"
                    if u.get("emailAddress")
                    else str(u.get("displayName", u["accountId"])),
                )
                for u in users or []
                if u.get("active", True)
            ],
        }

    async def _priority_options(self, project: str, types: list[JiraIssueType]) -> list[Option]:
        """Priorities the default issue type's create screen allows, else the site's list."""
        chosen = next((t for t in types if t.get("name") == self.conn.issue_type), None)
        if chosen is not None:
            page = await self._answer(
                JiraFieldsPage, "GET", f"{API}/issue/createmeta/{project}/issuetypes/{chosen['id']}"
            )
            for meta in page.get("fields") or page.get("results") or []:
                allowed = meta.get("allowedValues")
                if meta.get("fieldId") == "priority" and allowed:
                    return [Option(str(p["name"]), str(p["name"])) for p in allowed]
        priorities = await self._answer(list[JiraPriority], "GET", f"{API}/priority")
        return [Option(str(p["name"]), str(p["name"])) for p in priorities]

    # ------------------------------------------------------------------ two-way

    async def _myself(self) -> JiraUser:
        if self._me is not None:
            return self._me
        me = await self._answer(JiraUser, "GET", f"{API}/myself")
        self._me = me
        return me

    async def account(self) -> str:
        return str((await self._myself())["accountId"])

    async def changes(self, tickets: list[TicketRef], since: str | None) -> list[TicketChange]:
        """Issues among ``tickets`` updated since ``since`` (re-read ``OVERLAP`` further back),
        each with who made its latest status change and the comments created since ``since``."""
        keys = list(dict.fromkeys(t.key or t.id for t in tickets if t.key or t.id))
        after = since_time(since, self.name)
        if not keys:
            return []
        bound = await self._jql_bound(after) if after else None
        issues: list[JiraIssue] = []
        for start in range(0, len(keys), CHANGES_BATCH):
            issues.extend(await self._changed(keys[start : start + CHANGES_BATCH], bound))
        unique = list({str(issue.get("id") or issue["key"]): issue for issue in issues}.items())
        if not unique:
            return []
        authors = await self._status_authors([issue_id for issue_id, _ in unique])
        comments = await bounded(
            (partial(self._comments_since, str(issue["key"]), after) for _, issue in unique),
            READ_CONCURRENCY,
        )
        return [
            self._change(issue, authors.get(issue_id), found)
            for (issue_id, issue), found in zip(unique, comments, strict=True)
        ]

    async def _jql_bound(self, after: datetime) -> str:
        """``updated >= "<this>"``: ``after`` less ``OVERLAP``, to the minute (floored).

        Jira reads a JQL date in the searching user's profile time zone (``/myself``). Without
        one to go by, the UTC wall clock less 12 hours: read in any zone (UTC-12 to UTC+14) that
        is no later than asked, and a wider window only re-reads a few issues.
        """
        bound = after - OVERLAP
        zone = (await self._myself()).get("timeZone")
        try:
            wall = bound.astimezone(ZoneInfo(zone)) if zone else None
        except (ZoneInfoNotFoundError, ValueError):
            wall = None
        if wall is None:
            log.debug("%s: no usable time zone (%r); JQL bound widened", self.name, zone)
            wall = bound.astimezone(UTC) - UNKNOWN_ZONE_MARGIN
        return wall.strftime("%Y-%m-%d %H:%M")

    async def _changed(self, keys: list[str], bound: str | None) -> list[JiraIssue]:
        """One batch of keys; a key Jira no longer knows (deleted, no permission: JQL naming it
        is a 400) is dropped from the query and the rest asked again."""
        while keys:
            jql = f"key in ({', '.join(jql_string(key) for key in keys)})"
            if bound:
                jql += f" AND updated >= {jql_string(bound)}"
            try:
                return await self._search_issues(f"{jql} ORDER BY updated ASC", CHANGE_FIELDS)
            except ValidationError as exc:
                gone = {key.upper() for key in _GONE_KEY.findall(exc.message)}
                left = [key for key in keys if key.upper() not in gone]
                if len(left) == len(keys):
                    raise
                log.info("%s: %s left out of the poll: %s", self.name, ", ".join(gone), exc)
                keys = left
        return []

    async def _search_issues(self, jql: str, fields: str) -> list[JiraIssue]:
        """Every issue the enhanced search finds (a read: GET, so transient failures retry)."""
        issues: list[JiraIssue] = []
        token: str | None = None
        while True:
            params: dict[str, str | int] = {"jql": jql, "fields": fields, "maxResults": 100}
            if token:
                params["nextPageToken"] = token
            page = await self._answer(JiraSearchPage, "GET", f"{API}/search/jql", params=params)
            issues.extend(page.get("issues") or [])
            token = page.get("nextPageToken")
            if page.get("isLast", not token) or not token:
                return issues

    async def _status_authors(self, issue_ids: list[str]) -> dict[str, str]:
        """Issue id → the accountId of whoever made its latest status change."""
        if self._bulkfetch:
            try:
                return await self._bulk_status_authors(issue_ids)
            except NotFoundError:
                self._bulkfetch = False
                log.info(
                    "%s: no changelog bulk fetch here; reading changelogs one by one", self.name
                )
        authors = await bounded(
            (partial(self._issue_status_author, issue_id) for issue_id in issue_ids),
            READ_CONCURRENCY,
        )
        return {
            issue_id: author
            for issue_id, author in zip(issue_ids, authors, strict=True)
            if author is not None
        }

    async def _bulk_status_authors(self, issue_ids: list[str]) -> dict[str, str]:
        latest: dict[str, tuple[datetime, str]] = {}
        for start in range(0, len(issue_ids), CHANGELOG_BATCH):
            token: str | None = None
            while True:
                body: dict[str, JsonValue] = {
                    "issueIdsOrKeys": list(issue_ids[start : start + CHANGELOG_BATCH]),
                    "fieldIds": ["status"],
                    "maxResults": 1000,
                }
                if token:
                    body["nextPageToken"] = token
                page = await self._answer(
                    JiraBulkChangelogPage, "POST", f"{API}/changelog/bulkfetch", json=body
                )
                for changelog in page.get("issueChangeLogs") or []:
                    issue_id = str(changelog.get("issueId") or "")
                    for history in changelog.get("changeHistories") or []:
                        author = _author_id(history)
                        if not author or not _status_change(history):
                            continue
                        when = parse_time(history.get("created")) or datetime.min.replace(
                            tzinfo=UTC
                        )
                        if issue_id not in latest or when >= latest[issue_id][0]:
                            latest[issue_id] = (when, author)
                token = page.get("nextPageToken")
                if not token:
                    break
        return {issue_id: author for issue_id, (_, author) in latest.items()}

    async def _issue_status_author(self, issue: str) -> str | None:
        """One issue's changelog (oldest first), read from its newest page backwards."""
        path = f"{API}/issue/{quote(issue, safe='')}/changelog"

        async def read(start: int) -> JiraChangelogPage:
            params = {"startAt": start, "maxResults": CHANGELOG_PAGE}
            return await self._answer(JiraChangelogPage, "GET", path, params=params)

        def latest(page: JiraChangelogPage) -> str | None:
            found = [_author_id(h) for h in page.get("values") or [] if _status_change(h)]
            return next((author for author in reversed(found) if author), None)

        first = await read(0)
        size = int(first.get("maxResults") or CHANGELOG_PAGE) or CHANGELOG_PAGE
        start = int(first.get("total") or 0) - size
        while start > 0:
            author = latest(await read(start))
            if author:
                return author
            start -= size
        return latest(first)

    async def _comments_since(self, key: str, after: datetime | None) -> list[TicketComment]:
        """Comments created at or after ``after`` (all without), oldest first."""
        path = f"{API}/issue/{quote(key, safe='')}/comment"
        found: dict[str, TicketComment] = {}
        start = 0
        while True:
            params: dict[str, str | int] = {
                "orderBy": "-created",  # newest first: stop at the first older one
                "startAt": start,
                "maxResults": COMMENT_PAGE,
                "expand": "properties",
            }
            page = await self._answer(JiraCommentPage, "GET", path, params=params)
            batch = page.get("comments") or []
            for comment in batch:
                created = parse_time(comment.get("created"))
                if after and created and created < after:
                    return list(reversed(found.values()))
                note = self._comment(comment, created)
                found.setdefault(note.id, note)
            start += len(batch)
            if not batch or start >= int(page.get("total") or 0):
                return list(reversed(found.values()))

    def _comment(self, comment: JiraComment, created: datetime | None) -> TicketComment:
        author = comment.get("author")
        properties = comment.get("properties") or []
        return TicketComment(
            id=str(comment.get("id") or ""),
            author_id=str(author.get("accountId") or "") if author else "",
            author=str(
                (author.get("emailAddress") or author.get("displayName") or author.get("accountId"))
                if author
                else ""
            ),
            text=adf_to_text(comment.get("body")).strip(),
            created=iso_utc(created) if created else str(comment.get("created") or ""),
            ours=any(
                isinstance(prop, dict) and prop.get("key") == NOTE_PROPERTY for prop in properties
            ),
        )

    def _change(
        self, issue: JiraIssue, state_by: str | None, comments: list[TicketComment]
    ) -> TicketChange:
        ticket = self.to_ticket(issue)
        updated = parse_time(ticket.updated)
        if updated is not None:
            ticket = replace(ticket, updated=iso_utc(updated))
        status = (issue.get("fields") or {}).get("status")
        return TicketChange(
            ticket=ticket,
            done=_category(status) == "done",
            state_by=state_by,
            comments=tuple(comments),
        )

    async def move_to_done(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """The transition into the done category; the one named by ``done_transition`` when set,
        else the only one (several: a ValidationError, the operator chooses)."""
        key = ticket.key or ticket.id
        status = await self._status(key)
        if _category(status) == "done":
            return f"{key} is already {status.get('name') or 'done'}: left alone"
        transitions = await self._transitions(key)
        chosen = self._done_transition(key, status, transitions)
        await self._transition(key, chosen, note, tag, resolution=True)
        return None

    async def reopen(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """The first transition into a ``new`` status, else into an ``indeterminate`` one."""
        key = ticket.key or ticket.id
        status = await self._status(key)
        if _category(status) != "done":
            return f"{key} is not done ({status.get('name') or 'no status'}): left alone"
        transitions = await self._transitions(key)
        chosen = next(
            (t for t in transitions if _target_category(t) == "new"),
            next((t for t in transitions if _target_category(t) == "indeterminate"), None),
        )
        if chosen is None:
            problem = (
                f"{key}: no transition leads out of {status.get('name') or 'done'} "
                f"(available: {_names(transitions)})"
            )
            raise ValidationError(problem, connection=self.name)
        await self._transition(key, chosen, note, tag, resolution=False)
        return None

    async def _status(self, key: str) -> JiraStatus:
        issue = await self._answer(
            JiraIssue, "GET", f"{API}/issue/{quote(key, safe='')}", params={"fields": "status"}
        )
        return (issue.get("fields") or {}).get("status") or {}

    async def _transitions(self, key: str) -> list[JiraTransition]:
        page = await self._answer(
            JiraTransitionsPage,
            "GET",
            f"{API}/issue/{quote(key, safe='')}/transitions",
            params={"expand": "transitions.fields"},
        )
        return [t for t in page.get("transitions") or [] if t.get("isAvailable", True)]

    def _done_transition(
        self, key: str, status: JiraStatus, transitions: list[JiraTransition]
    ) -> JiraTransition:
        done = [t for t in transitions if _target_category(t) == "done"]
        wanted = (self.conn.done_transition or "").strip()
        if wanted:
            exact = [t for t in done if t.get("name") == wanted or t["id"] == wanted]
            loose = [t for t in done if str(t.get("name") or "").casefold() == wanted.casefold()]
            if exact or loose:
                return (exact or loose)[0]
            problem = (
                f"{key}: no transition named {wanted!r} leads to done from "
                f"{status.get('name') or 'its status'}; those that do: {_names(done)}"
            )
            raise ValidationError(
                problem, field_errors={"done_transition": problem}, connection=self.name
            )
        if len(done) == 1:
            return done[0]
        if not done:
            problem = (
                f"{key}: no transition leads to done from {status.get('name') or 'its status'} "
                f"(available: {_names(transitions)})"
            )
            raise ValidationError(problem, connection=self.name)
        problem = f"several transitions lead to done: {_names(done)}; set done_transition"
        raise ValidationError(
            problem, field_errors={"done_transition": problem}, connection=self.name
        )

    async def _transition(
        self, key: str, transition: JiraTransition, note: str, tag: NoteTag, *, resolution: bool
    ) -> None:
        """The note as this job's own comment, then the transition tagged with ``historyMetadata``.

        Not the transition's ``update.comment``: Jira drops that comment without a word when the
        transition has no screen (team-managed workflows have none), and a comment written there
        cannot carry the property that marks it ours. The comment goes first and is looked for on
        a retry (``has_note``), so a transition that failed after it does not write it twice.
        """
        ref = TicketRef(key, "")
        if note.strip() and not await self.has_note(ref, note, tag):
            await self.add_note(ref, note, tag)
        body: dict[str, JsonValue] = {
            "transition": {"id": str(transition["id"])},
            "historyMetadata": {"type": HISTORY_TYPE, "activityDescription": tag.nonce},
        }
        screen = transition.get("fields") or {}
        if resolution and "resolution" in screen:
            body["fields"] = {"resolution": {"name": self._resolution(screen["resolution"])}}
        await self._request(
            "POST",
            f"{API}/issue/{quote(key, safe='')}/transitions",
            json=body,
            expect=(200, 204),
        )

    def _resolution(self, field: JiraTransitionField) -> str:
        """The configured resolution when the screen allows it, else the screen's first."""
        wanted = self.conn.resolution
        allowed = [str(v["name"]) for v in field.get("allowedValues") or [] if v.get("name")]
        if not allowed:
            return wanted
        exact = next((name for name in allowed if name.casefold() == wanted.casefold()), None)
        if exact is None:
            log.info("%s: resolution %r not allowed; using %r", self.name, wanted, allowed[0])
        return exact or allowed[0]

    # ------------------------------------------------------------------ mapping

    def browse_url(self, key: str) -> str:
        return f"{self.url}/browse/{key}"

    def to_ticket(self, issue: JiraIssue) -> Ticket:
        fields: JiraIssueFields = issue.get("fields") or {}
        status: JiraStatus = fields.get("status") or {}
        category: JiraStatusCategory = status.get("statusCategory") or {}
        project: JiraProject = fields.get("project") or {}
        issuetype = fields.get("issuetype")
        priority = fields.get("priority")
        assignee = fields.get("assignee")
        key = str(issue["key"])
        extra: dict[str, JsonValue] = {
            "project": project.get("key"),
            "issuetype": issuetype.get("name") if issuetype else None,
            "priority": priority.get("name") if priority else None,
            "assignee": assignee.get("displayName") if assignee else None,
            "labels": list(fields.get("labels") or []),
            "created": fields.get("created"),
        }
        return Ticket(
            key=key,
            id=str(issue.get("id", "")),
            url=self.browse_url(key),
            summary=str(fields.get("summary") or ""),
            state=str(status.get("name") or ""),
            state_category=category.get("name"),
            updated=fields.get("updated"),
            extra={k: v for k, v in extra.items() if v not in (None, [])},
        )
