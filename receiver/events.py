"""``GET /api/events``: the event bus as server-sent events, with keep-alive comments."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

KEEPALIVE_S = 15.0


async def events(request: Request) -> StreamingResponse:
    bus = request.app.state.desk.bus

    async def stream() -> AsyncIterator[bytes]:
        yield b": connected\n\n"
        subscription = bus.subscribe()
        next_event = asyncio.ensure_future(anext(subscription))
        try:
            while True:
                done, _ = await asyncio.wait({next_event}, timeout=KEEPALIVE_S)
                if not done:
                    yield b": keep-alive\n\n"
                    continue
                event = next_event.result()
                next_event = asyncio.ensure_future(anext(subscription))
                yield (
                    f"id: {event['id']}\nevent: {event['type']}\ndata: ".encode()
                    + orjson.dumps(event["data"])
                    + b"\n\n"
                )
        finally:
            next_event.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await next_event
            await subscription.aclose()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
