"""``kill -9`` during a compaction loses nothing: after each kill, at whatever moment, every
anomaly is found exactly once, hot or cold, as it was; the next run finishes the work."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from anomaly_desk.core.store import Store
from tests.retention.support import mixed, seed, where_each_is

N = 60_000
KILLS = 6


def check(data: Path, statuses: dict[int, str]) -> tuple[int, int]:
    """Every anomaly once, hot or cold, with its status; how many are hot and cold."""
    store = Store(data).open()
    try:
        hot, cold = where_each_is(store)
        assert not hot & cold, f"{len(hot & cold)} anomalies both hot and cold"
        assert hot | cold == set(statuses), f"lost: {sorted(set(statuses) - hot - cold)[:10]}"
        for anomaly_id in random.sample(sorted(cold), min(50, len(cold))):
            row = store.cold_row(anomaly_id)
            assert row is not None
            assert row["status"] == statuses[anomaly_id]
        for anomaly_id in random.sample(sorted(hot), min(50, len(hot))):
            row = store.get("anomalies", str(anomaly_id))
            assert row is not None
            assert row["status"] == statuses[anomaly_id]
        return len(hot), len(cold)
    finally:
        store.close_sync()


def test_kill_9_at_random_moments_of_a_compaction_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    docs = mixed(N)
    seed(data, docs)
    statuses = {int(doc["id"]): str(doc["status"]) for doc in docs}
    command = [sys.executable, "-m", "anomaly_desk", "compact", "--data-dir", str(data)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ANOMALY_DESK_CONFIG", None)
    rng = random.Random(int(os.environ.get("RETENTION_KILL_SEED", time.time())))
    killed = 0
    progress = []
    for _ in range(KILLS):
        log = tmp_path / "compact.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
        # once the store is open ("moving anomalies …"), the run takes a second or two: kill
        # early in it (appending, between append and delete, deleting, writing the index), so
        # that most runs are cut short and the next one goes on from there
        started = time.monotonic()
        while b"moving anomalies" not in log.read_bytes() and proc.poll() is None:
            assert time.monotonic() - started < 60, log.read_text()
            time.sleep(0.005)
        deadline = time.monotonic() + rng.uniform(0.0, 0.5)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
        progress.append(check(data, statuses))
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, log.read_text()
    assert killed, "every run finished before its kill: nothing was tested"
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert check(data, statuses) == (N // 5, N - N // 5), progress  # finished: all moved
