"""The journal engine: named tables of whole documents, durable before a write is acknowledged.

It knows nothing of what the tables hold (that is :mod:`anomaly_desk.core.store`); it owns the
data directory and the promise "a commit that returned is on disk, and nothing acknowledged is
ever lost":

* every change is a *transaction* of whole-document puts/deletes, applied to the in-memory tables
  and appended to ``journal-NNNNNN.log`` as one orjson line; concurrent transactions are
  group-committed (one ``write`` + ``fsync`` per batch), so a burst costs a few file writes;
  once a batch is durable, the :meth:`Journal.on_commit` hooks hear each of its transactions;
* rows of the tables a subclass names in :attr:`Journal.encoded` are kept in memory as their
  orjson bytes (the very bytes the journal line holds): a third of the memory of the dicts, and
  what a checkpoint writes without serialising again; the subclass decodes what it reads;
* a checkpoint is TinyDB JSON, written from a background thread (temp file, fsync,
  ``os.replace``): the manifest ``anomaly-desk.json`` holds ``_meta`` (schema, the first journal
  it does not cover, the segment files) and every small table; a table of
  :attr:`Journal.segmented` with more than ``SEGMENT_ABOVE`` rows is written instead as segment
  files ``<table>-<segment>.<journal>.json`` (rows whose integer key falls in one
  ``SEGMENT_SPAN`` range; other keys in ``<table>-other``), each a TinyDB file of that one table
  with one row per line, plus an optional summary ``….idx`` the subclass reads at open instead of
  the rows. Only segments changed since the last checkpoint are written (under a new name); the
  manifest, written last, names them with their size and CRC-32; only then are older journals
  and files no manifest names removed. A checkpoint is due when the journal has grown past what
  it would rewrite, so every write costs O(1) amortised;
* opening reads the manifest and its segments (the rows stay bytes; the summaries spare the
  subclass decoding them) and replays the journal over them; a torn tail (bytes after the last
  newline: a crash mid-write, never acknowledged) is cut off before the first new append, so the
  next record never lands glued onto a fragment.

Damage is refused, never papered over: a manifest that is empty, not JSON or not ours, a lost
one (journals that start after 000000 with no checkpoint before them), a segment that is missing
or not what the manifest says (size, CRC) or an unreadable record inside a journal raises
:class:`StoreDamaged`; ``repair=True`` sets the damaged file aside, keeps every readable record,
checkpoints at once and logs what is lost. A damaged summary is only rebuilt.

Memory never runs ahead of the disk: a transaction is applied at once (later ones plan on top of
it) with its undo recorded; when a batch cannot be written it and every transaction queued behind
it are rolled back, the journal is cut back to its last good size, and the journal is *degraded*
(``write_error``; writes raise :class:`StoreFailed`) until a background probe finds the disk
writable again, then writes resume without a restart.

One writer per data directory, enforced with an ``flock``-ed lock file that names its holder.
The directory is private (0700) and so is every file in it (0600). Documents handed to
:meth:`Journal.commit` are owned by the journal and never mutated afterwards (callers build new
dicts), which lets a checkpoint serialise a consistent shallow copy.

A subclass gives the tables meaning through a few hooks: :meth:`Journal._changed` (keep indexes),
:meth:`Journal._loaded` and :meth:`Journal._summarize` (indexes at open, and their snapshot),
:meth:`Journal._valid` (what a readable record holds), :meth:`Journal._after_load` and
:meth:`Journal._before_snapshot` (retention), :meth:`Journal._checkpoint_threshold` and
:meth:`Journal._describe`.

This module is the engine (the :class:`Journal` class and its errors); it is built from
:mod:`anomaly_desk.core.journal_codec` (the ops of a transaction and its journal line),
:mod:`anomaly_desk.core.segments` (the segment layout: naming, grouping, splitting, checking,
writing one segment and its summary) and :mod:`anomaly_desk.core.durable_files` (atomic writes,
``fsync_dir``, setting damage aside, cutting a file back). Their public names are importable
from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, Self, TypedDict, cast

import orjson

from anomaly_desk.core import segments
from anomaly_desk.core.durable_files import AtomicJSONStorage, cut, fsync_dir, set_aside, temp_path
from anomaly_desk.core.journal_codec import (
    Delete,
    Doc,
    Op,
    Put,
    Rows,
    Stored,
    StoredRows,
    decode_line,
    encode_line,
    encode_row,
)
from anomaly_desk.core.jsontypes import JsonObject
from anomaly_desk.core.runtime import refreeze
from anomaly_desk.core.segments import (
    OTHER_SEGMENT,
    SEGMENT_FILE,
    SegmentFile,
    Snapshot,
    check_layout,
    read_segment,
    segment_of,
    write_segments,
)

# What callers import from here (the store, the archive, tests): the engine and its errors, and
# the parts it is built from. SEGMENT_ABOVE and SEGMENT_SPAN are read through
# :mod:`anomaly_desk.core.segments` only, so they are patched there, not here.
__all__ = [
    "CHECKPOINT_MAX_RECORDS",
    "CHECKPOINT_MIN_RECORDS",
    "CHECKPOINT_SWITCH_S",
    "DB_FILE",
    "JOURNAL_GLOB",
    "LOCK_FILE",
    "OTHER_SEGMENT",
    "PROBE_BYTES",
    "PROBE_FILE",
    "PROBE_INTERVAL_S",
    "PROGRESS_EVERY_S",
    "REPAIR_HINT",
    "SCHEMA_VERSION",
    "AtomicJSONStorage",
    "CommitHook",
    "Delete",
    "Doc",
    "Holder",
    "Journal",
    "Op",
    "Put",
    "Rows",
    "SegmentFile",
    "Snapshot",
    "StoreDamaged",
    "StoreError",
    "StoreFailed",
    "StoreLocked",
    "Stored",
    "StoredRows",
    "Undo",
    "encode_row",
    "fsync_dir",
    "segment_of",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # the newest this version reads; a manifest without segments is written as 1
DB_FILE = "anomaly-desk.json"
LOCK_FILE = "anomaly-desk.lock"
JOURNAL_GLOB = "journal-*.log"
CHECKPOINT_MIN_RECORDS = 10_000
CHECKPOINT_MAX_RECORDS = 100_000  # bounds what a restart after a crash replays
# While a checkpoint thread runs, the event loop waits for the GIL at every await that gave it
# up; Python's default 5 ms switch interval made each of those waits up to 5 ms (tens of ms a
# webhook). A shorter interval for the checkpoint's duration hands it back sooner.
CHECKPOINT_SWITCH_S = 0.0005
PROGRESS_EVERY_S = 2.0
PROBE_FILE = ".anomaly-desk.probe"
PROBE_BYTES = 64 * 1024  # a probe that fits leaves some headroom for the journal
PROBE_INTERVAL_S = 1.0
REPAIR_HINT = (
    "restore it from a backup, or start with `anomaly-desk serve --repair` (moves the damaged "
    "file aside, keeps every readable record, and reports what is lost)"
)

Undo = tuple[str, str, Stored | None]  # (table, key, what to put back; None: delete)


class StoreError(Exception):
    """Base class for store problems a person has to act on."""


class Holder(TypedDict, total=False):
    """What the lock file says of the process holding it (another process wrote it: any key
    may be missing or of the wrong type)."""

    pid: object
    url: object
    since: object


class StoreLocked(StoreError):
    """Another process owns the data directory."""

    def __init__(self, data_dir: Path, holder: Holder) -> None:
        self.holder = holder
        pid = holder.get("pid", "?")
        url = holder.get("url")
        where = f", serving {url}" if url else ""
        attach = f"; attach to it with --url {url}" if url else ""
        super().__init__(
            f"data directory {data_dir} is in use by another anomaly-desk process "
            f"(pid {pid}{where}){attach}"
        )


class StoreFailed(StoreError):
    """The disk refused a write: nothing of it was kept, and writes are refused until it recovers."""


class StoreDamaged(StoreError):
    """A data file is damaged or lost: starting anyway would silently drop acknowledged data."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}. The store refuses to start: {REPAIR_HINT}")


CommitHook = Callable[[list[Op]], None]
"""Told about each transaction once it is on disk, in commit order."""


class Journal:
    """Owns a data directory: lock, tables in memory, journal, checkpoints, degraded mode."""

    #: where the journal's messages go; a subclass names its own module, so its logs stay in one
    #: place whatever part of the work (journal or tables) says them
    logger: ClassVar[logging.Logger] = log
    #: what the tables hold, in words, for what a repair reports lost
    what: ClassVar[str] = "documents"
    #: tables whose rows are kept as orjson bytes (decoded by the subclass when read)
    encoded: ClassVar[frozenset[str]] = frozenset()
    #: tables written as segment files once they are large (see the module's docstring)
    segmented: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        data_dir: Path,
        tables: Iterable[str],
        *,
        owner_url: str | None = None,
        repair: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.owner_url = owner_url
        self.repair = repair  # start despite damage: set it aside, keep what reads, report losses
        self.path = self.data_dir / DB_FILE
        self.tables: tuple[str, ...] = tuple(tables)
        self.write_error: str | None = None  # why writes are refused right now; None when healthy
        self._tables: dict[str, Rows] = {t: {} for t in self.tables if t not in self.encoded}
        self._blobs: dict[str, dict[str, bytes]] = {t: {} for t in self.tables if t in self.encoded}
        self._layout: dict[str, dict[str, SegmentFile]] = {}  # segment files the manifest names
        self._dirty: dict[str, set[str]] = {t: set() for t in self.segmented if t in self.tables}
        self._others: dict[str, set[str]] = {t: set() for t in self._dirty}  # OTHER_SEGMENT keys
        self._lock_fd: int | None = None
        self._journal_fd: int | None = None
        self._journal_seq = 0
        self._journal_records = 0
        self._journal_size = 0  # bytes known to be on disk; a failed append is cut back to it
        self._pending: list[bytes] = []
        self._pending_undo: list[list[Undo]] = []  # what each pending transaction replaced
        self._pending_ops: list[list[Op]] = []  # each pending transaction, for the hooks
        self._batch: asyncio.Future[None] | None = None  # the batch being gathered
        self._inflight: asyncio.Future[None] | None = None  # the batch being written
        self._flusher: asyncio.Task[None] | None = None
        self._checkpoint: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._hooks: list[CommitHook] = []
        self.stats = {"batches": 0, "transactions": 0, "checkpoints": 0}

    # -- what a subclass says about its tables ---------------------------------------------------

    def _changed(
        self, table: str, key: str, old: Stored | None, new: Stored | None, doc: Doc | None
    ) -> None:
        """A row was put (``new``; ``doc`` is its JSON when at hand) or deleted (``new`` is
        None); ``old`` is what it replaced. Keep indexes in step."""

    def _loaded(
        self, table: str, rows: StoredRows, summary: bytes | None, docs: Rows | None
    ) -> bool:
        """Rows read from a checkpoint (a segment, or a table of the manifest), before the
        journal is replayed; ``summary`` is what :meth:`_summarize` wrote for them and ``docs``
        their JSON when it was parsed anyway. False when the summary was of no use (it is then
        written again at the next checkpoint)."""
        return summary is None

    def _summarize(self, table: str, rows: StoredRows) -> bytes | None:
        """What opening needs of a segment's rows, written beside it (in a background thread)."""
        return None

    def _valid(self, table: str, doc: Doc) -> bool:
        """Whether a put read back from a journal holds what a put to ``table`` must."""
        return True

    def _after_load(self) -> None:
        """The tables are read (checkpoint + journal), before the first write."""

    def _before_snapshot(self) -> None:
        """A checkpoint is about to copy the tables: drop what is kept no longer (with
        :meth:`_drop`)."""

    def _checkpoint_threshold(self) -> int:
        """Journal records after which a checkpoint pays for itself."""
        return min(CHECKPOINT_MAX_RECORDS, max(CHECKPOINT_MIN_RECORDS, self._rewrite_estimate()))

    def _describe(self) -> str:
        """What the tables hold, for a log line."""
        return f"{sum(len(self._stored(t)) for t in self.tables)} documents"

    # -- rows ------------------------------------------------------------------------------------

    def _stored(self, table: str) -> StoredRows:
        """A table's rows as kept in memory (bytes for an encoded table)."""
        blobs = self._blobs.get(table)
        return (
            cast(StoredRows, blobs) if blobs is not None else cast(StoredRows, self._tables[table])
        )

    def _set(self, table: str, key: str, value: Stored | None) -> Stored | None:
        """Put (or with None, delete) one row; the old row. Marks its segment dirty."""
        rows = self._stored(table)
        if value is None:
            old = rows.pop(key, None)
        else:
            old = rows.get(key)
            rows[key] = value
        dirty = self._dirty.get(table)
        if dirty is not None:
            segment = segment_of(key)
            dirty.add(segment)
            if segment == OTHER_SEGMENT:
                if value is None:
                    self._others[table].discard(key)
                else:
                    self._others[table].add(key)
        return old

    def _drop(self, table: str, key: str) -> Stored | None:
        """Remove a row without a journal record (retention: what is kept no longer)."""
        return self._set(table, key, None)

    def _rewrite_estimate(self, tables: Iterable[str] | None = None) -> int:
        """Rows of ``tables`` (all by default) the next checkpoint would write."""
        total = 0
        for table in self.tables if tables is None else tables:
            files = self._layout.get(table)
            if files is None:
                total += len(self._stored(table))
                continue
            for segment in self._dirty.get(table, ()):
                known = files.get(segment)
                total += known["rows"] if known else segments.SEGMENT_SPAN // 8
        return total

    # -- hooks -------------------------------------------------------------------------------------

    def on_commit(self, hook: CommitHook) -> None:
        """Call ``hook(ops)`` for every transaction once it is on disk, before its commit returns.

        A refused transaction is never heard of. A hook runs on the event loop and must be quick;
        one that raises is logged and does not stop the others.
        """
        self._hooks.append(hook)

    def _committed(self, transactions: list[list[Op]]) -> None:
        for ops in transactions:
            for hook in self._hooks:
                try:
                    hook(ops)
                except Exception:
                    self.logger.exception("a post-commit hook failed (the commit stands)")

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> Self:
        """Take the lock, load the checkpoint, replay the journal."""
        self._prepare_dir()
        self._acquire_lock()
        try:
            self._remove_leftovers()
            self._load()
        except BaseException:
            self._close_journal()
            self._release_lock()
            raise
        return self

    async def close(self) -> None:
        """Flush, write a final checkpoint (fast restarts), release the lock."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(StoreFailed):
            await self.barrier()
        if self._checkpoint:
            await self._checkpoint
        if self._probe:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        if self.write_error is None and self._journal_records:
            try:
                await asyncio.to_thread(self._write_checkpoint, self._rotate())
            except OSError as exc:
                self.logger.error(
                    "final checkpoint failed (the journal keeps every change): %s", exc
                )
        self._close_journal()
        self._release_lock()

    def close_sync(self) -> None:
        """For tools and tests without an event loop: checkpoint and release."""
        if self._lock_fd is None:
            return
        if self._pending:
            self._append(b"".join(self._pending))
            transactions = self._pending_ops
            self._pending, self._pending_undo, self._pending_ops = [], [], []
            self._committed(transactions)
        try:
            if self.write_error is None and self._journal_records:
                self._write_checkpoint(self._rotate())
        finally:  # a failed checkpoint leaves the journal as it is; the lock is released anyway
            self._close_journal()
            self._release_lock()

    def _prepare_dir(self) -> None:
        """Create the data directory 0700; tighten one of ours that others may read."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = self.data_dir.stat()
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077 and st.st_uid == os.getuid():
            self.data_dir.chmod(0o700)
            self.logger.warning(
                "data directory %s was open to other users (mode %04o): tightened to 0700",
                self.data_dir,
                mode,
            )

    def _remove_leftovers(self) -> None:
        """A checkpoint, segment or probe file a crash left half-written only holds disk space."""
        stale = [temp_path(self.path), self.data_dir / PROBE_FILE]
        for path in self.data_dir.glob(".*.tmp"):
            if SEGMENT_FILE.match(path.name[1:-4]):
                stale.append(path)
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                path.unlink()
                self.logger.warning("removed %s (%d bytes) left unfinished by a crash", path, size)

    def _segment_files(self) -> list[Path]:
        """Segment and summary files in the data directory, named or not."""
        return sorted(
            path
            for path in self.data_dir.iterdir()
            if (m := SEGMENT_FILE.match(path.name)) and m["table"] in self._dirty
        )

    def _remove_unnamed(self) -> None:
        """Segment files no manifest names: older generations, or a checkpoint cut short."""
        named = set()
        for files in self._layout.values():
            for entry in files.values():
                named.add(entry["file"])
                if "index" in entry:
                    named.add(entry["index"])
        for path in self._segment_files():
            if path.name not in named:
                path.unlink(missing_ok=True)

    def _acquire_lock(self) -> None:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreLocked(self.data_dir, holder) from None
        os.fchmod(fd, 0o600)  # one made by an older version may be readable by others
        os.ftruncate(fd, 0)
        holder = Holder(pid=os.getpid(), url=self.owner_url, since=time.time())
        try:
            os.pwrite(fd, orjson.dumps(holder), 0)
        except OSError as exc:  # a full disk: the flock is the lock, who holds it only a hint
            self.logger.warning("could not name this process in the lock file: %s", exc)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _journals(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.data_dir.glob(JOURNAL_GLOB):
            with contextlib.suppress(ValueError):
                found.append((int(path.stem.split("-")[1]), path))
        return sorted(found)

    def _journal_path(self, seq: int) -> Path:
        return self.data_dir / f"journal-{seq:06d}.log"

    # -- opening: checkpoint, replay, repair -----------------------------------------------------

    def _load(self) -> None:
        """Read everything first and refuse damage; only then change files (cut tails, repair)."""
        journals = self._journals()
        first_seq, damaged, bad_segments = self._read_checkpoint(journals)
        replayed = 0
        torn: list[tuple[Path, int, int]] = []
        unreadable: list[tuple[Path, list[tuple[int, int]]]] = []
        for seq, path in journals:
            if seq >= first_seq:
                replayed += self._replay(path, torn, unreadable)
        for seq, path in journals:
            if seq < first_seq:
                path.unlink()  # already folded into the checkpoint
        for path, offset, dropped in torn:
            cut(path, offset)
            self.logger.warning(
                "%s: cut a torn write at byte %d (%d bytes dropped; a crash mid-write, never "
                "acknowledged)",
                path,
                offset,
                dropped,
            )
        self._journal_seq = max([first_seq, *(seq for seq, _ in journals)])
        self._journal_records = replayed
        self._after_load()
        self._journal_fd, self._journal_size = self._open_journal(self._journal_seq)
        if damaged or unreadable or bad_segments:
            self._finish_repair(journals, damaged, unreadable, bad_segments)
        else:
            self._remove_unnamed()
            if self.repair:
                self.logger.info("repair: nothing is damaged, nothing to do")
        self.logger.info(
            "store opened: %s, %d journal records replayed from %s",
            self._describe(),
            replayed,
            self.data_dir,
        )

    def _read_checkpoint(
        self, journals: list[tuple[int, Path]]
    ) -> tuple[int, str | None, list[tuple[Path, str]]]:
        """Load the checkpoint; the first journal it does not cover, what is wrong with the
        manifest, and (under repair) the damaged segments.

        Journal numbers only grow when a checkpoint is written, so without one every journal
        from 000000 on must be there: a first journal above 0 means a checkpoint went missing.
        """
        try:
            raw: bytes | None = self.path.read_bytes()
        except FileNotFoundError:
            raw = None
        problem = None
        if raw is None:
            if journals and journals[0][0] > 0:
                problem = (
                    f"the checkpoint is missing, yet the journals start at {journals[0][1].name}: "
                    "everything recorded before it was only in the checkpoint"
                )
        else:
            data, problem = _parse_checkpoint(self.path, raw, self.tables)
            if data is not None:
                meta = data.pop("_meta")["1"]
                layout = meta.get("segments") or {}
                problem = check_layout(layout, self.tables)
                if problem is None:
                    return meta["journal"], None, self._load_tables(data, layout)
        if problem is not None and not self.repair:
            raise StoreDamaged(self.path, problem)
        for table in self.tables:
            self._loaded(table, {}, None, None)
        return 0, problem, []

    def _load_tables(
        self, data: JsonObject, layout: dict[str, dict[str, SegmentFile]]
    ) -> list[tuple[Path, str]]:
        """The manifest's tables, then every segment it names, checked against it."""
        for table in self.tables:
            docs: Rows = data.get(table, {})
            if table in self._blobs:
                rows: StoredRows = {key: encode_row(doc) for key, doc in docs.items()}
                self._blobs[table] = cast(dict[str, bytes], rows)
            else:
                rows = cast(StoredRows, docs)
                self._tables[table] = docs
            if table in self._others:
                self._others[table].update(k for k in rows if segment_of(k) == OTHER_SEGMENT)
            self._loaded(table, rows, None, docs if table in self._blobs else None)
            if table in self._dirty and len(rows) > segments.SEGMENT_ABOVE:
                self.logger.info(
                    "%s: %s rows of %s in the one file; the next checkpoint splits them into "
                    "segments",
                    self.path.name,
                    f"{len(rows):,}",
                    table,
                )
        damaged: list[tuple[Path, str]] = []
        total = sum(entry.get("rows", 0) for files in layout.values() for entry in files.values())
        done, started, said = 0, time.monotonic(), time.monotonic()
        for table, files in layout.items():
            kept: dict[str, SegmentFile] = {}
            for segment, entry in sorted(files.items()):
                path = self.data_dir / entry["file"]
                problem = self._load_segment(table, segment, entry)
                if problem is not None:
                    if not self.repair:
                        raise StoreDamaged(path, problem)
                    damaged.append((path, problem))
                    self._dirty[table].add(segment)
                else:
                    kept[segment] = entry
                done += entry.get("rows", 0)
                if time.monotonic() - said >= PROGRESS_EVERY_S:
                    said = time.monotonic()
                    self.logger.info("loading %s: %s of %s", table, f"{done:,}", f"{total:,}")
            self._layout[table] = kept
        if total and time.monotonic() - started >= PROGRESS_EVERY_S:
            self.logger.info(
                "loaded %s rows from %d segments in %.1f s",
                f"{total:,}",
                sum(len(f) for f in layout.values()),
                time.monotonic() - started,
            )
        return damaged

    def _load_segment(self, table: str, segment: str, entry: SegmentFile) -> str | None:
        """Read one segment (and its summary) into the table; what is wrong with it, if anything."""
        found = read_segment(self.data_dir, table, entry, table in self._blobs)
        if isinstance(found, str):
            return found
        rows, docs, summary = found
        target = self._stored(table)
        target.update(rows)
        if segment == OTHER_SEGMENT:
            self._others[table].update(rows)
        if not self._loaded(table, rows, summary, docs) or ("index" in entry and summary is None):
            self.logger.warning("%s: its summary is unusable; rebuilt from the rows", entry["file"])
            self._dirty[table].add(segment)
        return None

    def _replay(
        self,
        path: Path,
        torn: list[tuple[Path, int, int]],
        unreadable: list[tuple[Path, list[tuple[int, int]]]],
    ) -> int:
        """Apply a journal's records; note a torn tail, refuse (or under repair, skip) bad ones."""
        count = offset = 0
        bad: list[tuple[int, int]] = []  # (line, bytes)
        tables = set(self.tables)
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.endswith(b"\n"):
                    torn.append((path, offset, len(line)))
                    break
                rows = decode_line(line, tables, self._valid)
                if rows is None:
                    if not self.repair:
                        raise StoreDamaged(
                            path,
                            f"record {lineno} (at byte {offset}, {len(line)} bytes) is unreadable "
                            "and acknowledged records may follow it",
                        )
                    bad.append((lineno, len(line)))
                else:
                    for row in rows:
                        table, key = row[1], row[2]
                        if row[0] == "p":
                            doc = row[3]
                            value = encode_row(doc) if table in self._blobs else doc
                            self._changed(table, key, self._set(table, key, value), value, doc)
                        elif (old := self._set(table, key, None)) is not None:
                            self._changed(table, key, old, None, None)
                    count += 1
                offset += len(line)
        if bad:
            unreadable.append((path, bad))
        return count

    def _finish_repair(
        self,
        journals: list[tuple[int, Path]],
        damaged: str | None,
        unreadable: list[tuple[Path, list[tuple[int, int]]]],
        bad_segments: list[tuple[Path, str]],
    ) -> None:
        """Set damaged files aside, checkpoint what was read at once, and say what is lost."""
        lost: list[str] = []
        if damaged is not None:
            if self.path.exists():
                aside = set_aside(self.path)
                lost.append(f"{self.path.name} ({damaged}) moved aside to {aside.name}")
            for path in self._segment_files():  # named by the unreadable manifest, maybe
                lost.append(
                    f"{path.name} (its manifest is unreadable) kept as {set_aside(path).name}"
                )
            recovered = f"{self._describe()} recovered from journals"
            if journals and journals[0][0] > 0:
                lost.append(
                    f"the checkpoint covering journals before {journals[0][0]:06d} is missing: "
                    f"{self.what} recorded only there are lost; {recovered}"
                )
            elif journals:
                lost.append(
                    f"every journal since 000000 is present: {recovered}; anything only the "
                    "checkpoint held (a bulk load) is lost"
                )
            else:
                lost.append("no journal is left: the store starts empty")
        for path, problem in bad_segments:
            if path.exists():
                lost.append(f"{path.name} ({problem}) moved aside to {set_aside(path).name}")
            else:
                lost.append(f"{path.name} ({problem})")
            lost.append(
                f"{self.what} recorded only in {path.name} are lost; its journals are replayed"
            )
        for path, bad in unreadable:
            aside = set_aside(path)
            records = "record" if len(bad) == 1 else "records"
            lines = ", ".join(str(lineno) for lineno, _ in bad)
            lost.append(
                f"{len(bad)} unreadable {records} ({sum(size for _, size in bad)} bytes) at "
                f"{path.name} line{'s' if len(bad) > 1 else ''} {lines} dropped; the journal "
                f"is kept as {aside.name}"
            )
        self._write_checkpoint(self._rotate())
        for what in lost:
            self.logger.warning("repair: %s", what)
        self.logger.warning("repair: a fresh checkpoint holds everything that could be read")

    def _open_journal(self, seq: int) -> tuple[int, int]:
        """An append descriptor for journal ``seq`` and its current size."""
        path = self._journal_path(seq)
        existed = path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if not existed:
                fsync_dir(self.data_dir)
            return fd, os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None

    # -- writes ------------------------------------------------------------------------------

    def _apply(
        self, ops: list[Op], undo: list[Undo] | None = None, blobs: list[bytes | None] | None = None
    ) -> None:
        """Apply ops to the tables (and, through ``_changed``, the indexes); with ``undo``,
        append what each op replaced to it. ``blobs`` are the puts' encoded documents."""
        for i, op in enumerate(ops):
            table, key = op.table, op.key
            if isinstance(op, Put):
                doc = op.doc
                value: Stored = doc
                if table in self._blobs:
                    blob = blobs[i] if blobs is not None else None
                    value = blob if blob is not None else encode_row(doc)
                old = self._set(table, key, value)
                self._changed(table, key, old, value, doc)
            else:
                old = self._set(table, key, None)
                if old is not None:
                    self._changed(table, key, old, None, None)
            if undo is not None:
                undo.append((table, key, old))

    def _undo(self, undo: list[Undo]) -> None:
        """Put back what a transaction replaced, newest first."""
        for table, key, old in reversed(undo):
            current = self._set(table, key, old)
            if current is not None or old is not None:
                self._changed(table, key, current, old, old if isinstance(old, dict) else None)

    def _refusal(self) -> StoreFailed:
        return StoreFailed(f"the store is not accepting writes: {self.write_error}")

    async def commit(self, ops: list[Op]) -> None:
        """Apply ``ops`` as one transaction; returns once it is on disk.

        Applied to memory at once (so the next transaction sees it), acknowledged only after the
        batch it belongs to has been fsync-ed (and the :meth:`on_commit` hooks heard of it).
        Raises StoreFailed if the disk refused the write (then memory is as if it never happened)
        or while the store is degraded.
        """
        if self.write_error is not None:
            raise self._refusal()
        if not ops:
            return
        line, blobs = encode_line(ops)
        undo: list[Undo] = []
        self._apply(ops, undo, blobs)
        self._pending.append(line)
        self._pending_undo.append(undo)
        self._pending_ops.append(ops)
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        batch = self._batch
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        await asyncio.shield(batch)

    async def barrier(self) -> None:
        """Wait until everything already committed to memory is on disk (or refused)."""
        if self.write_error is not None:
            raise self._refusal()
        # The queued batch fails if the one in flight fails, so waiting on the last is enough.
        waiting = self._batch if self._batch is not None else self._inflight
        if waiting is not None:
            await asyncio.shield(waiting)

    async def _flush_loop(self) -> None:
        while self._pending:
            lines, self._pending = self._pending, []
            undo, self._pending_undo = self._pending_undo, []
            transactions, self._pending_ops = self._pending_ops, []
            batch, self._batch = self._batch, None
            assert batch is not None
            self._inflight = batch
            try:
                await asyncio.to_thread(self._append, b"".join(lines))
            except OSError as exc:
                self._refuse(exc, batch, undo)
                return
            finally:
                self._inflight = None
            self.stats["batches"] += 1
            self.stats["transactions"] += len(lines)
            self._journal_records += len(lines)
            batch.set_result(None)  # the committers resume after the hooks below have run
            if self._hooks:
                self._committed(transactions)
            self._maybe_checkpoint()

    def _refuse(self, exc: OSError, batch: asyncio.Future[None], undo: list[list[Undo]]) -> None:
        """Fail the batch and every transaction queued behind it, undoing them newest first.

        Later transactions were planned on top of the failed ones, so none of them may stand.
        """
        behind, self._batch = self._batch, None
        undo += self._pending_undo
        self._pending, self._pending_undo, self._pending_ops = [], [], []
        for inverse in reversed(undo):
            self._undo(inverse)
        self.write_error = f"journal write failed: {exc}"
        self.logger.error(
            "%s; %d transaction(s) refused and undone; writes are refused until the disk takes "
            "them again",
            self.write_error,
            len(undo),
        )
        batch.set_exception(self._refusal())
        if behind is not None:
            behind.set_exception(self._refusal())
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_writable())

    def _append(self, data: bytes) -> None:
        assert self._journal_fd is not None
        fd = self._journal_fd
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # else the probe cuts it before writes resume
                os.ftruncate(fd, self._journal_size)  # no fragment of a refused batch stays
                os.fsync(fd)
            raise
        self._journal_size += len(data)

    async def _probe_until_writable(self) -> None:
        """Degraded mode: retry a small write every second, resume writes once it lands."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            try:
                await asyncio.to_thread(self._probe_disk)
            except OSError as exc:
                self.logger.debug("the disk still refuses writes: %s", exc)
                continue
            self.logger.warning("writes resumed (they were refused: %s)", self.write_error)
            self.write_error = None
            return

    def _probe_disk(self) -> None:
        """Write and fsync a probe file (a little headroom), remove it, cut the journal back.

        Works on paths, never the journal's descriptors, so a close racing it cannot hurt.
        """
        probe = self.data_dir / PROBE_FILE
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(bytes(PROBE_BYTES))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            probe.unlink(missing_ok=True)
        cut(self._journal_path(self._journal_seq), self._journal_size)

    # -- checkpoints ---------------------------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        busy = self._checkpoint is not None and not self._checkpoint.done()
        if self._journal_records >= self._checkpoint_threshold() and not busy:
            # Rotate here, between two journal appends, never while one is in flight.
            try:
                snapshot = self._rotate()
            except OSError as exc:
                self.logger.error(
                    "checkpoint skipped, no new journal (%s); the old one goes on", exc
                )
                return
            self._checkpoint = asyncio.create_task(self._run_checkpoint(snapshot))

    async def _run_checkpoint(self, snapshot: Snapshot) -> None:
        started = time.perf_counter()
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, CHECKPOINT_SWITCH_S))
        try:
            await asyncio.to_thread(self._write_checkpoint, snapshot)
        except OSError as exc:  # the journal still holds everything: only space is at stake
            self.logger.error("checkpoint failed (the journal keeps every change): %s", exc)
            return
        finally:
            sys.setswitchinterval(switch)
        refreeze()
        self.logger.info(
            "checkpoint: %s in %.0f ms", self._describe(), (time.perf_counter() - started) * 1000
        )

    def _rotate(self) -> Snapshot:
        """Start a new journal and take a consistent shallow copy; runs between flushes.

        Only what the checkpoint writes is copied: the small tables, and of a segmented table
        the segments changed since the last checkpoint (every row, when most changed). Pending
        transactions (in memory, not yet written) are undone in the copy: they go to the new
        journal, so replay brings them back only once they are really on disk; their segments
        stay dirty for the next checkpoint.
        """
        fd, size = self._open_journal(self._journal_seq + 1)  # first: if it fails, nothing moved
        self._before_snapshot()
        snapshot = Snapshot(self._journal_seq + 1)
        for table in self.tables:
            rows = self._stored(table)
            if table not in self._dirty or len(rows) <= segments.SEGMENT_ABOVE:
                snapshot.inline[table] = dict(rows)
                continue
            dirty = self._dirty[table]
            current = self._layout.get(table)
            snapshot.dirty[table] = set(dirty)
            if current is None:
                snapshot.whole[table] = dict(rows)
                continue
            snapshot.keep[table] = {s: f for s, f in current.items() if s not in dirty}
            if len(dirty) * segments.SEGMENT_SPAN > len(rows) // 8:  # copying all is quicker
                snapshot.whole[table] = dict(rows)
            else:
                snapshot.parts[table] = {s: self._segment_rows(table, s) for s in dirty}
        for undo in reversed(self._pending_undo):
            for table, key, old in reversed(undo):
                target = snapshot.rows_for(table, key)
                if target is None:
                    continue  # its segment is not written this time
                if old is None:
                    target.pop(key, None)
                else:
                    target[key] = old
        self._close_journal()
        self._journal_fd, self._journal_size = fd, size
        self._journal_seq += 1
        self._journal_records = 0
        for dirty in self._dirty.values():
            dirty.clear()
        for undo in self._pending_undo:
            for table, key, _ in undo:
                if table in self._dirty:
                    self._dirty[table].add(segment_of(key))
        return snapshot

    def _segment_rows(self, table: str, segment: str) -> StoredRows:
        """A copy of one segment's rows, found by key (never by scanning the table)."""
        rows = self._stored(table)
        if segment == OTHER_SEGMENT:
            return {key: rows[key] for key in self._others[table] if key in rows}
        found: StoredRows = {}
        start = int(segment) * segments.SEGMENT_SPAN
        for n in range(start, start + segments.SEGMENT_SPAN):
            key = str(n)
            row = rows.get(key)
            if row is not None:
                found[key] = row
        return found

    def _write_checkpoint(self, snapshot: Snapshot) -> None:
        """Changed segments (under new names), then the manifest naming them, then clean up."""
        try:
            layout = write_segments(self.data_dir, snapshot, self._summarize)
            segments = {t: files for t, files in layout.items() if files}
            meta: JsonObject = {
                "schema": 2 if segments else 1,
                "journal": snapshot.seq,
                "written": time.time(),
            }
            if segments:
                meta["segments"] = segments
            AtomicJSONStorage(self.path).write({"_meta": {"1": meta}, **snapshot.inline})
        except BaseException:
            for table, dirty in snapshot.dirty.items():
                self._dirty[table] |= dirty  # written again next time
            raise
        self._layout = segments
        for old_seq, path in self._journals():
            if old_seq < snapshot.seq:
                path.unlink(missing_ok=True)
        self._remove_unnamed()
        self.stats["checkpoints"] += 1


def _parse_checkpoint(
    path: Path, raw: bytes, tables: Iterable[str]
) -> tuple[JsonObject | None, str | None]:
    """The checkpoint's data, or None and what is wrong with it.

    Every checkpoint we write has ``_meta`` naming its journal, so one without it (``{}``, an
    emptied file) is damage, not an empty store. A newer schema is refused outright.
    """
    if not raw.strip():
        return None, "the file is empty"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"the file is not valid JSON ({exc})"
    meta = data.get("_meta") if isinstance(data, dict) else None
    meta = meta.get("1") if isinstance(meta, dict) else None
    if not isinstance(meta, dict):
        return None, "the file has no _meta record, so it is not a checkpoint anomaly-desk wrote"
    version = meta.get("schema", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer anomaly-desk (schema {version}; "
            f"this one reads up to {SCHEMA_VERSION})"
        )
    if not isinstance(meta.get("journal"), int):
        return None, "its _meta record names no journal"
    for table in tables:
        if not isinstance(data.get(table, {}), dict):
            return None, f"its table {table!r} is not an object"
    return data, None


def _read_holder(fd: int) -> Holder:
    try:
        holder = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(holder, dict):
        return {}
    found = Holder()
    for key in ("pid", "url", "since"):
        if key in holder:
            found[key] = holder[key]
    return found
