"""``POST /api/compact``: move old archived anomalies to the cold archive now (issue #16).

``anomaly-desk compact`` asks this of the receiver that holds the data directory; ``serve`` also
compacts by itself every ``[retention] compact_every_h`` (see :mod:`anomaly_desk.core.retention`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from anomaly_desk.core.retention import CompactionRunning, Compactor
from anomaly_desk.receiver.api import view_response
from anomaly_desk.receiver.problems import Problem


async def compact(request: Request) -> Response:
    """Run a compaction and answer what it did (409 while another one runs)."""
    compactor: Compactor = request.app.state.compactor
    try:
        view = await compactor.run()
    except CompactionRunning:
        raise Problem(
            409,
            "Conflict",
            "a compaction is running already; its summary goes to the receiver's log",
            kind="conflict",
        ) from None
    return view_response(view)
