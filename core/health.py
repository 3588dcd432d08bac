"""Connection health: what the dashboard says of each connection, kept true while it runs.

A check at start-up alone said "ok" through a whole outage and "err" for long after recovery.
Health now has two sources:

* a periodic check of every connection (``sync.health_check_s``, 60 s by default);
* what deliveries learn: a note delivered proves the connection works; an authentication error
  or an unavailable provider proves it does not, and asks for a check soon (at most one per
  ``RECHECK_GAP_S``), so recovery shows at the next check rather than a minute later.

Every change of a connection's state (ok ↔ failing, or a new failure message) is published as a
``connection.health`` event, so the header and the pickers follow without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from anomaly_desk.core.events import EventBus
from anomaly_desk.core.ingest import now_iso
from anomaly_desk.core.providers import AuthError, Provider, ProviderError, UnavailableError
from anomaly_desk.core.providers.auth_warnings import failure_warning, provider_warnings
from anomaly_desk.core.views import ConnectionHealth, ConnectionHealthChanged
from anomaly_desk.core.vocabulary import EventName, HealthSource

log = logging.getLogger(__name__)

RECHECK_GAP_S = 5.0  # after a delivery failed: the soonest next check (a retry storm checks once)


class ConnectionCheck(BaseModel):
    """A connection's last known state, in the provider's words, and what told us."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    message: str
    checked_at: str  # as stored times are (UTC, milliseconds, ``Z``)
    ms: int | None = None  # how long the check took (None: learnt from a delivery)
    source: HealthSource = HealthSource.CHECK
    # credential trouble ahead, in words for the operator (basic auth restricted, token expired)
    warnings: tuple[str, ...] = ()


def says_down(exc: ProviderError) -> bool:
    """Whether a failed delivery tells about the connection (not about one ticket or note)."""
    return isinstance(exc, AuthError | UnavailableError)


class HealthMonitor:
    """Each connection's health: checked periodically, corrected by every delivery."""

    def __init__(
        self, providers: Mapping[str, Provider], bus: EventBus, every_s: float = 60.0
    ) -> None:
        self.providers = providers
        self.bus = bus
        self.every_s = every_s
        self.state: dict[str, ConnectionCheck] = {}
        self._soon = asyncio.Event()
        self._last_check = 0.0

    async def check_all(self) -> dict[str, ConnectionCheck]:
        """Check every connection now; each one's result by name."""
        self._last_check = time.monotonic()
        await asyncio.gather(*(self._check(name, p) for name, p in self.providers.items()))
        return dict(self.state)

    async def _check(self, name: str, provider: Provider) -> None:
        started = time.perf_counter()
        failure: ProviderError | None = None
        try:
            ok, message = True, f"authenticated as {await provider.check()}"
        except ProviderError as exc:
            ok, message = False, exc.plain()  # health is shown under the connection's name
            failure = exc
        ms = round((time.perf_counter() - started) * 1000)
        warnings = tuple(w.message for w in await provider_warnings(provider, failure))
        check = ConnectionCheck(
            ok=ok, message=message, checked_at=now_iso(), ms=ms, warnings=warnings
        )
        self._set(name, check)

    def delivered(self, connection: str, ticket_key: str) -> None:
        """A note reached the ticket: the connection works (said only when it was in doubt)."""
        current = self.state.get(connection)
        if current is None or not current.ok:
            message = f"delivered a note to {ticket_key}"
            self._set(connection, _learnt(True, message))

    def failed(self, connection: str, exc: ProviderError) -> None:
        """A delivery failed; an auth or availability failure marks the connection down and
        asks for a check soon (which also notices the recovery)."""
        if not says_down(exc):
            return
        warning = failure_warning(connection, exc)
        learnt = _learnt(False, exc.plain())
        if warning is not None:
            learnt = learnt.model_copy(update={"warnings": (warning.message,)})
        self._set(connection, learnt)
        self._soon.set()

    def _set(self, name: str, check: ConnectionCheck) -> None:
        before = self.state.get(name)
        self.state[name] = check
        news = (check.ok, check.message, check.warnings)
        if before is not None and (before.ok, before.message, before.warnings) == news:
            return  # the same news again: the time moves on, nobody needs telling
        for warning in check.warnings:
            if before is None or warning not in before.warnings:
                log.warning("connection %s: %s", name, warning)
        if not check.ok:
            log.warning("connection %s is failing (%s): %s", name, check.source, check.message)
        elif before is not None and not before.ok:
            log.info("connection %s works again (%s): %s", name, check.source, check.message)
        if self.bus.subscribers:
            health = ConnectionHealth.model_validate(check)
            self.bus.publish(
                EventName.CONNECTION_HEALTH, ConnectionHealthChanged(name=name, health=health)
            )

    async def run(self) -> None:
        """Check now, then every ``every_s`` (0: only when a delivery failed), until cancelled."""
        while True:
            try:
                await self.check_all()
            except Exception:  # a bug in a check must not end health for good
                log.exception("checking connections failed")
            timeout = self.every_s if self.every_s > 0 else None
            self._soon.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._soon.wait(), timeout)
            soonest = min(RECHECK_GAP_S, self.every_s) if self.every_s > 0 else RECHECK_GAP_S
            gap = soonest - (time.monotonic() - self._last_check)
            if gap > 0:
                await asyncio.sleep(gap)


def _learnt(ok: bool, message: str) -> ConnectionCheck:
    return ConnectionCheck(ok=ok, message=message, checked_at=now_iso(), source=HealthSource.SYNC)
