"""Segmented checkpoints: a large table is written as segment files, only the changed ones at
each checkpoint, named by a manifest written last; opening reads the summaries, not the rows.

Segments start above ``SEGMENT_ABOVE`` rows; these tests shrink it (and the span of keys per
segment) so a few hundred anomalies make several segments.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from tinydb import TinyDB
from tinydb.storages import JSONStorage

from anomaly_desk.core import journal
from anomaly_desk.core import segments as segments_module
from anomaly_desk.core.store import Put, Store, StoreDamaged

SPAN = 100


def doc(i: int, status: str = "Active", message: str | None = None) -> dict[str, Any]:
    return {
        "id": i,
        "status": status,
        "type": "record",
        "created": f"2026-11-20T08:{i % 60:02d}:{i % 53:02d}Z",
        "message": message or f"m{i}",
        "fingerprint": 7000 + i,
        "links": [{"ticket_key": f"DQ-{i}"}] if i % 97 == 0 else [],
    }


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments_module, "SEGMENT_ABOVE", 50)
    monkeypatch.setattr(segments_module, "SEGMENT_SPAN", SPAN)


def seeded(data: Path, n: int = 1000) -> None:
    store = Store(data).open()
    store.bulk_load(doc(i, "Active" if i % 3 else "Resolved") for i in range(1, n + 1))
    store.close_sync()


def segments(data: Path) -> dict[str, os.stat_result]:
    return {p.name: p.stat() for p in data.iterdir() if p.name.startswith("anomalies-")}


def manifest(data: Path) -> dict[str, Any]:
    meta: dict[str, Any] = orjson.loads((data / "anomaly-desk.json").read_bytes())
    return meta


def view(store: Store) -> tuple[object, ...]:
    """Everything the list shows, to compare a store with itself after a restart."""
    page = [a.model_dump() for a in store.list_anomalies(None, limit=5000)[0]]
    resolved = [a.id for a in store.list_anomalies(["Resolved"], limit=5000)[0]]
    found = [a.id for a in store.list_anomalies(None, q="M1", limit=5000)[0]]
    linked = sorted(store.linked_anomaly_ids())
    return page, resolved, found, store.status_counts(), linked, store.linked_with_fingerprint(7097)


def test_a_large_table_is_segmented_and_each_segment_is_a_tinydb_file(tmp_path: Path) -> None:
    seeded(tmp_path)
    meta = manifest(tmp_path)
    assert "anomalies" not in meta, "the manifest keeps the small tables only"
    assert meta["_meta"]["1"]["schema"] == 2
    files = meta["_meta"]["1"]["segments"]["anomalies"]
    assert sorted(files) == [f"{n:05d}" for n in range(11)]  # ids 1-1000, 100 per segment
    ids: set[int] = set()
    for entry in files.values():
        path = tmp_path / entry["file"]
        assert entry["bytes"] == path.stat().st_size
        db = TinyDB(path, storage=JSONStorage, access_mode="r")  # TinyDB reads a segment as is
        rows = db.table("anomalies").all()
        assert len(rows) == entry["rows"]
        ids |= {row["id"] for row in rows}
        db.close()
    assert ids == set(range(1, 1001))


def test_reopening_reads_the_summaries_and_shows_the_same_list(tmp_path: Path) -> None:
    store = Store(tmp_path).open()
    store.bulk_load(doc(i, "Active" if i % 3 else "Resolved") for i in range(1, 1001))
    before = view(store)
    store.close_sync()
    reopened = Store(tmp_path).open()
    assert view(reopened) == before
    assert reopened.get("anomalies", "500") == doc(500, "Active")
    reopened.close_sync()


def test_a_checkpoint_rewrites_only_the_segments_that_changed(tmp_path: Path) -> None:
    seeded(tmp_path)
    before = segments(tmp_path)
    time.sleep(0.01)

    async def change() -> None:
        store = Store(tmp_path).open()
        await store.commit([Put("anomalies", "150", doc(150, "Acknowledged", "changed"))])
        await store.commit([Put("anomalies", "1150", doc(1150))])  # a new segment
        await store.close()

    asyncio.run(change())
    after = segments(tmp_path)
    kept = {name for name in before if name in after}
    for name in kept:
        assert after[name].st_ino == before[name].st_ino, name
        assert after[name].st_mtime_ns == before[name].st_mtime_ns, name
    gone = sorted(set(before) - set(after))
    assert gone == ["anomalies-00001.000001.idx", "anomalies-00001.000001.json"]
    new = sorted(set(after) - set(before))
    assert [name.split(".")[0] for name in new] == ["anomalies-00001"] * 2 + ["anomalies-00011"] * 2
    store = Store(tmp_path).open()
    assert store.get("anomalies", "150") == doc(150, "Acknowledged", "changed")
    assert store.count() == 1001
    assert [a.id for a in store.list_anomalies(["Acknowledged"])[0]] == [150]
    store.close_sync()


def test_an_old_single_file_checkpoint_opens_and_is_migrated(tmp_path: Path) -> None:
    rows = {str(i): doc(i) for i in range(1, 301)}
    meta = {"1": {"schema": 1, "journal": 0, "written": time.time()}}
    old = {"_meta": meta, "anomalies": rows, "jobs": {}, "counters": {"c": {"n": 1}}}
    (tmp_path / "anomaly-desk.json").write_bytes(orjson.dumps(old))
    store = Store(tmp_path).open()
    assert store.count() == 300
    assert store.get("anomalies", "7") == doc(7)
    before = view(store)

    async def touch() -> None:
        await store.commit([Put("counters", "c", {"n": 2})])
        await store.close()

    asyncio.run(touch())
    assert "anomalies" not in manifest(tmp_path)
    assert len(segments(tmp_path)) == 2 * 4  # 1-99, 100-199, 200-299, 300; each with a summary
    reopened = Store(tmp_path).open()
    assert view(reopened) == before
    assert reopened.get("counters", "c") == {"n": 2}
    reopened.close_sync()


def test_a_table_that_shrinks_goes_back_into_the_manifest(tmp_path: Path) -> None:
    seeded(tmp_path, 120)

    async def shrink() -> None:
        store = Store(tmp_path).open()
        await store.commit([journal.Delete("anomalies", str(i)) for i in range(1, 101)])
        await store.close()

    asyncio.run(shrink())
    assert segments(tmp_path) == {}
    assert sorted(manifest(tmp_path)["anomalies"], key=int) == [str(i) for i in range(101, 121)]
    assert manifest(tmp_path)["_meta"]["1"]["schema"] == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted"])
def test_a_damaged_segment_is_refused_then_repaired(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    seeded(tmp_path)

    async def more() -> None:  # 205 changed after the checkpoint: only in the journal
        store = Store(tmp_path).open()
        await store.commit([Put("anomalies", "205", doc(205, "Invalid"))])
        store._close_journal()
        store._release_lock()

    asyncio.run(more())
    path = tmp_path / manifest(tmp_path)["_meta"]["1"]["segments"]["anomalies"]["00002"]["file"]
    if damage == "garbage":
        raw = bytearray(path.read_bytes())
        raw[100:110] = b"\0" * 10
        path.write_bytes(bytes(raw))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-200])
    else:
        path.unlink()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".lock"}
    with pytest.raises(StoreDamaged) as refused:
        Store(tmp_path).open()
    assert path.name in str(refused.value)
    assert "anomaly-desk serve --repair" in str(refused.value)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".lock"}
    assert after == before, "a refusal changes nothing on disk"

    with caplog.at_level(logging.WARNING, logger="anomaly_desk.core.store"):
        store = Store(tmp_path, repair=True).open()
    lost = set(range(200, 300)) - {205}  # the segment's rows; 205 came back from the journal
    assert sorted(int(k) for k in store.all("anomalies")) == sorted(set(range(1, 1001)) - lost)
    assert store.get("anomalies", "205") == doc(205, "Invalid")
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert path.name in said
    aside = list(tmp_path.glob(f"{path.name}.damaged-*"))
    assert len(aside) == (0 if damage == "deleted" else 1)
    if aside:
        assert aside[0].read_bytes() == before[path.name], "set aside, never deleted"
    store.close_sync()
    reopened = Store(tmp_path).open()
    assert reopened.count() == 1000 - len(lost)
    reopened.close_sync()


def test_a_damaged_summary_is_rebuilt_from_the_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path).open()
    store.bulk_load(doc(i, "Active" if i % 3 else "Resolved") for i in range(1, 1001))
    before = view(store)
    store.close_sync()
    entry = manifest(tmp_path)["_meta"]["1"]["segments"]["anomalies"]["00003"]
    (tmp_path / entry["index"]).write_bytes(b"[]")
    with caplog.at_level(logging.WARNING, logger="anomaly_desk.core.store"):
        store = Store(tmp_path).open()
    assert view(store) == before
    assert any("summary" in r.getMessage() for r in caplog.records)
    store.close_sync()


def test_stale_segment_files_are_removed_at_open_and_files_are_private(tmp_path: Path) -> None:
    seeded(tmp_path)
    stale = [
        tmp_path / ".anomalies-00003.000009.json.tmp",  # a segment cut short by a crash
        tmp_path / "anomalies-00003.000009.json",  # written, but no manifest names it
        tmp_path / "anomalies-00003.000009.idx",
    ]
    for path in stale:
        path.write_bytes(b'{"anomalies": {"301": ')
    store = Store(tmp_path).open()
    assert not any(path.exists() for path in stale)
    assert store.count() == 1000
    store.close_sync()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert any(name.endswith(".idx") for name in modes)
    assert set(modes.values()) == {0o600}, modes


def test_long_loads_say_how_far_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seeded(tmp_path)
    monkeypatch.setattr(journal, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="anomaly_desk.core.store"):
        Store(tmp_path).open().close_sync()
    assert "loading anomalies: 1,000 of 1,000" in [r.getMessage() for r in caplog.records]


WRITER = """
import asyncio, sys, time
from pathlib import Path
from anomaly_desk.core import segments, store as store_module
from anomaly_desk.core.store import Put, Store

segments.SEGMENT_ABOVE, segments.SEGMENT_SPAN = 50, 100
store_module.CHECKPOINT_MIN_RECORDS = 40
real = segments.write_file

def slow(path, data):  # a checkpoint takes a while: the kill lands in the middle of one
    say(f"checkpointing {path.name}")
    real(path, data)
    time.sleep(0.05)

segments.write_file = slow


def say(line):  # one write per line: the checkpoint's thread says things too
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()

async def main():
    store = Store(Path(sys.argv[1])).open()
    n = 0
    while True:
        n += 1
        i = n % 700 + 1
        await store.commit([Put("anomalies", str(i), {"id": i, "status": "Active", "n": n})])
        say(f"acked {i} {n}")

asyncio.run(main())
"""


def test_a_kill_during_a_checkpoint_loses_no_acknowledged_write(tmp_path: Path) -> None:
    seeded(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    acked: dict[int, int] = {}
    checkpoints = 0
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "acked":
                acked[int(rest[0])] = int(rest[1])
            elif word == "checkpointing":
                checkpoints += 1
                if checkpoints >= 12:  # a few checkpoints done, one under way
                    proc.send_signal(signal.SIGKILL)
                    break
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) > 100
    store = Store(tmp_path).open()
    for i, n in acked.items():
        row = store.get("anomalies", str(i))
        assert row is not None, f"acknowledged write {n} to {i} is lost"
        assert row["n"] >= n, f"acknowledged write {n} to {i} is lost"
    assert store.count() == 1000
    store.close_sync()
    reopened = Store(tmp_path).open()  # and the checkpoint after the crash stands on its own
    assert all(reopened.get("anomalies", str(i))["n"] >= n for i, n in acked.items())  # type: ignore[index]
    reopened.close_sync()


def test_a_journal_replayed_over_the_segments_keeps_the_list_in_step(tmp_path: Path) -> None:
    seeded(tmp_path)

    async def change() -> tuple[object, ...]:
        store = Store(tmp_path).open()
        await store.commit([Put("anomalies", "150", doc(150, "Resolved"))])
        await store.commit([Put("anomalies", "150", doc(150, "Active"))])  # back where it was
        await store.commit([journal.Delete("anomalies", "151")])
        await store.commit([Put("anomalies", "152", doc(152, "Acknowledged", "m1 again"))])
        await store.commit([Put("anomalies", "194", doc(194, "Active"))])  # now with a ticket
        shown = view(store)
        store._close_journal()  # a crash: the changes are only in the journal
        store._release_lock()
        return shown

    before = asyncio.run(change())
    store = Store(tmp_path).open()
    assert view(store) == before
    assert store.status_counts() == {"Active": 666, "Resolved": 332, "Acknowledged": 1}
    store.close_sync()
