"""How a large table is laid out in a checkpoint: segment files, so a checkpoint rewrites only what
changed instead of every row.

A row belongs to the segment of its key: plain integer keys by ``SEGMENT_SPAN`` ranges, every
other key to ``other``. A segment file ``<table>-<segment>.<journal>.json`` is a TinyDB file of
that one table with one row per line (so an encoded table's rows are read back as bytes without
parsing them), optionally with a summary ``….idx`` beside it; the manifest names each with its
size and CRC-32, and nothing it cannot check is trusted. :mod:`anomaly_desk.core.journal` decides
when to write which (and reads ``SEGMENT_ABOVE`` and ``SEGMENT_SPAN`` through this module, so a
test that shrinks them patches them here).
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, cast

import orjson

from anomaly_desk.core.durable_files import CHUNK, write_file
from anomaly_desk.core.journal_codec import Rows, StoredRows, encode_row

SEGMENT_ABOVE = 20_000  # a segmented table with more rows than this leaves the manifest
SEGMENT_SPAN = 16_384  # integer keys per segment file
OTHER_SEGMENT = "other"  # the segment of keys that are not plain integers
SEGMENT_FILE = re.compile(r"^(?P<table>\w+)-(?P<seg>\d{5,}|other)\.(?P<seq>\d{6,})\.(?:json|idx)$")

Summarize = Callable[[str, StoredRows], bytes | None]
"""What opening needs of a segment's rows (``Journal._summarize``), written beside it."""


class SegmentFile(TypedDict, total=False):
    """A segment as the manifest names it: a checkpoint trusts nothing it cannot check."""

    file: str
    rows: int
    bytes: int
    crc: int
    index: str  # the summary file, when the subclass writes one
    index_bytes: int
    index_crc: int


@dataclass(slots=True)
class Snapshot:
    """A consistent shallow copy of what a checkpoint writes, taken between two flushes."""

    seq: int  # the first journal it does not cover
    inline: dict[str, StoredRows] = field(default_factory=dict)  # tables kept in the manifest
    whole: dict[str, StoredRows] = field(
        default_factory=dict
    )  # segmented: every row (grouped later)
    parts: dict[str, dict[str, StoredRows]] = field(default_factory=dict)  # segmented: dirty rows
    keep: dict[str, dict[str, SegmentFile]] = field(default_factory=dict)  # files still current
    dirty: dict[str, set[str]] = field(default_factory=dict)  # given back if the write fails

    def rows_for(self, table: str, key: str) -> StoredRows | None:
        if table in self.inline:
            return self.inline[table]
        if table in self.whole:
            return self.whole[table]
        return self.parts.get(table, {}).get(segment_of(key))


def segment_of(key: str) -> str:
    """The segment a key belongs to: its integer's range, or the segment of all other keys."""
    if key.isascii() and key.isdigit() and (key[0] != "0" or key == "0"):
        return f"{int(key) // SEGMENT_SPAN:05d}"
    return OTHER_SEGMENT


def _key_order(key: str) -> tuple[int, int, str]:
    return (0, int(key), "") if segment_of(key) != OTHER_SEGMENT else (1, 0, key)


def _group(rows: StoredRows) -> dict[str, StoredRows]:
    groups: dict[str, StoredRows] = {}
    for key, row in rows.items():
        segment = segment_of(key)
        part = groups.get(segment)
        if part is None:
            part = groups[segment] = {}
        part[key] = row
    return groups


def write_segments(
    data_dir: Path, snapshot: Snapshot, summarize: Summarize
) -> dict[str, dict[str, SegmentFile]]:
    """The snapshot's changed segments, each under a new name; every table's files afterwards."""
    layout: dict[str, dict[str, SegmentFile]] = {}
    for table in snapshot.dirty:
        files = dict(snapshot.keep.get(table, {}))
        parts = snapshot.parts.get(table, {})
        if table in snapshot.whole:
            parts = {s: rows for s, rows in _group(snapshot.whole[table]).items() if s not in files}
            for segment in snapshot.dirty[table]:
                parts.setdefault(segment, {})
        for segment, rows in sorted(parts.items()):
            files.pop(segment, None)
            if rows:
                files[segment] = write_segment(
                    data_dir, table, segment, snapshot.seq, rows, summarize
                )
        layout[table] = files
    return layout


def write_segment(
    data_dir: Path, table: str, segment: str, seq: int, rows: StoredRows, summarize: Summarize
) -> SegmentFile:
    """One segment as a TinyDB file of its table, one row per line, and its summary."""
    name = f"{table}-{segment}.{seq:06d}.json"
    keys = sorted(rows, key=_key_order)
    lines = [b"{" + orjson.dumps(table) + b":{"]
    for start in range(0, len(keys), CHUNK):
        for key in keys[start : start + CHUNK]:
            row = rows[key]
            lines.append(
                orjson.dumps(key) + b":" + (row if isinstance(row, bytes) else orjson.dumps(row))
            )
    body = lines[0] + b"\n" + b",\n".join(lines[1:]) + b"\n}}\n"
    write_file(data_dir / name, body)
    entry = SegmentFile(file=name, rows=len(keys), bytes=len(body), crc=zlib.crc32(body))
    summary = summarize(table, {key: rows[key] for key in keys})
    if summary is not None:
        index = name.removesuffix(".json") + ".idx"
        write_file(data_dir / index, summary)
        entry["index"] = index
        entry["index_bytes"], entry["index_crc"] = len(summary), zlib.crc32(summary)
    return entry


def read_segment(
    data_dir: Path, table: str, entry: SegmentFile, encoded: bool
) -> tuple[StoredRows, Rows | None, bytes | None] | str:
    """One segment's rows (their JSON too, when parsed anyway) and its summary (None when
    missing or not what the manifest says), checked against the manifest; or what is wrong
    with it."""
    path = data_dir / entry["file"]
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return "the segment file is missing (the manifest names it)"
    if len(raw) != entry["bytes"] or zlib.crc32(raw) != entry["crc"]:
        return (
            f"the segment is not what the manifest says ({len(raw)} bytes, expected "
            f"{entry['bytes']}; or its CRC-32 differs)"
        )
    parsed = split_segment(table, raw, encoded)
    if parsed is None or len(parsed[0]) != entry["rows"]:
        return "the segment is not a table of rows as anomaly-desk writes it"
    rows, docs = parsed
    summary = None
    if "index" in entry:
        with contextlib.suppress(OSError):
            raw_index = (data_dir / entry["index"]).read_bytes()
            if len(raw_index) == entry.get("index_bytes") and zlib.crc32(raw_index) == entry.get(
                "index_crc"
            ):
                summary = raw_index
    return rows, docs, summary


def split_segment(table: str, raw: bytes, encoded: bool) -> tuple[StoredRows, Rows | None] | None:
    """A segment's rows, kept as their bytes for an encoded table: a file laid out as
    :func:`write_segment` writes it (its CRC already checked) is cut at its lines, no row
    parsed; None when it is not a table."""
    head = b"{" + orjson.dumps(table) + b":{\n"
    if encoded and raw.startswith(head + b'"') and raw.endswith(b"\n}}\n"):
        rows: StoredRows = {}
        for line in raw[len(head) : -4].split(b",\n"):
            key, found, row = line.partition(b'":')
            if not found or not key[1:].isdigit():
                break  # a key that needs JSON to read: read the file as JSON
            rows[key[1:].decode()] = row
        else:
            return rows, None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get(table), dict):
        return None
    docs: Rows = data[table]
    if any(not isinstance(doc, dict) for doc in docs.values()):
        return None
    if encoded:
        return {key: encode_row(doc) for key, doc in docs.items()}, docs
    return cast(StoredRows, docs), None


def check_layout(layout: object, tables: Iterable[str]) -> str | None:
    """What is wrong with the manifest's list of segments, if anything."""
    if not isinstance(layout, dict):
        return "its _meta record's segments are not an object"
    for table, files in layout.items():
        if table not in tables or not isinstance(files, dict):
            return f"its _meta record names segments of an unknown table {table!r}"
        for entry in files.values():
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("file"), str)
                and SEGMENT_FILE.match(entry["file"])
                and all(isinstance(entry.get(k), int) for k in ("rows", "bytes", "crc"))
            ):
                return f"its _meta record names a segment of {table!r} it cannot read"
    return None
