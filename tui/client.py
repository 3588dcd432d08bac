"""An async client of the receiver's operator API: everything the dashboard reads and does.

The dashboard never touches the store: it is a client over HTTP, so it works the same against a
receiver it started itself and one running on a server. Every answer comes back as its view
(``core/views.py``, the models the receiver serialises from), never as a bare dict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date
from typing import TypeVar
from urllib.parse import quote

import httpx
import pydantic
from httpx_sse import aconnect_sse
from pydantic import JsonValue

from anomaly_desk.core.views import (
    EVENT_VIEWS,
    AnomalyDetail,
    AnomalyPage,
    ConnectionChecks,
    ConnectionHealth,
    ConnectionPage,
    ConnectionView,
    CreateFormView,
    EventView,
    FieldError,
    HealthView,
    ImportProgressView,
    OptionsView,
    OptionView,
    ProblemView,
    QuarantineItem,
    QuarantinePage,
    RulePage,
    RuleView,
    SyncJobPage,
    SyncJobView,
    SyncLogEntryView,
    SyncLogPage,
    TicketLinkView,
    TicketPage,
    TicketTypePage,
    TicketTypeView,
    TicketView,
    UserPage,
    UserView,
)

V = TypeVar("V", bound=pydantic.BaseModel)
Params = dict[str, str | int]


class ApiError(Exception):
    """The receiver refused: ``status`` plus its problem body's detail and per-field errors."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[FieldError] | None = None
    ):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail or title
        self.errors = errors or []

    def field_errors(self) -> dict[str, str]:
        """``{"summary": "required"}`` from paths like ``fields.summary``."""
        return {e.path.removeprefix("fields."): e.message for e in self.errors}


class DeskClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 30.0,
        raised_for: str | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.raised_for = raised_for  # --as: who the tickets this dashboard creates are for
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"DeskClient({self.url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self, method: str, path: str, params: Params | None = None, json: object = None
    ) -> httpx.Response:
        try:
            return await self._http.request(method, path, params=params, json=json)
        except httpx.TransportError as exc:
            raise ApiError(0, "Receiver unreachable", f"{self.url}: {type(exc).__name__}") from None

    async def _call(
        self,
        view: type[V],
        method: str,
        path: str,
        params: Params | None = None,
        json: object = None,
    ) -> V:
        return self._answer(view, await self._send(method, path, params, json))

    @staticmethod
    def _answer(view: type[V], response: httpx.Response) -> V:
        """The body as ``view``, or ApiError from a problem body when the status is 4xx/5xx."""
        if response.status_code >= 400:
            try:
                problem = ProblemView.model_validate_json(response.content)
            except pydantic.ValidationError:
                raise ApiError(
                    response.status_code, response.reason_phrase, response.text[:200]
                ) from None
            raise ApiError(
                response.status_code, problem.title, problem.detail or "", problem.errors
            )
        try:
            return view.model_validate_json(response.content)
        except pydantic.ValidationError as exc:
            raise ApiError(
                response.status_code,
                "Unexpected answer",
                f"{response.request.url.path}: not a {view.__name__} "
                f"({exc.error_count()} problems; receiver of another version?)",
            ) from None

    # -- reads -------------------------------------------------------------------------------

    async def health(self) -> HealthView:
        """``ok`` with the counts; when the store refuses writes the receiver answers 503
        ``degraded`` with the reason: an answer, not an error."""
        response = await self._send("GET", "/healthz")
        if response.status_code == 503:
            try:
                health = HealthView.model_validate_json(response.content)
            except pydantic.ValidationError:
                pass
            else:
                if health.status == "degraded":
                    return health
        return self._answer(HealthView, response)

    async def list_anomalies(
        self,
        status: str = "open",
        q: str = "",
        limit: int = 100,
        cursor: str | None = None,
        archive: bool = False,
    ) -> AnomalyPage:
        """A page of the list; ``archive``: the cold archive too (a scan: slower)."""
        params: Params = {"status": status, "limit": limit}
        if q:
            params["q"] = q
        if archive:
            params["archive"] = 1
        if cursor:
            params["cursor"] = cursor
        return await self._call(AnomalyPage, "GET", "/api/anomalies", params=params)

    async def anomaly(self, anomaly_id: int) -> AnomalyDetail:
        return await self._call(AnomalyDetail, "GET", f"/api/anomalies/{anomaly_id}")

    async def quarantine(self, limit: int = 100) -> list[QuarantineItem]:
        """Delivered items kept aside (no usable anomaly id), newest first."""
        params: Params = {"limit": limit}
        return (await self._call(QuarantinePage, "GET", "/api/quarantine", params=params)).items

    async def connections(self) -> list[ConnectionView]:
        return (await self._call(ConnectionPage, "GET", "/api/connections")).items

    async def check_connections(self) -> dict[str, ConnectionHealth]:
        return (await self._call(ConnectionChecks, "POST", "/api/connections/check")).root

    async def search(self, connection: str, q: str, limit: int = 20) -> list[TicketView]:
        params: Params = {"q": q, "limit": limit}
        path = f"/api/connections/{connection}/search"
        return (await self._call(TicketPage, "GET", path, params=params)).items

    async def options(self, connection: str) -> dict[str, list[OptionView]]:
        path = f"/api/connections/{connection}/options"
        return (await self._call(OptionsView, "GET", path)).root

    async def ticket_types(self, connection: str) -> list[TicketTypeView]:
        """Jira issue types / ServiceNow tables the connection can create."""
        path = f"/api/connections/{connection}/types"
        return (await self._call(TicketTypePage, "GET", path)).items

    async def create_form(
        self, connection: str, ticket_type: str | None = None, anomaly: int | None = None
    ) -> CreateFormView:
        """The create form of one ticket type (None: the connection's default); for
        ``anomaly``, its title default is the connection's title template for it."""
        params: Params = {"type": ticket_type} if ticket_type else {}
        if anomaly is not None:
            params["anomaly"] = anomaly
        path = f"/api/connections/{connection}/form"
        return await self._call(CreateFormView, "GET", path, params=params)

    async def find_users(self, connection: str, q: str, limit: int = 20) -> list[UserView]:
        """People on the connection whose name or address matches ``q``."""
        params: Params = {"q": q, "limit": limit}
        path = f"/api/connections/{connection}/users"
        return (await self._call(UserPage, "GET", path, params=params)).items

    async def rules(self) -> list[RuleView]:
        """Every ``[[rules]]`` entry with its counters and whether it is paused."""
        return (await self._call(RulePage, "GET", "/api/rules")).items

    async def pause_rule(self, name: str, pause: bool = True) -> RuleView:
        """Pause a rule (or resume it, ``pause=False``); the rule as it is now."""
        path = f"/api/rules/{quote(name, safe='')}/{'pause' if pause else 'resume'}"
        return await self._call(RuleView, "POST", path)

    async def sync_log(self, after: int | None = None, limit: int = 200) -> list[SyncLogEntryView]:
        params: Params = {"limit": limit}
        if after is not None:
            params["after"] = after
        return (await self._call(SyncLogPage, "GET", "/api/sync-log", params=params)).items

    async def sync_jobs(
        self, state: str | None = None, anomaly_id: int | None = None
    ) -> list[SyncJobView]:
        params: Params = {}
        if state:
            params["state"] = state
        if anomaly_id is not None:
            params["anomaly_id"] = anomaly_id
        return (await self._call(SyncJobPage, "GET", "/api/sync-jobs", params=params)).items

    # -- actions -----------------------------------------------------------------------------

    async def acknowledge(self, anomaly_id: int) -> AnomalyDetail:
        return await self._call(AnomalyDetail, "POST", f"/api/anomalies/{anomaly_id}/acknowledge")

    async def archive(
        self, anomaly_id: int, status: str, comment: str | None = None
    ) -> AnomalyDetail:
        body = {"status": status, **({"comment": comment} if comment else {})}
        path = f"/api/anomalies/{anomaly_id}/archive"
        return await self._call(AnomalyDetail, "POST", path, json=body)

    async def comment(self, anomaly_id: int, text: str) -> AnomalyDetail:
        path = f"/api/anomalies/{anomaly_id}/comments"
        return await self._call(AnomalyDetail, "POST", path, json={"text": text})

    async def create_ticket(
        self,
        anomaly_id: int,
        connection: str,
        fields: Mapping[str, JsonValue],
        raised_for: str | None = None,
    ) -> TicketLinkView:
        """``raised_for``: the operator's address (default ``--as``); else the receiver's
        ``operator_email`` setting."""
        body: dict[str, object] = {"connection": connection, "fields": dict(fields)}
        if raised_for or self.raised_for:
            body["as"] = raised_for or self.raised_for
        path = f"/api/anomalies/{anomaly_id}/tickets"
        return await self._call(TicketLinkView, "POST", path, json=body)

    async def link_ticket(self, anomaly_id: int, connection: str, ticket: str) -> TicketLinkView:
        body = {"connection": connection, "ticket": ticket}
        path = f"/api/anomalies/{anomaly_id}/links"
        return await self._call(TicketLinkView, "POST", path, json=body)

    async def unlink(self, anomaly_id: int, link_id: str) -> AnomalyDetail:
        path = f"/api/anomalies/{anomaly_id}/links/{link_id}"
        return await self._call(AnomalyDetail, "DELETE", path)

    async def refresh(self, anomaly_id: int) -> AnomalyDetail:
        return await self._call(AnomalyDetail, "POST", f"/api/anomalies/{anomaly_id}/refresh")

    async def retry_job(self, job_id: int) -> SyncJobView:
        return await self._call(SyncJobView, "POST", f"/api/sync-jobs/{job_id}/retry")

    # -- import from the platform ------------------------------------------------------------

    async def start_import(
        self, archived: bool = False, since: date | None = None, datastore: int | None = None
    ) -> ImportProgressView:
        """Start importing the platform's anomalies (202: where it starts; its progress comes as
        ``import.progress`` events). ApiError 422 when the receiver has no platform API (an error
        at ``platform``) or an option is refused (at ``since``, ``datastore``); 409 when an
        import runs already."""
        body = {
            "archived": archived,
            "since": since.isoformat() if since else None,
            "datastore": datastore,
        }
        return await self._call(ImportProgressView, "POST", "/api/import", json=body)

    async def import_status(self) -> ImportProgressView | None:
        """The running import's progress, else where the last one ended; None: never imported."""
        response = await self._send("GET", "/api/import")
        if response.status_code == 404:
            return None
        return self._answer(ImportProgressView, response)

    # -- live --------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[tuple[str, EventView | None]]:
        """Server-sent events as ``(type, view)``, until the connection ends. The view is None
        for an event this version does not know, or whose data does not fit its view."""
        async with (
            httpx.AsyncClient(
                base_url=self.url,
                headers=self._http.headers,
                timeout=httpx.Timeout(30.0, read=None),
            ) as http,
            aconnect_sse(http, "GET", "/api/events") as source,
        ):
            async for event in source.aiter_sse():
                yield event.event, _event_view(event.event, event.data)


def _event_view(kind: str, data: str) -> EventView | None:
    view = EVENT_VIEWS.get(kind)
    if view is None or not data:
        return None
    try:
        return view.model_validate_json(data)
    except pydantic.ValidationError:
        return None
