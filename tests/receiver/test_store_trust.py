"""The receiver as a process keeps its promise through torn tails, damage and a full disk.

Every test kills the receiver with SIGKILL at some point and reads back over HTTP: each webhook
answered 200 must be there afterwards, and none that was refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from tests.support import ROOT, cli_process, fill, free_port

BASE = 500_000


def body(i: int, pad: int = 0) -> bytes:
    return orjson.dumps(
        {
            "id": BASE + i,
            "type": "record",
            "status": "Active",
            "created": "2026-11-20T08:00:00Z",
            "message": "x" * pad,
        }
    )


def post(url: str, i: int, pad: int = 0) -> int:
    response = httpx.post(
        f"{url}/webhooks/qualytics",
        content=body(i, pad),
        headers={"content-type": "application/json"},
        timeout=10,
    )
    return response.status_code


def stored(url: str) -> set[int]:
    ids: set[int] = set()
    cursor = None
    while True:
        params = {"status": "all", "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{url}/api/anomalies", params=params, timeout=10).json()
        ids |= {a["id"] - BASE for a in page["items"]}
        if not (cursor := page["next_cursor"]):
            return ids


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def serve(data: Path, port: int, *extra: str) -> list[str]:
    return ["serve", "--port", str(port), "--data-dir", str(data), *extra]


def log_of(proc: subprocess.Popen[bytes], wanted: str, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = Path(proc.log).read_text(errors="replace")  # type: ignore[attr-defined]
        if wanted in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_an_ack_after_a_torn_tail_survives_the_next_crash(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    with cli_process(*serve(data, port), url=f"{url}/healthz") as proc:
        assert [post(url, 1), post(url, 2)] == [200, 200]
        kill(proc)
    path = max(data.glob("journal-*.log"))
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 5)  # the last line is torn
    with cli_process(*serve(data, port), url=f"{url}/healthz") as proc:
        assert stored(url) == {1}
        assert post(url, 3) == 200
        kill(proc)
    with cli_process(*serve(data, port), url=f"{url}/healthz"):
        assert stored(url) == {1, 3}


def test_an_emptied_checkpoint_is_refused_then_repaired(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    with cli_process(*serve(data, port), url=f"{url}/healthz") as proc:
        assert [post(url, i) for i in (1, 2, 3)] == [200] * 3
        proc.send_signal(signal.SIGTERM)  # a clean stop: 1-3 now live only in the checkpoint
        proc.wait(timeout=20)
    with cli_process(*serve(data, port), url=f"{url}/healthz") as proc:
        assert [post(url, i) for i in (4, 5)] == [200] * 2
        kill(proc)
    (data / "anomaly-desk.json").write_bytes(b"")

    refused = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", *serve(data, port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode != 0
    assert str(data / "anomaly-desk.json") in refused.stderr
    assert "--repair" in refused.stderr
    assert "Traceback" not in refused.stderr

    with cli_process(*serve(data, port, "--repair"), url=f"{url}/healthz") as proc:
        said = log_of(proc, "recovered")
        assert "missing" in said, said
        assert "2 anomalies recovered" in said, said
        assert stored(url) == {4, 5}
        assert [post(url, i) for i in (6, 7)] == [200] * 2
        kill(proc)
    assert list(data.glob("anomaly-desk.json.damaged-*")), "the damaged file is kept"
    with cli_process(*serve(data, port), url=f"{url}/healthz"):
        assert stored(url) == {4, 5, 6, 7}


def test_serve_help_documents_repair() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "--repair" in result.stdout
    assert "lose" in result.stdout


def test_a_full_disk_answers_503_and_resumes_without_a_restart(small_disk: Path) -> None:
    data, port = small_disk / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    acked: set[int] = set()
    refused: set[int] = set()
    with cli_process(*serve(data, port), url=f"{url}/healthz") as proc:
        assert post(url, 1) == 200
        acked.add(1)
        filler = fill(small_disk)
        for i in range(2, 12):  # the journal's last page may still take one or two
            status = post(url, i, pad=3000)
            assert status in (200, 503)
            (acked if status == 200 else refused).add(i)
        assert len(refused) >= 8
        for i in refused:
            assert httpx.get(f"{url}/api/anomalies/{BASE + i}").status_code == 404
        filler.unlink()
        deadline = time.monotonic() + 5
        while (status := post(url, 20, pad=3000)) == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200, "writes resume without a restart"
        acked.add(20)
        assert post(url, 21) == 200
        acked.add(21)
        assert "writes resumed" in log_of(proc, "writes resumed")
        kill(proc)
    with cli_process(*serve(data, port), url=f"{url}/healthz"):
        ids = stored(url)
        assert acked <= ids, f"acknowledged and lost: {sorted(acked - ids)}"
        assert not refused & ids, f"refused but stored: {sorted(refused & ids)}"
