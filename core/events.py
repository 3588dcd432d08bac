"""In-process publish/subscribe for live views (the dashboard's server-sent events).

Publishing never blocks, never fails, and costs O(1) per subscriber whatever that subscriber is
doing: a slow dashboard must not slow ingestion. Every publish still visits every subscriber, so
callers that serve strangers cap how many there are (``subscribe(limit=...)``).

A subscriber holds at most ``QUEUE_SIZE`` undelivered events. A publish that finds them full starts
a *lag episode*: that event and every later one are dropped for this subscriber (drop-newest) until
it has drained what it holds; then it gets ONE ``stream.lagged`` event (``data.dropped`` counts
what it missed; its ``id`` is the last one dropped) and fresh events again. So a subscriber sees an
unbroken run of events, a single marker exactly where the gap is ("refetch"), then an unbroken run.
Drop-oldest was the alternative; it was not chosen because it hides the gap behind events already
queued and, for a subscriber that stays slow, re-arms the marker on every publish: a refetch per
event. Here a subscriber that stays slow gets at most one marker per ``QUEUE_SIZE`` events.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass

from pydantic import BaseModel

from anomaly_desk.core.views import StreamLagged
from anomaly_desk.core.vocabulary import EventName

QUEUE_SIZE = 2_000
LAGGED = EventName.STREAM_LAGGED


@dataclass(slots=True)
class Event:
    """One published event: its view (``EVENT_VIEWS`` in core.views) and, once a stream has
    encoded it, the frame every other stream reuses."""

    id: int
    type: str
    at: float
    data: BaseModel
    frame: bytes | None = None


class TooManySubscribers(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} subscribers already")
        self.limit = limit


class Subscription:
    """One subscriber's events, in order; iterate it (async) and ``close()`` it when done."""

    __slots__ = ("_bus", "_events", "_lag", "_ready", "_size", "closed")

    def __init__(self, bus: EventBus, size: int) -> None:
        self._bus = bus
        self._size = size
        self._events: deque[Event] = deque()
        self._lag: Event | None = None  # the marker of the current lag episode, not yet queued
        self._ready = asyncio.Event()
        self.closed = False

    @property
    def pending(self) -> int:
        return len(self._events)

    @property
    def lagging(self) -> bool:
        return self._lag is not None

    def _offer(self, event: Event) -> None:
        """From ``EventBus.publish``: O(1), never blocks."""
        lag = self._lag
        if lag is not None:
            if self._events:  # still draining: drop, and count
                lag.id = event.id
                assert isinstance(lag.data, StreamLagged)
                lag.data.dropped += 1
                return
            self._events.append(lag)  # drained: the marker goes where the gap is
            self._lag = None
        elif len(self._events) >= self._size:
            self._lag = Event(event.id, LAGGED, event.at, StreamLagged(dropped=1))
            return
        self._events.append(event)
        self._ready.set()

    async def get(self) -> Event:
        """The next event; waits for one. Raises ``StopAsyncIteration`` once closed."""
        while True:
            if self._events:
                return self._events.popleft()
            if self._lag is not None:  # drained, and nothing published since
                marker, self._lag = self._lag, None
                return marker
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        """Unsubscribe (frees the slot at once); idempotent. A waiting ``get`` ends."""
        if not self.closed:
            self.closed = True
            self._bus._subscribers.discard(self)
            self._events.clear()
            self._lag = None
            self._ready.set()

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self, queue_size: int | None = None) -> None:
        self.queue_size = QUEUE_SIZE if queue_size is None else queue_size
        self._subscribers: set[Subscription] = set()
        self._ids = itertools.count(1)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, type_: str, data: BaseModel) -> None:
        """``data`` is the event's view; callers on hot paths build it only if ``subscribers``."""
        if not self._subscribers:
            return
        event = Event(next(self._ids), type_, time.time(), data)
        for subscription in self._subscribers:
            subscription._offer(event)

    def subscribe(self, limit: int | None = None) -> Subscription:
        """Subscribed from this call on (not from the first read); ``close()`` the result.

        Raises :class:`TooManySubscribers` if ``limit`` subscriptions are open already.
        """
        if limit is not None and len(self._subscribers) >= limit:
            raise TooManySubscribers(limit)
        subscription = Subscription(self, self.queue_size)
        self._subscribers.add(subscription)
        return subscription
