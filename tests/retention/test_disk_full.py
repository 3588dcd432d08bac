"""A compaction on a full disk moves nothing it cannot write, loses nothing, and the next run
(space given back) finishes the job: every anomaly found exactly once, hot or cold."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from anomaly_desk.core.config import RetentionSettings
from anomaly_desk.core.retention import compact
from anomaly_desk.core.store import Store
from tests.retention.support import mixed, seed, where_each_is
from tests.support import fill

N = 300


async def _compact(data: Path) -> None:
    store = Store(data).open()
    try:
        await compact(store, RetentionSettings())
    finally:
        await store.close()


def test_a_compaction_on_a_full_disk_loses_nothing(small_disk: Path) -> None:
    data = small_disk / "data"
    seed(data, mixed(N))
    filler = fill(small_disk)
    with pytest.raises(OSError, match="No space left"):  # said, never swallowed
        asyncio.run(_compact(data))
    store = Store(data).open()
    try:
        hot, cold = where_each_is(store)
        assert hot | cold == set(range(1, N + 1))
        assert not hot & cold
    finally:
        store.close_sync()
    filler.unlink()
    asyncio.run(_compact(data))
    store = Store(data).open()
    try:
        hot, cold = where_each_is(store)
        assert hot | cold == set(range(1, N + 1))
        assert not hot & cold
        assert len(cold) == N - N // 5
    finally:
        store.close_sync()
