"""Compaction: archived anomalies left alone for ``archive_after_days`` move to the cold archive.

Why: the hot store keeps every anomaly in memory and reads its whole checkpoint at start; with a
million anomalies, 80 % of them archived for good, that is what a start and a webhook would pay
for. So those leave for :mod:`anomaly_desk.core.archive` (a sorted id array in memory), still
found by id and by search, and back in the hot store when anything happens to them.

What moves: a hot anomaly whose status is archived (``ARCHIVED``), whose last change
(``updated_at``) is older than ``archive_after_days``, with no note still waiting in its queues
(pending or dead), and never while an import from the platform is open.

Order, so that ``kill -9`` at any moment loses nothing: a batch is appended to the archive and
fsync-ed *first*; only then is it deleted from the hot store, in one journal transaction, and
only the rows that did not change in between (the check and the delete are one step of the event
loop). A crash in between leaves an id in both: hot wins, the next run writes it again. The
archive's index is written at the end of a run (a crash before it: the next open reads the tail).

Nothing is deleted unless ``delete_after_days`` is set: then archive months wholly older than it
go (the whole month file, index first).

Dashboards hear of a run that moved anomalies by ONE ``anomalies.compacted`` event at its end
(with their ids, up to ``EVENT_IDS_MAX``): not one per batch, since a batch (2,000) is past the
bound anyway, so a big run would make every dashboard reload once per batch; and the moved rows
are unchanged archived ones, so a list that still shows them hot for the length of a run is only
late: anything done to one of them brings it back hot (and says so, as ``anomaly.updated``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from anomaly_desk.core.archive import sort_key
from anomaly_desk.core.config import RetentionSettings
from anomaly_desk.core.events import EventBus
from anomaly_desk.core.ingest import iso
from anomaly_desk.core.jsontypes import JsonObject
from anomaly_desk.core.store import Delete, Store
from anomaly_desk.core.views import AnomaliesCompacted, AnomalySummary, CompactView
from anomaly_desk.core.vocabulary import ARCHIVED, EventName

log = logging.getLogger(__name__)

BATCH = 2000  # anomalies per append + delete transaction: bounded memory, short steps
DAY_S = 86_400.0
FIRST_RUN_S = 300.0  # `serve` compacts this long after it starts, then every compact_every_h
EVENT_IDS_MAX = 1_000  # an anomalies.compacted event names at most this many; beyond: reload

Progress = Callable[[int, int], None]
"""Told ``(looked at, archived hot anomalies)`` after each batch."""


class CompactionRunning(Exception):
    """A compaction is running already (never two at once)."""


def _cutoff(now: float, days: float) -> str:
    return iso(datetime.fromtimestamp(now - days * DAY_S, UTC))


def cold_count(store: Store) -> int:
    """Anomalies in the cold archive that are not hot again."""
    return sum(1 for anomaly_id in store.cold.ids() if not store.is_hot(anomaly_id))


async def compact(
    store: Store,
    settings: RetentionSettings,
    *,
    now: float | None = None,
    importing: bool = False,
    progress: Progress | None = None,
    bus: EventBus | None = None,
) -> CompactView:
    """One compaction run (see the module doc); what it did. ``bus``: told what moved."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    moved, waiting, changed = 0, 0, 0
    moved_ids: list[int] | None = []  # for the event; None once past EVENT_IDS_MAX
    months: set[str] = set()
    not_run = None
    state = store.import_state()
    if importing or (state is not None and not state.done):
        not_run = (
            "an import from the platform is open (running, or interrupted: run it again to "
            "finish it); nothing moves until it is done"
        )
    else:
        cutoff = _cutoff(now, settings.archive_after_days)
        candidates = store.ids_in(ARCHIVED)  # the age is read below, batch by batch
        seq = time.time_ns()  # this run's records win over older ones of the same id
        for start in range(0, len(candidates), BATCH):
            rows: list[JsonObject] = []
            versions: list[object] = []
            for anomaly_id in candidates[start : start + BATCH]:
                version = store.row_version(anomaly_id)
                row = store.get("anomalies", str(anomaly_id))
                if row is None or row.get("status") not in ARCHIVED:
                    continue  # changed since the list was taken: not a candidate now
                # unchanged for archive_after_days or longer (0: every archived one, even one
                # changed in this very millisecond, which the stamps' precision cannot tell)
                if not (row.get("updated_at") or row.get("received_at") or "") <= cutoff:
                    continue  # archived, or changed, too recently
                if store.waiting_jobs(anomaly_id):
                    waiting += 1
                    continue
                rows.append(row)
                versions.append(version)
            if not rows:
                if progress is not None:
                    progress(min(start + BATCH, len(candidates)), len(candidates))
                await asyncio.sleep(0)  # a batch read on the loop: let webhooks in between
                continue
            placed = await asyncio.to_thread(store.cold.append, rows, seq)
            # From here to the commit no await: a change that landed during the append keeps
            # the anomaly hot (its archived record is older, and hot wins).
            deletes = []
            for row, version in zip(rows, versions, strict=True):
                if store.row_version(row["id"]) is not version:
                    changed += 1
                elif store.waiting_jobs(row["id"]):
                    waiting += 1
                else:
                    deletes.append(Delete("anomalies", str(row["id"])))
            if deletes:
                await store.commit(list(deletes))
            moved += len(deletes)
            if moved_ids is not None:
                moved_ids += [int(op.key) for op in deletes]
                moved_ids = moved_ids if len(moved_ids) <= EVENT_IDS_MAX else None
            months |= set(placed)  # (a month whose every row changed meanwhile counts too)
            if progress is not None:
                progress(min(start + BATCH, len(candidates)), len(candidates))
        if candidates:
            await asyncio.to_thread(store.cold.save_index)
    deleted_months: list[str] = []
    deleted = 0
    if settings.delete_after_days is not None:
        before = _cutoff(now, settings.delete_after_days)[:7]
        gone = await asyncio.to_thread(store.cold.delete_months, before)
        deleted_months = [info.name for info in gone]
        deleted = sum(info.anomalies for info in gone)
    view = CompactView(
        moved=moved,
        months=sorted(months),
        skipped_waiting=waiting,
        skipped_changed=changed,
        hot=store.count(),
        cold=cold_count(store),
        deleted_months=deleted_months,
        deleted=deleted,
        not_run=not_run,
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("compaction: %s", summary(view))
    if bus is not None and moved:
        bus.publish(
            EventName.ANOMALIES_COMPACTED,
            AnomaliesCompacted(
                moved=moved,
                ids=moved_ids or [],
                reload=moved_ids is None,
                finished_at=iso(datetime.now(UTC)),
            ),
        )
    return view


def summary(view: CompactView) -> str:
    """One line for a person: what moved, where the stores stand, what was left and why."""
    if view.not_run:
        text = f"nothing moved: {view.not_run}"
    else:
        n = len(view.months)
        where = f" ({n} month{'s' if n != 1 else ''})" if view.moved else ""
        noun = "anomaly" if view.moved == 1 else "anomalies"
        text = f"moved {view.moved:,} {noun} to the cold archive{where}"
    text += f"; hot store now {view.hot:,}, cold archive {view.cold:,}"
    if view.skipped_waiting:
        text += f"; {view.skipped_waiting:,} kept hot: notes still waiting"
    if view.skipped_changed:
        text += f"; {view.skipped_changed:,} kept hot: changed meanwhile"
    if view.deleted_months:
        text += (
            f"; deleted {view.deleted:,} anomalies archived before "
            f"{min(view.deleted_months)} ({', '.join(view.deleted_months)})"
        )
    return text + f" ({view.seconds:.1f} s)"


class Compactor:
    """One compaction at a time per store: the daily task and ``POST /api/compact`` share it."""

    def __init__(
        self,
        store: Store,
        settings: RetentionSettings,
        importing: Callable[[], bool] = lambda: False,
        bus: EventBus | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.importing = importing
        self.bus = bus  # dashboards hear what a run moved (anomalies.compacted)
        self.last: CompactView | None = None
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    async def run(self, progress: Progress | None = None) -> CompactView:
        """Compact now; CompactionRunning if a run is under way."""
        if self._running:
            raise CompactionRunning("a compaction is running already")
        self._running = True
        try:
            self.last = await compact(
                self.store,
                self.settings,
                importing=self.importing(),
                progress=progress,
                bus=self.bus,
            )
        finally:
            self._running = False
        return self.last

    async def run_forever(self, first_after_s: float = FIRST_RUN_S) -> None:
        """``serve``: the first run a few minutes after the start, then every
        ``compact_every_h`` (a run that fails is logged; the next one comes all the same)."""
        every = self.settings.compact_every_h * 3600
        if every <= 0:
            return
        await asyncio.sleep(first_after_s)
        while True:
            try:
                await self.run()
            except CompactionRunning:
                log.info("compaction: one asked for is running; the daily one is skipped")
            except Exception:
                log.exception("compaction failed (the hot store keeps what did not move)")
            await asyncio.sleep(every)


async def with_cold(
    store: Store,
    statuses: set[str] | None,
    q: str | None,
    limit: int,
    after: tuple[str, int] | None,
) -> tuple[list[AnomalySummary], tuple[str, int] | None]:
    """A page of the list over the hot store *and* the cold archive, newest first, cold rows
    marked ``cold``. The archive's part runs in a thread: without text a walk of its listing
    (about as fast as the hot page), with text a scan of its months (slower, the API says so)."""
    hot, hot_more = store.list_anomalies(statuses=statuses, q=q, limit=limit, after=after)
    rows, cold_more = await asyncio.to_thread(
        store.cold.search, q or "", statuses, limit, after, store.is_hot
    )
    keyed: list[tuple[tuple[str, int], AnomalySummary]] = []
    for item in hot:
        raw = store.get("anomalies", str(item.id))
        keyed.append(((sort_key(raw) if raw is not None else (item.created or "", item.id)), item))
    keyed += [(sort_key(row), AnomalySummary.of(row, cold=True)) for row in rows]
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    page = keyed[:limit]
    more = len(keyed) > limit or hot_more is not None or cold_more is not None
    return [item for _, item in page], (page[-1][0] if more and page else None)
