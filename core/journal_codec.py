"""A transaction's ops and the journal line they become: one orjson array per transaction.

A line is ``[["p", table, key, doc], ["d", table, key], …]\\n``. The puts' documents are encoded
once, and those very bytes are what an encoded table keeps in memory and a checkpoint writes;
a line read back is checked whole before any of it is applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from anomaly_desk.core.jsontypes import JsonObject

Doc = JsonObject  # a stored row
Rows = dict[str, Doc]
Stored = JsonObject | bytes  # a row as kept in memory: its JSON, or (encoded tables) its bytes
StoredRows = dict[str, Stored]


@dataclass(frozen=True, slots=True)
class Put:
    table: str
    key: str
    doc: JsonObject


@dataclass(frozen=True, slots=True)
class Delete:
    table: str
    key: str


Op = Put | Delete


def encode_row(doc: Doc) -> bytes:
    """A row as an encoded table keeps it: orjson's bytes, copied to their exact size (orjson
    hands back a buffer of at least 8 KiB, which would be kept whole)."""
    return memoryview(orjson.dumps(doc)).tobytes()


def encode_line(ops: Iterable[Op]) -> tuple[bytes, list[bytes | None]]:
    """The journal line of a transaction, and each put's document as the bytes in it (what an
    encoded table keeps): the same bytes as ``orjson.dumps`` of the rows, built once."""
    parts: list[bytes] = []
    blobs: list[bytes | None] = []
    for op in ops:
        where = orjson.dumps(op.table) + b"," + orjson.dumps(op.key)
        if isinstance(op, Put):
            blob = encode_row(op.doc)
            parts.append(b'["p",' + where + b"," + blob + b"]")
            blobs.append(blob)
        else:
            parts.append(b'["d",' + where + b"]")
            blobs.append(None)
    return b"[" + b",".join(parts) + b"]\n", blobs


def decode_line(
    line: bytes, tables: set[str], valid: Callable[[str, Doc], bool]
) -> list[list[Any]] | None:
    """A journal record's rows, or None when it is unreadable or not the shape ``encode_line``
    writes.

    Checked whole before any row is applied, so a damaged record is dropped entirely or not at all.
    """
    try:
        rows = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(rows, list):
        return None
    for row in rows:
        if not (isinstance(row, list) and len(row) in (3, 4) and isinstance(row[2], str)):
            return None
        if not isinstance(row[1], str) or row[1] not in tables:
            return None
        if row[0] == "p" and len(row) == 4 and isinstance(row[3], dict):
            if not valid(row[1], row[3]):
                return None
        elif not (row[0] == "d" and len(row) == 3):
            return None
    return rows
