"""The receiver's Starlette app: webhook ingestion and the operator API over one store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from core.config import Settings
from core.runtime import tune_for_service
from core.store import Store
from receiver import api
from receiver.auth import WebhookAuth
from receiver.problems import Problem, handle_http_exception, handle_problem
from receiver.webhooks import receive_webhook


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """``store`` may be handed in already open (the CLI opens it first to report a lock early)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = app.state.store is None
        if owned:
            url = f"http://{settings.receiver.host}:{settings.receiver.port}"
            app.state.store = Store(settings.data_dir, owner_url=url).open()
        tune_for_service()
        try:
            yield
        finally:
            await app.state.store.close()

    app = Starlette(
        routes=[
            Route("/webhooks/qualytics", receive_webhook, methods=["POST"]),
            Route("/healthz", api.healthz),
            Route("/api/anomalies", api.list_anomalies),
            Route("/api/anomalies/{anomaly_id}", api.get_anomaly),
        ],
        exception_handlers={Problem: handle_problem, HTTPException: handle_http_exception},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.auth = WebhookAuth(settings.webhook_secret, settings.signing_secret)
    return app
