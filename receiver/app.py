"""The receiver's Starlette app: webhook ingestion, the operator API and the sync worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from anomaly_desk.core.config import Settings, SettingsLoader, is_loopback
from anomaly_desk.core.events import EventBus
from anomaly_desk.core.health import HealthMonitor
from anomaly_desk.core.importer import ImportRequest
from anomaly_desk.core.operations import Desk, OperationError
from anomaly_desk.core.outbox import Outbox
from anomaly_desk.core.providers import Provider, make_provider
from anomaly_desk.core.providers.platform import make_platform_client
from anomaly_desk.core.retention import Compactor
from anomaly_desk.core.rule_runner import RuleRunner
from anomaly_desk.core.runtime import tune_for_service
from anomaly_desk.core.store import Store, StoreFailed
from anomaly_desk.core.sync import SyncWorker
from anomaly_desk.core.writeback import PlatformSender
from anomaly_desk.receiver import api, compaction, forms, hints, operator
from anomaly_desk.receiver import rules as rules_api
from anomaly_desk.receiver.api import bearer_matches
from anomaly_desk.receiver.auth import WebhookAuth
from anomaly_desk.receiver.events import events
from anomaly_desk.receiver.guard import HostGuard, HostPolicy
from anomaly_desk.receiver.problems import (
    Problem,
    handle_http_exception,
    handle_problem,
    handle_store_failed,
    handle_unexpected,
    problem_response,
)
from anomaly_desk.receiver.reload import LiveConfig, settle_times
from anomaly_desk.receiver.webhooks import receive_webhook

log = logging.getLogger(__name__)
TOKEN_FILE = "operator-token"


def operator_token(data_dir: Path) -> str:
    """The bearer token for the operator API, made once per data directory (mode 0600)."""
    path = data_dir / TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


class OperatorAuth:
    """``/api/*`` wants ``Authorization: Bearer <token>`` when the receiver is exposed."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._token and scope["type"] == "http" and scope["path"].startswith("/api/"):
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not bearer_matches(header, self._token):
                problem = Problem(
                    401,
                    "Unauthorized",
                    "the operator API needs its bearer token "
                    f"(in {TOKEN_FILE} in the data directory)",
                    kind="unauthorized",
                    headers={"WWW-Authenticate": 'Bearer realm="operator"'},
                )
                await problem_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings,
    store: Store | None = None,
    providers: Mapping[str, Provider] | None = None,
    loader: SettingsLoader | None = None,
) -> Starlette:
    """``store`` may come already open (the CLI opens it first to report a lock early);
    ``providers`` may be handed in (tests), else they are built from the settings. ``loader``
    loads the settings again for a reload (default: the same file, ``os.environ``, and the
    running data directory and address)."""
    host = settings.receiver.host
    exposed = not is_loopback(host)
    token = operator_token(settings.data_dir) if exposed else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if app.state.store is None:
            url = f"http://{settings.receiver.host}:{settings.receiver.port}"
            app.state.store = Store(settings.data_dir, owner_url=url).open()
        store_ = app.state.store
        owned = providers is None
        clients = (
            dict(providers)
            if providers is not None
            else {
                conn.name: make_provider(conn, settings.platform) for conn in settings.connections
            }
        )
        bus = EventBus()
        outbox = Outbox(store_)
        health = HealthMonitor(clients, bus, settings.sync.health_check_s)
        platform_api = make_platform_client(settings.platform)
        sender = PlatformSender(platform_api, store_, bus) if platform_api else None
        worker = SyncWorker(store_, outbox, clients, bus, settings.sync, health, sender)
        worker.settle_s = settle_times(settings)
        rules = RuleRunner(store_, outbox, bus, settings.rules, clients, worker.wake)
        app.state.rules = rules
        if sender is not None:
            sender.plan_rules = rules.plan  # thin anomalies: their rules, once enriched
        app.state.desk = Desk(
            store_,
            clients,
            settings.platform,
            bus,
            outbox,
            worker,
            health,
            operator=settings.operator,
            operator_email=settings.operator_email,
            name_operator=settings.sync.name_operator,
            write_back=settings.platform.writes_back and platform_api is not None,
            enrich=platform_api is not None,
            platform_api=platform_api,
            connections={conn.name: conn for conn in settings.connections},
            rules=rules,
        )
        app.state.worker = worker
        tune_for_service()
        worker.start()
        if sender is None:
            await rules.release_waiting()  # the platform's API went from the configuration
        background = [asyncio.create_task(health.run())]
        if platform_api is not None and settings.platform.import_on_start:
            app.state.desk.start_import(ImportRequest())  # open anomalies, resumed if cut
        if settings.sync.refresh_interval_s and clients:
            background.append(asyncio.create_task(_refresh_forever(app.state.desk, settings)))
        desk_ = app.state.desk
        app.state.compactor = compactor = Compactor(  # issue #16: old archived ones go cold
            store_,
            settings.retention,
            lambda: bool((v := desk_.import_status()) and v.running),
            bus,  # anomalies.compacted: open dashboards drop or mark what moved
        )
        background.append(asyncio.create_task(compactor.run_forever(), name="compact"))
        # the poller, reloads (SIGHUP, POST /api/reload), secrets re-read from Vault
        app.state.live = live = LiveConfig(app.state, loader or _same_again(settings), clients)
        worker.refresher = live  # a refused credential: its secrets re-read, tried once more
        live.start()
        try:
            yield
        finally:
            await live.stop()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await worker.stop()
            await app.state.desk.stop_import()
            closing = [c.aclose() for c in clients.values()] if owned else []
            closing.append(live.close())  # the clients a reload replaced
            platform_api = app.state.desk.platform_api  # a reload may have replaced it
            if platform_api is not None:
                closing.append(platform_api.aclose())
            await asyncio.gather(*closing, return_exceptions=True)
            await store_.close()

    anomaly = "/api/anomalies/{anomaly_id:int}"  # the one id rule: digits only (see usable_id)
    app = Starlette(
        routes=[
            Route("/webhooks/qualytics", receive_webhook, methods=["POST"]),
            Route("/webhooks/jira", hints.jira_hint, methods=["POST"]),
            Route("/webhooks/servicenow", hints.servicenow_hint, methods=["POST"]),
            Route("/healthz", api.healthz),
            Route("/api/anomalies", api.list_anomalies),
            Route(anomaly, api.get_anomaly),
            Route(f"{anomaly}/acknowledge", operator.acknowledge, methods=["POST"]),
            Route(f"{anomaly}/archive", operator.archive, methods=["POST"]),
            Route(f"{anomaly}/comments", operator.comment, methods=["POST"]),
            Route(f"{anomaly}/tickets", operator.create_ticket, methods=["POST"]),
            Route(f"{anomaly}/links", operator.link_ticket, methods=["POST"]),
            Route(f"{anomaly}/links/{{link_id}}", operator.unlink, methods=["DELETE"]),
            Route(f"{anomaly}/refresh", operator.refresh, methods=["POST"]),
            Route("/api/connections", operator.connections),
            Route("/api/connections/check", operator.check_connections, methods=["POST"]),
            Route("/api/connections/{name}/search", operator.search),
            Route("/api/connections/{name}/options", operator.options),
            Route("/api/connections/{name}/types", forms.ticket_types),
            Route("/api/connections/{name}/form", forms.create_form),
            Route("/api/connections/{name}/users", forms.find_users),
            Route("/api/sync-log", operator.sync_log),
            Route("/api/sync-jobs", operator.sync_jobs),
            Route("/api/sync-jobs/{job_id:int}/retry", operator.retry_job, methods=["POST"]),
            Route("/api/import", operator.start_import, methods=["POST"]),
            Route("/api/import", operator.import_status, methods=["GET"]),
            Route("/api/rules", rules_api.list_rules),
            Route("/api/rules/{name}/pause", rules_api.pause, methods=["POST"]),
            Route("/api/rules/{name}/resume", rules_api.resume, methods=["POST"]),
            Route("/api/reload", operator.reload, methods=["POST"]),
            Route("/api/compact", compaction.compact, methods=["POST"]),
            Route("/api/quarantine", api.quarantine),
            Route("/api/schema", api.schema),
            Route("/api/events", events),
        ],
        middleware=[
            Middleware(HostGuard, policy=HostPolicy(host, settings.receiver.allowed_hosts)),
            Middleware(OperatorAuth, token=token),
        ],
        exception_handlers={
            Problem: handle_problem,
            OperationError: operator.handle_operation_error,
            HTTPException: handle_http_exception,
            StoreFailed: handle_store_failed,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.hints_seen = hints.SeenHints()
    app.state.store = store
    app.state.token = token
    app.state.auth = WebhookAuth(settings.webhook_secret, settings.signing_secret)
    return app


def _same_again(settings: Settings) -> SettingsLoader:
    """The running settings' file, loaded again from ``os.environ``; what only a restart
    changes (the data directory, the address) kept as it runs."""
    running = {
        "data_dir": settings.data_dir,
        "host": settings.receiver.host,
        "port": settings.receiver.port,
    }
    return SettingsLoader(settings.source, running)


async def _refresh_forever(desk: Desk, settings: Settings) -> None:
    """Linked tickets' states, re-read every ``sync.refresh_interval_s``."""
    while True:
        await asyncio.sleep(settings.sync.refresh_interval_s)
        try:
            await desk.refresh_links()
        except Exception:  # a failed round must not end the loop
            log.exception("refreshing ticket states failed")
