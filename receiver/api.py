"""The operator API's read side: health, anomaly list and detail."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable
from functools import cache

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from anomaly_desk.core.models import ARCHIVED, OPEN, Status
from anomaly_desk.core.retention import with_cold
from anomaly_desk.core.views import (
    AnomalyPage,
    HealthView,
    QuarantinePage,
    api_schema,
    to_json,
)
from anomaly_desk.receiver.problems import Problem

MAX_LIMIT = 500
STATUS_GROUPS: dict[str, frozenset[Status]] = {
    "open": OPEN,
    "archived": ARCHIVED,
    "all": frozenset(Status),
}


def view_response(view: BaseModel, status: int = 200) -> Response:
    """Every operator API answer: its view, serialised (see ``core/views.py``)."""
    return Response(to_json(view), status_code=status, media_type="application/json")


def parse_statuses(raw: str | None, stored: Iterable[str] = ()) -> set[str]:
    """``open`` (default), ``archived``, ``all``, or a comma list of statuses in any case.

    ``stored`` are the statuses present in the store: one the platform introduced after this
    version (kept as sent) counts as open, so it is never hidden, and can be named too.
    """
    others = {s for s in stored if s not in STATUS_GROUPS["all"]}
    wanted: set[str] = set()
    for part in (raw or "open").split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name in STATUS_GROUPS:
            wanted |= {s.value for s in STATUS_GROUPS[name]}
            if name != "archived":
                wanted |= others
            continue
        match = next((s for s in [*Status, *others] if s.lower() == name), None)
        if match is None:
            choices = ", ".join([*STATUS_GROUPS, *(s.value for s in Status), *sorted(others)])
            raise Problem(
                400,
                "Unknown status filter",
                f"status={part!r}; use one of {choices}",
                kind="bad-query",
            )
        wanted.add(str(match))
    return wanted


def encode_cursor(position: tuple[str, int] | None) -> str | None:
    if position is None:
        return None
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    try:
        created, anomaly_id = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return (str(created), int(anomaly_id))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise Problem(
            400, "Bad cursor", "cursor: use next_cursor from a previous page", kind="bad-query"
        ) from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(400, "Bad limit", f"limit={raw!r}; use 1..{MAX_LIMIT}", kind="bad-query")
    return int(raw)


async def healthz(request: Request) -> Response:
    """``ok`` (200) or ``degraded`` with the reason (503): a monitor needs nothing else.

    Counts are for the operator: on an exposed receiver they need the operator token.
    """
    state = request.app.state
    store = state.store
    problem = getattr(store, "write_error", None)
    health = HealthView(status="degraded", reason=problem) if problem else HealthView(status="ok")
    if state.token is None or bearer_matches(request.headers.get("authorization"), state.token):
        health.anomalies = store.count()
        health.by_status = store.status_counts()
    return view_response(health, 503 if problem else 200)


def bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, presented = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


async def quarantine(request: Request) -> Response:
    """Delivered items that could not be stored as anomalies (no usable id), newest first."""
    items = request.app.state.store.quarantined(_limit(request.query_params.get("limit")))
    return view_response(QuarantinePage(items=items))


async def list_anomalies(request: Request) -> Response:
    """A page, newest first. ``archive=1`` includes the cold archive (issue #16): with ``q``
    a scan of it, so slower; its rows are marked ``cold``. The cold archive holds archived
    anomalies only, so with it and no ``status`` the filter is ``all``, not ``open``."""
    params = request.query_params
    store = request.app.state.store
    archive = params.get("archive", "0")
    if archive not in ("0", "1", "true", "false"):
        raise Problem(400, "Bad archive", f"archive={archive!r}; use 1 or 0", kind="bad-query")
    cold = archive in ("1", "true")
    default = "all" if cold else "open"
    statuses = parse_statuses(params.get("status", default), store.status_counts())
    if cold:
        items, position = await with_cold(
            store,
            statuses,
            params.get("q"),
            _limit(params.get("limit")),
            decode_cursor(params.get("cursor")),
        )
        return view_response(AnomalyPage(items=items, next_cursor=encode_cursor(position)))
    items, position = store.list_anomalies(
        statuses=statuses,
        q=params.get("q"),
        limit=_limit(params.get("limit")),
        after=decode_cursor(params.get("cursor")),
    )
    return view_response(AnomalyPage(items=items, next_cursor=encode_cursor(position)))


async def get_anomaly(request: Request) -> Response:
    anomaly_id = request.path_params["anomaly_id"]
    doc = request.app.state.desk.anomaly_view(anomaly_id)
    if doc is None:
        raise Problem(
            404, "Anomaly not found", f"no anomaly with id {anomaly_id}", kind="not-found"
        )
    return view_response(doc)


@cache
def _schema_json() -> bytes:
    return orjson.dumps(api_schema())


async def schema(request: Request) -> Response:
    """The JSON schema of every view: which one each endpoint answers with, each event carries."""
    return Response(_schema_json(), media_type="application/json")
