"""One ASGI app serving both emulators on one port (their paths do not collide)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from anomaly_desk.sandbox.faults import FaultMiddleware, Faults
from anomaly_desk.sandbox.jira import JiraEmulator
from anomaly_desk.sandbox.servicenow import ServiceNowEmulator


def create_app(faults: Faults | None = None) -> Starlette:
    """The sandbox. ``app.state`` holds ``jira``, ``servicenow`` and ``faults`` for tests to steer."""
    faults = faults or Faults()
    jira = JiraEmulator()
    servicenow = ServiceNowEmulator()
    app = Starlette(
        routes=[*jira.routes(), *servicenow.routes(), *faults.routes()],
        middleware=[Middleware(FaultMiddleware, faults=faults)],
    )
    app.state.jira = jira
    app.state.servicenow = servicenow
    app.state.faults = faults
    return app
