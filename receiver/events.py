"""``GET /api/events``: the event bus as server-sent events.

The wire format is what ``tui/client.py`` (httpx-sse) reads: a ``: connected`` comment first, then
per event ``id: N``, ``event: TYPE`` and ``data: JSON`` lines and a blank line, and a
``: keep-alive`` comment every ``KEEPALIVE_S`` seconds so proxies keep the connection open.

sse-starlette's ``EventSourceResponse`` carries it because it ends the stream when uvicorn begins
to shut down (a hand-rolled ``StreamingResponse`` never learns of it, so one open dashboard held a
SIGTERM for the whole ``timeout_graceful_shutdown``) and when the client goes away.

Every publish visits every subscriber, so at most ``receiver.max_event_subscribers`` streams are
open at once; beyond that the answer is 503 (problem+json, ``Retry-After``), nothing subscribed.

Each event's ``data`` is its view (``EVENT_VIEWS`` in ``core/views.py``). ``anomaly.updated`` and
the ``link.*`` events carry the anomaly's list row as the change left it (the Desk publishes it
with the change), so the dashboard updates a row from the event alone. A frame is encoded once, by the
first stream that sends it, and shared by all the others.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from anomaly_desk.core.events import Event, Subscription, TooManySubscribers
from anomaly_desk.core.views import to_json
from anomaly_desk.receiver.problems import Problem

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
RETRY_AFTER_S = 10
SHUTDOWN_GRACE_S = 1.0  # for a stream to end by itself on shutdown; well under uvicorn's 10 s


def _keep_alive() -> ServerSentEvent:
    return ServerSentEvent(comment="keep-alive", sep="\n")


def _frame(event: Event) -> bytes:
    """The event's SSE frame, made once per event and shared by every stream."""
    if event.frame is None:
        data = to_json(event.data)
        event.frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.type.encode(), data)
    return event.frame


async def _frames(subscription: Subscription) -> AsyncIterator[bytes]:
    yield b": connected\n\n"
    async for event in subscription:
        yield _frame(event)


class _EventStream(EventSourceResponse):
    """Unsubscribes however the response ends: finished, client gone, shutdown, or HEAD.

    On shutdown sse-starlette sets ``shutdown_event``; closing the subscription then ends
    ``_frames``, so the response finishes properly (a terminating chunk: the client sees the
    stream end, not a protocol error) well within the grace period, after which it would cancel.
    """

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._shutting_down = anyio.Event()
        super().__init__(
            _frames(subscription),
            headers={"Cache-Control": "no-cache"},
            ping=KEEPALIVE_S,
            ping_message_factory=_keep_alive,
            sep="\n",
            shutdown_event=self._shutting_down,
            shutdown_grace_period=SHUTDOWN_GRACE_S,
            data_sender_callable=self._close_on_shutdown,  # runs beside the stream
        )

    async def _close_on_shutdown(self) -> None:
        await self._shutting_down.wait()
        self.subscription.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.subscription.close()


async def events(request: Request) -> EventSourceResponse:
    limit = request.app.state.settings.receiver.max_event_subscribers
    try:
        subscription = request.app.state.desk.bus.subscribe(limit=limit)
    except TooManySubscribers:
        raise Problem(
            503,
            "Too many event streams",
            f"the receiver serves at most {limit} live event streams at once "
            "(receiver.max_event_subscribers); close one or try again later",
            kind="too-many-event-streams",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    return _EventStream(subscription)
