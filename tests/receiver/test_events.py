"""``GET /api/events`` and the event bus: prompt shutdown, a subscriber cap, one marker per lag."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict
from tinydb import TinyDB

import anomaly_desk.core.events
import anomaly_desk.receiver.events
from anomaly_desk.core.config import load_settings
from anomaly_desk.core.events import EventBus
from anomaly_desk.receiver.app import create_app
from tests.support import FIXTURES, ThreadedServer, cli_process, free_port, sse_events


class Payload(BaseModel):
    """A test event's data: whatever it is given, as it is given."""

    model_config = ConfigDict(extra="allow")


def receiver_app(tmp_path: Path, config: str = "") -> Any:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(config)
    return create_app(load_settings(path, overrides={"data_dir": tmp_path / "data"}, env={}))


def wait_until(condition: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# ------------------------------------------------------------------------------ shutdown


def test_sigterm_with_a_dashboard_attached_exits_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "--port", str(port), "--data-dir", str(data))
    with (
        cli_process(*args, url=f"{url}/healthz") as proc,
        httpx.stream("GET", f"{url}/api/events", timeout=30) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        posted = httpx.post(
            f"{url}/webhooks/qualytics",
            content=(FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes(),
            headers={"content-type": "application/json"},
        )
        assert posted.status_code == 200, posted.text
        # The dashboard is attached for real: subscribed, and its stream delivers.
        assert next(e for e in sse_events(lines) if e[1] == "anomaly.created")[2]["id"] == 10260
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        elapsed = time.monotonic() - signalled
        print(f"\nSIGTERM to exit, one event stream open: {elapsed:.2f} s")
        assert elapsed < 1.5, f"took {elapsed:.2f} s to stop with a dashboard attached"
        assert not any(lines)  # the stream ended properly: no protocol error, no more events
        assert proc.returncode == -signal.SIGTERM  # uvicorn re-raises the signal after shutdown
    # The lifespan's shutdown ran: the store folded its journal into a final checkpoint.
    assert [p.stat().st_size for p in data.glob("journal-*.log")] == [0]
    db = TinyDB(data / "anomaly-desk.json", access_mode="r")
    assert 10260 in {doc["id"] for doc in db.table("anomalies").all()}


# ------------------------------------------------------------------------------ the cap


def test_event_streams_are_capped_and_a_closed_one_frees_its_slot(tmp_path: Path) -> None:
    app = receiver_app(tmp_path, "[receiver]\nmax_event_subscribers = 2\n")
    with (
        ThreadedServer(app) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
        contextlib.ExitStack() as streams,
    ):
        bus = app.state.desk.bus
        assert client.head("/api/events").status_code == 200  # answered at once, no slot kept
        assert server.call(lambda: bus.subscribers) == 0
        first = streams.enter_context(client.stream("GET", "/api/events"))
        second = streams.enter_context(client.stream("GET", "/api/events"))
        assert first.status_code == second.status_code == 200
        with client.stream("GET", "/api/events") as third:
            assert third.status_code == 503
            assert third.headers["content-type"] == "application/problem+json"
            assert int(third.headers["retry-after"]) > 0
            problem = json.loads(third.read())
        assert "at most 2 live event streams" in problem["detail"]
        assert server.call(lambda: bus.subscribers) == 2  # the refused one never subscribed

        first.close()
        deadline = time.monotonic() + 5
        while True:  # the slot frees once the server has seen the disconnect
            with client.stream("GET", "/api/events") as again:
                if again.status_code == 200:
                    assert next(again.iter_lines()) == ": connected"
                    break
            assert time.monotonic() < deadline, "a closed stream did not free its slot"
            time.sleep(0.05)
    assert bus.subscribers == 0  # every stream, however it ended, unsubscribed


# ------------------------------------------------------------------------------ the wire


def test_wire_format_and_keep_alive_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact bytes the dashboard's httpx-sse parses: comments, ``id``/``event``/``data`` lines."""
    monkeypatch.setattr(anomaly_desk.receiver.events, "KEEPALIVE_S", 0.3)
    app = receiver_app(tmp_path)
    with (
        ThreadedServer(app) as server,
        httpx.stream("GET", f"{server.url}/api/events", timeout=5) as response,
    ):
        bus = app.state.desk.bus
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        chunks = response.iter_raw()
        received = b""

        def until(expected: bytes) -> None:
            nonlocal received
            while expected not in received:
                received += next(chunks)

        until(b": connected\n\n")
        wait_until(lambda: server.call(lambda: bus.subscribers) == 1, "the subscription")
        server.call(bus.publish, "test.wire", Payload(a=1, text="é"))
        until(b"event: test.wire")
        until(b"\n\n: keep-alive\n\n")
        frames = received.split(b"\n\n")
        assert frames[0] == b": connected"
        (event,) = [f for f in frames if b"test.wire" in f]
        assert event == b'id: 1\nevent: test.wire\ndata: {"a":1,"text":"\xc3\xa9"}'
        assert b"\r" not in received


# ------------------------------------------------------------------------------ lagging


def test_a_lagging_stream_gets_one_marker_then_fresh_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anomaly_desk.core.events, "QUEUE_SIZE", 5)
    app = receiver_app(tmp_path)
    with (
        ThreadedServer(app) as server,
        httpx.stream("GET", f"{server.url}/api/events", timeout=5) as response,
    ):
        bus = app.state.desk.bus
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        wait_until(lambda: server.call(lambda: bus.subscribers) == 1, "the subscription")

        def burst() -> None:  # one loop turn: the stream cannot drain in between
            for n in range(50):
                bus.publish("test.tick", Payload(n=n))

        server.call(burst)
        events = sse_events(lines)
        seen = [next(events) for _ in range(6)]
        server.call(bus.publish, "test.fresh", Payload(n=50))
        seen.append(next(events))

    kinds = [(kind, data) for _, kind, data in seen]
    assert kinds == [
        *(("test.tick", {"n": n}) for n in range(5)),
        ("stream.lagged", {"dropped": 45}),
        ("test.fresh", {"n": 50}),
    ]
    ids = [event_id for event_id, _, _ in seen]
    assert ids == sorted(ids)  # the marker carries the last dropped id: Last-Event-ID stays sane


async def test_a_slow_subscriber_gets_one_marker_per_lag_episode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(anomaly_desk.core.events, "QUEUE_SIZE", 3)
    bus = EventBus()
    events = aiter(bus.subscribe())
    first = asyncio.ensure_future(anext(events))  # subscribed, and waiting for an event
    await asyncio.sleep(0)
    for n in range(10):
        bus.publish("tick", Payload(n=n))

    async def take(count: int) -> list[tuple[str, dict[str, Any]]]:
        got = []
        for _ in range(count):
            event = await asyncio.wait_for(anext(events), 1)
            got.append((event.type, event.data.model_dump()))
        return got

    head = await first
    taken = [(head.type, head.data.model_dump()), *await take(3)]
    assert taken == [
        ("tick", {"n": 0}),
        ("tick", {"n": 1}),
        ("tick", {"n": 2}),
        ("stream.lagged", {"dropped": 7}),  # once, where the gap is
    ]
    for n in range(10, 12):
        bus.publish("tick", Payload(n=n))
    assert await take(2) == [("tick", {"n": 10}), ("tick", {"n": 11})]  # caught up: fresh events

    for n in range(12, 20):  # a second episode gets its own (single) marker
        bus.publish("tick", Payload(n=n))
    assert await take(4) == [
        ("tick", {"n": 12}),
        ("tick", {"n": 13}),
        ("tick", {"n": 14}),
        ("stream.lagged", {"dropped": 5}),
    ]


async def test_publishing_stays_cheap_and_bounded_with_stuck_subscribers() -> None:
    bus = EventBus(queue_size=100)
    stuck = [bus.subscribe() for _ in range(32)]  # never read
    started = time.perf_counter()
    for n in range(20_000):
        bus.publish("tick", Payload(n=n))
    elapsed = time.perf_counter() - started
    assert all(s.pending == 100 and s.lagging for s in stuck)  # bounded, one pending marker
    assert elapsed < 2.0, f"{elapsed:.2f} s for 20k publishes to 32 stuck subscribers"
    for s in stuck:
        s.close()
    assert bus.subscribers == 0


async def test_subscribe_limit_and_close() -> None:
    bus = EventBus()
    one, two = bus.subscribe(limit=2), bus.subscribe(limit=2)
    with pytest.raises(anomaly_desk.core.events.TooManySubscribers):
        bus.subscribe(limit=2)
    assert bus.subscribers == 2
    waiting = asyncio.ensure_future(anext(aiter(one)))
    await asyncio.sleep(0)
    one.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)  # a reader blocked on a closed subscription ends
    with bus.subscribe(limit=2) as three:
        bus.publish("tick", Payload())
        assert (await three.get()).type == "tick"
    assert bus.subscribers == 1
    two.close()
    two.close()
    assert bus.subscribers == 0
