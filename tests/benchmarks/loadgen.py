"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams.

httpx costs about as much CPU per request as the server under test, which would make every
server look equally fast; pre-encoded requests over keep-alive sockets cost a fraction of that.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)


def encode_post(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run_load(
    port: int,
    make_request: Callable[[int], bytes],
    total: int,
    concurrency: int = 32,
    start: int = 0,
) -> LoadResult:
    """Send ``total`` requests (numbered from ``start``) over ``concurrency`` keep-alive sockets."""
    counter = iter(range(start, start + total))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in counter:
                sent = time.perf_counter()
                writer.write(make_request(n))
                status = await _read_response(reader)
                latencies.append((time.perf_counter() - sent) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return LoadResult(total, time.perf_counter() - began, latencies, statuses)
