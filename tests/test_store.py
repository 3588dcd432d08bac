"""The store on its own: journal replay, torn writes, checkpoints under load, schema guard."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from anomaly_desk.core import store as store_module
from anomaly_desk.core.store import (
    Delete,
    Op,
    Put,
    Retention,
    Store,
    StoreError,
    StoreFailed,
    StoreLocked,
)


def doc(i: int, status: str = "Active") -> dict[str, object]:
    return {
        "id": i,
        "status": status,
        "type": "record",
        "created": f"2026-11-20T08:{i % 60:02d}:00Z",
        "message": f"m{i}",
    }


async def write_many(store: Store, ids: range) -> None:
    await asyncio.gather(*(store.commit([Put("anomalies", str(i), doc(i))]) for i in ids))


def test_journal_replays_and_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        await write_many(store, range(1, 51))
        store._close_journal()  # simulate a crash: no checkpoint, lock released by the OS
        store._release_lock()

    asyncio.run(run())
    journal = next(tmp_path.glob("journal-*.log"))
    with open(journal, "ab") as fh:
        fh.write(b'[["p","anomalies","99",{"id":99')  # a write cut off by the crash
    store = Store(tmp_path).open()
    assert store.count() == 50
    assert store.get("anomalies", "99") is None
    assert store.get("anomalies", "7")["message"] == "m7"
    store.close_sync()


def test_checkpoint_under_concurrent_writes_keeps_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHECKPOINT_MIN_RECORDS", 100)

    async def run() -> Store:
        store = Store(tmp_path).open()
        for start in range(0, 1000, 100):
            await write_many(store, range(start, start + 100))
        await store.barrier()
        if store._checkpoint:
            await store._checkpoint
        return store

    store = asyncio.run(run())
    assert store.stats["checkpoints"] >= 1  # taken while later batches were still arriving
    assert store.stats["batches"] < 1000 / 5, "concurrent commits are grouped into few writes"
    store._close_journal()
    store._release_lock()
    reopened = Store(tmp_path).open()
    assert reopened.count() == 1000
    assert len(list(tmp_path.glob("journal-*.log"))) == 1
    reopened.close_sync()


def test_list_uses_the_indexes(tmp_path: Path) -> None:
    store = Store(tmp_path).open()
    store.bulk_load(doc(i, "Active" if i % 3 else "Resolved") for i in range(1, 301))
    page, cursor = store.list_anomalies(["Resolved"], limit=10)
    assert [d.status for d in page] == ["Resolved"] * 10
    assert cursor is not None
    rest, _ = store.list_anomalies(["Resolved"], limit=500, after=cursor)
    assert len(page) + len(rest) == 100
    assert store.list_anomalies(None, q="m150")[0][0].id == 150
    store.close_sync()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    (tmp_path / "anomaly-desk.json").write_bytes(orjson.dumps({"_meta": {"1": {"schema": 99}}}))
    with pytest.raises(StoreError, match="newer anomaly-desk"):
        Store(tmp_path).open()
    Store(tmp_path / "other").open().close_sync()  # and the lock was released: no leak


def test_the_lock_names_its_holder(tmp_path: Path) -> None:
    first = Store(tmp_path, owner_url="http://127.0.0.1:9999").open()
    with pytest.raises(StoreLocked, match=r"pid \d+, serving http://127.0.0.1:9999"):
        Store(tmp_path).open()
    first.close_sync()
    Store(tmp_path).open().close_sync()


def test_search_pages_match_the_ordered_walk(tmp_path: Path) -> None:
    """Both search paths (sorting the matches, walking the order) give the same pages."""
    store = Store(tmp_path).open()
    store.bulk_load(doc(i, "Active" if i % 4 else "Acknowledged") for i in range(1, 2001))
    expected = [
        d.id for d in store.list_anomalies(None, limit=5000)[0] if "m1" in (d.message or "")
    ]
    for statuses in (None, ["Active"]):
        got, cursor = [], None
        while True:
            page, cursor = store.list_anomalies(statuses, q="M1", limit=37, after=cursor)
            got += [d.id for d in page]
            if cursor is None:
                break
        wanted = [i for i in expected if statuses is None or i % 4]
        assert got == wanted
    assert store.list_anomalies(None, q="no such text")[0] == []
    store.close_sync()


def test_on_commit_hears_each_durable_transaction_in_order_and_never_a_refused_one(
    tmp_path: Path,
) -> None:
    heard: list[list[str]] = []

    def hook(ops: list[Op]) -> None:
        assert store.stats["batches"] >= 1, "heard only once on disk"
        heard.append([op.key for op in ops])

    def broken(ops: list[Op]) -> None:
        raise RuntimeError("a listener bug")

    store = Store(tmp_path).open()
    store.on_commit(broken)  # logged; neither the commit nor the next hook suffers
    store.on_commit(hook)

    async def run() -> None:
        first = store.commit([Put("anomalies", "1", doc(1)), Put("anomalies", "2", doc(2))])
        second = store.commit([Delete("anomalies", "2")])
        await asyncio.gather(first, second)
        assert heard == [["1", "2"], ["2"]], "each transaction once, in commit order"

        def enospc(data: bytes) -> None:
            raise OSError(28, "No space left on device")

        store._append = enospc  # type: ignore[method-assign]
        with pytest.raises(StoreFailed):
            await store.commit([Put("anomalies", "3", doc(3))])
        assert heard == [["1", "2"], ["2"]]
        if store._probe:
            store._probe.cancel()

    asyncio.run(run())
    store._close_journal()
    store._release_lock()


def test_retention_is_the_callers_and_applies_at_each_checkpoint(tmp_path: Path) -> None:
    keep = Retention(delivery_s=60, sync_log=2, finished_jobs=1)
    store = Store(tmp_path, retention=keep).open()

    async def run() -> None:
        now = time.time()
        ops: list[Op] = [Put("sync_log", str(i), {"id": i}) for i in range(1, 6)]
        ops += [Put("jobs", str(i), {"id": i, "state": "done"}) for i in (1, 2, 3)]
        ops += [Put("jobs", "4", {"id": 4, "state": "pending"})]
        ops += [Put("deliveries", "old", {"at": now - 120}), Put("deliveries", "new", {"at": now})]
        await store.commit(ops)

    asyncio.run(run())
    store.close_sync()  # the final checkpoint applies the retention
    reopened = Store(tmp_path, retention=keep).open()
    assert sorted(reopened.all("sync_log"), key=int) == ["4", "5"]
    assert sorted(reopened.all("jobs"), key=int) == ["3", "4"]  # pending jobs always stay
    assert list(reopened.all("deliveries")) == ["new"]
    assert reopened.next_id("sync_log") == 6
    reopened.close_sync()
    default = Store(tmp_path).open()  # the defaults keep far more
    assert default.retention == Retention(7 * 24 * 3600, 50_000, 50_000)
    default.close_sync()
