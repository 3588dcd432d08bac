"""The cold archive: anomalies archived long ago, out of the hot store (issue #16).

Why: a store of a million anomalies, most of them archived for good, must still open in seconds
and keep a webhook's cost flat. The hot store holds every row in memory; this archive holds only
a sorted ``array('q')`` of ids and one of *locations* (8 bytes each), plus the links of the
anomalies that have tickets (the poller reads those tickets back).

On disk, under ``<data_dir>/archive/`` (0700, every file 0600):

* ``YYYY-MM.jsonl.gz``: the anomalies archived (by their ``updated_at``) in that month,
  append-only. Each compaction appends gzip members of up to :data:`MEMBER_ROWS` lines and
  fsyncs them; concatenated members are one valid gzip file (``zcat`` reads it). A line is
  ``{"id":…,"seq":…,"doc":{…}}``: the stored row as it was, and the run that wrote it.
* ``YYYY-MM.text``: the month's search-text sidecar (:mod:`anomaly_desk.core.archive_text`),
  one line per record appended (member offset, id, sort key and status, lower-cased search
  text), appended and fsynced in the same step as the month's members.
* ``index``: the ids, their locations (month and member offset of the *last* record of each id,
  the one with the highest ``seq``), the links, how many bytes of each month file and of each
  sidecar it covers (and the sidecar's CRC), each month's highest sort key, and the *listing*:
  every current record's sort key and status, newest first; written atomically (temp file,
  fsync, rename) at the end of a run.

A page newest first without text walks the listing (read from the index when first asked for)
and reads only the members of the rows it shows; a search with text finds its candidates in the
sidecars (``bytes.find`` over a map of the file: nothing inflated, nothing kept in memory), in
the months in the order of their highest key until no month left can hold a newer one, and reads
only the members of the newest candidates until the page is full. An index written before the
listing existed is rebuilt from the months on opening (once); a sidecar missing, short or not
matching its CRC (an older archive, a crash, a deleted file) is rebuilt from its month.

Opening reads the index only. A month file longer than the index says (a crash after the
append, before the index) has its tail scanned (and its sidecar lines written again after what
the index covers); a member cut short by a crash (it never got to the hot store's deletion,
which follows the fsync) is cut off. A missing or unreadable index is
rebuilt by scanning every month.

Rows here are stored JSON (``JsonObject``) like the journal's; the store turns them into
documents and views at its boundary. An id both hot and here is hot: the hot store wins
(:class:`anomaly_desk.core.store.Store` asks here only for ids it does not hold).
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import logging
import os
import re
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Collection, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, Self

import orjson

from anomaly_desk.core import archive_text, durable_files
from anomaly_desk.core.durable_files import fsync_dir
from anomaly_desk.core.jsontypes import JsonObject

log = logging.getLogger(__name__)

ARCHIVE_DIR = "archive"
INDEX_FILE = "index"
MAGIC = b"anomaly-desk cold archive 1\n"
UNKNOWN_STATUS = 255  # a listing status code: not in its table (read the row to know)
MEMBER_ROWS = 256  # lines per gzip member: a lookup decompresses one member, never a month
COMPRESS_LEVEL = 6
_MONTH_FILE = re.compile(r"^(\d{4})-(\d{2})\.jsonl\.gz$")
_PREFIX = re.compile(rb'\{"id":(-?\d+),"seq":(\d+),')
_READ = 1 << 16
_BATCH = 8  # candidates of a text search read at least at a time (newest first, page full)
_OFFSET_BITS = 40  # a location: month code above, member offset below (months up to 1 TiB)
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1


class ColdLink(NamedTuple):
    """A ticket linked to a cold anomaly: enough for the poller to read it back."""

    anomaly_id: int
    link_id: str
    connection: str
    ticket_key: str
    ticket_id: str
    cursor: str | None  # the ticket's ``updated`` when last read (inbound_at), else linked_at
    table: str | None = None  # ServiceNow: the record's table, when not the connection's default
    fingerprint: str | None = None  # the anomaly's: a new one with it is a recurrence (#13)


@dataclass(frozen=True, slots=True)
class MonthInfo:
    name: str  # 2026-10
    bytes: int
    anomalies: int  # current records (the last of their id) in this month


def month_of(row: JsonObject) -> str:
    """The month an anomaly was archived in: of its ``updated_at`` (its last change)."""
    for key in ("updated_at", "received_at", "created"):
        value = row.get(key)
        if isinstance(value, str) and len(value) >= 7 and value[4] == "-":
            year, month = value[:4], value[5:7]
            if year.isdigit() and month.isdigit() and 1 <= int(month) <= 12:
                return f"{year}-{month}"
    return time.strftime("%Y-%m", time.gmtime())


def _code(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def _name(code: int) -> str:
    return f"{code // 12:04d}-{code % 12 + 1:02d}"


def search_text(row: JsonObject) -> str:
    """What ``q`` matches, as the hot store's search index holds it: id, where, fields,
    message, type and linked ticket keys (lower-cased)."""
    parts = [
        str(row.get("id")),
        (row.get("datastore") or {}).get("name") or "",
        (row.get("container") or {}).get("name") or "",
        " ".join(row.get("fields") or ()),
        row.get("message") or "",
        row.get("type") or "",
        " ".join(link.get("ticket_key", "") for link in row.get("links") or ()),
    ]
    return "\n".join(str(p) for p in parts).lower()


def sort_key(row: JsonObject) -> tuple[str, int]:
    """Newest first, as the hot list orders: detection time, then id (a time that is not a
    string, in odd data, compares as its text)."""
    value = row.get("created") or row.get("received_at") or ""
    return (value if isinstance(value, str) else str(value), int(row["id"]))


Key = tuple[bytes, int]
"""A sort key as the listing holds it: the time UTF-8 encoded (which orders as the str)."""
Entry = tuple[Key, str | None]
"""A listing entry: a record's key and status (None: not a string; read the row)."""


def _key(row: JsonObject) -> Key:
    text, anomaly_id = sort_key(row)
    return (text.encode(), anomaly_id)


def _status(row: JsonObject) -> str | None:
    value = row.get("status")
    return value if isinstance(value, str) else None


def _text_line(offset: int, anomaly_id: int, row: JsonObject) -> bytes:
    """A record's line in its month's search-text sidecar."""
    return archive_text.line(offset, anomaly_id, sort_key(row)[0], _status(row), search_text(row))


@dataclass(frozen=True, slots=True)
class _Listing:
    """Every current record's sort key and status, newest first: a page without text is a walk
    of this, not a scan of the months. Rebuilt (from itself and what came since) when the index
    is written."""

    ids: array[int]
    ends: array[int]  # where each key ends in ``keys``
    keys: bytes
    statuses: bytes  # a code per record: an index in ``names``, or UNKNOWN_STATUS
    names: tuple[str, ...]

    def key(self, i: int) -> Key:
        return (self.keys[self.ends[i - 1] if i else 0 : self.ends[i]], self.ids[i])

    def status(self, i: int) -> str | None:
        code = self.statuses[i]
        return None if code == UNKNOWN_STATUS else self.names[code]

    def after(self, position: Key | None) -> int:
        """The first index whose key is below ``position`` (descending order)."""
        lo, hi = 0, len(self.ids)
        if position is None:
            return 0
        while lo < hi:
            mid = (lo + hi) // 2
            if self.key(mid) >= position:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def to_bytes(self) -> bytes:
        return self.ids.tobytes() + self.ends.tobytes() + self.statuses + self.keys

    @classmethod
    def of(cls, entries: list[tuple[Key, str | None]]) -> _Listing:
        """From ``(key, status)`` newest first."""
        names: dict[str, int] = {}
        ids, ends, codes = array("q"), array("i"), bytearray()
        parts: list[bytes] = []
        end = 0
        for (text, anomaly_id), status in entries:
            ids.append(anomaly_id)
            end += len(text)
            ends.append(end)
            parts.append(text)
            if status is None:
                code = UNKNOWN_STATUS
            else:
                code = names.setdefault(status, len(names))
                if code >= UNKNOWN_STATUS:
                    code = UNKNOWN_STATUS
            codes.append(code)
        table = tuple(name for name, code in names.items() if code < UNKNOWN_STATUS)
        return cls(ids, ends, b"".join(parts), bytes(codes), table)

    @classmethod
    def from_bytes(cls, raw: bytes, count: int, names: tuple[str, ...]) -> _Listing:
        ids, ends = array("q"), array("i")
        ids.frombytes(raw[: 8 * count])
        ends.frombytes(raw[8 * count : 12 * count])
        statuses = raw[12 * count : 13 * count]
        keys = raw[13 * count :]
        if len(statuses) != count or (count and ends[-1] != len(keys)):
            raise ValueError("listing: sizes do not agree")
        return cls(ids, ends, keys, statuses, names)


_EMPTY = _Listing(array("q"), array("i"), b"", b"", ())


def _links_of(row: JsonObject) -> tuple[ColdLink, ...]:
    found = []
    for link in row.get("links") or ():
        if isinstance(link, dict) and link.get("id") and link.get("connection"):
            found.append(
                ColdLink(
                    int(row["id"]),
                    str(link["id"]),
                    str(link["connection"]),
                    str(link.get("ticket_key") or ""),
                    str(link.get("ticket_id") or ""),
                    link.get("inbound_at") or link.get("linked_at"),
                    link.get("table"),
                    None if row.get("fingerprint") is None else str(row["fingerprint"]),
                )
            )
    return tuple(found)


class ArchiveDamaged(Exception):
    """A month file cannot be read where the index says a record is."""


class ColdArchive:
    """The archive of one data directory; its owner holds the data directory's lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # sorted ids and the location of each one's last record, replaced together (one
        # assignment), so a reader in another thread never pairs an id with another's location
        self._sorted: tuple[array[int], array[int]] = (array("q"), array("q"))
        self._recent: dict[int, int] = {}  # added since the arrays were built (id → location)
        self._link_map: dict[int, tuple[ColdLink, ...]] | None = {}  # None: not read yet
        self._link_bytes = b"[]"  # the index's links, read when first asked for (the poller)
        self._link_lock = threading.Lock()
        self._fingerprints: dict[str, set[int]] | None = None  # built from the links on demand
        self._covered: dict[str, int] = {}  # month → bytes the index accounts for
        self.generation = 0  # changes with every append or deletion (caches of searches)
        # the listing: None while it is still only in the index file (at _listing_at: offset,
        # length, crc, count, status names); _listed holds what came since (id → key, status)
        self._listing_snap: _Listing | None = _EMPTY
        self._listing_at: tuple[int, int, int, int, tuple[str, ...]] | None = None
        self._listed: dict[int, tuple[Key, str | None]] = {}
        self._listed_sorted: tuple[int, list[tuple[Key, str | None]]] = (-1, [])
        self._listing_stale = False  # months dropped: the listing may name ids gone since
        self._listing_lock = threading.RLock()  # a search (a thread) and an append (another)
        # per month an upper bound of its records' sort keys: a search stops before a month
        # that cannot hold a newer row than its page's last (a month without one: scanned)
        self._month_max: dict[str, Key] = {}
        self._old_format = False
        # per month the search-text sidecar's covered length and CRC (archive_text), the months
        # whose sidecar was checked against them, and a lock for appending to or rebuilding one
        self._text: dict[str, tuple[int, int]] = {}
        self._text_ok: set[str] = set()
        self._text_lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> Self:
        """Read the index (scan only what it does not cover). No directory: an empty archive."""
        if not self.path.is_dir():
            return self
        _private_dir(self.path)
        with contextlib.suppress(FileNotFoundError):
            (self.path / f".{INDEX_FILE}.tmp").unlink()
        if not self._read_index():
            started = time.perf_counter()
            self._rebuild()
            log.warning(
                "cold archive: index %s, rebuilt from %d month file(s) (%d anomalies) in %.1f s",
                "of an older format (no listing)" if self._old_format else "missing or unreadable",
                len(self._covered),
                len(self),
                time.perf_counter() - started,
            )
            self._open_texts({})
            self._save_index_if_possible()
            return self
        behind = False
        tails: dict[str, list[bytes]] = {}
        for month, path in self._month_files():
            covered = self._covered.get(month, 0)
            size = path.stat().st_size
            if size < covered:  # shorter than indexed: trust nothing, read everything again
                log.warning("cold archive: %s is shorter than its index says; rebuilding", path)
                self._rebuild()
                self._open_texts({})
                self._save_index_if_possible()
                return self
            if size > covered:
                tails[month] = self._scan_tail(month, path, covered)
                behind = True
        missing = [m for m in self._covered if not self._month_path(m).exists()]
        if missing:  # deleted (delete_after_days) before the index said so, or by hand
            log.warning("cold archive: month file(s) gone: %s; forgotten", ", ".join(missing))
            self._drop_months(set(missing))
            behind = True
        if self._open_texts(tails):
            behind = True
        if behind:
            self._merge()
            self._save_index_if_possible()
        return self

    def _save_index_if_possible(self) -> None:
        """At open the index is an optimisation (what it says is in memory now): a full disk
        must not keep the desk from starting; the next compaction or open writes it."""
        try:
            self.save_index()
        except OSError as exc:
            log.warning("cold archive: index not saved (%s); it is rebuilt at the next open", exc)

    def _read_index(self) -> bool:
        try:
            raw = (self.path / INDEX_FILE).read_bytes()
        except FileNotFoundError:
            return False
        if not raw.startswith(MAGIC):
            return False
        end = raw.find(b"\n", len(MAGIC))
        try:
            header = orjson.loads(raw[len(MAGIC) : end])
            count = int(header["count"])
            if "listing" not in header:  # written before the listing: rebuilt, once
                self._old_format = True
                return False
            body = raw[end + 1 : end + 1 + 16 * count]
            links_at = end + 1 + 16 * count
            listing_at = links_at + int(header["links_len"])
            link_bytes = raw[links_at:listing_at]
            if len(body) != 16 * count or zlib.crc32(body) != header["crc"]:
                return False
            if zlib.crc32(link_bytes) != header["links_crc"]:
                return False
            listing = header["listing"]
            at = (
                listing_at,
                len(raw) - listing_at,
                int(listing["crc"]),
                int(listing["count"]),
                tuple(str(name) for name in listing["statuses"]),
            )
            ids, locs = array("q"), array("q")
            ids.frombytes(body[: 8 * count])
            locs.frombytes(body[8 * count :])
            covered = {str(k): int(v) for k, v in header["months"].items()}
            month_max = {str(k): (str(v[0]).encode(), int(v[1])) for k, v in header["max"].items()}
            texts = {str(k): (int(v[0]), int(v[1])) for k, v in header.get("text", {}).items()}
        except (KeyError, TypeError, ValueError, IndexError, orjson.JSONDecodeError):
            return False
        self._sorted, self._covered = (ids, locs), covered
        self._link_map, self._link_bytes = None, link_bytes
        self._recent = {}
        with self._listing_lock:
            self._listing_snap, self._listing_at, self._listed = None, at, {}
            self._listing_stale = False
        self._month_max = month_max
        self._text, self._text_ok = texts, set()
        return True

    def _open_texts(self, tails: dict[str, list[bytes]]) -> bool:
        """Each month's search-text sidecar as the index says, plus the lines of the records
        read back from its month's tail (``tails``); a sidecar that is missing or shorter than
        indexed (an older archive, a crash, deleted) is rebuilt from its month. Whether any
        changed (the index is then behind). Its bytes are checked against the CRC at first use."""
        for path in self.path.glob(f"*{archive_text.SUFFIX}"):
            if path.name.removesuffix(archive_text.SUFFIX) not in self._covered:
                path.unlink(missing_ok=True)  # of a month deleted since (delete_after_days)
        for path in self.path.glob(f".*{archive_text.SUFFIX}.tmp"):
            path.unlink(missing_ok=True)  # a rebuild cut short
        for month in [m for m in self._text if m not in self._covered]:
            del self._text[month]
        changed = False
        rebuilt: list[str] = []
        started = time.perf_counter()
        for month in sorted(self._covered):
            path = self._text_path(month)
            known = self._text.get(month)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = -1
            if known is None or size < known[0]:
                self._build_text(month)
                rebuilt.append(month)
                changed = True
                continue
            tail = b"".join(tails.get(month, ()))
            if size > known[0] or tail:  # a crash after the append, before the index
                archive_text.append(path, known[0], tail)
                self._text[month] = (known[0] + len(tail), zlib.crc32(tail, known[1]))
                changed = True
        if rebuilt:
            log.warning(
                "cold archive: search text of %d month(s) (%s) missing, short or older than the "
                "index; rebuilt from the month files in %.1f s",
                len(rebuilt),
                ", ".join(rebuilt),
                time.perf_counter() - started,
            )
        return changed

    def _build_text(self, month: str) -> None:
        """A month's sidecar written anew from its month file (every record it covers)."""

        def chunks() -> Iterator[bytes]:
            path = self._month_path(month)
            for offset, _, data in self._members(path, 0, stop=self._covered.get(month, 0)):
                lines = []
                for line in data.splitlines():
                    found = _PREFIX.match(line)
                    if found is not None:
                        row: JsonObject = orjson.loads(line)["doc"]
                        lines.append(_text_line(offset, int(found[1]), row))
                yield b"".join(lines)

        self._text[month] = archive_text.replace(self._text_path(month), chunks())
        self._text_ok.add(month)

    def _text_path(self, month: str) -> Path:
        return self.path / f"{month}{archive_text.SUFFIX}"

    def _listing(self) -> _Listing:
        """The listing as the index last wrote it; read from the file when first asked for (a
        start pays nothing for it). Unreadable there: built by a scan of the months."""
        with self._listing_lock:
            if self._listing_snap is not None:
                return self._listing_snap
            snap = None
            if self._listing_at is not None:
                offset, length, crc, count, names = self._listing_at
                with open(self.path / INDEX_FILE, "rb") as fh:
                    fh.seek(offset)
                    raw = fh.read(length)
                if len(raw) == length and zlib.crc32(raw) == crc:
                    with contextlib.suppress(ValueError):
                        snap = _Listing.from_bytes(raw, count, names)
            if snap is None:
                log.warning("cold archive: the index's listing is unreadable; scanning the months")
                snap = self._scan_listing()
                self._listed = {}
            self._listing_snap, self._listing_at = snap, None
            return snap

    def _scan_listing(self) -> _Listing:
        """Every current record's key and status, read from the months (the index lost it)."""
        entries: list[tuple[Key, str | None]] = []
        for month, size in sorted(self._covered.items()):
            code = _code(month)
            for offset, _, data in self._members(self._month_path(month), 0, stop=size):
                loc = (code << _OFFSET_BITS) | offset
                for line in data.splitlines():
                    found = _PREFIX.match(line)
                    if found is not None and self._loc(int(found[1])) == loc:
                        row: JsonObject = orjson.loads(line)["doc"]
                        entries.append((_key(row), _status(row)))
        entries.sort(reverse=True)
        return _Listing.of(entries)

    def _fold_listing(self) -> _Listing:
        """The listing with what came since merged in (newest first), and ids gone dropped."""
        with self._listing_lock:
            base = self._listing()
            if not self._listed and not self._listing_stale:
                return base
            listed = self._listed
            stale = self._listing_stale
            newer = sorted(((key, status) for key, status in listed.values()), reverse=True)
            if stale:
                newer = [entry for entry in newer if self._loc(entry[0][1]) is not None]
            kept = (
                (base.key(i), base.status(i))
                for i, anomaly_id in enumerate(base.ids)
                if anomaly_id not in listed and (not stale or self._loc(anomaly_id) is not None)
            )
            snap = _Listing.of(list(heapq.merge(kept, newer, reverse=True)))
            self._listing_snap, self._listed, self._listing_stale = snap, {}, False
            return snap

    def _links(self) -> dict[int, tuple[ColdLink, ...]]:
        """Cold anomalies' links by anomaly id; parsed from the index on first use, so opening
        pays only for the id arrays."""
        with self._link_lock:  # the poller (event loop) and an append (a thread) may both ask
            if self._link_map is None:
                found: dict[int, tuple[ColdLink, ...]] = {}
                for entry in orjson.loads(self._link_bytes):
                    link = ColdLink(*entry)
                    found[link.anomaly_id] = (*found.get(link.anomaly_id, ()), link)
                self._link_map, self._link_bytes = found, b""
            return self._link_map

    def save_index(self) -> None:
        """Write the index atomically (everything appended so far is in it)."""
        self._merge()
        ids, locs = self._sorted
        body = ids.tobytes() + locs.tobytes()
        link_bytes = orjson.dumps(
            [list(link) for links in self._links().values() for link in links]
        )
        listing = self._fold_listing()
        listing_bytes = listing.to_bytes()
        header = {
            "count": len(ids),
            "crc": zlib.crc32(body),
            "links_len": len(link_bytes),
            "links_crc": zlib.crc32(link_bytes),
            "months": self._covered,
            "max": {
                month: [key.decode(), anomaly_id]
                for month, (key, anomaly_id) in self._month_max.items()
                if month in self._covered
            },
            "text": {month: list(value) for month, value in self._text.items()},
            "listing": {
                "count": len(listing.ids),
                "crc": zlib.crc32(listing_bytes),
                "statuses": listing.names,
            },
            "written": time.time(),
        }
        self._ensure_dir()
        tmp = self.path / f".{INDEX_FILE}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with open(fd, "wb") as fh:
                fh.write(MAGIC + orjson.dumps(header) + b"\n" + body + link_bytes)
                fh.write(listing_bytes)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / INDEX_FILE)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.path)

    def _rebuild(self) -> None:
        """Every month file scanned: for each id its record with the highest ``seq``."""
        self._sorted, self._recent, self._link_map, self._covered = (
            (array("q"), array("q")),
            {},
            {},
            {},
        )
        self._text, self._text_ok = {}, set()  # rebuilt from the months (_open_texts)
        best: dict[int, tuple[int, int, Key, str | None]] = {}  # id → (seq, location, key, status)
        links: dict[int, tuple[ColdLink, ...]] = {}
        self._month_max = {}
        for month, path in self._month_files():
            end = 0
            top: Key | None = None
            for offset, member_end, data in self._members(path, 0, cut=True):
                loc = (_code(month) << _OFFSET_BITS) | offset
                for line in data.splitlines():
                    found = _PREFIX.match(line)
                    if found is None:
                        continue
                    anomaly_id, seq = int(found[1]), int(found[2])
                    if anomaly_id in best and best[anomaly_id][0] > seq:
                        continue
                    row: JsonObject = orjson.loads(line)["doc"]
                    key = _key(row)
                    top = key if top is None else max(top, key)
                    best[anomaly_id] = (seq, loc, key, _status(row))
                    links.pop(anomaly_id, None)
                    row_links = _links_of(row)
                    if row_links:
                        links[anomaly_id] = row_links
                end = member_end
            self._covered[month] = end
            if top is not None:
                self._month_max[month] = top
        self._recent = {anomaly_id: loc for anomaly_id, (_, loc, _, _) in best.items()}
        self._link_map = links
        with self._listing_lock:
            self._listing_snap = _Listing.of(
                sorted(((key, status) for _, _, key, status in best.values()), reverse=True)
            )
            self._listing_at, self._listed, self._listing_stale = None, {}, False
        self._merge()
        self.generation += 1
        self._fingerprints = None

    def _scan_tail(self, month: str, path: Path, start: int) -> list[bytes]:
        """Records appended after the index was written (a crash in between): the newest. Their
        search-text lines."""
        end = start
        lines: list[bytes] = []
        for offset, member_end, data in self._members(path, start, cut=True):
            loc = (_code(month) << _OFFSET_BITS) | offset
            for line in data.splitlines():
                found = _PREFIX.match(line)
                if found is None:
                    continue
                anomaly_id = int(found[1])
                self._recent[anomaly_id] = loc
                self._links().pop(anomaly_id, None)
                row: JsonObject = orjson.loads(line)["doc"]
                lines.append(_text_line(offset, anomaly_id, row))
                self._list(month, [row])
                row_links = _links_of(row)
                if row_links:
                    self._links()[anomaly_id] = row_links
            end = member_end
        self._covered[month] = end
        log.warning(
            "cold archive: %s had %d bytes past its index (a compaction was cut short); "
            "read them back",
            path.name,
            end - start,
        )
        return lines

    def _list(self, month: str, rows: list[JsonObject]) -> None:
        """Records just appended (or read back from a tail): in the listing, and in their
        month's highest key."""
        entries = [(_key(row), _status(row)) for row in rows]
        if not entries:
            return
        with self._listing_lock:
            for entry in entries:
                self._listed[entry[0][1]] = entry
        newest = max(key for key, _ in entries)
        top = self._month_max.get(month)
        if top is None or newest > top:
            self._month_max[month] = newest

    def _members(
        self, path: Path, start: int, *, cut: bool = False, stop: int | None = None
    ) -> Generator[tuple[int, int, bytes], None, None]:
        """``(offset, end, decompressed)`` of each complete member from ``start`` (to ``stop``).

        With ``cut``, a member cut short at the end of the file (a crash mid-append: its rows
        never left the hot store, which waits for the fsync) is cut off, durably; anything else
        unreadable is damage, refused (:class:`ArchiveDamaged`)."""
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below; a generator holds it
        except FileNotFoundError:
            return
        with fh:
            fh.seek(start)
            offset = start
            buffer = b""
            limit = stop
            while True:
                if not buffer:
                    want = _READ if limit is None else min(_READ, limit - offset)
                    buffer = fh.read(want) if want > 0 else b""
                    if not buffer:
                        return
                inflater = zlib.decompressobj(31)
                parts: list[bytes] = []
                consumed = 0
                try:
                    while True:
                        parts.append(inflater.decompress(buffer))
                        if inflater.eof:
                            consumed += len(buffer) - len(inflater.unused_data)
                            buffer = inflater.unused_data
                            break
                        consumed += len(buffer)
                        want = _READ if limit is None else min(_READ, limit - offset - consumed)
                        buffer = fh.read(want) if want > 0 else b""
                        if not buffer:
                            raise EOFError("member cut short")
                except (zlib.error, EOFError) as exc:
                    torn = isinstance(exc, EOFError) or _zeros_from(path, offset)
                    if not (cut and torn):
                        raise ArchiveDamaged(
                            f"{path}: unreadable at byte {offset} ({exc}); restore the file from "
                            "a backup (or move it aside: the anomalies in it are then lost)"
                        ) from None
                    size = path.stat().st_size
                    log.warning(
                        "cold archive: %s: cut %d bytes at %d left by an interrupted "
                        "compaction (%s); the hot store still holds what they were",
                        path.name,
                        size - offset,
                        offset,
                        exc,
                    )
                    durable_files.cut(path, offset)
                    return
                yield offset, offset + consumed, b"".join(parts)
                offset += consumed

    def _month_files(self) -> list[tuple[str, Path]]:
        found = []
        for path in self.path.glob("*.jsonl.gz"):
            if _MONTH_FILE.match(path.name):
                found.append((path.name[:7], path))
        return sorted(found)

    def _month_path(self, month: str) -> Path:
        return self.path / f"{month}.jsonl.gz"

    def _ensure_dir(self) -> None:
        if not self.path.is_dir():
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fsync_dir(self.path.parent)
        _private_dir(self.path)

    # -- the in-memory index -----------------------------------------------------------------

    def _merge(self) -> None:
        """Fold the ids added lately into the sorted arrays (once per run, not per id)."""
        if not self._recent:
            return
        recent = dict(self._recent)
        merged = dict(zip(*self._sorted, strict=True))
        merged.update(recent)
        ids = sorted(merged)
        self._sorted = (array("q", ids), array("q", (merged[i] for i in ids)))
        for anomaly_id, loc in recent.items():  # only what was merged: never a newer one
            if self._recent.get(anomaly_id) == loc:
                del self._recent[anomaly_id]

    def _loc(self, anomaly_id: int) -> int | None:
        loc = self._recent.get(anomaly_id)
        if loc is not None:
            return loc
        ids, locs = self._sorted
        i = bisect.bisect_left(ids, anomaly_id)
        if i < len(ids) and ids[i] == anomaly_id:
            return locs[i]
        return None

    def __contains__(self, anomaly_id: object) -> bool:
        """The membership test a webhook pays for: a dict lookup and a bisect."""
        return isinstance(anomaly_id, int) and self._loc(anomaly_id) is not None

    def __len__(self) -> int:
        return len(self._sorted[0]) + sum(1 for i in self._recent if not self._in_arrays(i))

    def _in_arrays(self, anomaly_id: int) -> bool:
        ids = self._sorted[0]
        i = bisect.bisect_left(ids, anomaly_id)
        return i < len(ids) and ids[i] == anomaly_id

    def ids(self) -> Iterator[int]:
        """Every archived id, ascending (restored ones too: the store tells which are hot)."""
        self._merge()
        return iter(self._sorted[0])

    def with_fingerprint(self, fingerprint: str) -> set[int]:
        """Cold anomalies with tickets that carry this fingerprint (a recurrence finds them);
        a dict lookup once built (again after each change of the links)."""
        found = self._fingerprints
        if found is None:
            found = {}
            for links in list(self._links().values()):
                for link in links:
                    if link.fingerprint is not None:
                        found.setdefault(link.fingerprint, set()).add(link.anomaly_id)
            self._fingerprints = found
        return found.get(fingerprint, set())

    def links(self, connection: str | None = None) -> list[ColdLink]:
        return [
            link
            for links in self._links().values()
            for link in links
            if connection is None or link.connection == connection
        ]

    # -- reading ---------------------------------------------------------------------------

    def get(self, anomaly_id: int) -> JsonObject | None:
        """The last record of ``anomaly_id``: one member read and decompressed."""
        loc = self._loc(anomaly_id)
        if loc is None:
            return None
        path = self._month_path(_name(loc >> _OFFSET_BITS))
        prefix = b'{"id":%d,' % anomaly_id
        for _, _, data in self._members(path, loc & _OFFSET_MASK):
            if data.startswith(prefix):
                start = 0
            else:
                start = data.find(b"\n" + prefix) + 1
                if start == 0:
                    break
            end = data.find(b"\n", start)
            doc: JsonObject = orjson.loads(data[start : end if end >= 0 else None])["doc"]
            return doc
        raise ArchiveDamaged(f"{path}: anomaly {anomaly_id} is not where the index says")

    def months(self) -> list[MonthInfo]:
        self._merge()
        counts: dict[int, int] = {}
        for loc in self._sorted[1]:
            code = loc >> _OFFSET_BITS
            counts[code] = counts.get(code, 0) + 1
        return [
            MonthInfo(month, size, counts.get(_code(month), 0))
            for month, size in sorted(self._covered.items())
        ]

    def search(
        self,
        needle: str,
        statuses: Collection[str] | None,
        limit: int,
        after: tuple[str, int] | None = None,
        hot: Callable[[int], bool] = lambda _: False,
    ) -> tuple[list[JsonObject], tuple[str, int] | None]:
        """A page of current records that match, newest first, and where the next page starts.

        Without text, a walk of the listing (newest first) that reads only the members of the
        rows shown. With text, a scan of the months (slower than the hot store, which the API
        says). ``hot`` says which ids the hot store holds again (they are not cold any more)."""
        text = needle.strip().lower()
        if text:
            found_rows = self._scan(text, statuses, limit, after, hot)
        else:
            found_rows = self._walk(statuses, limit, after, hot)
        more = len(found_rows) > limit
        page = found_rows[:limit]
        return page, (sort_key(page[-1]) if more and page else None)

    def _newer(self) -> tuple[_Listing, dict[int, tuple[Key, str | None]], list[Entry]]:
        """The listing, what came since (by id), and that sorted newest first (kept until the
        next append)."""
        with self._listing_lock:
            base = self._listing()
            generation, newer = self._listed_sorted
            if generation != self.generation or len(newer) != len(self._listed):
                newer = sorted(self._listed.values(), reverse=True)
                self._listed_sorted = (self.generation, newer)
            return base, dict(self._listed), newer

    def _walk(
        self,
        statuses: Collection[str] | None,
        limit: int,
        after: tuple[str, int] | None,
        hot: Callable[[int], bool],
    ) -> list[JsonObject]:
        """The newest ``limit + 1`` current records below ``after`` in these statuses."""
        base, listed, newer = self._newer()
        wanted = None if statuses is None else set(statuses)
        position = None if after is None else (after[0].encode(), after[1])
        i, j = base.after(position), _below(newer, position)
        mask = None  # with statuses: 1 where the listing's status may be one of them
        if wanted is not None:
            codes = [1 if name in wanted else 0 for name in base.names]
            table = bytes(codes + [0] * (UNKNOWN_STATUS - len(codes)) + [1])
            mask = base.statuses.translate(table)
        picked: list[int] = []
        rows: dict[int, JsonObject] = {}
        while len(picked) <= limit:
            if mask is not None and i < len(base.ids) and not mask[i]:
                i = mask.find(1, i)  # a run of other statuses skipped at C speed
                if i < 0:
                    i = len(base.ids)
            if i < len(base.ids) and (j >= len(newer) or base.key(i) > newer[j][0]):
                anomaly_id, status = base.ids[i], base.status(i)
                i += 1
                if anomaly_id in listed:
                    continue  # written again since: its entry in ``newer`` counts
            elif j < len(newer):
                (_, anomaly_id), status = newer[j]
                j += 1
            else:
                break
            if self._loc(anomaly_id) is None or hot(anomaly_id):
                continue  # gone with its month, or hot again
            if wanted is not None:
                if status is None:
                    row = self.get(anomaly_id)
                    if row is None or row.get("status") not in wanted:
                        continue
                    rows[anomaly_id] = row
                elif status not in wanted:
                    continue
            picked.append(anomaly_id)
        rows.update(self._rows([i for i in picked if i not in rows]))
        return [rows[anomaly_id] for anomaly_id in picked]

    def _rows(self, wanted: list[int]) -> dict[int, JsonObject]:
        """The last records of these ids, each member read once."""
        by_loc: dict[int, set[int]] = {}
        for anomaly_id in wanted:
            loc = self._loc(anomaly_id)
            if loc is not None:
                by_loc.setdefault(loc, set()).add(anomaly_id)
        found: dict[int, JsonObject] = {}
        for loc, ids in sorted(by_loc.items()):
            path = self._month_path(_name(loc >> _OFFSET_BITS))
            members = self._members(path, loc & _OFFSET_MASK)
            try:
                _, _, data = next(members)
            except StopIteration:
                data = b""
            finally:
                members.close()
            for line in data.splitlines():
                hit = _PREFIX.match(line)
                if hit is not None and int(hit[1]) in ids and int(hit[1]) not in found:
                    found[int(hit[1])] = orjson.loads(line)["doc"]
            missing = ids - found.keys()
            if missing:
                raise ArchiveDamaged(f"{path}: anomaly {min(missing)} is not where the index says")
        return found

    def _scan(
        self,
        text: str,
        statuses: Collection[str] | None,
        limit: int,
        after: tuple[str, int] | None,
        hot: Callable[[int], bool],
    ) -> list[JsonObject]:
        """Matches of ``text``, the newest ``limit + 1``. A month's candidates are the lines of
        its search-text sidecar that hold the needle and are still their id's current record,
        with their sort keys; months are taken in the order of their highest key until the next
        one cannot hold anything newer than the page's last candidate, then the candidates are
        read newest first (only their members inflated, the row decides) until the page is
        full; a candidate the row rejects may let the next months in, so it goes round again."""
        needle = archive_text.escape(text)
        tops = dict(self._month_max)
        months = list(dict(self._covered))
        order = sorted(months, key=lambda m: (m not in tops, tops.get(m, (b"", 0))), reverse=True)
        heap: list[tuple[tuple[str, int], int, JsonObject]] = []  # the newest limit + 1
        found: list[tuple[tuple[str, int], str, int]] = []  # (key, month, member offset), unread
        n = 0
        taken = 0  # months whose candidates were taken

        def edge() -> Key | None:
            """The (limit + 1)-th newest key read or not: a month whose highest is not above it
            holds nothing for the page."""
            keys = heapq.nlargest(limit + 1, [*(k for k, _, _ in heap), *(k for k, _, _ in found)])
            return None if len(keys) <= limit else (keys[-1][0].encode(), keys[-1][1])

        while True:
            while taken < len(order):
                top = tops.get(order[taken])
                if top is not None:
                    lowest = edge()
                    if lowest is not None and top <= lowest:
                        break  # this month and every one after it hold nothing newer
                found += self._month_candidates(order[taken], needle, statuses, after, hot)
                taken += 1
            found.sort(reverse=True)
            at = 0
            while at < len(found) and (len(heap) <= limit or found[at][0] > heap[0][0]):
                batch = found[at : at + max(limit + 1 - len(heap), _BATCH)]
                at += len(batch)
                for row in self._read_candidates(batch):
                    if statuses is not None and row.get("status") not in statuses:
                        continue
                    if text not in search_text(row):
                        continue  # the needle's escape was in the line, not the needle
                    key = sort_key(row)
                    if after is not None and key >= after:
                        continue
                    n += 1
                    item = (key, n, row)
                    if len(heap) <= limit:
                        heapq.heappush(heap, item)
                    elif key > heap[0][0]:
                        heapq.heapreplace(heap, item)
            found = []  # read, or older than the page's last
            if taken >= len(order):
                break
            top = tops.get(order[taken])
            if top is not None and len(heap) > limit:
                lowest_key = heap[0][0]
                if top <= (lowest_key[0].encode(), lowest_key[1]):
                    break
        return [row for _, _, row in sorted(heap, key=lambda item: item[0], reverse=True)]

    def _month_candidates(
        self,
        month: str,
        needle: bytes,
        statuses: Collection[str] | None,
        after: tuple[str, int] | None,
        hot: Callable[[int], bool],
    ) -> list[tuple[tuple[str, int], str, int]]:
        """``(key, month, member offset)`` of the month's current records (not hot again) whose
        line holds the needle, below ``after``, in these statuses (when the line knows it)."""
        code = _code(month) << _OFFSET_BITS
        found: set[tuple[tuple[str, int], str, int]] = set()
        for line in self._text_candidates(month, needle):
            anomaly_id = line.anomaly_id
            if self._loc(anomaly_id) != code | line.offset or hot(anomaly_id):
                continue  # an older record of it, or it is hot again
            time_text, status = line.details()
            if status is not None and statuses is not None and status not in statuses:
                continue  # (a status that is not a string: the row decides)
            key = (time_text, anomaly_id)
            if after is None or key < after:
                found.add((key, month, line.offset))
        return list(found)

    def _read_candidates(self, batch: list[tuple[tuple[str, int], str, int]]) -> list[JsonObject]:
        """The rows of these candidates, each member inflated once."""
        wanted: dict[str, dict[int, set[int]]] = {}
        for (_, anomaly_id), month, offset in batch:
            wanted.setdefault(month, {}).setdefault(offset, set()).add(anomaly_id)
        return [row for month, members in wanted.items() for row in self._rows_at(month, members)]

    def _text_candidates(self, month: str, needle: bytes) -> list[archive_text.Candidate]:
        """The month's lines that hold ``needle``; a sidecar not as the index says (checked
        once, at first use) is rebuilt from the month first."""
        for attempt in range(2):
            known = self._text.get(month)
            if known is None:
                return []  # the month is gone meanwhile (delete_after_days)
            length, crc = known
            checked = month not in self._text_ok
            try:
                found = archive_text.candidates(
                    self._text_path(month), length, crc if checked else None, needle
                )
            except archive_text.TextDamaged as exc:
                if attempt:
                    raise ArchiveDamaged(
                        f"{self._text_path(month)}: {exc} after a rebuild"
                    ) from None
                with self._text_lock:
                    if month not in self._covered:
                        return []
                    log.warning("cold archive: %s; rebuilding it from its month file", exc)
                    self._build_text(month)
                continue
            if checked:
                with self._text_lock:
                    if self._text.get(month, (-1, 0))[0] >= length:
                        self._text_ok.add(month)
            return found
        return []

    def _rows_at(self, month: str, wanted: dict[int, set[int]]) -> list[JsonObject]:
        """The records of these ids in these members (offset → ids) of a month file."""
        path = self._month_path(month)
        rows: list[JsonObject] = []
        if not wanted:
            return rows
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return rows  # deleted meanwhile (delete_after_days)
        with fh:
            for offset in sorted(wanted):
                data = _inflate_at(fh, offset, path)
                for anomaly_id in wanted[offset]:
                    prefix = b'{"id":%d,' % anomaly_id
                    start = 0 if data.startswith(prefix) else data.find(b"\n" + prefix) + 1
                    if start == 0 and not data.startswith(prefix):
                        raise ArchiveDamaged(
                            f"{path}: anomaly {anomaly_id} is not where the index says"
                        )
                    end = data.find(b"\n", start)
                    rows.append(orjson.loads(data[start : end if end >= 0 else None])["doc"])
        return rows

    # -- writing -------------------------------------------------------------------------------

    def append(self, rows: list[JsonObject], seq: int) -> dict[str, int]:
        """Append rows (a run's next batch) to their months' files, durably; only then are they
        found here. How many went to each month. The index file is written by
        :meth:`save_index` (a crash before it costs a scan of the tail, nothing else)."""
        by_month: dict[str, list[JsonObject]] = {}
        for row in rows:
            by_month.setdefault(month_of(row), []).append(row)
        self._ensure_dir()
        placed: dict[int, int] = {}
        linked: dict[int, tuple[ColdLink, ...]] = {}
        for month, month_rows in sorted(by_month.items()):
            path = self._month_path(month)
            existed = path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                offset = os.fstat(fd).st_size
                if offset != self._covered.get(month, 0):
                    offset = self._covered.get(month, 0)  # a cut tail never stays behind
                    os.ftruncate(fd, offset)
                chunks = []
                texts: list[bytes] = []
                size = offset
                for start in range(0, len(month_rows), MEMBER_ROWS):
                    part = month_rows[start : start + MEMBER_ROWS]
                    lines = b"".join(
                        orjson.dumps({"id": row["id"], "seq": seq, "doc": row}) + b"\n"
                        for row in part
                    )
                    member = _gzip(lines)
                    loc = (_code(month) << _OFFSET_BITS) | size
                    for row in part:
                        placed[int(row["id"])] = loc
                        linked[int(row["id"])] = _links_of(row)
                        texts.append(_text_line(size, int(row["id"]), row))
                    chunks.append(member)
                    size += len(member)
                _write_all(fd, b"".join(chunks))
                os.fsync(fd)
            finally:
                os.close(fd)
            text = b"".join(texts)
            with self._text_lock:  # a search may be rebuilding this month's sidecar
                length, crc = self._text.get(month, (0, 0))
                text_path = self._text_path(month)
                if not text_path.exists() or text_path.stat().st_size != length:
                    self._text_ok.discard(month)  # not as we left it: checked at first use
                archive_text.append(text_path, length, text)
                if not existed:
                    fsync_dir(self.path)
                self._text[month] = (length + len(text), zlib.crc32(text, crc))
                self._covered[month] = size
            self._recent.update(placed)  # durable now: found from here on
            self._list(month, month_rows)
            for anomaly_id, row_links in linked.items():
                if row_links:
                    self._links()[anomaly_id] = row_links
                else:
                    self._links().pop(anomaly_id, None)
            placed, linked = {}, {}
            self.generation += 1
            self._fingerprints = None
        return {month: len(month_rows) for month, month_rows in by_month.items()}

    def delete_months(self, before: str) -> list[MonthInfo]:
        """Delete the month files older than ``before`` (``YYYY-MM``, excluded): what
        ``delete_after_days`` asks for. Forgotten here first, then the files, then the index (a
        crash before it: the next open drops the months whose files are gone)."""
        self._merge()
        old = [info for info in self.months() if info.name < before]
        if not old:
            return []
        self._drop_months({info.name for info in old})
        for info in old:
            self._month_path(info.name).unlink(missing_ok=True)
            self._text_path(info.name).unlink(missing_ok=True)
        fsync_dir(self.path)
        self.save_index()
        return old

    def _drop_months(self, months: set[str]) -> None:
        self._merge()
        codes = {_code(m) for m in months}
        ids, locs = array("q"), array("q")
        for anomaly_id, loc in zip(*self._sorted, strict=True):
            if loc >> _OFFSET_BITS in codes:
                self._links().pop(anomaly_id, None)
            else:
                ids.append(anomaly_id)
                locs.append(loc)
        self._sorted = (ids, locs)
        for month in months:
            self._covered.pop(month, None)
            self._month_max.pop(month, None)
            with self._text_lock:
                self._text.pop(month, None)
                self._text_ok.discard(month)
        with self._listing_lock:
            self._listing_stale = True
            for anomaly_id in [i for i in self._listed if self._loc(i) is None]:
                del self._listed[anomaly_id]
        self.generation += 1
        self._fingerprints = None


def _inflate_at(fh: BinaryIO, offset: int, path: Path) -> bytes:
    """The member at ``offset`` of an open month file, decompressed."""
    fh.seek(offset)
    inflater = zlib.decompressobj(31)
    parts: list[bytes] = []
    reason = "member cut short"
    try:
        while not inflater.eof:
            chunk = fh.read(_READ // 2)
            if not chunk:
                break
            parts.append(inflater.decompress(chunk))
    except zlib.error as exc:
        reason = str(exc)
    if not inflater.eof:
        raise ArchiveDamaged(
            f"{path}: unreadable at byte {offset} ({reason}); restore the file from a backup "
            "(or move it aside: the anomalies in it are then lost)"
        )
    return b"".join(parts)


def _below(entries: list[Entry], position: Key | None) -> int:
    """The first index (in ``entries``, newest first) whose key is below ``position``."""
    lo, hi = 0, len(entries)
    if position is None:
        return 0
    while lo < hi:
        mid = (lo + hi) // 2
        if entries[mid][0] >= position:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _zeros_from(path: Path, offset: int) -> bool:
    """Whether the file holds only zero bytes from ``offset``: space a crash allocated but never
    wrote (a torn end, like a member cut short), not damage."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        while chunk := fh.read(_READ):
            if chunk.count(0) != len(chunk):
                return False
    return True


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _private_dir(path: Path) -> None:
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
