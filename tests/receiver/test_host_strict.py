"""The Host and Origin checks parse strictly: a value that only starts like a loopback address
(userinfo, a second host, a port out of range or not a number) is a foreign Host, and an Origin
is the same origin only with the request's own scheme, name and port.

A lenient split once let ``Host: 127.0.0.1:80@evil.com`` through on ``POST /api/compact``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest

from tests.support import ThreadedServer

ENV = {"ANOMALY_DESK_RETENTION__ARCHIVE_AFTER_DAYS": "0"}  # resolved a moment ago is old enough
RESOLVED = {"id": 94001, "status": "Resolved", "message": "m"}


@pytest.fixture
def desk(start_receiver: Callable[..., ThreadedServer]) -> ThreadedServer:
    """A receiver holding one anomaly a compaction would move to the cold archive."""
    server = start_receiver(ENV)
    assert httpx.post(f"{server.url}/webhooks/qualytics", json=RESOLVED).status_code == 200
    return server


def port(desk: ThreadedServer) -> int:
    return int(desk.url.rsplit(":", 1)[1])


def still_hot(desk: ThreadedServer) -> bool:
    return httpx.get(f"{desk.url}/api/anomalies/94001").json().get("cold", False) is False


def assert_foreign_host(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Host not allowed"
    assert response.json()["type"].endswith("host-not-allowed")


MALFORMED = [
    "127.0.0.1:80@evil.com",
    "127.0.0.1:{port},evil.com",
    "127.0.0.1:{port}, evil.com",
    "localhost:99999",
    "localhost:65536",
    "localhost:0",
    "localhost:",
    "localhost:+80",
    "127.0.0.1:x",
    "127.0.0.1:{port}:1",
    "127.0.0.1 evil.com",
    "evil.com@127.0.0.1",
    "[::1]@evil.com",
    "[::1]:{port}@evil.com",
    "[::1%25eth0]:{port}",
    "[::1",
    "localhost/evil",
    "-localhost",
]


@pytest.mark.parametrize("host", MALFORMED)
def test_a_malformed_host_is_refused_on_a_write_and_changes_nothing(
    desk: ThreadedServer, host: str
) -> None:
    value = host.format(port=port(desk))
    assert_foreign_host(httpx.post(f"{desk.url}/api/compact", headers={"host": value}))
    assert_foreign_host(httpx.get(f"{desk.url}/api/anomalies", headers={"host": value}))
    assert still_hot(desk)


def raw(desk: ThreadedServer, request: bytes) -> bytes:
    """The whole answer to a request written by hand (httpx will not send two of a header)."""
    with socket.create_connection(("127.0.0.1", port(desk)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_two_host_headers_are_refused(desk: ThreadedServer) -> None:
    """httpx will not send two, so the request is written by hand: the first Host a loopback
    name, the second another (RFC 9112 §3.2: a 400 either way)."""
    request = (
        b"POST /api/compact HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    answer = raw(desk, request)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Host not allowed" in answer
    assert still_hot(desk)


def test_two_origin_headers_are_refused_whichever_comes_last(desk: ThreadedServer) -> None:
    own = f"http://127.0.0.1:{port(desk)}".encode()
    for first, second in ((b"https://evil.example", own), (own, b"https://evil.example")):
        request = (
            b"POST /api/compact HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: %s\r\nOrigin: %s\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n" % (port(desk), first, second)
        )
        answer = raw(desk, request)
        assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert still_hot(desk)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "[::1]:{port}", "LOCALHOST.:{port}", "localhost:65535", "localhost"],
)
def test_a_well_formed_loopback_host_still_writes(desk: ThreadedServer, host: str) -> None:
    response = httpx.post(f"{desk.url}/api/compact", headers={"host": host.format(port=port(desk))})
    assert response.status_code == 200, response.text
    assert not still_hot(desk)


@pytest.mark.parametrize(
    "origin",
    [
        "https://127.0.0.1:{port}",  # another scheme is another origin
        "HTTP://127.0.0.1:{port}",  # no browser serialises an origin so (RFC 6454: lower case)
        "ftp://127.0.0.1:{port}",
        "http://127.0.0.1",  # port 80 is not this receiver's port
        "http://127.0.0.1:{port}@evil.com",
        "http://evil.com@127.0.0.1:{port}",
        "http://127.0.0.1:{port}/",
        "http://127.0.0.1:{port},http://evil.com",
        "http://localhost:{port}",  # same site, another origin than Host 127.0.0.1
        "127.0.0.1:{port}",
    ],
)
def test_an_origin_that_is_not_exactly_this_one_may_not_write(
    desk: ThreadedServer, origin: str
) -> None:
    headers = {"origin": origin.format(port=port(desk)), "host": f"127.0.0.1:{port(desk)}"}
    response = httpx.post(f"{desk.url}/api/compact", headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["title"] == "Cross-origin request refused"
    assert still_hot(desk)


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:{port}", "http://127.0.0.1:{port}"),
        ("LocalHost:{port}", "http://localhost:{port}"),
        ("[::1]:{port}", "http://[::1]:{port}"),
        ("localhost", "http://localhost"),  # default ports on both sides
        ("localhost:80", "http://localhost"),
    ],
)
def test_the_same_origin_may_write(desk: ThreadedServer, host: str, origin: str) -> None:
    headers = {"host": host.format(port=port(desk)), "origin": origin.format(port=port(desk))}
    response = httpx.post(f"{desk.url}/api/compact", headers=headers)
    assert response.status_code == 200, response.text
    assert not still_hot(desk)
