"""One ASGI app serving the three emulators on one port (their paths do not collide)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from anomaly_desk.sandbox.faults import FaultMiddleware, Faults
from anomaly_desk.sandbox.jira import JiraEmulator
from anomaly_desk.sandbox.platform import PlatformEmulator
from anomaly_desk.sandbox.servicenow import ServiceNowEmulator
from anomaly_desk.sandbox.webhooks import WebhookHub


def create_app(faults: Faults | None = None, platform: PlatformEmulator | None = None) -> Starlette:
    """The sandbox. ``app.state`` holds ``jira``, ``servicenow``, ``platform``, ``faults`` and
    ``webhooks`` (the emitters, ``/_sandbox/webhooks``) for tests to steer."""
    faults = faults or Faults()
    webhooks = WebhookHub()
    jira = JiraEmulator(webhooks)
    servicenow = ServiceNowEmulator(webhooks)
    platform = platform or PlatformEmulator()
    app = Starlette(
        routes=[
            *jira.routes(),
            *servicenow.routes(),
            *platform.routes(),
            *faults.routes(),
            *webhooks.routes(),
            *platform.fallback_routes(),  # /api/{rest}: after ServiceNow's /api/now routes
        ],
        middleware=[Middleware(FaultMiddleware, faults=faults)],
    )
    app.state.jira = jira
    app.state.servicenow = servicenow
    app.state.platform = platform
    app.state.faults = faults
    app.state.webhooks = webhooks
    return app
