"""``anomalies.compacted`` over a real receiver's event stream: a compaction that moved anomalies
tells every open stream once, with their ids (or, past the bound, only ``reload``); one that
moved nothing says nothing; and an anomaly brought back hot is announced as ``anomaly.updated``,
which is what a dashboard already follows."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from anomaly_desk.core.retention import EVENT_IDS_MAX
from tests.retention.support import mixed, seed
from tests.retention.test_cold_api import ENV, anomaly, compact, send
from tests.support import ThreadedServer, sse_events, wait_for


class Stream:
    """``GET /api/events`` read in a thread: every ``(id, event, data)`` so far, in order;
    ``close()`` hangs up (a stream left open holds the receiver's stop)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[tuple[int, str, Any]] = []
        self.connected = threading.Event()
        self.client = httpx.Client(timeout=60)
        self.socket: socket.socket | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.connected.wait(10), "the event stream did not connect"

    def _lines(self, response: httpx.Response) -> Iterator[str]:
        for line in response.iter_lines():
            if line.startswith(": connected"):
                self.connected.set()
            yield line

    def _read(self) -> None:
        try:
            with self.client.stream("GET", f"{self.url}/api/events") as response:
                self.socket = response.extensions["network_stream"].get_extra_info("socket")
                self.events.extend(sse_events(self._lines(response)))
        except (httpx.HTTPError, RuntimeError, OSError):
            pass  # hung up at the end of the test

    def close(self) -> None:
        """Hang up now: the read blocked in the thread ends (not at the next keep-alive)."""
        if self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        self.client.close()

    def of(self, kind: str) -> list[Any]:
        return [data for _, event, data in list(self.events) if event == kind]


@pytest.fixture
def api(start_receiver: Callable[..., ThreadedServer]) -> Iterator[httpx.Client]:
    receiver = start_receiver(ENV)
    with httpx.Client(base_url=receiver.url, timeout=60) as client:
        yield client


@pytest.fixture
def streams() -> Iterator[Callable[[str], Stream]]:
    """Open event streams, hung up before the receiver stops."""
    opened: list[Stream] = []

    def open_stream(url: str) -> Stream:
        opened.append(Stream(url))
        return opened[-1]

    yield open_stream
    for stream in opened:
        stream.close()


def fits_schema(api: httpx.Client, kind: str, data: Any) -> None:
    """``data`` is what ``GET /api/schema`` says a ``kind`` event carries."""
    schema = api.get("/api/schema").json()
    validator = Draft202012Validator({"$defs": schema["$defs"], **schema["events"][kind]})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, errors


def test_a_compaction_tells_open_streams_once_which_anomalies_moved(
    api: httpx.Client, streams: Callable[[str], Stream]
) -> None:
    send(api, *(anomaly(i, "Resolved") for i in range(1, 6)), anomaly(6, "Active"))
    stream = streams(str(api.base_url))
    other = streams(str(api.base_url))  # every open dashboard hears it
    report = compact(api)
    assert report["moved"] == 5

    wait_for(lambda: stream.of("anomalies.compacted") != [], "anomalies.compacted")
    wait_for(lambda: other.of("anomalies.compacted") != [], "anomalies.compacted, 2nd stream")
    (event,) = stream.of("anomalies.compacted")
    assert event["moved"] == 5
    assert sorted(event["ids"]) == [1, 2, 3, 4, 5]
    assert event["reload"] is False
    finished = datetime.fromisoformat(event["finished_at"].replace("Z", "+00:00"))
    assert finished.tzinfo is not None
    assert other.of("anomalies.compacted") == [event]
    fits_schema(api, "anomalies.compacted", event)

    assert compact(api)["moved"] == 0  # nothing moved: nothing said
    send(api, anomaly(7, "Active"))  # an event after it, to know the stream has caught up
    wait_for(lambda: stream.of("anomaly.created") != [], "anomaly.created")
    assert len(stream.of("anomalies.compacted")) == 1


def test_an_anomaly_brought_back_hot_is_announced_as_updated(
    api: httpx.Client, streams: Callable[[str], Stream]
) -> None:
    """The restore needs no event of its own: ``anomaly.updated`` carries the row, not cold."""
    send(api, anomaly(10, "Resolved"), anomaly(11, "Invalid"))
    stream = streams(str(api.base_url))
    assert compact(api)["moved"] == 2
    wait_for(lambda: stream.of("anomalies.compacted") != [], "anomalies.compacted")

    commented = api.post("/api/anomalies/11/comments", json={"text": "why invalid?"})
    assert commented.status_code == 201, commented.text
    send(api, anomaly(10, "Active"))  # the platform reopens the other
    wait_for(lambda: len(stream.of("anomaly.updated")) >= 2, "two anomaly.updated")
    rows = {data["id"]: data for data in stream.of("anomaly.updated")}
    assert rows[11]["cold"] is False
    assert rows[11]["status"] == "Invalid"
    assert rows[11]["change"] == "comment"
    assert rows[10]["cold"] is False
    assert rows[10]["status"] == "Active"
    assert stream.of("anomaly.created") == []  # back, not new
    assert api.get("/api/anomalies/11").json().get("cold", False) is False


def test_past_the_bound_the_event_names_no_ids_and_says_reload(
    start_receiver: Callable[..., ThreadedServer],
    tmp_path: Path,
    streams: Callable[[str], Stream],
) -> None:
    """1,300 stored anomalies, 1,040 archived long ago: more than an event names."""
    data = tmp_path / "seeded"
    seed(data, mixed(1300))
    receiver = start_receiver({}, data_dir=data)  # the default 30 days: they are all older
    with httpx.Client(base_url=receiver.url, timeout=60) as api:
        stream = streams(receiver.url)
        report = compact(api)
        assert report["moved"] == 1040 > EVENT_IDS_MAX
        wait_for(lambda: stream.of("anomalies.compacted") != [], "anomalies.compacted")
        (event,) = stream.of("anomalies.compacted")
        assert event["moved"] == 1040
        assert event["ids"] == []
        assert event["reload"] is True
        assert len(stream.events) == 1  # one event for the run, not one per batch or anomaly
