"""``python -m tests.benchmarks checkpoint``: how much a checkpoint holds up the event loop.

A store of N anomalies (default 290,000, what the hot store keeps of a million after retention)
gets 500 changes spread over its segments, then a checkpoint; meanwhile a task commits one change
every 5 ms (each a durable, fsync-ed write, as a webhook's) and a ticker measures the loop's lag.
Run with Python's default GIL switch interval (5 ms) as the baseline and with the store's own
(``journal.CHECKPOINT_SWITCH_S``), interleaved, in one run.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from anomaly_desk.core import journal
from anomaly_desk.core.runtime import refreeze
from anomaly_desk.core.store import Put, Store

DEFAULT_N = 290_000
ROUNDS = 2


def _doc(i: int) -> dict[str, object]:
    return {
        "id": i,
        "type": "record",
        "status": "Active",
        "weight": i % 100,
        "datastore": {"id": 12, "name": "warehouse_prod"},
        "container": {"id": 300 + i % 7, "name": f"table_{i % 7}"},
        "fields": ["customer_id", "amount"],
        "message": f"customer_id is null in {i} records",
        "created": f"2026-0{1 + i % 9}-{10 + i % 18}T08:00:00Z",
        "received_at": "2026-11-05T08:00:00.000Z",
        "updated_at": "2026-11-20T08:00:00.000Z",
        "comments": [],
        "links": [],
        "history": [{"at": "2026-11-20T08:00:00.000Z", "kind": "received", "by": "platform"}],
    }


def _p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


async def _one(data: Path, n: int, switch: float) -> dict[str, float]:
    journal.CHECKPOINT_SWITCH_S = switch
    store = Store(data).open()
    refreeze()
    lags: list[float] = []
    commits: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            lags.append(now - last - 0.001)
            last = now

    try:
        for i in random.sample(range(1, n + 1), 500):
            doc = dict(store.get("anomalies", str(i)) or {})
            doc["status"] = "Acknowledged"
            await store.commit([Put("anomalies", str(i), doc)])
        store._checkpoint_threshold = lambda: 1  # type: ignore[method-assign]
        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        k = 0
        await store.commit([Put("anomalies", "1", _doc(1))])  # crosses the threshold
        while store._checkpoint is None or not store._checkpoint.done():
            k += 1
            doc = {**_doc(2), "message": f"change {k}"}
            at = time.perf_counter()
            await store.commit([Put("anomalies", "2", doc)])
            commits.append(time.perf_counter() - at)
            await asyncio.sleep(0.005)
        took = time.perf_counter() - started
        done = True
        await tick
    finally:
        await store.close()
    return {
        "checkpoint_s": took,
        "commit_p50": _p(commits, 0.5),
        "commit_p99": _p(commits, 0.99),
        "lag_p99": _p(lags, 0.99),
        "lag_max": max(lags) * 1000,
    }


def main(argv: list[str] | None = None) -> list[str]:
    n = int(argv[0]) if argv else DEFAULT_N
    chosen = journal.CHECKPOINT_SWITCH_S
    results: dict[float, list[dict[str, float]]] = {sys.getswitchinterval(): [], chosen: []}
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as tmp:
        data = Path(tmp) / "data"
        store = Store(data).open()
        store.bulk_load([_doc(i) for i in range(1, n + 1)])
        store.close_sync()
        for _ in range(ROUNDS):
            for switch in results:
                results[switch].append(asyncio.run(_one(data, n, switch)))
    journal.CHECKPOINT_SWITCH_S = chosen
    lines = [
        f"Checkpoint stall: {n:,} anomalies, 500 changes over its segments, then a checkpoint "
        f"while a change is committed every 5 ms; median of {ROUNDS} interleaved runs (ms).",
        "",
        "| GIL switch interval during the checkpoint | checkpoint | commit p50 | commit p99 "
        "| loop lag p99 | loop lag max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for switch, runs in results.items():
        m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        label = f"{switch * 1000:g} ms" + (" (the store's)" if switch == chosen else " (Python's)")
        lines.append(
            f"| {label} | {m['checkpoint_s']:.2f} s | {m['commit_p50']:.1f} | "
            f"{m['commit_p99']:.1f} | {m['lag_p99']:.1f} | {m['lag_max']:.1f} |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
