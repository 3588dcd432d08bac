"""Webhooks at a fixed rate, for latency: the scale benchmark's load.

Unlike :func:`tests.benchmarks.loadgen.run_load` (closed loop, as fast as the server goes, for
throughput), requests here are *scheduled* (``rate`` per second) and a latency counts from the
scheduled time, not from when a free connection got round to sending it: a server that stalls
for a second shows a second-long latency on every webhook that arrived meanwhile, as a sender
on the platform would see it (no coordinated omission).

The mix is what a busy desk receives: mostly new anomalies, status changes of open ones, and
now and then a months-old archived anomaly the platform reopens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from tests.benchmarks import scale_docs
from tests.benchmarks.loadgen import _read_response, encode_post

PATH = "/webhooks/qualytics"
NEW_IDS = 2_000_000_000  # far above any seeded id


@dataclass
class Paced:
    """One paced run: per request, its scheduled time (perf_counter), latency (ms) and status."""

    scheduled: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def percentile(self, p: float, since: float | None = None, until: float | None = None) -> float:
        chosen = [
            ms
            for at, ms in zip(self.scheduled, self.latencies_ms, strict=True)
            if (since is None or at >= since) and (until is None or at <= until)
        ]
        return percentile(chosen, p) if chosen else float("nan")

    def count(self, since: float, until: float) -> int:
        return sum(1 for at in self.scheduled if since <= at <= until)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class WebhookMix:
    """Request ``n`` of a run against a store of ``size`` seeded anomalies (``scale_docs``)."""

    def __init__(self, size: int, seeded_at: float) -> None:
        self.size = size
        self.seeded_at = seeded_at
        self.status: dict[int, str] = {}  # what we last told the receiver, per seeded id

    def kind(self, n: int) -> str:
        if n % 50 == 49:
            return "reopen"  # 2 %
        if n % 10 in (1, 4, 7):
            return "change"  # 30 %
        return "new"

    def _seeded(self, i: int, status: str) -> dict[str, object]:
        p = (i - 1) / self.size
        created = scale_docs._platform_time(scale_docs._created(p, self.seeded_at))
        return scale_docs.platform_anomaly(i, status, created)

    def anomaly(self, n: int) -> dict[str, object]:
        kind = self.kind(n)
        if kind == "new":
            return scale_docs.platform_anomaly(NEW_IDS + n)
        if kind == "change":  # an open one of the newest fifth: Active ⇄ Acknowledged
            recent = max(1, self.size // 5)
            i = self.size - recent + 1 + (n * 104_729) % recent
            if scale_docs._is_archived(i, (i - 1) / self.size):
                i = i + 1 if i < self.size else i - 1
            stored = (
                self.status.get(i)
                or scale_docs.stored_anomaly(i, self.size, self.seeded_at)["status"]
            )
            self.status[i] = "Active" if stored == "Acknowledged" else "Acknowledged"
            return self._seeded(i, self.status[i])
        old = max(1, self.size // 2)  # created more than six months ago
        i = 1 + (n * 7_919) % old
        while not scale_docs._is_archived(i, (i - 1) / self.size) and i < self.size:
            i += 1
        self.status[i] = "Active"
        return self._seeded(i, "Active")

    def request(self, n: int) -> bytes:
        anomaly = self.anomaly(n)
        change = self.kind(n) != "new"
        body = {
            "event": "qualytics.flow.triggered",
            "flow": {"id": 41, "name": "Escalate warehouse anomalies"},
            "trigger": {
                "type": "AnomalyStatusChange" if change else "anomaly",
                "timestamp": scale_docs.iso(time.time()),
            },
            "datastore": anomaly["datastore"],
            "context": {"anomalies": [anomaly], "containers": None, "quality_checks": None},
        }
        return encode_post(PATH, orjson.dumps(body))


async def paced(
    port: int,
    make_request: Callable[[int], bytes],
    count: int,
    rate: float,
    start: int = 0,
    connections: int = 8,
    more: Callable[[], bool] | None = None,
    most: int | None = None,
    kind: Callable[[int], str] = lambda n: "",
) -> Paced:
    """``count`` requests at ``rate``/s over up to ``connections`` keep-alive sockets; then more
    while ``more()`` holds, up to ``most`` in all."""
    result = Paced()
    began = time.perf_counter() + 0.05
    limit = most if most is not None else count
    next_n = 0

    def take() -> int | None:
        nonlocal next_n
        if next_n >= limit or (next_n >= count and (more is None or not more())):
            return None
        next_n += 1
        return next_n - 1

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (k := take()) is not None:
                scheduled = began + k / rate
                wait = scheduled - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(make_request(start + k))
                status = await _read_response(reader)
                result.scheduled.append(scheduled)
                result.kinds.append(kind(start + k))
                result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    result.seconds = time.perf_counter() - began
    return result
