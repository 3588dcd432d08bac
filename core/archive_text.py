"""The cold archive's search text: one sidecar per month, ``YYYY-MM.text`` (issue #16).

Why: a text search of the archive used to inflate every month file to look for its needle (a
second at a million anomalies). A sidecar holds, per record appended to its month file, one line
``<member offset> <id> [<sort key's time>, <status>]\\t<search text>`` (the pair as JSON, which
holds no tab or newline) with the text already lower-cased and escaped (``\\`` → ``\\\\``,
newline → ``\\n``), so a search is a ``bytes.find`` over the file at C speed (``mmap``: the page
cache holds it, not the process); the key and status order and sift the candidates, so only the
members of those that can enter the page are inflated. Escaping is done character by character,
so a needle's escape is in a line's text whenever the needle is in the text: a candidate can be
wrong (the exact check on the row follows), a match is never missed.

The archive records each sidecar's covered length and CRC in its index, like the month files'
lengths; a sidecar that is missing, short or does not match its CRC is rebuilt from its month.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import orjson

from anomaly_desk.core.durable_files import write_chunks

SUFFIX = ".text"


class TextDamaged(Exception):
    """A sidecar is not what the index says (cut short, gone, garbage): rebuild it."""


def escape(text: str) -> bytes:
    """Text as a sidecar line holds it (and a needle as it is looked for)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").encode("utf-8", "surrogatepass")


class Candidate(NamedTuple):
    """A line whose text holds the needle: where its record is, and what orders and sifts it."""

    offset: int  # of the record's member in the month file
    anomaly_id: int
    prefix: bytes  # ``[time, status]`` as JSON (parsed only for a current record: ``details``)

    def details(self) -> tuple[str, str | None]:
        """The record's sort key's time and its status (None: not a string; read the row)."""
        time, status = orjson.loads(self.prefix)
        return str(time), status if isinstance(status, str) else None


def line(offset: int, anomaly_id: int, time: str, status: str | None, text: str) -> bytes:
    """One record's line: its member's offset in the month file, its id, its sort key's time and
    status, its search text."""
    pair = orjson.dumps([time, status])
    return b"%d %d %s\t%s\n" % (offset, anomaly_id, pair, escape(text))


def append(path: Path, length: int, data: bytes) -> None:
    """Append ``data`` where the index's ``length`` ends (a longer tail, left by a crash, is cut
    first), durably. A new file is 0600; the caller fsyncs the directory."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size != length:
            os.ftruncate(fd, length)
        os.lseek(fd, length, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(path: Path, chunks: Iterable[bytes]) -> tuple[int, int]:
    """Write a whole sidecar anew (temp file, fsync, rename: a search reading the old one keeps
    its bytes); its length and CRC."""
    length, crc = 0, 0

    def counted() -> Iterable[bytes]:
        nonlocal length, crc
        for chunk in chunks:
            length += len(chunk)
            crc = zlib.crc32(chunk, crc)
            yield chunk

    write_chunks(path, counted())
    return length, crc


def candidates(path: Path, length: int, crc: int | None, needle: bytes) -> list[Candidate]:
    """The lines among the first ``length`` bytes whose text holds ``needle`` (escaped). With
    ``crc``, the bytes are checked first (:class:`TextDamaged`)."""
    if length == 0:
        return []
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after the map
    except FileNotFoundError:
        raise TextDamaged(f"{path.name} is missing") from None
    with fh:
        if os.fstat(fh.fileno()).st_size < length:
            raise TextDamaged(f"{path.name} is shorter than the index says")
        with mmap.mmap(fh.fileno(), length, access=mmap.ACCESS_READ) as data:
            if crc is not None and zlib.crc32(data) != crc:
                raise TextDamaged(f"{path.name} does not match the index's CRC")
            try:
                return _find(data, needle)
            except ValueError:
                raise TextDamaged(f"{path.name}: a line cannot be read") from None


def _find(data: mmap.mmap, needle: bytes) -> list[Candidate]:
    found: list[Candidate] = []
    pos = data.find(needle)
    while pos >= 0:
        start = data.rfind(b"\n", 0, pos) + 1
        tab = data.find(b"\t", start, pos)  # the prefix holds no tab: the first one ends it
        if tab < 0:  # the match starts in the prefix: look again in this line's text
            tab = data.find(b"\t", start)
            pos = data.find(needle, tab + 1) if tab >= 0 else -1
            continue
        offset, anomaly_id, pair = data[start:tab].split(b" ", 2)
        found.append(Candidate(int(offset), int(anomaly_id), pair))
        end = data.find(b"\n", pos)  # the needle holds no newline: the match is in this line
        pos = data.find(needle, end + 1) if end >= 0 else -1
    return found
