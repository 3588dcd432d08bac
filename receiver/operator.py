"""The operator API's write side and provider reads: what the dashboard does."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from anomaly_desk.core.models import Status, error_path
from anomaly_desk.core.operations import Desk, OperationError
from anomaly_desk.core.providers import Ticket
from anomaly_desk.core.sync import job_view
from anomaly_desk.receiver.api import json_response
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


class TicketBody(_Body):
    connection: str
    fields: dict[str, Any] = Field(default_factory=dict)


class LinkBody(_Body):
    connection: str
    ticket: str = Field(min_length=1)


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


async def handle_operation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OperationError)
    headers = {"Retry-After": f"{exc.retry_after:.0f}"} if exc.retry_after else None
    kind = exc.title.lower().replace(" ", "-")
    return problem_response(
        Problem(exc.status, exc.title, exc.detail, kind=kind, errors=exc.errors, headers=headers)
    )


def _desk(request: Request) -> Desk:
    return request.app.state.desk


def _anomaly_id(request: Request) -> int:
    anomaly_id: int = request.path_params["anomaly_id"]  # the route's int convertor
    return anomaly_id


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    data = asdict(ticket)
    data.pop("extra", None)
    return data


async def acknowledge(request: Request) -> Response:
    return json_response(await _desk(request).acknowledge(_anomaly_id(request)))


async def archive(request: Request) -> Response:
    body = await read_json(request, ArchiveBody)
    return json_response(
        await _desk(request).archive(_anomaly_id(request), body.status, body.comment)
    )


async def comment(request: Request) -> Response:
    body = await read_json(request, CommentBody)
    return json_response(await _desk(request).comment(_anomaly_id(request), body.text), 201)


async def create_ticket(request: Request) -> Response:
    body = await read_json(request, TicketBody)
    link = await _desk(request).create_ticket(_anomaly_id(request), body.connection, body.fields)
    return json_response(link, 201)


async def link_ticket(request: Request) -> Response:
    body = await read_json(request, LinkBody)
    link = await _desk(request).link_ticket(_anomaly_id(request), body.connection, body.ticket)
    return json_response(link, 201)


async def unlink(request: Request) -> Response:
    doc = await _desk(request).unlink(_anomaly_id(request), request.path_params["link_id"])
    return json_response(doc)


async def refresh(request: Request) -> Response:
    desk = _desk(request)
    anomaly_id = _anomaly_id(request)
    desk.anomaly(anomaly_id)
    await desk.refresh_links([anomaly_id])
    return json_response(desk.anomaly(anomaly_id))


async def connections(request: Request) -> Response:
    desk = _desk(request)
    settings = request.app.state.settings
    items = []
    for conn in settings.connections:
        item = {
            "name": conn.name,
            "provider": conn.provider,
            "url": conn.url,
            "health": desk.health.get(conn.name),
        }
        if conn.provider == "jira":
            item.update(project=conn.project, issue_type=conn.issue_type)
        items.append(item)
    return json_response({"items": items})


async def check_connections(request: Request) -> Response:
    return json_response(await _desk(request).check_connections())


async def search(request: Request) -> Response:
    text = request.query_params.get("q", "")
    limit = request.query_params.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise Problem(400, "Bad limit", f"limit={limit!r}; use 1..100", kind="bad-query")
    tickets = await _desk(request).search(request.path_params["name"], text, int(limit))
    return json_response({"items": [ticket_json(t) for t in tickets]})


async def options(request: Request) -> Response:
    refresh_ = request.query_params.get("refresh") in ("1", "true")
    values = await _desk(request).options(request.path_params["name"], refresh=refresh_)
    return json_response({field: [asdict(o) for o in opts] for field, opts in values.items()})


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > high:
        raise Problem(400, f"Bad {name}", f"{name}={raw!r}; use 0..{high}", kind="bad-query")
    return int(raw)


async def sync_log(request: Request) -> Response:
    """Entries after ``after`` (oldest first), or the newest ``limit`` when ``after`` is absent."""
    store = request.app.state.store
    limit = _int_param(request, "limit", 200, 5000)
    rows = store.all("sync_log")
    if "after" in request.query_params:
        after = _int_param(request, "after", 0, 10**15)
        keys = sorted(int(k) for k in rows if int(k) > after)[:limit]
    else:
        keys = sorted(int(k) for k in rows)[-limit:]
    items = [rows[str(k)] for k in keys]
    return json_response({"items": items, "last_id": keys[-1] if keys else None})


async def sync_jobs(request: Request) -> Response:
    state = request.query_params.get("state")
    anomaly = request.query_params.get("anomaly_id")
    jobs = request.app.state.store.all("jobs").values()
    items = [
        job_view(job)
        for job in jobs
        if (state is None or job["state"] == state)
        and (anomaly is None or str(job["anomaly_id"]) == anomaly)
    ]
    items.sort(key=lambda job: job["id"])
    return json_response({"items": items[-1000:]})


async def retry_job(request: Request) -> Response:
    return json_response(await _desk(request).retry_job(request.path_params["job_id"]))
