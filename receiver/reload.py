"""Configuration and secrets, re-read while the receiver runs.

* **Reload** (``SIGHUP``, ``POST /api/reload``): the configuration file and every secret are read
  again (Vault past its cache). A configuration that does not load is refused and the running
  one kept (the error is logged, and the endpoint answers 422 with it). Otherwise connections
  that were added, removed or changed get new clients, swapped into the map the Desk, the sync
  worker, the health monitor and the poller share; a note in flight finishes on the client it
  started with (the old clients are closed a while later). The platform's client and the
  receiver's webhook secrets are swapped the same way. What only a restart can change (the
  listening address, the data directory, ``[sync]``, ``operator``) is reported, and the running
  values stay.
* **Re-read after a refused credential**: a delivery answered 401/403 on a connection whose
  secret comes from Vault asks :meth:`LiveConfig.refresh` (the sync worker's ``refresher``);
  the connection's secrets are read again past the cache and, when they changed, a new client
  is swapped in and the delivery is tried once more. Once per client: a credential that is
  still refused after a re-read that changed nothing fails as before.
* **Every** ``[secrets] vault_ttl_s``: the secrets that come from Vault are read again and
  whatever changed is swapped in, so a rotation shows within that time even with no request
  refused (the receiver's own webhook secrets have no one to refuse them).

Nothing here ever logs or answers with a secret's value: changes name the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Coroutine
from typing import Any, Protocol

from pydantic import BaseModel
from starlette.datastructures import State

from anomaly_desk.core.config import (
    PLATFORM_TABLE,
    RECEIVER_SECRETS,
    ConfigError,
    Settings,
    SettingsLoader,
    is_loopback,
    vault_backed,
)
from anomaly_desk.core.connections import Connection
from anomaly_desk.core.inbound import Poller
from anomaly_desk.core.providers import Provider, make_provider
from anomaly_desk.core.providers.platform import make_platform_client
from anomaly_desk.core.views import ReloadView
from anomaly_desk.core.vocabulary import PLATFORM
from anomaly_desk.core.writeback import PlatformSender
from anomaly_desk.receiver.auth import WebhookAuth

log = logging.getLogger(__name__)

RETIRE_AFTER_S = 120.0  # an old client is closed this long after it was replaced
# Keys of the running settings that only a restart changes (their consumers were built with them)
RESTART_KEYS = ("data_dir", "operator", "sync", "retention")
RESTART_RECEIVER_KEYS = ("host", "port", "allowed_hosts")


class Closable(Protocol):
    """What an old client is to us: something to close once its last request is done."""

    async def aclose(self) -> None: ...


def settle_times(settings: Settings) -> dict[str, float]:
    """Each connection's request timeout (the platform's too): how long a send cut by a crash
    may still land."""
    times = {conn.name: conn.timeout for conn in settings.connections}
    times[PLATFORM] = settings.platform.timeout
    return times


class LiveConfig:
    """The running configuration, kept in ``state.settings``; swaps new clients in.

    ``clients`` is the connection -> provider map the Desk, the sync worker, the health monitor
    and the poller were built with (the same dict object), so a swap is seen by all of them.
    """

    def __init__(self, state: State, loader: SettingsLoader, clients: dict[str, Provider]) -> None:
        self.state = state
        self.loader = loader
        self.clients = clients
        self._lock = asyncio.Lock()  # one swap at a time: reload, refresh, the periodic re-read
        self._reread_for: dict[str, object] = {}  # a client whose re-read found nothing new
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retired: list[Closable] = []
        self._poller: asyncio.Task[None] | None = None
        self._signals = False

    @property
    def settings(self) -> Settings:
        settings: Settings = self.state.settings
        return settings

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Poll, re-read Vault secrets every ``vault_ttl_s``, reload on ``SIGHUP``."""
        self._start_poller()
        self._spawn(self._renew_forever(), "renew-secrets")
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
                self._signals = True

    async def stop(self) -> None:
        """No more polls, re-reads or reloads (the clients stay open: see ``close``)."""
        if self._signals:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signals = False
        tasks = [*self._tasks, *([self._poller] if self._poller else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Close the replaced clients not closed yet (once the worker has stopped: a note in
        flight may still be using one)."""
        retired, self._retired = self._retired, []
        await asyncio.gather(*(c.aclose() for c in retired), return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_poller(self) -> None:
        polled: dict[str, Connection] = {
            c.name: c for c in self.settings.connections if c.name in self.clients
        }
        self.state.poller = Poller(self.state.desk, self.clients, polled)
        self.state.desk.polled_at = self.state.poller.polled_at  # "read … ago" of unchanged tickets
        if any(c.poll_s > 0 for c in polled.values()):  # states at most one poll old
            self._poller = asyncio.create_task(self.state.poller.run(), name="poller")

    async def _restart_poller(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        self._start_poller()

    # -- reload --------------------------------------------------------------------------------

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading the configuration")
        self._spawn(self._reload_logged(), "reload")

    async def _reload_logged(self) -> None:
        with contextlib.suppress(ConfigError):  # logged by reload(): the running one stays
            await self.reload()

    async def reload(self) -> ReloadView:
        """Read the configuration file and every secret again and swap in what changed;
        ``ConfigError`` (the running configuration kept) when it does not load."""
        async with self._lock:
            try:
                new = await asyncio.to_thread(self.loader.load)
                self._check_exposure(new)
            except ConfigError as exc:
                log.error("reload refused, the running configuration stays: %s", exc)
                raise
            view = await self._apply(new)
        log.info("reload: %s", _summary(view))
        return view

    def _check_exposure(self, new: Settings) -> None:
        running = self.settings.receiver.host
        if not is_loopback(running) and not new.has_webhook_auth:
            raise ConfigError(
                f"{_where(new)}: the receiver listens on {running} and the new configuration "
                "has no webhook secret; refused (as serve refuses to start without one)"
            )

    async def _apply(self, new: Settings) -> ReloadView:
        """Swap ``new`` in (the caller holds the lock); what changed. No await before the
        swaps are done, so no request sees half of it."""
        old = self.settings
        restart = [key for key in RESTART_KEYS if getattr(old, key) != getattr(new, key)]
        receiver_keys = [
            key
            for key in RESTART_RECEIVER_KEYS
            if getattr(old.receiver, key) != getattr(new.receiver, key)
        ]
        restart += [f"receiver.{key}" for key in receiver_keys]
        running = {key: getattr(old.receiver, key) for key in RESTART_RECEIVER_KEYS}
        new = new.model_copy(
            update={
                **{key: getattr(old, key) for key in RESTART_KEYS},
                "receiver": new.receiver.model_copy(update=running),
            }
        )
        view = ReloadView(source=None if new.source is None else str(new.source))
        view.restart_needed = restart

        before = {conn.name: conn for conn in old.connections}
        after = {conn.name: conn for conn in new.connections}
        view.removed = sorted(set(before) - set(after))
        view.added = sorted(set(after) - set(before))
        for name in sorted(set(before) & set(after)):
            keys = _changed(before[name], after[name])
            if keys:
                view.changed[name] = keys
            else:
                view.unchanged.append(name)
        for name in view.removed:
            self._retire(self.clients.pop(name, None))
            self.state.desk.monitor.state.pop(name, None)
        for name in [*view.added, *view.changed]:
            self._retire(self.clients.get(name))
            self.clients[name] = make_provider(after[name], new.platform)
            self._reread_for.pop(name, None)

        view.platform = _changed(old.platform, new.platform)
        if view.platform:
            self._swap_platform(new)
        view.receiver = [
            name for name in RECEIVER_SECRETS if getattr(old, name) != getattr(new, name)
        ]
        if view.receiver:
            self.state.auth = WebhookAuth(new.webhook_secret, new.signing_secret)

        self.state.settings = new
        self.state.worker.settle_s = settle_times(new)
        self.state.desk.reconfigured(after)
        self.state.rules.configure(new.rules)  # [[rules]]: their counters stay by name
        if _schedule(old) != _schedule(new):
            await self._restart_poller()
        if view.added or view.changed:
            self._spawn(self.state.desk.monitor.check_all(), "check-after-reload")
        return view

    def _swap_platform(self, new: Settings) -> None:
        desk, worker = self.state.desk, self.state.worker
        api = make_platform_client(new.platform)
        self._retire(desk.platform_api)
        desk.platform = new.platform
        desk.platform_api = api
        desk.write_back = new.platform.writes_back and api is not None
        desk.enrich = api is not None
        rules = self.state.rules.plan
        worker.platform = PlatformSender(api, self.state.store, desk.bus, rules) if api else None
        if api is None:  # no enrichment to wait for any more
            self._spawn(self.state.rules.release_waiting(), "rules-released")
        self._reread_for.pop(PLATFORM, None)

    def _retire(self, client: Closable | None) -> None:
        """Close ``client`` once the requests it has in flight are surely done."""
        if client is None:
            return
        self._retired.append(client)

        async def later() -> None:
            await asyncio.sleep(RETIRE_AFTER_S)
            with contextlib.suppress(ValueError):
                self._retired.remove(client)
            await client.aclose()

        self._spawn(later(), "retire-client")

    # -- secrets re-read -----------------------------------------------------------------------

    async def refresh(self, connection: str, failed: object) -> bool:
        """The sync worker's ``SecretRefresher``: ``failed`` (the client of ``connection``, or
        the platform's sender) answered 401/403."""
        owner = PLATFORM_TABLE if connection == PLATFORM else connection
        async with self._lock:
            current = self._current(connection)
            if current is None:
                return False  # removed meanwhile
            if current is not failed:
                return True  # replaced meanwhile (another delivery's re-read, a reload)
            if self._reread_for.get(connection) is failed:
                return False  # re-read once for this client already: nothing new then
            if owner not in vault_backed(self.settings):
                return False  # an environment variable does not change under a running process
            try:
                new = await asyncio.to_thread(self.loader.refresh_secrets, self.settings, [owner])
            except ConfigError as exc:
                log.warning("re-reading the secrets of %s failed: %s", connection, exc)
                return False
            view = await self._apply(new)
        if connection in view.changed or (owner == PLATFORM_TABLE and view.platform):
            log.info("%s refused its credential; re-read from Vault, it changed", connection)
            return True
        self._reread_for[connection] = failed
        log.info("%s refused its credential; re-read from Vault, it is the same", connection)
        return False

    def _current(self, connection: str) -> object | None:
        if connection == PLATFORM:
            sender: object | None = self.state.worker.platform
            return sender
        return self.clients.get(connection)

    async def _renew_forever(self) -> None:
        """Every ``vault_ttl_s``: what comes from Vault, read again; changes swapped in."""
        while True:
            await asyncio.sleep(self.settings.secrets.vault_ttl_s)
            try:
                async with self._lock:
                    owners = vault_backed(self.settings)
                    if not owners:
                        continue
                    new = await asyncio.to_thread(
                        self.loader.refresh_secrets, self.settings, owners
                    )
                    view = await self._apply(new)
            except ConfigError as exc:
                log.warning("re-reading secrets from Vault failed; the ones in use stay: %s", exc)
                continue
            except Exception:  # a bug must not end the re-reads for good
                log.exception("re-reading secrets from Vault failed")
                continue
            if view.changed or view.platform or view.receiver:
                log.info("secrets re-read from Vault: %s", _summary(view))


def _changed(old: BaseModel, new: BaseModel) -> list[str]:
    """The keys whose values differ (a secret compares by value, and is named, not shown)."""
    keys = set(type(old).model_fields) | set(type(new).model_fields)
    return sorted(key for key in keys if getattr(old, key, None) != getattr(new, key, None))


def _schedule(settings: Settings) -> dict[str, float]:
    return {conn.name: conn.poll_s for conn in settings.connections}


def _where(settings: Settings) -> str:
    return str(settings.source) if settings.source else "settings"


def _summary(view: ReloadView) -> str:
    parts = {
        "added": ", ".join(view.added),
        "removed": ", ".join(view.removed),
        "changed": "; ".join(f"{name} ({', '.join(keys)})" for name, keys in view.changed.items()),
        "platform": ", ".join(view.platform),
        "receiver": ", ".join(view.receiver),
        "restart needed for": ", ".join(view.restart_needed),
    }
    said = [f"{what}: {text}" for what, text in parts.items() if text]
    return "; ".join(said) or "nothing changed"
