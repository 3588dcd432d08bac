"""Files that survive a crash: written whole or not at all, and kept, never deleted, when damaged.

Every write goes to a temp file (0600), is fsync-ed, renamed over its target with ``os.replace``
and the directory fsync-ed, so a reader finds the old file or the new one, never a mix. The
journal engine (:mod:`anomaly_desk.core.journal`) and the cold archive build on these.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from tinydb.storages import Storage

from anomaly_desk.core.jsontypes import JsonObject

CHUNK = 1000  # documents per orjson call while checkpointing, so the GIL changes hands often


class AtomicJSONStorage(Storage):
    """TinyDB storage that writes with orjson atomically: temp file, fsync, ``os.replace``.

    ``write`` streams the tables in chunks so a large checkpoint never holds the GIL for long;
    a row given as bytes is already JSON and written as it is.
    """

    def __init__(self, path: str | Path, **_: Any) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, JsonObject] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return orjson.loads(raw) if raw.strip() else None

    def write(self, data: dict[str, JsonObject]) -> None:
        tmp = temp_path(self.path)
        try:
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
                fh.write(b"{")
                for t, (table, rows) in enumerate(data.items()):
                    fh.write(b"," if t else b"")
                    fh.write(orjson.dumps(table) + b":{")
                    items = list(rows.items())
                    for start in range(0, len(items), CHUNK):
                        chunk = orjson.dumps(
                            {k: _fragment(v) for k, v in items[start : start + CHUNK]}
                        )
                        fh.write(b"," if start else b"")
                        fh.write(chunk[1:-1])
                    fh.write(b"}")
                fh.write(b"}")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a partial checkpoint only holds disk space we lack
            raise
        fsync_dir(self.path.parent)

    def close(self) -> None:
        pass


def _fragment(row: object) -> object:
    return orjson.Fragment(row) if isinstance(row, bytes) else row


def write_file(path: Path, data: bytes) -> None:
    """Write a new file atomically and durably: temp file, fsync, ``os.replace``, fsync dir."""
    view = memoryview(data)
    write_chunks(path, (view[start : start + (1 << 22)] for start in range(0, len(view), 1 << 22)))


def write_chunks(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    """:func:`write_file` for data made as it is written (never all in memory at once)."""
    tmp = temp_path(path)
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def temp_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place (a crash may leave it behind)."""
    return path.with_name(f".{path.name}.tmp")


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_aside(path: Path) -> Path:
    """Keep a damaged file under a new name, never deleting it.

    A hard link, so the original name stays until the repair's fresh checkpoint replaces (or
    folds away) it: a crash mid-repair leaves the damage in place, to be refused again.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        os.link(path, aside)
    except OSError:  # a file system without hard links
        shutil.copyfile(path, aside)
    fsync_dir(path.parent)
    return aside


def cut(path: Path, size: int) -> None:
    """Truncate ``path`` to ``size`` bytes, durably."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
