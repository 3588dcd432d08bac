"""No web page drives the desk: DNS rebinding (a foreign Host) and CSRF (a foreign Origin).

Requests here are what a browser sends on behalf of a page at evil.example: the page's own
name in Host after its DNS was re-pointed at 127.0.0.1, or a cross-origin form post.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support import ThreadedServer

GOOD = {"id": 93001, "status": "Active", "message": "m"}


@pytest.fixture
def desk(start_receiver: Callable[..., ThreadedServer]) -> ThreadedServer:
    server = start_receiver({})
    response = httpx.post(f"{server.url}/webhooks/qualytics", json=GOOD)
    assert response.status_code == 200
    return server


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/anomalies"),
        ("GET", "/api/anomalies/93001"),
        ("GET", "/healthz"),
        ("GET", "/api/events"),
        ("POST", "/api/anomalies/93001/acknowledge"),
        ("POST", "/webhooks/qualytics"),
        ("GET", "/api/rules"),
        ("POST", "/api/rules/any/pause"),
        ("POST", "/api/compact"),
        ("GET", "/api/connections/jira/form"),
        ("GET", "/api/connections/jira/users?q=ana"),
        ("GET", "/api/anomalies?q=a&archive=1"),
    ],
)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8787", "localhost.evil.example"])
def test_a_foreign_host_is_refused_on_every_route(
    desk: ThreadedServer, method: str, path: str, host: str
) -> None:
    response = httpx.request(
        method, desk.url + path, headers={"host": host}, json=GOOD if "webhooks" in path else None
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Host not allowed"
    assert "allowed_hosts" in response.json()["detail"]
    assert httpx.get(f"{desk.url}/api/anomalies/93001").json()["status"] == "Active"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]:8787", "127.0.0.1:8787"]
)
def test_loopback_names_are_served(desk: ThreadedServer, host: str) -> None:
    assert httpx.get(f"{desk.url}/api/anomalies", headers={"host": host}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://localhost:3000"},  # another local app's page: same site, not origin
        {"origin": "null"},  # a sandboxed iframe or a file:// page
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example", "content-type": "text/plain"},
    ],
)
def test_a_cross_origin_write_is_refused_and_changes_nothing(
    desk: ThreadedServer, headers: dict[str, str]
) -> None:
    for path, body in [
        ("/api/anomalies/93001/acknowledge", None),
        ("/api/anomalies/93001/comments", b'{"text": "pwned"}'),
        ("/webhooks/qualytics", b'{"id": 93002}'),
        ("/api/rules/any/pause", None),
        ("/api/rules/any/resume", None),
        ("/api/compact", None),
        ("/api/anomalies/93001/tickets", b'{"connection": "jira", "fields": {}}'),
    ]:
        response = httpx.post(desk.url + path, content=body, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    doc = httpx.get(f"{desk.url}/api/anomalies/93001").json()
    assert doc["status"] == "Active"
    assert doc["comments"] == []
    assert httpx.get(f"{desk.url}/api/anomalies/93002").status_code == 404


def test_the_dashboard_and_cli_and_same_origin_pages_still_work(desk: ThreadedServer) -> None:
    """No Origin (httpx, the dashboard), or the receiver's own origin, may write."""
    assert httpx.post(f"{desk.url}/api/anomalies/93001/acknowledge").status_code == 200
    same = {"origin": desk.url, "sec-fetch-site": "same-origin"}
    response = httpx.post(
        f"{desk.url}/api/anomalies/93001/comments", json={"text": "hi"}, headers=same
    )
    assert response.status_code == 201, response.text


def test_allowed_hosts_admit_a_reverse_proxy_name(
    start_receiver: Callable[..., ThreadedServer],
) -> None:
    server = start_receiver({"ANOMALY_DESK_ALLOWED_HOSTS": "desk.example.com, *.corp.example"})
    for host in ("desk.example.com", "a.corp.example", "localhost"):
        assert httpx.get(f"{server.url}/healthz", headers={"host": host}).status_code == 200
    assert (
        httpx.get(f"{server.url}/healthz", headers={"host": "corp.example.evil"}).status_code == 400
    )
    proxied = {"host": "127.0.0.1:8787", "origin": "https://desk.example.com"}
    response = httpx.post(f"{server.url}/webhooks/qualytics", json=GOOD, headers=proxied)
    assert response.status_code == 200, response.text
