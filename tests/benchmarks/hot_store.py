"""The hot store at scale: memory per anomaly, start time, list/search, a small checkpoint.

    .venv/bin/python -m tests.benchmarks.hot_store 100000 300000 1000000

For each size: a fresh data directory is bulk-loaded (``Store.bulk_load``, the ingest
benchmark's documents with a mix of statuses), then a *new process* opens it (what a restart
does) and reports the time to open, its resident memory (VmRSS) and what that costs per anomaly
over an empty store, the list/filter/search times through ``Store.list_anomalies``, and what a
checkpoint after a small change (100 anomalies updated) takes and writes. Times in ``_ms``
are CPU time (the best of 5); ``open_s`` is wall-clock, ``open_cpu_s`` the CPU time of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from anomaly_desk.core.store import Put, Store
from tests.benchmarks.tui import seeded_doc


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def files(data: Path) -> dict[str, tuple[int, int]]:
    """Each file's (mtime_ns, size)."""
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in data.iterdir()}


def load(data: Path, size: int) -> dict[str, float]:
    base = rss_mb()
    started = time.perf_counter()
    store = Store(data).open()
    store.bulk_load(seeded_doc(i) for i in range(1, size + 1))
    took = time.perf_counter() - started
    loaded = rss_mb()
    store.close_sync()
    on_disk = sum(p.stat().st_size for p in data.iterdir())
    return {
        "load_s": took,
        "rss_loaded_mb": loaded,
        "rss_before_mb": base,
        "disk_mb": on_disk / 1e6,
    }


def best(fn: Callable[[], object], n: int = 5) -> float:
    """The best of ``n`` runs, in ms of CPU time (other processes on the machine do not count)."""
    times = []
    for _ in range(n):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times) * 1000


def reopen(data: Path, size: int) -> dict[str, float]:
    base = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    store = Store(data).open()
    opened, cpu = time.perf_counter() - started, time.process_time() - cpu
    rss = rss_mb()
    out = {
        "open_s": opened,
        "open_cpu_s": cpu,
        "rss_open_mb": rss,
        "bytes_per_anomaly": (rss - base) * 1024 * 1024 / size,
        "list_ms": best(lambda: store.list_anomalies(None, limit=50)),
        "filter_ms": best(lambda: store.list_anomalies(["Resolved"], limit=50)),
        "search_ms": best(lambda: store.list_anomalies(None, q="table_7", limit=50)),
        "search_rare_ms": best(lambda: store.list_anomalies(None, q="no such text", limit=50)),
        "counts_ms": best(store.status_counts),
    }

    async def change() -> None:
        for i in range(size - 99, size + 1):
            await store.commit([Put("anomalies", str(i), {**seeded_doc(i), "status": "Resolved"})])

    asyncio.run(change())
    before = files(data)
    started, cpu = time.perf_counter(), time.process_time()
    store._write_checkpoint(store._rotate())
    out["checkpoint_ms"] = (time.perf_counter() - started) * 1000
    out["checkpoint_cpu_ms"] = (time.process_time() - cpu) * 1000
    after = files(data)
    written = [n for n, st in after.items() if before.get(n) != st and not n.endswith(".log")]
    out["checkpoint_mb_written"] = sum(after[n][1] for n in written) / 1e6
    out["checkpoint_files_written"] = len(written)
    store.close_sync()
    return out


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        phase, data, size = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
        result = load(data, size) if phase == "load" else reopen(data, size)
        print(json.dumps(result))
        return
    for size in [int(a) for a in sys.argv[1:]] or [100_000]:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            row: dict[str, float] = {"size": size}
            for phase in ("load", "open"):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "tests.benchmarks.hot_store",
                        "--child",
                        phase,
                        str(data),
                        str(size),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ},
                )
                row.update(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
