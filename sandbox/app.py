"""One ASGI app serving the three emulators on one port (their paths do not collide)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from anomaly_desk.sandbox.faults import FaultMiddleware, Faults
from anomaly_desk.sandbox.jira import JiraEmulator
from anomaly_desk.sandbox.oauth import AuthState
from anomaly_desk.sandbox.platform import PlatformEmulator
from anomaly_desk.sandbox.servicenow import ServiceNowEmulator
from anomaly_desk.sandbox.webhooks import WebhookHub


def create_app(faults: Faults | None = None, platform: PlatformEmulator | None = None) -> Starlette:
    """The sandbox. ``app.state`` holds ``jira``, ``servicenow``, ``platform``, ``faults``,
    ``webhooks`` (the emitters, ``/_sandbox/webhooks``) and ``auth`` (OAuth clients, tokens and
    token-request counts, ``/_sandbox/auth``) for tests to steer."""
    faults = faults or Faults()
    webhooks = WebhookHub()
    auth = AuthState()
    jira = JiraEmulator(webhooks, auth)
    servicenow = ServiceNowEmulator(webhooks, auth)
    platform = platform or PlatformEmulator()
    app = Starlette(
        routes=[
            *jira.routes(),
            *servicenow.routes(),
            *platform.routes(),
            *faults.routes(),
            *webhooks.routes(),
            *auth.routes(),
            *platform.fallback_routes(),  # /api/{rest}: after ServiceNow's /api/now routes
        ],
        middleware=[Middleware(FaultMiddleware, faults=faults)],
    )
    app.state.jira = jira
    app.state.servicenow = servicenow
    app.state.platform = platform
    app.state.faults = faults
    app.state.webhooks = webhooks
    app.state.auth = auth
    return app
