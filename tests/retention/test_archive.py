"""The cold archive on disk: what a compaction moves, what stays, permissions, deletion of old
months, and opening after a crash (index missing, behind, or a torn member at the end)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from anomaly_desk.core.archive import ArchiveDamaged
from anomaly_desk.core.config import RetentionSettings
from anomaly_desk.core.retention import compact
from anomaly_desk.core.store import Store
from anomaly_desk.core.views import CompactView
from tests.retention.support import mixed, seed, stored, where_each_is

N = 600


def run(data: Path, settings: RetentionSettings | None = None, **kw: object) -> CompactView:
    async def go() -> CompactView:
        store = Store(data).open()
        try:
            return await compact(store, settings or RetentionSettings(), **kw)  # type: ignore[arg-type]
        finally:
            await store.close()

    return asyncio.run(go())


def test_old_archived_anomalies_move_open_ones_stay_and_every_one_is_found_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    seed(data, [*mixed(N), stored(N + 1, "Resolved", "2099-01-01T00:00:00.000Z")])
    view = run(data)
    assert view.moved == N - N // 5  # every archived one but the one changed "recently"
    assert view.months == ["2026-06", "2026-07", "2026-08"]
    assert (view.hot, view.cold) == (N // 5 + 1, N - N // 5)
    store = Store(data).open()
    try:
        hot, cold = where_each_is(store)
        assert hot | cold == set(range(1, N + 2))
        assert not hot & cold
        assert all(store.get("anomalies", str(i))["status"] == "Active" for i in hot - {N + 1})
        row = store.cold_row(7)
        assert row is not None
        assert row["message"] == "customer_id is null in 7 records"
        assert store.cold_row(5) is None  # open: hot, never cold
        assert store.anomaly_doc(7) is None  # no longer in the hot store
    finally:
        store.close_sync()
    again = run(data)  # nothing more to do
    assert (again.moved, again.hot, again.cold) == (0, N // 5 + 1, N - N // 5)


def test_files_are_private_and_nothing_is_deleted_without_delete_after_days(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    seed(data, mixed(N))
    run(data)
    archive = data / "archive"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700
    files = sorted(p.name for p in archive.iterdir())
    months = ("2026-06", "2026-07", "2026-08")  # each with its search-text sidecar
    names = [f"{m}.{suffix}" for m in months for suffix in ("jsonl.gz", "text")]
    assert files == [*names, "index"]
    for path in archive.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    far_future = 4_102_444_800.0  # 2100: without delete_after_days, still nothing goes
    view = run(data, now=far_future)
    assert view.deleted_months == []
    assert view.cold == N - N // 5
    assert sorted(p.name for p in archive.iterdir()) == files


def test_delete_after_days_deletes_only_the_months_wholly_older(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data, mixed(N))
    run(data)
    # 2026-08-20 + 20 days = 2026-09-09: June and July are wholly older than 20 days, August not
    now = 1_788_912_000.0  # 2026-09-09T00:00:00Z
    view = run(data, RetentionSettings(delete_after_days=20), now=now)
    assert view.deleted_months == ["2026-06", "2026-07"]
    in_august = [i for i in range(1, N + 1) if i % 5 and i % 3 == 2]
    assert view.deleted == N - N // 5 - len(in_august)
    assert sorted(p.name for p in (data / "archive").iterdir()) == [
        "2026-08.jsonl.gz",
        "2026-08.text",
        "index",
    ]
    store = Store(data).open()
    try:
        _, cold = where_each_is(store)
        assert cold == set(in_august)
        assert store.cold_row(in_august[0]) is not None
        assert store.cold_row(3) is None  # June: deleted (3 % 3 == 0)
    finally:
        store.close_sync()


def test_a_lost_index_is_rebuilt_from_the_months(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data, mixed(N))
    run(data)
    (data / "archive" / "index").unlink()
    store = Store(data).open()
    try:
        hot, cold = where_each_is(store)
        assert len(cold) == N - N // 5
        assert not hot & cold
        assert store.cold_row(11) is not None
    finally:
        store.close_sync()
    assert (data / "archive" / "index").exists()


def test_a_crash_after_the_append_leaves_records_the_index_does_not_cover(
    tmp_path: Path,
) -> None:
    """Records appended (durably) but no index written: the next open reads the tail; the rows
    are both hot and cold, and hot wins until the next run moves them again."""
    data = tmp_path / "data"
    seed(data, mixed(N))
    store = Store(data).open()
    rows = [store.get("anomalies", str(i)) for i in (1, 2, 3)]
    store.cold.append([row for row in rows if row is not None], seq=1)
    # no index write, no delete: as if killed right here
    store.close_sync()
    store = Store(data).open()
    try:
        assert 1 in store.cold
        assert store.is_hot(1)
        assert store.cold_row(1) is None  # hot wins
        hot, cold = where_each_is(store)
        assert 1 in hot
        assert 1 not in cold
    finally:
        store.close_sync()
    view = run(data)
    assert view.moved == N - N // 5


def test_a_member_torn_by_a_crash_is_cut_off_and_damage_inside_is_refused(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    seed(data, mixed(N))
    run(data)
    month = data / "archive" / "2026-07.jsonl.gz"
    size = month.stat().st_size
    first = month.read_bytes()
    with open(month, "ab") as fh:  # half a member, as a kill -9 mid-write leaves it
        fh.write(first[: len(first) // 2])
    store = Store(data).open()
    try:
        assert month.stat().st_size == size  # cut back
        _, cold = where_each_is(store)
        assert len(cold) == N - N // 5
    finally:
        store.close_sync()
    raw = bytearray(month.read_bytes())
    raw[40:60] = bytes(20)  # damage inside: refused, even with no index to go by
    month.write_bytes(bytes(raw))
    (data / "archive" / "index").unlink()  # so the open has to read it all
    with pytest.raises(ArchiveDamaged, match="restore the file from a backup"):
        Store(data).open()
    assert month.stat().st_size == size  # refused, never cut


def test_a_month_file_gone_before_the_index_knew_is_forgotten_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As a crash between deleting old months (delete_after_days) and writing the index
    leaves it."""
    data = tmp_path / "data"
    seed(data, mixed(N))
    run(data)
    (data / "archive" / "2026-06.jsonl.gz").unlink()
    store = Store(data).open()
    try:
        _, cold = where_each_is(store)
        assert cold == {i for i in range(1, N + 1) if i % 5 and i % 3 != 0}
    finally:
        store.close_sync()
    assert "month file(s) gone: 2026-06" in caplog.text
