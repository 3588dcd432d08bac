"""The anomaly store: the desk's tables, their indexes and what is kept, on a journal.

Why not plain TinyDB writes: a TinyDB table write re-keys and rewrites the whole table (measured
here: 26 ms per insert at 50k documents even on MemoryStorage, 1.3 inserts/s on its default JSON
storage). A webhook must be durable before we answer 2xx, and its cost must not grow with the
store. So durability is :mod:`anomaly_desk.core.journal`'s: transactions of whole-document
puts/deletes, group-committed to an append-only journal, TinyDB JSON files as the checkpoint
(only the segments that changed are rewritten), refused (never papered over) damage, degraded
mode while the disk refuses writes, one writer per data directory. See that module for the
promise and how it is kept.

This module says what the tables are and keeps what reading them needs:

* the tables (anomalies, deliveries, links, jobs, sync_log, counters, quarantine) and what a
  journal record must hold to be read back (an anomaly has an id and a status);
* anomalies kept as their stored bytes (decoded when read: a page, a document, a detail) and an
  entry per anomaly (sort key, status, the lower-cased text ``q`` searches), so a million fit in
  about 1.5 GB; written beside each segment as its summary, so opening reads no anomaly;
* indexes kept in step with every change, undo included: anomalies by status in newest-first
  order (O(log n) insert and seek, so a page costs its size), anomalies with tickets;
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
import sys
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import orjson

from anomaly_desk.core import journal
from anomaly_desk.core.archive import ARCHIVE_DIR, ColdArchive, ColdLink
from anomaly_desk.core.documents import (
    AnomalyDocument,
    DocumentCache,
    ImportState,
    RuleState,
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
from anomaly_desk.core.vocabulary import PLATFORM, WAITING, JobState

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

TABLES = (
    "anomalies",
    "deliveries",
    "links",
    "jobs",
    "sync_log",
    "counters",
    "quarantine",
    "rules",
    "rule_tickets",
    "rules_waiting",
)
CHECKPOINT_MIN_RECORDS = 10_000  # a checkpoint once the journal outgrows this or the anomalies
DELIVERY_RETENTION_S = 7 * 24 * 3600
SYNC_LOG_KEEP = 50_000
FINISHED_JOBS_KEEP = 50_000
RAW_ROWS_KEPT = 256  # anomalies read as raw JSON lately (tests and tools compare them)
SEARCH_SORT_LIMIT = 20_000  # matches sorted directly; more than that, walking the order is faster

Table = Literal[
    "anomalies",
    "deliveries",
    "links",
    "jobs",
    "sync_log",
    "counters",
    "quarantine",
    "rules",
    "rule_tickets",  # a rule's last ticket per dedup key: read only when its job runs
    "rules_waiting",  # new thin anomalies whose rules are matched once they are enriched
]


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


SortKey = tuple[str, int]
Entry = tuple[SortKey, str, str]
"""What the list needs of an anomaly without decoding it: sort key, status, search text."""


def _sort_key(doc: JsonObject) -> SortKey:
    """Newest first: by detection time, then id; ISO-8601 UTC strings sort as times."""
    return (doc.get("created") or doc.get("received_at") or "", doc["id"])


class _Order:
    """Anomaly keys in descending ``_sort_key`` order, with O(log n) insert and seek.

    Opening (and a bulk load) adds unsorted, removals then only noted, and sorts once, at the
    end (:meth:`sort`): replaying a journal costs no O(n) insert per record."""

    __slots__ = ("_gone", "_gone_n", "_keys", "_sorted")

    def __init__(self) -> None:
        self._keys: list[SortKey] = []  # ascending; iterate backwards for newest first
        self._sorted = True
        self._gone: dict[SortKey, int] = {}  # removed while unsorted (a key may come back)
        self._gone_n = 0

    def load(self, key: SortKey) -> None:
        self._keys.append(key)
        self._sorted = False

    def extend(self, keys: list[SortKey]) -> None:
        self._keys += keys
        self._sorted = False

    def sort(self) -> None:
        self._sort()

    def _sort(self) -> list[SortKey]:
        if not self._sorted:
            if self._gone:
                gone, kept = self._gone, []
                for key in self._keys:
                    left = gone.get(key)
                    if left:
                        gone[key] = left - 1
                    else:
                        kept.append(key)
                self._keys, self._gone, self._gone_n = kept, {}, 0
            self._keys.sort()
            self._sorted = True
        return self._keys

    def add(self, key: SortKey) -> None:
        if self._sorted:
            bisect.insort(self._keys, key)
        else:
            self._keys.append(key)

    def remove(self, key: SortKey) -> None:
        if not self._sorted:
            self._gone[key] = self._gone.get(key, 0) + 1
            self._gone_n += 1
            return
        keys = self._keys
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            del keys[i]

    def __len__(self) -> int:
        return len(self._keys) - self._gone_n

    def newest_first(self, before: SortKey | None = None) -> Iterator[SortKey]:
        keys = self._sort()
        end = len(keys) if before is None else bisect.bisect_left(keys, before)
        for i in range(end - 1, -1, -1):
            yield keys[i]


class _Decoded(Mapping[str, JsonObject]):
    """An encoded table read as JSON rows, each decoded when it is read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rows = store._blobs["anomalies"]

    def __getitem__(self, key: str) -> JsonObject:
        row = self._store.get("anomalies", key)
        if row is None:
            raise KeyError(key)
        return row

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows


class Store(Journal):
    """The only owner of a data directory's database. Reads are in memory; writes are durable.

    Anomalies are kept as their stored bytes (a third of the memory of dicts) and decoded when
    read; what listing, filtering and searching need of each is in :attr:`_entries`."""

    logger = log
    what = "anomalies"
    encoded = frozenset({"anomalies"})
    segmented = frozenset({"anomalies", "jobs", "sync_log"})

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
        self._entries: dict[str, Entry] = {}  # anomaly key → sort key, status, search text
        self._linked: dict[str, str | None] = {}  # anomalies with tickets → their fingerprint
        self._jobs_of: dict[int, set[int]] = {}  # anomaly id → its jobs' ids
        # fingerprint → anomalies with tickets that carry it (recurrence, issue #13)
        self._linked_by_fingerprint: dict[str, set[int]] = {}
        self._dead_in: dict[str, set[int]] = {}  # ticket queue → ids of its dead jobs
        self._sequences: dict[str, int] = {}
        self._raw_rows: OrderedDict[int, tuple[bytes, JsonObject]] = OrderedDict()

    # -- what the journal asks of the tables ---------------------------------------------------

    def _changed(
        self,
        table: str,
        key: str,
        old: journal.Stored | None,
        new: journal.Stored | None,
        doc: JsonObject | None,
    ) -> None:
        if table == "anomalies":
            if old is not None:
                self._unindex(key)
            if new is not None:
                if doc is None:
                    doc = new if isinstance(new, dict) else orjson.loads(new)
                elif isinstance(new, bytes):
                    _ANOMALY_DOCS.stored(key, doc, new)
                    self._remember_raw(new, doc)
                self._index(key, doc)
        elif table == "jobs":
            if isinstance(old, dict):
                self._unindex_job(old)
            if isinstance(new, dict):
                self._index_job(new)

    def _loaded(
        self,
        table: str,
        rows: journal.StoredRows,
        summary: bytes | None,
        docs: dict[str, JsonObject] | None,
    ) -> bool:
        if table == "anomalies":
            if summary is not None and self._load_summary(rows, summary):
                return True
            for key, row in rows.items():
                doc = docs[key] if docs is not None else row
                self._index(key, doc if isinstance(doc, dict) else orjson.loads(doc), True)
            return summary is None
        if table == "jobs":
            for job in rows.values():
                if isinstance(job, dict):
                    self._index_job(job)
        return True

    def _load_summary(self, rows: journal.StoredRows, summary: bytes) -> bool:
        """Index a segment from its summary (see :meth:`_summarize`); False if it does not fit."""
        try:
            columns = orjson.loads(summary)
            keys, created, ids = columns["keys"], columns["created"], columns["ids"]
            statuses, texts, linked = columns["status"], columns["text"], columns["linked"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return False
        if keys != list(rows) or not len(keys) == len(created) == len(ids) == len(statuses):
            return False
        if len(texts) != len(keys) or not isinstance(linked, dict):
            return False
        names = {status: sys.intern(status) for status in set(statuses)}
        orders: dict[str, list[SortKey]] = {}
        entries = self._entries
        for key, sort, status, text in zip(
            rows, zip(created, ids, strict=True), statuses, texts, strict=True
        ):
            status = names[status]
            entries[key] = (sort, status, text)
            part = orders.get(status)
            if part is None:
                part = orders[status] = []
            part.append(sort)
        for status, sorts in orders.items():
            order = self._by_status.get(status)
            if order is None:
                order = self._by_status[status] = _Order()
            order.extend(sorts)
        for key, fingerprint in linked.items():
            if key in entries:
                self._link(key, entries[key][0][1], fingerprint)
        return True

    def _summarize(self, table: str, rows: journal.StoredRows) -> bytes | None:
        """What the list needs of each anomaly of a segment, in columns (in the segment's
        order), so opening does not decode the rows: keys, created, ids, status, text, and the
        fingerprint (or null) of each anomaly with tickets."""
        if table != "anomalies":
            return None
        created, ids, statuses, texts = [], [], [], []
        linked: dict[str, str | None] = {}
        for key, row in rows.items():
            doc = orjson.loads(row) if isinstance(row, bytes) else row
            sort = _sort_key(doc)
            created.append(sort[0])
            ids.append(sort[1])
            statuses.append(doc["status"])
            texts.append(_search_text(doc))
            if doc.get("links"):
                fingerprint = doc.get("fingerprint")
                linked[key] = None if fingerprint is None else str(fingerprint)
        columns = {"keys": list(rows), "created": created, "ids": ids}
        return orjson.dumps({**columns, "status": statuses, "text": texts, "linked": linked})

    def _valid(self, table: str, doc: JsonObject) -> bool:
        return table != "anomalies" or ("id" in doc and "status" in doc)

    def _after_load(self) -> None:
        self._prune_deliveries()
        for order in self._by_status.values():
            order.sort()  # now, while starting, not at the first request

    def _before_snapshot(self) -> None:
        self._prune_deliveries()
        self._prune_history()

    def _checkpoint_threshold(self) -> int:
        return max(
            CHECKPOINT_MIN_RECORDS,
            min(journal.CHECKPOINT_MAX_RECORDS, self._rewrite_estimate(["anomalies"])),
        )

    def _describe(self) -> str:
        return f"{len(self._blobs['anomalies'])} anomalies"

    def _decode(self, row: journal.Stored) -> JsonObject:
        """A stored anomaly as JSON; the rows read or written lately are remembered by the
        bytes' identity, so reading the same row twice gives the same dict."""
        if isinstance(row, dict):
            return row
        hit = self._raw_rows.get(id(row))
        if hit is not None and hit[0] is row:
            self._raw_rows.move_to_end(id(row))
            return hit[1]
        doc: JsonObject = orjson.loads(row)
        self._remember_raw(row, doc)
        return doc

    def _remember_raw(self, row: bytes, doc: JsonObject) -> None:
        self._raw_rows[id(row)] = (row, doc)  # holding ``row`` keeps its id unique
        self._raw_rows.move_to_end(id(row))
        if len(self._raw_rows) > RAW_ROWS_KEPT:
            self._raw_rows.popitem(last=False)

    def _row(self, key: str) -> JsonObject | None:
        """The anomaly stored under ``key``, decoded (not remembered: a page or a scan)."""
        row = self._blobs["anomalies"].get(key)
        return None if row is None else orjson.loads(row)

    # -- indexes -----------------------------------------------------------------------------

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

    def _enter(self, key: str, sort: SortKey, status: str, text: str, bulk: bool) -> None:
        order = self._by_status.get(status)
        if order is None:
            order = self._by_status[status] = _Order()
        if bulk:
            order.load(sort)
        else:
            order.add(sort)
        self._entries[key] = (sort, status, text)

    def _link(self, key: str, anomaly_id: int, fingerprint: str | None) -> None:
        self._linked[key] = fingerprint
        if fingerprint is not None:
            self._linked_by_fingerprint.setdefault(fingerprint, set()).add(anomaly_id)

    def _index(self, key: str, doc: JsonObject, bulk: bool = False) -> None:
        self._enter(key, _sort_key(doc), sys.intern(doc["status"]), _search_text(doc), bulk)
        if doc.get("links"):
            fingerprint = doc.get("fingerprint")
            self._link(key, doc["id"], None if fingerprint is None else str(fingerprint))

    def _unindex(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        sort, status, _ = entry
        order = self._by_status.get(status)
        if order is not None:
            order.remove(sort)
        if key in self._linked:
            fingerprint = self._linked.pop(key)
            if fingerprint is not None:
                self._linked_by_fingerprint.get(fingerprint, set()).discard(sort[1])

    # -- reads -------------------------------------------------------------------------------

    # Raw rows, for tests and tools that check what is stored byte for byte; the desk and the
    # receiver read the typed documents and views below.

    def get(self, table: Table, key: str) -> JsonObject | None:
        if table == "anomalies":
            row = self._blobs["anomalies"].get(key)
            return None if row is None else self._decode(row)
        return self._tables[table].get(key)

    def all(self, table: Table) -> Mapping[str, JsonObject]:
        """The live table (read only)."""
        return _Decoded(self) if table == "anomalies" else self._tables[table]

    def has(self, table: Table, key: str) -> bool:
        return key in self._stored(table)

    # Typed reads: core works on documents (core.documents), the API on views (core.views);
    # the tables keep their JSON and are converted here, at the boundary.

    def anomaly_summary(self, anomaly_id: int, view: type[S]) -> S | None:
        """The anomaly's list row, as stored (times exactly as they were sent)."""
        raw = self.get("anomalies", str(anomaly_id))
        return None if raw is None else self._row_view(raw, view)

    def _row_view(self, raw: JsonObject, view: type[S]) -> S:
        row = view.of(raw)
        if self._jobs_of.get(raw["id"]):
            row.stuck_notes = self.stuck_notes(raw["id"])
        return row

    def anomaly_detail(self, anomaly_id: int) -> AnomalyDetail | None:
        """The whole anomaly, each link with what became of its notes."""
        raw = self.get("anomalies", str(anomaly_id))
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
        return [self._entries[key][0][1] for key in self._linked]

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
        raw = self._blobs["anomalies"].get(key)
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
        return len(self._stored(table))

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
        keys, position = self._page(statuses, q, limit, after)
        rows = [self._row(str(key[1])) for key in keys]
        return [self._row_view(row, AnomalySummary) for row in rows if row is not None], position

    def _page(
        self,
        statuses: Iterable[str] | None,
        q: str | None,
        limit: int,
        after: tuple[str, int] | None,
    ) -> tuple[list[SortKey], SortKey | None]:
        """The sort keys of a page, and the position to continue after."""
        wanted = set(self._by_status) if statuses is None else set(statuses)
        needle = q.strip().lower() if q else ""
        entries = self._entries
        if needle:
            # One pass over the search texts finds every match in the statuses asked for;
            # ordering only those keeps a rare (or absent) needle fast, where walking the order
            # would visit every row. Many matches are dense in the order: walking finds a page.
            keys = [
                sort
                for sort, status, text in entries.values()
                if needle in text and status in wanted
            ]
            if after is not None:
                keys = [sort for sort in keys if sort < after]
            if len(keys) <= SEARCH_SORT_LIMIT:
                keys.sort(reverse=True)
                return keys[:limit], (keys[limit - 1] if len(keys) > limit else None)
        streams = [self._by_status[s].newest_first(after) for s in wanted if s in self._by_status]
        page: list[SortKey] = []
        merged = streams[0] if len(streams) == 1 else _merge_desc(streams)
        for key in merged:
            if needle and needle not in entries.get(str(key[1]), ((("", 0)), "", ""))[2]:
                continue
            if len(page) == limit:
                return page, page[-1]
            page.append(key)
        return page, None

    def next_id(self, table: Table) -> int:
        """A fresh integer key for ``table``; increasing, never reused (pruning drops only old rows)."""
        current = self._sequences.get(table)
        if current is None:
            current = max((int(key) for key in self._stored(table) if key.isdigit()), default=0)
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
            self._drop("deliveries", key)

    def _prune_history(self) -> None:
        """Keep the newest sync-log entries and finished jobs; pending and dead jobs stay."""
        keep = self.retention
        log_rows = self._tables["sync_log"]
        if len(log_rows) > keep.sync_log:
            for key in sorted(log_rows, key=int)[: len(log_rows) - keep.sync_log]:
                self._drop("sync_log", key)
        jobs = self._tables["jobs"]
        finished = [k for k, job in jobs.items() if job.get("state") in ("done", "cancelled")]
        if len(finished) > keep.finished_jobs:
            for key in sorted(finished, key=int)[: len(finished) - keep.finished_jobs]:
                job = self._drop("jobs", key)
                if isinstance(job, dict):
                    self._unindex_job(job)

    # -- bulk ------------------------------------------------------------------------------------

    def bulk_load(self, docs: Iterable[JsonObject]) -> int:
        """Seed many anomalies at once (benchmarks, migrations): one checkpoint, no journal."""
        n = 0
        for doc in docs:
            key = str(doc["id"])
            if self._set("anomalies", key, journal.encode_row(doc)) is not None:
                self._unindex(key)
            self._index(key, doc, True)
            n += 1
        self._write_checkpoint(self._rotate())
        return n

    # -- rules (issue #15) -------------------------------------------------------------------

    def rules_waiting(self) -> list[int]:
        """New thin anomalies whose rules wait for their enrichment (see core.writeback)."""
        return sorted(int(key) for key in self._tables["rules_waiting"])

    def rule_state(self, name: str) -> RuleState | None:
        """What a ``[[rules]]`` entry has done (``rules`` table); None: nothing yet."""
        raw = self._tables["rules"].get(name)
        return None if raw is None else RuleState.model_validate(raw)

    # -- the cold archive (issue #16: core.archive holds it, core.retention fills it) -----------

    cold: ColdArchive = ColdArchive(Path("/nonexistent"))  # replaced by open(): this one is empty

    def open(self) -> Self:
        """…and open the cold archive beside the tables: its index, no scan unless a crash cut
        a compaction short."""
        super().open()
        try:
            self.cold = ColdArchive(self.data_dir / ARCHIVE_DIR).open()
        except BaseException:
            self._close_journal()
            self._release_lock()
            raise
        return self

    def is_hot(self, anomaly_id: int) -> bool:
        return str(anomaly_id) in self._blobs["anomalies"]

    def cold_row(self, anomaly_id: int) -> JsonObject | None:
        """An anomaly moved to the cold archive and not hot again (hot wins), as stored; a
        webhook for an id never seen pays a dict lookup and a bisect."""
        if anomaly_id not in self.cold or self.is_hot(anomaly_id):
            return None
        return self.cold.get(anomaly_id)

    def cold_doc(self, anomaly_id: int) -> AnomalyDocument | None:
        """The cold anomaly as a document: what a change merges onto, which (put back) makes it
        hot again in the same transaction."""
        raw = self.cold_row(anomaly_id)
        return None if raw is None else AnomalyDocument.model_validate(raw)

    def cold_detail(self, anomaly_id: int) -> AnomalyDetail | None:
        """The cold anomaly as the API shows it, marked ``cold``."""
        raw = self.cold_row(anomaly_id)
        if raw is None:
            return None
        detail = AnomalyDetail.model_validate(raw)
        detail.cold = True
        counts = self.note_counts(anomaly_id)
        for link in detail.links:
            link.notes = counts.get(link.id) or NoteCounts.zero()
        return detail

    def cold_linked_with_fingerprint(self, fingerprint: object) -> list[int]:
        """Cold anomalies with tickets that carry this fingerprint (not hot again)."""
        found = self.cold.with_fingerprint(str(fingerprint))
        return sorted(i for i in found if not self.is_hot(i))

    def cold_links(self, connection: str) -> list[ColdLink]:
        """Tickets of cold anomalies on ``connection`` (a change there restores the anomaly)."""
        return [link for link in self.cold.links(connection) if not self.is_hot(link.anomaly_id)]

    def ids_in(self, statuses: Collection[str]) -> list[int]:
        """The hot anomalies in ``statuses``, oldest detection first; from the status index
        alone (no row is read)."""
        found: list[int] = []
        for status in statuses:
            order = self._by_status.get(status)
            found += [key[1] for key in order.newest_first()] if order is not None else []
        return found[::-1]

    def row_version(self, anomaly_id: int) -> object | None:
        """What the anomaly is stored as right now, to compare by identity: every put replaces
        it, so the same object later means nothing changed in between (a compaction deletes
        only what it archived)."""
        return self._blobs["anomalies"].get(str(anomaly_id))

    def waiting_jobs(self, anomaly_id: int) -> bool:
        """Whether a job of the anomaly is still in its queue (pending or dead)."""
        jobs = self._tables["jobs"]
        return any(
            (jobs.get(str(job_id)) or {}).get("state") in WAITING
            for job_id in self._jobs_of.get(anomaly_id, ())
        )


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
