"""The demo's replay at a watchable pace: anomalies about a second apart, status changes later."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

from anomaly_desk.replay import Payload, Result, Sender

# Seconds before each delivery at speed 1.
FIRST_DELAY_S, DETECTION_GAP_S, STATUS_PAUSE_S, STATUS_GAP_S = 2.0, 1.0, 5.0, 2.0


def delays(payloads: Sequence[Payload], speed: float | None) -> list[float]:
    """Seconds to wait before each delivery; ``speed`` None means no pauses at all."""
    if speed is None:
        return [0.0] * len(payloads)
    out: list[float] = []
    seen_status = False
    for index, payload in enumerate(payloads):
        if index == 0:
            gap = FIRST_DELAY_S
        elif payload.status_change:
            gap = STATUS_GAP_S if seen_status else STATUS_PAUSE_S
            seen_status = True
        else:
            gap = DETECTION_GAP_S
        out.append(gap / speed)
    return out


async def paced_replay(
    payloads: Sequence[Payload],
    pauses: Sequence[float],
    sender: Sender,
    on_result: Callable[[Result], None],
    stop: threading.Event | None = None,
) -> list[Result]:
    """Send each payload after its pause; ``stop`` ends the replay between deliveries."""
    results: list[Result] = []
    for payload, pause in zip(payloads, pauses, strict=True):
        deadline = time.monotonic() + pause
        while (left := deadline - time.monotonic()) > 0:
            if stop is not None and stop.is_set():
                return results
            await asyncio.sleep(min(left, 0.1))
        if stop is not None and stop.is_set():
            return results
        result = await sender.send(payload)
        results.append(result)
        on_result(result)
    return results
