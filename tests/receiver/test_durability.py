"""The receiver as a process: kill -9 mid-burst loses nothing acknowledged; one writer per directory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
from tinydb import TinyDB

from tests.support import ROOT, cli_process, free_port


def anomaly(i: int) -> bytes:
    return orjson.dumps(
        {
            "id": 500_000 + i,
            "type": "record",
            "status": "Active",
            "weight": i % 100,
            "container": {"id": 1, "name": "orders"},
            "fields": ["amount"],
            "message": f"amount out of range in {i} records",
            "created": "2026-11-20T08:00:00Z",
        }
    )


async def burst(url: str, proc: subprocess.Popen[bytes], total: int, kill_after: int) -> set[int]:
    """Post ``total`` webhooks 32 at a time; SIGKILL the receiver once ``kill_after`` got a 2xx."""
    acked: set[int] = set()
    queue = iter(range(total))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in queue:
            try:
                response = await client.post(
                    "/webhooks/qualytics",
                    content=anomaly(i),
                    headers={"content-type": "application/json"},
                )
            except httpx.TransportError:
                return
            if response.status_code == 200:
                acked.add(500_000 + i)
                if len(acked) == kill_after:
                    os.kill(proc.pid, signal.SIGKILL)

    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(32)))
    return acked


def test_kill_9_mid_burst_loses_no_acknowledged_webhook(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "--port", str(port), "--data-dir", str(data))
    with cli_process(*args, url=f"{url}/healthz") as proc:
        acked = asyncio.run(burst(url, proc, total=5000, kill_after=1500))
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 1500
    assert list(data.glob("journal-*.log")), "the burst went to the journal"

    with cli_process(*args, url=f"{url}/healthz") as proc:
        stored: set[int] = set()
        cursor = None
        while True:
            page = httpx.get(
                f"{url}/api/anomalies",
                params={"limit": 500, **({"cursor": cursor} if cursor else {})},
            ).json()
            stored |= {a["id"] for a in page["items"]}
            if not (cursor := page["next_cursor"]):
                break
        assert acked <= stored, f"{len(acked - stored)} acknowledged webhooks were lost"
        proc.send_signal(signal.SIGTERM)  # a clean stop leaves a checkpoint
        proc.wait(timeout=20)
        assert proc.returncode == -signal.SIGTERM  # uvicorn re-raises the signal after shutdown
    journals = list(data.glob("journal-*.log"))
    assert [p.stat().st_size for p in journals] == [0], "a clean stop folds the journal in"

    # The checkpoint is a plain TinyDB file: TinyDB's own storage reads it.
    db = TinyDB(data / "anomaly-desk.json", access_mode="r")
    ids = {doc["id"] for doc in db.table("anomalies").all()}
    assert acked <= ids
    assert db.table("_meta").get(doc_id=1)["schema"] == 1


def test_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    with cli_process(
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        url=f"http://127.0.0.1:{port}/healthz",
    ) as first:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "anomaly_desk",
                "serve",
                "--port",
                str(free_port()),
                "--data-dir",
                str(data),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert f"pid {first.pid}" in second.stderr
        assert f"http://127.0.0.1:{port}" in second.stderr
        assert str(data) in second.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200  # the first goes on


def test_serve_refuses_a_public_address_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_DESK_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "anomaly_desk",
            "serve",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    assert "without a webhook secret" in result.stderr
    assert not (tmp_path / "anomaly-desk.lock").exists()  # refused before touching the store


def test_serve_help_explains() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    for flag in ("--host", "--port", "--data-dir", "--config"):
        assert flag in result.stdout
