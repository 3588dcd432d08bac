"""The anomaly store: the desk's tables, their indexes and what is kept, on a journal.

Why not plain TinyDB writes: a TinyDB table write re-keys and rewrites the whole table (measured
here: 26 ms per insert at 50k documents even on MemoryStorage, 1.3 inserts/s on its default JSON
storage). A webhook must be durable before we answer 2xx, and its cost must not grow with the
store. So durability is :mod:`anomaly_desk.core.journal`'s: transactions of whole-document
puts/deletes, group-committed to an append-only journal, TinyDB's JSON file as the checkpoint,
refused (never papered over) damage, degraded mode while the disk refuses writes, one writer per
data directory. See that module for the promise and how it is kept.

This module says what the tables are and keeps what reading them needs:

* the tables (anomalies, deliveries, links, jobs, sync_log, counters, quarantine) and what a
  journal record must hold to be read back (an anomaly has an id and a status);
* indexes kept in step with every change, undo included: anomalies by status in newest-first
  order (O(log n) insert and seek, so a page costs its size) and the lower-cased text ``q``
  searches;
* increasing, never reused ids per table (:meth:`Store.next_id`);
* retention (:class:`Retention`): delivery keys for a week, the newest sync-log entries and
  finished jobs; applied when the store opens (deliveries) and before each checkpoint.

Documents handed to :meth:`Store.commit` are owned by the store and never mutated afterwards
(callers build new dicts), which lets a checkpoint serialise a consistent shallow copy.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from anomaly_desk.core import journal
from anomaly_desk.core.documents import (
    AnomalyDocument,
    DocumentCache,
    ImportState,
    StoredDocument,
    SyncJob,
)
from anomaly_desk.core.journal import (
    DB_FILE,
    LOCK_FILE,
    REPAIR_HINT,
    SCHEMA_VERSION,
    AtomicJSONStorage,
    CommitHook,
    Delete,
    Journal,
    Op,
    StoreDamaged,
    StoreError,
    StoreFailed,
    StoreLocked,
)
from anomaly_desk.core.jsontypes import JsonObject
from anomaly_desk.core.views import (
    AnomalyDetail,
    AnomalySummary,
    NoteCounts,
    QuarantineItem,
    SyncLogEntryView,
)
from anomaly_desk.core.vocabulary import PLATFORM, JobState

S = TypeVar("S", bound=AnomalySummary)

__all__ = [
    "DB_FILE",
    "LOCK_FILE",
    "REPAIR_HINT",
    "SCHEMA_VERSION",
    "TABLES",
    "AtomicJSONStorage",
    "CommitHook",
    "Delete",
    "Op",
    "Put",
    "Retention",
    "Store",
    "StoreDamaged",
    "StoreError",
    "StoreFailed",
    "StoreLocked",
    "Table",
]

log = logging.getLogger(__name__)

TABLES = ("anomalies", "deliveries", "links", "jobs", "sync_log", "counters", "quarantine")
CHECKPOINT_MIN_RECORDS = 10_000  # a checkpoint once the journal outgrows this or the anomalies
DELIVERY_RETENTION_S = 7 * 24 * 3600
SYNC_LOG_KEEP = 50_000
FINISHED_JOBS_KEEP = 50_000
SEARCH_SORT_LIMIT = 20_000  # matches sorted directly; more than that, walking the order is faster

Table = Literal["anomalies", "deliveries", "links", "jobs", "sync_log", "counters", "quarantine"]


# Typed documents of the rows read or written lately (see DocumentCache): the sync worker reads
# its queue heads on every wake, a delivery reads the anomalies it updates.
_ANOMALY_DOCS = DocumentCache(AnomalyDocument, 4096)
_JOB_DOCS = DocumentCache(SyncJob, 4096)
_CACHES: dict[str, DocumentCache[Any]] = {"anomalies": _ANOMALY_DOCS, "jobs": _JOB_DOCS}


class Put(journal.Put):
    """A whole-document write; takes a typed document (core.documents) too, dumped here at the
    store's boundary to the JSON the tables hold: ``doc`` is always that JSON. An anomaly or a
    job made from the row last read or written under its key is dumped from that row (only what
    changed), and remembered, so reading it back costs nothing."""

    __slots__ = ()

    def __init__(self, table: Table, key: str, doc: JsonObject | StoredDocument) -> None:
        if isinstance(doc, dict):
            super().__init__(table, key, doc)
            return
        cache = _CACHES.get(table)
        super().__init__(
            table, key, doc.model_dump(mode="json") if cache is None else cache.dump(key, doc)
        )


def stored_row(doc: AnomalyDocument) -> JsonObject:
    """The JSON an anomaly document is stored as, byte for byte what the API has always shown
    (times exactly as stored); the one serialiser, shared with :class:`Put`."""
    return Put("anomalies", str(doc.id), doc).doc


@dataclass(frozen=True, slots=True)
class Retention:
    """How long what only serves a while is kept; applied before each checkpoint."""

    delivery_s: float = DELIVERY_RETENTION_S  # delivery keys: redeliveries come within days
    sync_log: int = SYNC_LOG_KEEP  # newest sync-log entries kept
    finished_jobs: int = FINISHED_JOBS_KEEP  # newest done or cancelled jobs kept


def _sort_key(doc: JsonObject) -> tuple[str, int]:
    """Newest first: by detection time, then id; ISO-8601 UTC strings sort as times."""
    return (doc.get("created") or doc.get("received_at") or "", doc["id"])


class _Order:
    """Anomaly keys in descending ``_sort_key`` order, with O(log n) insert and seek."""

    def __init__(self) -> None:
        self._keys: list[tuple[str, int]] = []  # ascending; iterate backwards for newest first

    def add(self, key: tuple[str, int]) -> None:
        bisect.insort(self._keys, key)

    def remove(self, key: tuple[str, int]) -> None:
        i = bisect.bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            del self._keys[i]

    def __len__(self) -> int:
        return len(self._keys)

    def newest_first(self, before: tuple[str, int] | None = None) -> Iterator[tuple[str, int]]:
        end = len(self._keys) if before is None else bisect.bisect_left(self._keys, before)
        for i in range(end - 1, -1, -1):
            yield self._keys[i]


class Store(Journal):
    """The only owner of a data directory's database. Reads are in memory; writes are durable."""

    logger = log
    what = "anomalies"

    def __init__(
        self,
        data_dir: Path,
        *,
        owner_url: str | None = None,
        repair: bool = False,
        retention: Retention | None = None,
    ) -> None:
        super().__init__(data_dir, TABLES, owner_url=owner_url, repair=repair)
        self.retention = retention or Retention()
        self._by_status: dict[str, _Order] = {}
        self._search: dict[int, str] = {}  # anomaly id → lower-cased text that `q` searches
        self._jobs_of: dict[int, set[int]] = {}  # anomaly id → its jobs' ids
        # fingerprint → anomalies with tickets that carry it (recurrence, issue #13)
        self._linked_by_fingerprint: dict[str, set[int]] = {}
        self._dead_in: dict[str, set[int]] = {}  # ticket queue → ids of its dead jobs
        self._sequences: dict[str, int] = {}

    # -- what the journal asks of the tables ---------------------------------------------------

    def _changed(self, table: str, old: JsonObject | None, new: JsonObject | None) -> None:
        if table == "anomalies":
            if old is not None:
                self._unindex(old)
            if new is not None:
                self._index(new)
        elif table == "jobs":
            if old is not None:
                self._unindex_job(old)
            if new is not None:
                self._index_job(new)

    def _valid(self, table: str, doc: JsonObject) -> bool:
        return table != "anomalies" or ("id" in doc and "status" in doc)

    def _after_load(self) -> None:
        self._prune_deliveries()
        self._reindex()

    def _before_snapshot(self) -> None:
        self._prune_deliveries()
        self._prune_history()

    def _checkpoint_threshold(self) -> int:
        return max(CHECKPOINT_MIN_RECORDS, len(self._tables["anomalies"]))

    def _describe(self) -> str:
        return f"{len(self._tables['anomalies'])} anomalies"

    # -- indexes -----------------------------------------------------------------------------

    def _reindex(self) -> None:
        self._by_status.clear()
        self._search.clear()
        self._linked_by_fingerprint.clear()
        for doc in self._tables["anomalies"].values():
            self._index(doc)
        self._jobs_of.clear()
        self._dead_in.clear()
        for job in self._tables["jobs"].values():
            self._index_job(job)

    def _index_job(self, job: JsonObject) -> None:
        anomaly_id, job_id = job.get("anomaly_id"), job.get("id")
        if not isinstance(anomaly_id, int) or not isinstance(job_id, int):
            return  # not one of the desk's jobs (a test's bare row): nothing to count
        self._jobs_of.setdefault(anomaly_id, set()).add(job_id)
        if job.get("state") == JobState.DEAD:
            self._dead_in.setdefault(_queue_of(job), set()).add(job_id)

    def _unindex_job(self, job: JsonObject) -> None:
        anomaly_id, job_id = job.get("anomaly_id"), job.get("id")
        if isinstance(anomaly_id, int):
            self._jobs_of.get(anomaly_id, set()).discard(job_id)
            self._dead_in.get(_queue_of(job), set()).discard(job_id)

    def _index(self, doc: JsonObject) -> None:
        self._by_status.setdefault(doc["status"], _Order()).add(_sort_key(doc))
        self._search[doc["id"]] = _search_text(doc)
        fingerprint = doc.get("fingerprint")
        if fingerprint is not None and doc.get("links"):
            self._linked_by_fingerprint.setdefault(str(fingerprint), set()).add(doc["id"])

    def _unindex(self, doc: JsonObject) -> None:
        order = self._by_status.get(doc["status"])
        if order is not None:
            order.remove(_sort_key(doc))
        self._search.pop(doc["id"], None)
        fingerprint = doc.get("fingerprint")
        if fingerprint is not None:
            self._linked_by_fingerprint.get(str(fingerprint), set()).discard(doc["id"])

    # -- reads -------------------------------------------------------------------------------

    # Raw rows, for tests and tools that check what is stored byte for byte; the desk and the
    # receiver read the typed documents and views below.

    def get(self, table: Table, key: str) -> JsonObject | None:
        return self._tables[table].get(key)

    def all(self, table: Table) -> dict[str, JsonObject]:
        """The live table (read only)."""
        return self._tables[table]

    def has(self, table: Table, key: str) -> bool:
        return key in self._tables[table]

    # Typed reads: core works on documents (core.documents), the API on views (core.views);
    # the tables keep their JSON and are converted here, at the boundary.

    def anomaly_summary(self, anomaly_id: int, view: type[S]) -> S | None:
        """The anomaly's list row, as stored (times exactly as they were sent)."""
        raw = self._tables["anomalies"].get(str(anomaly_id))
        return None if raw is None else self._row_view(raw, view)

    def _row_view(self, raw: JsonObject, view: type[S]) -> S:
        row = view.of(raw)
        if self._jobs_of.get(raw["id"]):
            row.stuck_notes = self.stuck_notes(raw["id"])
        return row

    def anomaly_detail(self, anomaly_id: int) -> AnomalyDetail | None:
        """The whole anomaly, each link with what became of its notes."""
        raw = self._tables["anomalies"].get(str(anomaly_id))
        if raw is None:
            return None
        detail = AnomalyDetail.model_validate(raw)
        counts = self.note_counts(anomaly_id)
        for link in detail.links:
            link.notes = counts.get(link.id) or NoteCounts.zero()
        if PLATFORM in counts:
            detail.platform_notes = counts[PLATFORM]
        return detail

    def note_counts(self, anomaly_id: int) -> dict[str, NoteCounts]:
        """Per link: notes delivered, pending, held behind a dead one, dead and cancelled."""
        counts: dict[str, NoteCounts] = {}
        jobs = self._tables["jobs"]
        for job_id in self._jobs_of.get(anomaly_id, ()):
            job = jobs.get(str(job_id))
            if job is None:
                continue
            state = job.get("state")
            tally = counts.setdefault(job["link_id"], NoteCounts.zero())
            if state == JobState.DONE:
                tally.delivered += 1
            elif state == JobState.DEAD:
                tally.dead += 1
            elif state == JobState.CANCELLED:
                tally.cancelled += 1
            elif any(dead < job_id for dead in self._dead_in.get(_queue_of(job), ())):
                tally.held += 1  # the ticket's queue waits behind a dead note
            else:
                tally.pending += 1
        return counts

    def stuck_notes(self, anomaly_id: int) -> int:
        """This anomaly's notes that wait for a person: dead, or held behind a dead one."""
        return sum(c.dead + c.held for c in self.note_counts(anomaly_id).values())

    def import_state(self) -> ImportState | None:
        """Where the last import from the platform stands (see core.importer)."""
        raw = self._tables["counters"].get("import")
        return None if raw is None else ImportState.model_validate(raw)

    def linked_with_fingerprint(self, fingerprint: object) -> list[int]:
        """Anomalies with tickets that carry this fingerprint (a recurrence finds them)."""
        return sorted(self._linked_by_fingerprint.get(str(fingerprint), ()))

    def linked_anomaly_ids(self) -> list[int]:
        return [int(key) for key, raw in self._tables["anomalies"].items() if raw.get("links")]

    def quarantined(self, limit: int) -> list[QuarantineItem]:
        """The newest ``limit`` items kept aside, newest first."""
        rows = sorted(self._tables["quarantine"].values(), key=lambda q: q["at"], reverse=True)
        return [QuarantineItem.model_validate(q) for q in rows[:limit]]

    def sync_log(self, after: int | None, limit: int) -> list[SyncLogEntryView]:
        """Entries after ``after`` (oldest first), or the newest ``limit`` when it is None."""
        rows = self._tables["sync_log"]
        if after is not None:
            keys = sorted(int(k) for k in rows if int(k) > after)[:limit]
        else:
            keys = sorted(int(k) for k in rows)[-limit:]
        return [SyncLogEntryView.model_validate(rows[str(k)]) for k in keys]

    def anomaly_doc(self, anomaly_id: int) -> AnomalyDocument | None:
        key = str(anomaly_id)
        raw = self._tables["anomalies"].get(key)
        return None if raw is None else _ANOMALY_DOCS.read(key, raw)

    def job(self, job_id: int) -> SyncJob | None:
        key = str(job_id)
        raw = self._tables["jobs"].get(key)
        return None if raw is None else _JOB_DOCS.read(key, raw)

    def jobs(self, states: Collection[str] | None = None) -> list[SyncJob]:
        """Every job, or those in ``states`` (chosen before they are read); in no set order."""
        return [
            _JOB_DOCS.read(key, raw, keep=False)
            for key, raw in self._tables["jobs"].items()
            if states is None or raw.get("state") in states
        ]

    def count(self, table: Table = "anomalies") -> int:
        return len(self._tables[table])

    def status_counts(self) -> dict[str, int]:
        return {status: len(order) for status, order in self._by_status.items() if len(order)}

    def list_anomalies(
        self,
        statuses: Iterable[str] | None = None,
        q: str | None = None,
        limit: int = 50,
        after: tuple[str, int] | None = None,
    ) -> tuple[list[AnomalySummary], tuple[str, int] | None]:
        """A page of list rows, newest first, and the position to continue after (None at the
        end)."""
        rows, position = self._page(statuses, q, limit, after)
        return [self._row_view(row, AnomalySummary) for row in rows], position

    def _page(
        self,
        statuses: Iterable[str] | None,
        q: str | None,
        limit: int,
        after: tuple[str, int] | None,
    ) -> tuple[list[JsonObject], tuple[str, int] | None]:
        wanted = set(self._by_status) if statuses is None else set(statuses)
        needle = q.strip().lower() if q else ""
        rows = self._tables["anomalies"]
        if needle:
            # One pass over the search texts finds every match; ordering only the matches keeps
            # a rare (or absent) needle fast, where walking the order would visit every row.
            hits = [i for i, text in self._search.items() if needle in text]
            if len(hits) <= SEARCH_SORT_LIMIT:
                keys = []
                for anomaly_id in hits:
                    doc = rows[str(anomaly_id)]
                    key = _sort_key(doc)
                    if doc["status"] in wanted and (after is None or key < after):
                        keys.append(key)
                keys.sort(reverse=True)
                found = [rows[str(key[1])] for key in keys[:limit]]
                return found, (_sort_key(found[-1]) if len(keys) > limit else None)
        streams = [self._by_status[s].newest_first(after) for s in wanted if s in self._by_status]
        page: list[JsonObject] = []
        merged = streams[0] if len(streams) == 1 else _merge_desc(streams)
        for key in merged:
            if needle and needle not in self._search.get(key[1], ""):
                continue
            if len(page) == limit:
                return page, _sort_key(page[-1])
            page.append(rows[str(key[1])])
        return page, None

    def next_id(self, table: Table) -> int:
        """A fresh integer key for ``table``; increasing, never reused (pruning drops only old rows)."""
        current = self._sequences.get(table)
        if current is None:
            current = max((int(key) for key in self._tables[table] if key.isdigit()), default=0)
        self._sequences[table] = current + 1
        return current + 1

    def delivery_seen(self, key: str) -> bool:
        return key in self._tables["deliveries"]

    # -- retention -------------------------------------------------------------------------------

    def _prune_deliveries(self) -> None:
        horizon = time.time() - self.retention.delivery_s
        rows = self._tables["deliveries"]
        stale = [key for key, doc in rows.items() if doc.get("at", 0) < horizon]
        for key in stale:
            del rows[key]

    def _prune_history(self) -> None:
        """Keep the newest sync-log entries and finished jobs; pending and dead jobs stay."""
        keep = self.retention
        log_rows = self._tables["sync_log"]
        if len(log_rows) > keep.sync_log:
            for key in sorted(log_rows, key=int)[: len(log_rows) - keep.sync_log]:
                del log_rows[key]
        jobs = self._tables["jobs"]
        finished = [k for k, job in jobs.items() if job.get("state") in ("done", "cancelled")]
        if len(finished) > keep.finished_jobs:
            for key in sorted(finished, key=int)[: len(finished) - keep.finished_jobs]:
                self._unindex_job(jobs.pop(key))

    # -- bulk ------------------------------------------------------------------------------------

    def bulk_load(self, docs: Iterable[JsonObject]) -> int:
        """Seed many anomalies at once (benchmarks, migrations): one checkpoint, no journal."""
        rows = self._tables["anomalies"]
        n = 0
        for doc in docs:
            rows[str(doc["id"])] = doc
            n += 1
        self._reindex()
        self._write_checkpoint(*self._rotate())
        return n


def _merge_desc(streams: list[Iterator[tuple[str, int]]]) -> Iterator[tuple[str, int]]:
    return heapq.merge(*streams, reverse=True)


def _queue_of(job: JsonObject) -> str:
    """The ticket queue a stored job waits in (as ``outbox.ticket_queue`` names it)."""
    return f"{job.get('connection')}/{job.get('ticket_id') or job.get('ticket_key')}"


def _search_text(doc: JsonObject) -> str:
    """What ``q`` matches: id, where, fields, message, checks and linked ticket keys."""
    parts = [
        str(doc["id"]),
        (doc.get("datastore") or {}).get("name") or "",
        (doc.get("container") or {}).get("name") or "",
        " ".join(doc.get("fields") or ()),
        doc.get("message") or "",
        doc.get("type") or "",
        " ".join(link.get("ticket_key", "") for link in doc.get("links") or ()),
    ]
    return "\n".join(parts).lower()
