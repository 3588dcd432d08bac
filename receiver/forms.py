"""The create form's reads: a connection's ticket types, one type's fields, people by name.

The dashboard builds its create form from these (issue #15), so a Jira custom field or a
ServiceNow table's mandatory field shows up without a release of the desk.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from anomaly_desk.core.operations import Desk, NotFound
from anomaly_desk.core.views import TicketTypePage, UserPage
from anomaly_desk.receiver.api import view_response
from anomaly_desk.receiver.problems import Problem

MAX_QUERY = 100  # longer is no name or address anyone types
MAX_ID = 19  # digits: anomaly ids are 64-bit integers


def _desk(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def _refresh(request: Request) -> bool:
    return request.query_params.get("refresh") in ("1", "true")


async def ticket_types(request: Request) -> Response:
    """``GET /api/connections/{name}/types``: Jira issue types, ServiceNow tables."""
    types = await _desk(request).ticket_types(request.path_params["name"], _refresh(request))
    return view_response(TicketTypePage(items=types))


async def create_form(request: Request) -> Response:
    """``GET /api/connections/{name}/form?type=``: the fields of one type's create form (no
    ``type``: the connection's default), with ``operator_email``, who tickets are raised for;
    ``anomaly=ID`` makes the title's default the connection's title template for that anomaly."""
    wanted = request.query_params.get("type", "").strip() or None
    if wanted is not None and len(wanted) > MAX_QUERY:
        raise Problem(400, "Bad type", f"type is {len(wanted)} characters long", kind="bad-query")
    anomaly = request.query_params.get("anomaly", "").strip()
    if anomaly and not (anomaly.isascii() and anomaly.isdigit() and len(anomaly) <= MAX_ID):
        raise Problem(400, "Bad anomaly", "anomaly must be an anomaly id", kind="bad-query")
    anomaly_id = int(anomaly) if anomaly else None
    if anomaly_id is not None:
        _known(request, anomaly_id)
    form = await _desk(request).create_form(
        request.path_params["name"], wanted, _refresh(request), anomaly_id
    )
    return view_response(form)


def _known(request: Request, anomaly_id: int) -> None:
    """404 for an id the desk does not hold (hot or cold): a form "for" it would silently be
    the plain form, as if the title template had nothing to say."""
    try:
        _desk(request).anomaly(anomaly_id)
    except NotFound:
        raise Problem(
            404, "Anomaly not found", f"no anomaly with id {anomaly_id}", kind="not-found"
        ) from None


async def find_users(request: Request) -> Response:
    """``GET /api/connections/{name}/users?q=&limit=``: people matching a name or address."""
    query = request.query_params.get("q", "").strip()
    if not query or len(query) > MAX_QUERY:
        raise Problem(400, "Bad q", f"q={query!r}: 1..{MAX_QUERY} characters", kind="bad-query")
    limit = request.query_params.get("limit", "20")
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= 100:
        raise Problem(400, "Bad limit", f"limit={limit!r}; use 1..100", kind="bad-query")
    users = await _desk(request).find_users(request.path_params["name"], query, int(limit))
    return view_response(UserPage(items=users))
