"""Edge cases of the client's error mapping: dead sockets on loopback, odd 429/5xx answers.

The socket cases use real loopback servers that misbehave on purpose; the header variants use
``httpx.MockTransport`` because no emulator should be taught to answer with, say, an HTML 502.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from anomaly_desk.core.providers.base import TicketRef
from anomaly_desk.core.providers.errors import (
    AuthError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.jira import JiraClient
from tests.jira.conftest import connection, make_anomaly
from tests.retries import fast_retries
from tests.support import free_port

REF = TicketRef("DQ-1", "10000")
ALICE = "5b10a2844c20165700ede21f"  # an account id: no user search needed


class MisbehavingServer:
    """Accepts connections on loopback, reads the request, then ``behaviour`` decides."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour  # "silent": never answer; "hangup": close after reading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.requests = 0
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            self.requests += 1
            if self.behaviour == "hangup":
                conn.close()
            else:
                self.open.append(conn)

    def __enter__(self) -> MisbehavingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for conn in self.open:
            conn.close()


@pytest.fixture
def silent() -> Iterator[MisbehavingServer]:
    with MisbehavingServer("silent") as server:
        yield server


@pytest.fixture
def hangup() -> Iterator[MisbehavingServer]:
    with MisbehavingServer("hangup") as server:
        yield server


async def test_write_without_an_answer_is_ambiguous(silent: MisbehavingServer) -> None:
    jira = JiraClient(connection(silent.url, timeout=0.3))
    try:
        with pytest.raises(UnavailableError) as caught:
            await jira.add_note(REF, "hello")
    finally:
        await jira.aclose()
    assert caught.value.ambiguous is True
    assert caught.value.status is None
    assert silent.requests == 1  # a write is never repeated


async def test_connection_reset_after_send_is_ambiguous(hangup: MisbehavingServer) -> None:
    jira = JiraClient(connection(hangup.url))
    try:
        with pytest.raises(UnavailableError) as caught:
            await jira.add_note(REF, "hello")
    finally:
        await jira.aclose()
    assert caught.value.ambiguous is True
    assert hangup.requests == 1


async def test_read_timeouts_are_retried_then_unavailable(silent: MisbehavingServer) -> None:
    jira = JiraClient(connection(silent.url, timeout=0.2))
    try:
        with fast_retries(), pytest.raises(UnavailableError) as caught:
            await jira.check()
    finally:
        await jira.aclose()
    assert caught.value.ambiguous is False  # a read changes nothing
    assert silent.requests == 3


async def test_refused_connection_is_unavailable_and_not_ambiguous() -> None:
    jira = JiraClient(connection(f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(UnavailableError) as caught:
            await jira.add_note(REF, "hello")
    finally:
        await jira.aclose()
    assert caught.value.ambiguous is False
    assert "cannot connect" in caught.value.message


# --------------------------------------------------------------------------- MockTransport


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> JiraClient:
    return JiraClient(
        connection("https://acme.atlassian.net"), transport=httpx.MockTransport(handler)
    )


async def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"Retry-After": format_datetime(when, usegmt=True)},
            json={"errorMessages": ["Rate limit exceeded."], "errors": {}},
        )

    jira = _client(handler)
    with pytest.raises(RateLimitedError) as caught:
        await jira.check()  # too long a wait to retry inside a read
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31
    assert caught.value.message == "Rate limit exceeded."


async def test_rate_limit_reset_header_when_retry_after_is_missing() -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"X-RateLimit-Reset": reset}, text="")

    jira = _client(handler)
    with pytest.raises(RateLimitedError) as caught:
        await jira.add_note(REF, "x")
    assert caught.value.retry_after is not None
    assert 80 <= caught.value.retry_after <= 91


async def test_a_429_with_a_short_wait_is_retried_by_a_read() -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "0"}, json={"errorMessages": ["slow"]}),
            httpx.Response(200, json={"emailAddress": "demo@example.com"}),
        ]
    )
    jira = _client(lambda request: next(answers))
    assert await jira.check() == "demo@example.com"


async def test_html_5xx_page_becomes_a_readable_unavailable_error() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(502, html="<html><body><h1>502 Bad Gateway</h1></body></html>")

    jira = _client(handler)
    with fast_retries(), pytest.raises(UnavailableError) as caught:
        await jira.get_ticket("DQ-1")
    assert caught.value.message == "502 Bad Gateway"
    assert calls == ["GET", "GET", "GET"]


@pytest.mark.parametrize(
    ("status", "ambiguous"), [(500, False), (503, False), (502, True), (504, True)]
)
async def test_a_failed_write_is_sent_once_and_ambiguous_only_behind_a_gateway(
    status: int, ambiguous: bool
) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(status, json={"errorMessages": ["Internal server error"]})

    with pytest.raises(UnavailableError) as caught:
        await _client(handler).create_ticket(make_anomaly(), {"assignee": ALICE})
    assert calls == ["POST"]
    assert caught.value.ambiguous is ambiguous
    assert caught.value.message == "Internal server error"


async def test_field_errors_without_error_messages_still_read_well() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"errorMessages": [], "errors": {"summary": "You must specify a summary."}}
        )

    with pytest.raises(ValidationError) as caught:
        await _client(handler).create_ticket(make_anomaly(), {"assignee": ALICE})
    assert caught.value.message == "summary: You must specify a summary."
    assert caught.value.field_errors == {"summary": "You must specify a summary."}


async def test_a_missing_token_fails_fast_without_a_request() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={})

    conn = connection("https://acme.atlassian.net", token=None)
    jira = JiraClient(conn, transport=httpx.MockTransport(handler))
    with pytest.raises(AuthError, match="no API token configured"):
        await jira.check()
    assert calls == []


async def test_userinfo_in_the_site_url_never_leaves_the_client() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        issue = {"id": "1", "key": "DQ-1", "fields": {"summary": "s"}}
        return httpx.Response(200, json=issue)

    conn = connection("https://bot:hunter2@acme.atlassian.net")
    jira = JiraClient(conn, transport=httpx.MockTransport(handler))
    ticket = await jira.get_ticket("DQ-1")
    assert ticket.url == "https://acme.atlassian.net/browse/DQ-1"
    assert "hunter2" not in repr(jira)
    assert "hunter2" not in str(seen[0].url)
    assert seen[0].headers["authorization"].startswith("Basic ")
