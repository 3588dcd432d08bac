"""The store keeps its promise: a 2xx means on disk, and nothing acknowledged is ever lost.

Torn journal tails are cut before the next append; a damaged or lost checkpoint and a corrupt
journal record stop the store instead of silently shrinking it (``repair=True`` recovers what is
readable and says what is lost); a refused write never shows in memory, leaves no fragment in the
journal, and the store resumes by itself once the disk takes writes again.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from anomaly_desk.core import store as store_module
from anomaly_desk.core.store import AtomicJSONStorage, Delete, Put, Store, StoreDamaged, StoreFailed
from tests.support import fill


def doc(i: int, status: str = "Active", pad: int = 0) -> dict[str, Any]:
    return {
        "id": i,
        "status": status,
        "type": "record",
        "created": f"2026-11-20T08:{i % 60:02d}:00Z",
        "message": f"m{i}" + "x" * pad,
    }


def crash(store: Store) -> None:
    """What kill -9 leaves: no checkpoint, the lock released by the OS."""
    store._close_journal()
    store._release_lock()


async def put(store: Store, *ids: int, status: str = "Active") -> None:
    await asyncio.gather(*(store.commit([Put("anomalies", str(i), doc(i, status))]) for i in ids))


def journal(data: Path) -> Path:
    return max(data.glob("journal-*.log"))


def files(data: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.iterdir())
        if p.is_file() and p.name != "anomaly-desk.lock"
    }


# -- 1. torn journal tail ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [b'[["p","anomalies","9",{"id":9,"sta', b"\0" * 4096],
    ids=["half-a-record", "nul-run"],
)
def test_a_torn_tail_is_cut_before_the_next_append(
    tmp_path: Path, tail: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def first() -> None:
        store = Store(tmp_path).open()
        await put(store, 1, 2)
        crash(store)

    asyncio.run(first())
    path = journal(tmp_path)
    good = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(tail)

    async def second() -> None:
        store = Store(tmp_path).open()
        assert path.stat().st_size == good, "the torn tail is cut at open"
        await put(store, 3)  # acknowledged: it must survive
        crash(store)

    with caplog.at_level(logging.WARNING, logger="anomaly_desk.core.store"):
        asyncio.run(second())
    warning = next(r.getMessage() for r in caplog.records if "torn" in r.getMessage())
    assert path.name in warning
    assert str(good) in warning
    assert str(len(tail)) in warning

    store = Store(tmp_path).open()
    assert sorted(int(k) for k in store.all("anomalies")) == [1, 2, 3]
    store.close_sync()


# -- 2. damaged or lost checkpoint, corrupt journal record ---------------------------------------


def build(data: Path) -> None:
    """Anomalies 1-5 only in the checkpoint, 6-8 only in the journal after it."""

    async def run() -> None:
        store = Store(data).open()
        await put(store, 1, 2, 3, 4, 5)
        await store.close()
        store = Store(data).open()
        await put(store, 6)
        await put(store, 7)
        await put(store, 8)
        crash(store)

    asyncio.run(run())
    assert journal(data).name == "journal-000001.log"


def corrupt_second_record(data: Path) -> int:
    path = journal(data)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b'[["p","anomalies","7",{"id":7,"status":"Act\xff\xfe\n'
    path.write_bytes(b"".join(lines))
    return len(lines[1])


DAMAGE: dict[str, Callable[[Path], object]] = {
    "emptied": lambda d: (d / "anomaly-desk.json").write_bytes(b""),
    "braces": lambda d: (d / "anomaly-desk.json").write_bytes(b"{}"),
    "garbage": lambda d: (d / "anomaly-desk.json").write_bytes(b'{"anomalies": {"1": [}'),
    "deleted": lambda d: (d / "anomaly-desk.json").unlink(),
    "corrupt-record": corrupt_second_record,
}
WHAT = {
    "emptied": "anomaly-desk.json",
    "braces": "anomaly-desk.json",
    "garbage": "anomaly-desk.json",
    "deleted": "anomaly-desk.json",
    "corrupt-record": "journal-000001.log",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_refused_with_what_to_do(tmp_path: Path, damage: str) -> None:
    build(tmp_path)
    DAMAGE[damage](tmp_path)
    before = files(tmp_path)
    with pytest.raises(StoreDamaged) as refused:
        Store(tmp_path).open()
    message = str(refused.value)
    assert WHAT[damage] in message
    assert "backup" in message
    assert "anomaly-desk serve --repair" in message
    assert files(tmp_path) == before, "a refusal changes nothing on disk"
    with pytest.raises(StoreDamaged):  # refused again, not StoreLocked: the lock was released
        Store(tmp_path).open()


@pytest.mark.parametrize("damage", ["emptied", "braces", "garbage", "deleted"])
def test_repair_recovers_the_journals_and_says_what_is_lost(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    build(tmp_path)
    original = (tmp_path / "anomaly-desk.json").read_bytes()
    DAMAGE[damage](tmp_path)
    damaged = None if damage == "deleted" else (tmp_path / "anomaly-desk.json").read_bytes()
    with caplog.at_level(logging.WARNING, logger="anomaly_desk.core.store"):
        store = Store(tmp_path, repair=True).open()
    assert sorted(int(k) for k in store.all("anomalies")) == [6, 7, 8]
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "before 000001 is missing" in said
    assert "3 anomalies recovered" in said
    aside = list(tmp_path.glob("anomaly-desk.json.damaged-*"))
    if damaged is None:
        assert aside == []
    else:
        assert [p.read_bytes() for p in aside] == [damaged], "set aside, never deleted"
        assert aside[0].name in said
    assert (tmp_path / "anomaly-desk.json").read_bytes() != original
    store.close_sync()
    reopened = Store(tmp_path).open()  # the fresh checkpoint stands on its own
    assert reopened.count() == 3
    reopened.close_sync()


def test_repair_keeps_every_readable_record_of_a_corrupt_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build(tmp_path)
    raw = journal(tmp_path).read_bytes()
    size = corrupt_second_record(tmp_path)
    corrupted = journal(tmp_path).read_bytes()
    assert corrupted != raw
    with caplog.at_level(logging.WARNING, logger="anomaly_desk.core.store"):
        store = Store(tmp_path, repair=True).open()
    assert sorted(int(k) for k in store.all("anomalies")) == [1, 2, 3, 4, 5, 6, 8]
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert f"1 unreadable record ({size} bytes) at journal-000001.log line 2 dropped" in said
    aside = list(tmp_path.glob("journal-000001.log.damaged-*"))
    assert [p.read_bytes() for p in aside] == [corrupted]
    store.close_sync()
    reopened = Store(tmp_path).open()
    assert reopened.count() == 7
    reopened.close_sync()


def test_a_new_directory_starts_empty_and_a_checkpoint_without_journals_opens(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "new").open()
    assert store.count() == 0
    store.close_sync()

    build(tmp_path / "old")
    for path in (tmp_path / "old").glob("journal-*.log"):
        path.unlink()  # an upgrade, or journals removed after a clean stop
    store = Store(tmp_path / "old").open()
    assert sorted(int(k) for k in store.all("anomalies")) == [1, 2, 3, 4, 5]
    store.close_sync()


def test_a_journal_record_of_the_wrong_shape_is_damage(tmp_path: Path) -> None:
    build(tmp_path)
    with open(journal(tmp_path), "ab") as fh:
        fh.write(b'[["p","no-such-table","1",{}]]\n')
    with pytest.raises(StoreDamaged, match=r"journal-000001\.log"):
        Store(tmp_path).open()


# -- 3. a refused write: memory never runs ahead of the disk --------------------------------------


def enospc(*_: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


async def resumed(store: Store) -> None:
    """Wait (up to 5 s) for the store's probe to find the disk writable again."""
    for _ in range(100):
        if store.write_error is None:
            return
        await asyncio.sleep(0.05)


def test_a_failed_batch_rolls_back_memory_and_indexes(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        await put(store, 1, 2)
        one, two = store.get("anomalies", "1"), store.get("anomalies", "2")
        store._append = enospc  # type: ignore[method-assign]
        refused = await asyncio.gather(
            store.commit([Put("anomalies", "1", doc(1, "Resolved"))]),
            store.commit([Put("anomalies", "1", doc(1, "Acknowledged"))]),  # same key, same batch
            store.commit([Put("anomalies", "3", doc(3)), Delete("anomalies", "2")]),
            store.commit([Put("links", "l1", {"id": "l1"})]),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreFailed) for r in refused)
        assert store.get("anomalies", "1") is one, "the exact document"
        assert store.get("anomalies", "2") is two
        assert store.get("anomalies", "3") is None
        assert store.get("links", "l1") is None
        assert store.status_counts() == {"Active": 2}
        assert [d.id for d in store.list_anomalies(None)[0]] == [2, 1]
        assert store.list_anomalies(["Resolved", "Acknowledged"])[0] == []
        assert store.list_anomalies(None, q="m3")[0] == []
        assert "No space left on device" in (store.write_error or "")
        with pytest.raises(StoreFailed, match="No space left"):
            await store.commit([Put("anomalies", "4", doc(4))])  # refused at once, not applied
        assert store.get("anomalies", "4") is None
        with pytest.raises(StoreFailed):
            await store.barrier()
        crash(store)

    asyncio.run(run())
    store = Store(tmp_path).open()
    assert sorted(int(k) for k in store.all("anomalies")) == [1, 2]
    assert store.get("anomalies", "1")["status"] == "Active"
    store.close_sync()


def test_transactions_queued_behind_a_failed_batch_fail_and_roll_back(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        await put(store, 1)
        one = store.get("anomalies", "1")
        in_flight = threading.Event()

        def slow_enospc(data: bytes) -> None:
            in_flight.set()
            time.sleep(0.2)
            enospc()

        store._append = slow_enospc  # type: ignore[method-assign]
        first = asyncio.ensure_future(store.commit([Put("anomalies", "1", doc(1, "Resolved"))]))
        await asyncio.to_thread(in_flight.wait, 5)
        # queued while the first batch is being written: planned on top of it
        assert store.get("anomalies", "1")["status"] == "Resolved"
        second = store.commit(
            [Put("anomalies", "1", doc(1, "Acknowledged")), Put("anomalies", "2", doc(2))]
        )
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(r, StoreFailed) for r in results)
        assert store.get("anomalies", "1") is one
        assert store.get("anomalies", "2") is None
        assert store.status_counts() == {"Active": 1}
        crash(store)

    asyncio.run(run())


def test_a_duplicate_waiting_on_a_failing_batch_is_not_acknowledged(tmp_path: Path) -> None:
    """barrier() (what a redelivery waits on) fails when the batch it waits for fails."""

    async def run() -> None:
        store = Store(tmp_path).open()
        in_flight = threading.Event()

        def slow_enospc(data: bytes) -> None:
            in_flight.set()
            time.sleep(0.2)
            enospc()

        store._append = slow_enospc  # type: ignore[method-assign]
        first = asyncio.ensure_future(store.commit([Put("anomalies", "1", doc(1))]))
        await asyncio.to_thread(in_flight.wait, 5)
        with pytest.raises(StoreFailed):
            await store.barrier()
        with pytest.raises(StoreFailed):
            await first
        crash(store)

    asyncio.run(run())


def test_a_checkpoint_never_contains_unflushed_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotation while a transaction is still pending leaves it out of the snapshot."""
    monkeypatch.setattr(store_module, "CHECKPOINT_MIN_RECORDS", 1)

    async def run() -> None:
        store = Store(tmp_path).open()
        real = store._append
        gate = threading.Event()
        calls = 0

        def append(data: bytes) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                gate.wait(5)
                return real(data)
            enospc()

        store._append = append  # type: ignore[method-assign]
        first = asyncio.ensure_future(store.commit([Put("counters", "c", {"n": 1})]))
        await asyncio.sleep(0.05)  # the first batch is being written
        second = asyncio.ensure_future(store.commit([Put("anomalies", "99", doc(99))]))
        await asyncio.sleep(0)
        gate.set()  # first lands, a checkpoint rotates with the second still pending
        await first
        with pytest.raises(StoreFailed):
            await second
        assert store._checkpoint is not None
        await store._checkpoint
        assert store.stats["checkpoints"] == 1
        crash(store)

    asyncio.run(run())
    checkpoint = orjson.loads((tmp_path / "anomaly-desk.json").read_bytes())
    assert checkpoint["counters"] == {"c": {"n": 1}}
    assert checkpoint["anomalies"] == {}, "the refused transaction is not in the checkpoint"
    store = Store(tmp_path).open()
    assert store.get("anomalies", "99") is None
    store.close_sync()


def test_writes_resume_by_themselves_once_the_disk_takes_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        real = store._append
        store._append = enospc  # type: ignore[method-assign]
        with pytest.raises(StoreFailed):
            await put(store, 1)
        assert store.write_error
        store._append = real  # type: ignore[method-assign]
        await resumed(store)
        assert store.write_error is None
        await put(store, 2)
        await store.close()

    with caplog.at_level(logging.INFO, logger="anomaly_desk.core.store"):
        asyncio.run(run())
    assert not list(tmp_path.glob(".*probe*")), "the probe file is removed"
    assert any("writes resumed" in r.getMessage() for r in caplog.records)
    store = Store(tmp_path).open()
    assert sorted(int(k) for k in store.all("anomalies")) == [2]
    store.close_sync()


# -- 3b. a real full disk (a 1 MiB tmpfs) -------------------------------------------------------


def test_a_full_disk_refuses_leaves_no_fragment_and_resumes(small_disk: Path) -> None:
    data = small_disk / "data"

    async def run() -> None:
        store = Store(data).open()
        await put(store, 1)
        path = journal(data)
        good = path.stat().st_size
        filler = fill(small_disk)
        big = [Put("anomalies", str(i), doc(i, pad=3000)) for i in (2, 3, 4)]
        results = await asyncio.gather(*(store.commit([op]) for op in big), return_exceptions=True)
        assert all(isinstance(r, StoreFailed) for r in results), results
        assert path.stat().st_size == good, "no torn fragment stays in the journal"
        assert store.get("anomalies", "2") is None
        assert "No space left on device" in (store.write_error or "")
        with pytest.raises(StoreFailed):
            await put(store, 5)
        filler.unlink()
        await resumed(store)
        assert store.write_error is None, "resumed without a restart"
        await store.commit([Put("anomalies", "6", doc(6, pad=3000))])
        crash(store)

    asyncio.run(run())
    store = Store(data).open()
    assert sorted(int(k) for k in store.all("anomalies")) == [1, 6]
    store.close_sync()


def test_a_failed_checkpoint_removes_its_temp_file(small_disk: Path) -> None:
    fill(small_disk)
    os.truncate(small_disk / "filler", 512 * 1024)  # room for some, not all of the checkpoint
    target = small_disk / "anomaly-desk.json"
    rows = {str(i): doc(i, pad=1000) for i in range(1000)}
    with pytest.raises(OSError, match="No space left"):
        AtomicJSONStorage(target).write({"anomalies": rows})
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


# -- 4. private files, stale temp ----------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"

    async def run() -> None:
        store = Store(data).open()
        await put(store, 1)
        await store.close()

    asyncio.run(run())
    assert mode(data) == 0o700
    names = {p.name: mode(p) for p in data.iterdir()}
    assert {"anomaly-desk.json", "anomaly-desk.lock", "journal-000001.log"} <= set(names)
    assert set(names.values()) == {0o600}, names


def test_an_open_data_directory_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    with caplog.at_level(logging.INFO, logger="anomaly_desk.core.store"):
        Store(data).open().close_sync()
    assert mode(data) == 0o700
    assert any("0755" in r.getMessage() and str(data) in r.getMessage() for r in caplog.records)


def test_a_stale_checkpoint_temp_is_removed_at_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build(tmp_path)
    stale = tmp_path / ".anomaly-desk.json.tmp"
    stale.write_bytes(b'{"anomalies": {"1": ')  # a checkpoint cut short by a crash
    with caplog.at_level(logging.INFO, logger="anomaly_desk.core.store"):
        store = Store(tmp_path).open()
    assert not stale.exists()
    assert any(stale.name in r.getMessage() for r in caplog.records)
    assert store.count() == 8
    store.close_sync()
