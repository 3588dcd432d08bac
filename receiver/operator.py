"""The operator API's write side and provider reads: what the dashboard does."""

from __future__ import annotations

from datetime import date
from typing import TypeVar

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from anomaly_desk.core.config import ConfigError
from anomaly_desk.core.documents import AnomalyDocument, SyncJob, TicketLink
from anomaly_desk.core.importer import ImportRequest
from anomaly_desk.core.models import Status, error_path
from anomaly_desk.core.operations import (
    Conflict,
    Desk,
    Invalid,
    NotFound,
    OperationError,
    RateLimited,
    Upstream,
    UpstreamUnavailable,
)
from anomaly_desk.core.providers import TicketFields
from anomaly_desk.core.store import stored_row
from anomaly_desk.core.views import (
    AnomalyDetail,
    ConnectionChecks,
    ConnectionHealth,
    ConnectionPage,
    ConnectionView,
    OptionsView,
    SyncJobPage,
    SyncJobView,
    SyncLogPage,
    TicketLinkView,
    TicketPage,
    TicketView,
    TwoWayView,
)
from anomaly_desk.receiver.api import view_response
from anomaly_desk.receiver.bodies import read_json_body
from anomaly_desk.receiver.problems import Problem, problem_response

MAX_API_BODY = 256 * 1024


M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArchiveBody(_Body):
    status: Status
    comment: str | None = None


class CommentBody(_Body):
    text: str = Field(min_length=1)


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"  # the operator_email setting's shape


class TicketBody(_Body):
    connection: str
    fields: TicketFields = Field(default_factory=dict)
    # who the ticket is raised for (the dashboard's --as), else the operator_email setting
    as_: str | None = Field(None, alias="as", min_length=3, max_length=254, pattern=EMAIL_PATTERN)


class LinkBody(_Body):
    connection: str
    ticket: str = Field(min_length=1)


class ImportBody(_Body):
    archived: bool = False
    since: date | None = None
    datastore: int | None = Field(None, ge=1)


async def read_json(request: Request, model: type[M]) -> M:
    """The body as ``model``: 415 / 400 / 422 with the path of every problem."""
    body = await read_json_body(request, MAX_API_BODY)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "Body is not valid JSON", str(exc), kind="invalid-json") from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = [{"path": error_path(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        raise Problem(
            422, "Invalid request", detail, kind="invalid-request", errors=errors
        ) from None


# What each refusal of the desk is over HTTP: status and problem title (the kind is the title's
# slug). Looked up along the class's MRO, so a new subclass answers like its parent until mapped.
OPERATION_STATUS: dict[type[OperationError], tuple[int, str]] = {
    OperationError: (400, "Bad request"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    Invalid: (422, "Invalid request"),
    Upstream: (502, "Ticketing system error"),
    UpstreamUnavailable: (503, "Ticketing system error"),
    RateLimited: (503, "Ticketing system error"),
}


def operation_status(exc: OperationError) -> tuple[int, str]:
    """The HTTP status and title for ``exc``: its nearest mapped class."""
    for cls in type(exc).__mro__:
        if cls in OPERATION_STATUS:
            return OPERATION_STATUS[cls]
    return OPERATION_STATUS[OperationError]


async def handle_operation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OperationError)
    status, title = operation_status(exc)
    headers = {"Retry-After": f"{exc.retry_after:.0f}"} if exc.retry_after else None
    kind = title.lower().replace(" ", "-")
    return problem_response(
        Problem(status, title, exc.detail, kind=kind, errors=exc.errors, headers=headers)
    )


def _desk(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def _anomaly_id(request: Request) -> int:
    anomaly_id: int = request.path_params["anomaly_id"]  # the route's int convertor
    return anomaly_id


# The desk answers with typed documents; the API shows each as its stored JSON, dumped the way
# the store dumps it, so times are the stored strings and unknown platform keys are kept.


def _detail(request: Request, doc: AnomalyDocument) -> AnomalyDetail:
    """The anomaly an action left, as the store holds it now (times as stored, unknown platform
    keys kept) with what became of each link's notes, like ``GET /api/anomalies/{id}``."""
    detail: AnomalyDetail | None = _desk(request).anomaly_view(doc.id)
    return detail if detail is not None else AnomalyDetail.model_validate(stored_row(doc))


def _link(link: TicketLink) -> TicketLinkView:
    view = TicketLinkView.model_validate(link.model_dump(mode="json"))
    if link.warnings:  # not stored: only the create's answer says
        view.warnings = list(link.warnings)
    return view


def _job(job: SyncJob) -> SyncJobView:
    return SyncJobView.model_validate(job)


async def acknowledge(request: Request) -> Response:
    doc = await _desk(request).acknowledge(_anomaly_id(request))
    return view_response(_detail(request, doc))


async def archive(request: Request) -> Response:
    body = await read_json(request, ArchiveBody)
    doc = await _desk(request).archive(_anomaly_id(request), body.status, body.comment)
    return view_response(_detail(request, doc))


async def comment(request: Request) -> Response:
    body = await read_json(request, CommentBody)
    doc = await _desk(request).comment(_anomaly_id(request), body.text)
    return view_response(_detail(request, doc), 201)


async def create_ticket(request: Request) -> Response:
    body = await read_json(request, TicketBody)
    link = await _desk(request).create_ticket(
        _anomaly_id(request), body.connection, body.fields, operator_email=body.as_
    )
    return view_response(_link(link), 201)


async def link_ticket(request: Request) -> Response:
    body = await read_json(request, LinkBody)
    link = await _desk(request).link_ticket(_anomaly_id(request), body.connection, body.ticket)
    return view_response(_link(link), 201)


async def unlink(request: Request) -> Response:
    doc = await _desk(request).unlink(_anomaly_id(request), request.path_params["link_id"])
    return view_response(_detail(request, doc))


async def refresh(request: Request) -> Response:
    desk = _desk(request)
    anomaly_id = _anomaly_id(request)
    await desk.refresh_links([anomaly_id])  # NotFound if there is no such anomaly
    return view_response(_detail(request, desk.anomaly(anomaly_id)))


async def connections(request: Request) -> Response:
    desk = _desk(request)
    items = []
    for conn in request.app.state.settings.connections:
        health = desk.health.get(conn.name)
        view = ConnectionView(
            name=conn.name,
            provider=conn.provider,
            url=conn.url,
            health=None if health is None else ConnectionHealth.model_validate(health),
            sync=TwoWayView.model_validate(conn),
        )
        if conn.provider == "jira":
            view.project, view.issue_type = conn.project, conn.issue_type
        items.append(view)
    return view_response(ConnectionPage(items=items))


async def check_connections(request: Request) -> Response:
    checks = await _desk(request).check_connections()
    return view_response(
        ConnectionChecks({name: ConnectionHealth.model_validate(c) for name, c in checks.items()})
    )


async def search(request: Request) -> Response:
    text = request.query_params.get("q", "")
    limit = request.query_params.get("limit", "20")
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= 100:
        raise Problem(400, "Bad limit", f"limit={limit!r}; use 1..100", kind="bad-query")
    tickets = await _desk(request).search(request.path_params["name"], text, int(limit))
    return view_response(TicketPage(items=[TicketView.model_validate(t) for t in tickets]))


async def options(request: Request) -> Response:
    refresh_ = request.query_params.get("refresh") in ("1", "true")
    values = await _desk(request).options(request.path_params["name"], refresh=refresh_)
    return view_response(OptionsView.model_validate(values))


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) > high:
        raise Problem(400, f"Bad {name}", f"{name}={raw!r}; use 0..{high}", kind="bad-query")
    return int(raw)


async def sync_log(request: Request) -> Response:
    """Entries after ``after`` (oldest first), or the newest ``limit`` when ``after`` is absent."""
    store = request.app.state.store
    limit = _int_param(request, "limit", 200, 5000)
    after = _int_param(request, "after", 0, 10**15) if "after" in request.query_params else None
    items = store.sync_log(after, limit)
    return view_response(SyncLogPage(items=items, last_id=items[-1].id if items else None))


async def sync_jobs(request: Request) -> Response:
    state = request.query_params.get("state")
    anomaly = request.query_params.get("anomaly_id")
    jobs = request.app.state.store.jobs(None if state is None else [state])
    matched = [job for job in jobs if anomaly is None or str(job.anomaly_id) == anomaly]
    matched.sort(key=lambda job: job.id)
    items = [SyncJobView.model_validate(job) for job in matched[-1000:]]
    return view_response(SyncJobPage(items=items))


async def start_import(request: Request) -> Response:
    """Import from the platform in the background: 202 and where it stands; its progress comes as
    ``import.progress`` events and from ``GET /api/import``."""
    body = await read_json(request, ImportBody) if await _has_body(request) else ImportBody()
    request_ = ImportRequest(archived=body.archived, since=body.since, datastore=body.datastore)
    return view_response(_desk(request).start_import(request_), status=202)


async def import_status(request: Request) -> Response:
    view = _desk(request).import_status()
    if view is None:
        raise Problem(404, "No import yet", "nothing was imported into this desk", kind="not-found")
    return view_response(view)


async def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in (
        request.headers
    )


async def retry_job(request: Request) -> Response:
    job = await _desk(request).retry_job(request.path_params["job_id"])
    return view_response(_job(job))


async def reload(request: Request) -> Response:
    """``POST /api/reload``: the configuration file and secrets read again; what changed (keys,
    never values). 422 with the error when the new configuration is refused: the running one
    stays."""
    try:
        view = await request.app.state.live.reload()
    except ConfigError as exc:
        raise Problem(422, "Configuration refused", str(exc), kind="config-refused") from None
    return view_response(view)
