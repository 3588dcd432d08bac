"""Two-way: reading linked tickets back, by polling (the desk often runs behind NAT or a tunnel).

Per connection, every ``poll_s``, the provider is asked only for the linked tickets that changed
since the oldest cursor (a ticket's ``updated`` when last read; a small overlap window, and the
comment ids already taken, make a poll idempotent). Each change goes to
:meth:`Desk.apply_ticket_change`, which keeps the state and, when the connection takes them back,
people's comments and a done state (see issue #13 and the README's "Two-way sync").

A verified webhook from a ticketing system is only a *hint*: it asks for an immediate poll of
that connection; its payload is never trusted as state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from anomaly_desk.core.connections import Connection
from anomaly_desk.core.ingest import now_iso
from anomaly_desk.core.operations import Desk
from anomaly_desk.core.providers import Provider, ProviderError, TicketRef

log = logging.getLogger(__name__)

BATCH = 100  # tickets per changes() call


class Poller:
    """Polls each connection that takes anything back (or shows states: every linked ticket)."""

    def __init__(
        self, desk: Desk, providers: Mapping[str, Provider], connections: Mapping[str, Connection]
    ) -> None:
        self.desk = desk
        self.providers = providers
        self.connections = connections
        self._hints = {name: asyncio.Event() for name in connections}
        self.polls = 0  # completed polls (tests)
        # per connection: when the last complete poll began; the next asks for changes since
        # then (the provider adds its overlap), so an unchanged ticket is not read again
        self.polled_at: dict[str, str] = {}

    def hint(self, connection: str) -> bool:
        """Poll ``connection`` now (a verified webhook said one of its tickets changed)."""
        event = self._hints.get(connection)
        if event is None:
            return False
        event.set()
        return True

    async def run(self) -> None:
        """Every connection's loop, until cancelled."""
        loops = [
            self._loop(name, conn)
            for name, conn in self.connections.items()
            if conn.poll_s > 0 and name in self.providers
        ]
        await asyncio.gather(*loops)

    async def _loop(self, name: str, conn: Connection) -> None:
        hint = self._hints[name]
        while True:
            try:
                await self.poll(name)
            except ProviderError as exc:
                log.warning("poll of %s failed: %s", name, exc)
            except Exception:  # a bug must not end two-way sync for good
                log.exception("poll of %s failed", name)
            hint.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hint.wait(), conn.poll_s)

    async def poll(self, name: str) -> int:
        """Read back every linked ticket of connection ``name`` that changed; how many did."""
        provider = self.providers[name]
        store = self.desk.store
        linked: dict[str, list[tuple[int, str]]] = {}  # ticket id -> (anomaly id, link id)
        refs: dict[str, TicketRef] = {}
        cursors: list[str | None] = []
        for anomaly_id in store.linked_anomaly_ids():
            doc = store.anomaly_doc(anomaly_id)
            for link in doc.links if doc else ():
                if link.connection != name:
                    continue
                handle = link.ticket_id or link.ticket_key
                linked.setdefault(handle, []).append((anomaly_id, link.id))
                refs[handle] = TicketRef(link.ticket_key, link.ticket_id, table=link.table)
                cursors.append(link.inbound_at or link.linked_at)
        for cold in store.cold_links(name):  # cold anomalies' tickets: a change restores them
            handle = cold.ticket_id or cold.ticket_key
            linked.setdefault(handle, []).append((cold.anomaly_id, cold.link_id))
            refs[handle] = TicketRef(cold.ticket_key, cold.ticket_id, table=cold.table)
            cursors.append(cold.cursor)
        started = now_iso()
        if not refs:
            self.polled_at[name] = started
            self.polls += 1
            return 0
        oldest = None if None in cursors else min(c for c in cursors if c is not None)
        since = self.polled_at.get(name) or oldest  # after a restart: each link's own cursor
        account = await provider.account()
        tickets = list(refs.values())
        changed = 0
        for start in range(0, len(tickets), BATCH):
            for change in await provider.changes(tickets[start : start + BATCH], since):
                read = change.ticket
                targets = linked.get(read.id) or linked.get(read.key) or []
                for anomaly_id, link_id in targets:
                    await self.desk.apply_ticket_change(anomaly_id, link_id, change, account)
                changed += 1
        self.polled_at[name] = started
        self.polls += 1
        return changed
