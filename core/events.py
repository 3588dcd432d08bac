"""In-process publish/subscribe for live views (the dashboard's server-sent events).

Publishing never blocks and never fails: a subscriber that falls behind loses its oldest events
and is told so (``stream.lagged``), then refetches — a slow dashboard must not slow ingestion.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

QUEUE_SIZE = 2_000


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._ids = itertools.count(1)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, type_: str, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        event = {"id": next(self._ids), "type": type_, "at": time.time(), "data": data}
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
                lagged = {"id": event["id"], "type": "stream.lagged", "at": event["at"], "data": {}}
                if not queue.full():
                    queue.put_nowait(lagged)
                    continue
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
