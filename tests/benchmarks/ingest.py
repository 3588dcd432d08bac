"""Ingest benchmark: the receiver with 1k / 10k / 100k anomalies stored vs a bare endpoint.

Run: ``make bench`` (all benchmarks) or ``.venv/bin/python -m tests.benchmarks ingest``.
Each server runs in its own process (uvicorn, one worker) and the load generator in this one, so
on a two-core machine each has a core. Every webhook is a new anomaly: the most expensive case
(anomaly + delivery record written, journal fsync-ed before the 200).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from anomaly_desk.core.store import Store
from tests.benchmarks.loadgen import LoadResult, encode_post, run_load
from tests.support import ROOT, free_port, wait_http

SIZES = (1_000, 10_000, 100_000)
WARMUP = 500
REQUESTS = 6_000
CONCURRENCY = 32


def anomaly(i: int) -> dict[str, object]:
    """A realistic anomaly, about 1 KB of JSON, like the fixtures."""
    return {
        "id": i,
        "uuid": f"00000000-0000-4000-8000-{i:012d}",
        "type": "record" if i % 5 else "shape",
        "status": "Active",
        "weight": i % 100,
        "datastore": {"id": 12, "name": "warehouse_prod"},
        "container": {"id": 300 + i % 40, "name": f"table_{i % 40}"},
        "fields": ["customer_id", "amount"][: 1 + i % 2],
        "message": f"customer_id is null in {i % 5000} records; amount out of range in {i % 70} records",
        "failed_checks": [
            {
                "quality_check": {
                    "id": 9000 + i % 50,
                    "rule_type": "notNull",
                    "fields": ["customer_id"],
                    "description": "must not be null",
                },
                "message": f"{i % 5000} records fail notNull",
            }
        ],
        "global_tags": ["finance", "tier-1"],
        "anomalous_records_count": i % 5000,
        "fingerprint": 880000000 + i,
        "created": f"2026-11-{1 + i % 28:02d}T08:{i % 60:02d}:00Z",
        "url": f"https://acme.qualytics.io/anomalies/{i}",
    }


def stored_doc(i: int) -> dict[str, object]:
    at = "2026-11-20T08:00:00.000Z"
    doc = {**anomaly(i), "received_at": at, "updated_at": at, "comments": [], "links": []}
    doc["history"] = [{"at": at, "kind": "received", "status": "Active", "by": "platform"}]
    return doc


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(cmd: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/", timeout=120, proc=proc)
    return proc


def measure(proc: subprocess.Popen[bytes], port: int, first_id: int) -> tuple[LoadResult, float]:
    def request(n: int) -> bytes:
        return encode_post("/webhooks/qualytics", orjson.dumps(anomaly(first_id + n)))

    asyncio.run(run_load(port, request, WARMUP, CONCURRENCY))
    cpu_before = cpu_seconds(proc.pid)
    result = asyncio.run(run_load(port, request, REQUESTS, CONCURRENCY, start=WARMUP))
    cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1000 / REQUESTS
    bad = {s: c for s, c in result.statuses.items() if s != 200}
    if bad:
        raise SystemExit(f"non-200 answers during the benchmark: {bad}")
    return result, cpu_ms


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> list[str]:
    """Both of uvicorn's HTTP stacks: the ratio to a bare endpoint depends on which one."""
    lines: list[str] = []
    for http in ("httptools", "h11"):
        lines += run(http)
        lines.append("")
    return lines


def run(http: str) -> list[str]:
    rows: list[tuple[str, LoadResult, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        port = free_port()
        bare = serve(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.benchmarks.bare_app:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--http",
                http,
            ],
            port,
            Path(tmp) / "bare.log",
        )
        try:
            result, cpu = measure(bare, port, 10_000_000)
        finally:
            stop(bare)
        rows.append(("bare endpoint (parse only)", result, cpu))
        print(f"  {http} bare: {result.throughput:,.0f}/s", file=sys.stderr)
        for size in SIZES:
            data = Path(tmp) / f"data-{size}"
            started = time.perf_counter()
            store = Store(data).open()
            store.bulk_load(stored_doc(i) for i in range(1, size + 1))
            store.close_sync()
            seeded = time.perf_counter() - started
            port = free_port()
            started = time.perf_counter()
            proc = serve(
                [
                    sys.executable,
                    "-m",
                    "anomaly_desk",
                    "serve",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data),
                    "--http",
                    http,
                ],
                port,
                Path(tmp) / f"serve-{size}.log",
            )
            startup = time.perf_counter() - started
            try:
                result, cpu = measure(proc, port, 1_000_000)
            finally:
                stop(proc)
            rows.append((f"receiver, {size:,} stored", result, cpu))
            print(
                f"  {size:,}: {result.throughput:,.0f}/s (seeded in {seeded:.1f}s, "
                f"started in {startup:.1f}s)",
                file=sys.stderr,
            )

    base = rows[0][1].throughput
    base_cpu = rows[1][2]
    lines = [
        f"Ingest over uvicorn's {http} HTTP stack: {REQUESTS:,} new-anomaly webhooks, "
        f"{CONCURRENCY} concurrent keep-alive connections, after {WARMUP} warm-up",
        "",
        "| server | webhooks/s | vs bare | p50 ms | p99 ms | server CPU ms/webhook | vs 1k |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result, cpu in rows:
        vs_1k = "" if name.startswith("bare") else f"{cpu / base_cpu:.2f}x"
        lines.append(
            f"| {name} | {result.throughput:,.0f} | {result.throughput / base:.0%} | "
            f"{result.p50:.1f} | {result.percentile(99):.1f} | {cpu:.3f} | {vs_1k} |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
