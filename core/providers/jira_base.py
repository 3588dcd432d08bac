"""The Jira connection every part of the client builds on: the HTTP client and its request
loop (errors in Jira's own words), the cloud id of scoped tokens and OAuth, and an issue read
as a ``Ticket``."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import JsonValue

from anomaly_desk.core.connections import JiraConnection, Platform
from anomaly_desk.core.providers.base import Ticket
from anomaly_desk.core.providers.errors import AuthError, ProviderError, UnavailableError
from anomaly_desk.core.providers.http import (
    READ_RETRY,
    BadAnswer,
    ErrorText,
    JsonBody,
    Params,
    ReadRetry,
    RequestLoop,
    basic_auth_client,
    public_url,
)
from anomaly_desk.core.providers.jira_fields import JiraForm
from anomaly_desk.core.providers.oauth import OAuth
from anomaly_desk.core.providers.payloads import (
    JiraIssue,
    JiraIssueFields,
    JiraIssueType,
    JiraProject,
    JiraStatus,
    JiraStatusCategory,
    JiraUser,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

API = "/rest/api/3"
TICKET_FIELDS = "summary,status,updated,created,priority,assignee,issuetype,project,labels"


def status_category(status: JiraStatus | None) -> str | None:
    """A status's category key: ``new``, ``indeterminate`` or ``done``."""
    category = (status or {}).get("statusCategory") or {}
    return category.get("key")


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


class JiraBase:
    """One Jira Cloud site; one ``httpx.AsyncClient`` for the connection's lifetime."""

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

    async def get_ticket(self, key: str) -> Ticket:
        issue = await self._answer(
            JiraIssue,
            "GET",
            f"{API}/issue/{quote(key.strip(), safe='')}",
            params={"fields": TICKET_FIELDS},
        )
        return self.to_ticket(issue)

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
