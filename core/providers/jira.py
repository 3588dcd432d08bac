"""Jira Cloud client (REST v3) behind the ``Provider`` protocol.

Only documented Cloud endpoints: create and read issues, comments, the enhanced JQL search
(``/search/jql``; the old ``/search`` answers 410), createmeta and user search for drop-downs,
``/myself`` for the connection check. Requests go through the shared loop of ``http`` (errors
become the typed errors of ``errors`` with Jira's own messages; reads retry a transient failure,
writes never do: the sync engine decides).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TypeVar, cast
from urllib.parse import quote

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
    TicketFields,
    TicketRef,
)
from anomaly_desk.core.providers.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
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
from anomaly_desk.core.providers.payloads import (
    JiraCommentPage,
    JiraCreated,
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
    JiraUser,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

API = "/rest/api/3"
SUMMARY_LIMIT = 255
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
TICKET_FIELDS = "summary,status,updated,created,priority,assignee,issuetype,project,labels"
NOTE_LOOKBACK = 100  # newest comments searched by has_note
NOTE_PROPERTY = "anomaly-desk"  # comment property naming the outbox job a comment came from
_KEY = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*-\d+)\b")
# Cloud account ids: 24 hex digits (legacy) or "<number>:<uuid>".
_ACCOUNT_ID = re.compile(r"^(?:[0-9a-f]{24}|\d+:[0-9a-f-]{36})$", re.IGNORECASE)


def jql_string(value: str) -> str:
    """A JQL string literal: quotes and backslashes escaped, so text never becomes syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_terms(text: str) -> list[str]:
    """Words for a text search; Lucene's special characters (``+-&|!(){}[]^~*?:\\/``) dropped."""
    return re.findall(r"\w+", text)[:8]


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
        self.url = public_url(conn.url)
        token = conn.token.get_secret_value() if conn.token else ""
        self._has_token = bool(token)
        # credentials travel only in the Authorization header
        self._http = basic_auth_client(conn, self.url, conn.email, token, transport)
        self._loop = RequestLoop(
            self._http,
            JIRA,
            connection=self.name,
            url=self.url,
            timeout=conn.timeout,
            secret=token,
            retry=retry,
        )

    def __repr__(self) -> str:
        return f"JiraClient(name={self.name!r}, url={self.url!r}, email={self.conn.email!r})"

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
                "no API token configured (set token_env or token_keyring)", connection=self.name
            )
        return await self._loop.request(method, path, params=params, json=json, expect=expect)

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

    async def create_ticket(self, anomaly: Anomaly, fields: TicketFields) -> Ticket:
        payload = await self.build_fields(anomaly, fields)
        created = await self._answer(
            JiraCreated, "POST", f"{API}/issue", json={"fields": payload}, expect=(200, 201)
        )
        key, issue_id = str(created["key"]), str(created["id"])
        try:
            return await self.get_ticket(key)
        except ProviderError:
            # The issue exists; a failed read-back must not look like a failed create.
            return Ticket(
                key=key, id=issue_id, url=self.browse_url(key), summary=str(payload["summary"])
            )

    async def build_fields(self, anomaly: Anomaly, fields: TicketFields) -> dict[str, JsonValue]:
        """The ``fields`` object of a create request, from the form's loose values."""
        extra = dict(fields)
        block = anomaly_block(anomaly, self.platform.name, self.platform.url)
        summary = extra.pop("summary", None) or self.default_summary(anomaly)
        summary = " ".join(str(summary).split())  # Jira refuses newlines in a summary
        intro = extra.pop("description", None)
        payload: dict[str, JsonValue] = {
            "project": self._project(extra.pop("project", None)),
            "issuetype": self._issuetype(extra.pop("issuetype", extra.pop("issue_type", None))),
            "summary": truncate_text(summary, SUMMARY_LIMIT),
            "description": adf_json(block_to_adf(block, str(intro) if intro else None)),
            "labels": [*self._labels(extra.pop("labels", None), anomaly.id)],
        }
        priority = extra.pop("priority", None)
        if priority:
            payload["priority"] = self._priority(priority)
        assignee = extra.pop("assignee", None)
        if assignee:
            payload["assignee"] = await self.resolve_assignee(assignee)
        payload.update(extra)  # custom fields go through as given; Jira judges them
        return payload

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
        if isinstance(value, dict):
            return value
        wanted = str(value).strip()
        if _ACCOUNT_ID.match(wanted):
            return {"accountId": wanted}
        found = await self._answer(
            list[JiraUser], "GET", f"{API}/user/search", params={"query": wanted}
        )
        users = [u for u in found or [] if u.get("accountType", "atlassian") == "atlassian"]
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
        raise ValidationError(problem, field_errors={"assignee": problem}, connection=self.name)

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
