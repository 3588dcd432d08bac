"""Connection health stays true while the receiver runs: deliveries and periodic checks correct it,
and every change reaches the dashboard as a ``connection.health`` event.

Before, health was checked once at start-up: the header said "ok" through a 401/503 outage and
"err" for minutes after recovery.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import anomaly_desk.core.health
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer, sse_events, wait_for


def health_of(api: httpx.Client, name: str) -> dict[str, Any] | None:
    items = api.get("/api/connections").json()["items"]
    found: dict[str, Any] | None = next(c for c in items if c["name"] == name)["health"]
    return found


class HealthEvents:
    """``connection.health`` events from the receiver's live stream, collected in a thread."""

    def __init__(self, url: str) -> None:
        self.seen: list[dict[str, Any]] = []
        self._response: httpx.Response | None = None
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()
        assert self._connected.wait(5), "the event stream did not connect"

    def _read(self, url: str) -> None:
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream("GET", f"{url}/api/events", timeout=None) as response,
        ):
            self._response = response
            lines = response.iter_lines()
            assert next(lines) == ": connected"
            self._connected.set()
            for _, kind, data in sse_events(lines):
                if kind == "connection.health":
                    self.seen.append(data)

    def close(self) -> None:
        """Hang up, so stopping the receiver does not wait for this stream."""
        if self._response is not None:  # a blocked read ends only when its socket does
            sock = self._response.extensions["network_stream"].get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        assert not self._thread.is_alive()

    def of(self, name: str) -> list[tuple[bool, str]]:
        return [(e["health"]["ok"], e["health"]["source"]) for e in self.seen if e["name"] == name]


@pytest.fixture
def quick_desk(
    tmp_path: Path, sandbox: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Desk]:
    """A receiver that checks its connections every 0.3 s, and again 0.1 s after a failure."""
    monkeypatch.setattr(anomaly_desk.core.health, "RECHECK_GAP_S", 0.1)
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, health_check_s=0.3)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        yield Desk(receiver, sandbox, api, tmp_path / "data", config)
    finally:
        api.close()
        receiver.stop()


def test_the_periodic_check_notices_an_outage_and_the_recovery_without_any_delivery(
    quick_desk: Desk,
) -> None:
    api = quick_desk.api
    wait_for(lambda: (health_of(api, "jira") or {}).get("ok") is True, "the first check")
    events = HealthEvents(quick_desk.receiver.url)
    quick_desk.faults.update({"fail_rate": 1.0})  # every request answered 503
    try:
        wait_for(lambda: (health_of(api, "jira") or {}).get("ok") is False, "jira down")
        wait_for(lambda: (health_of(api, "servicenow") or {}).get("ok") is False, "snow down")
        down = health_of(api, "jira")
        assert down is not None
        assert "503" in down["message"]
        assert down["source"] == "check"
    finally:
        quick_desk.faults.reset()
    wait_for(lambda: (health_of(api, "jira") or {}).get("ok") is True, "jira back")
    wait_for(lambda: events.of("jira")[-1:] == [(True, "check")], "the recovery event")
    events.close()
    # one event per change, not one per check: down once, back once
    assert events.of("jira") == [(False, "check"), (True, "check")]


def test_a_401_on_delivery_marks_the_connection_down_at_once_and_a_check_brings_it_back(
    tmp_path: Path, sandbox: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anomaly_desk.core.health, "RECHECK_GAP_S", 0.1)
    # no periodic check in sight: only the delivery and the check it asks for can tell
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, health_check_s=3600)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    desk = Desk(receiver, sandbox, api, tmp_path / "data", config)
    try:
        desk.post_webhook("01-flow-anomalies-detected.json")
        anomaly_id = api.get("/api/anomalies").json()["items"][0]["id"]
        created = api.post(
            f"/api/anomalies/{anomaly_id}/tickets",
            json={"connection": "jira", "fields": {"summary": "health"}},
        )
        assert created.status_code == 201, created.text
        desk.wait_idle()
        wait_for(lambda: (health_of(api, "jira") or {}).get("ok") is True, "the first check")
        events = HealthEvents(receiver.url)
        desk.faults.update({"force_status": 401, "force_count": 1})  # the next request only
        api.post(f"/api/anomalies/{anomaly_id}/comments", json={"text": "hello"})
        desk.wait_idle()
        wait_for(lambda: len(events.of("jira")) >= 2, "down, then back")
        events.close()
        assert events.of("jira")[:2] == [(False, "sync"), (True, "check")]
        assert "401" in events.seen[0]["health"]["message"]
        assert (health_of(api, "jira") or {}).get("ok") is True
        assert events.of("servicenow") == []  # another connection's health is not touched
    finally:
        desk.faults.reset()
        api.close()
        receiver.stop()


def test_a_delivered_note_brings_a_connection_back_before_the_next_check(
    tmp_path: Path, sandbox: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anomaly_desk.core.health, "RECHECK_GAP_S", 3600.0)  # no early check
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, health_check_s=3600)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    desk = Desk(receiver, sandbox, api, tmp_path / "data", config)
    try:
        desk.post_webhook("01-flow-anomalies-detected.json")
        anomaly_id = api.get("/api/anomalies").json()["items"][0]["id"]
        created = api.post(
            f"/api/anomalies/{anomaly_id}/tickets",
            json={"connection": "jira", "fields": {"summary": "health"}},
        )
        assert created.status_code == 201, created.text
        wait_for(lambda: (health_of(api, "jira") or {}).get("ok") is True, "the first check")
        desk.faults.update({"force_status": 503, "force_count": 1})  # one retry, then fine
        api.post(f"/api/anomalies/{anomaly_id}/comments", json={"text": "hello"})
        desk.wait_idle()
        health = health_of(api, "jira")
        assert health is not None
        assert health["ok"] is True
        assert health["source"] == "sync"
        assert "delivered a note" in health["message"]
    finally:
        desk.faults.reset()
        api.close()
        receiver.stop()
