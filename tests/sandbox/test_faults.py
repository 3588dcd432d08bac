"""Fault flags make the sandbox answer like the real services under stress, on both services' paths."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from starlette.middleware.base import BaseHTTPMiddleware

from anomaly_desk.sandbox.faults import FaultMiddleware, Faults
from tests.support import ThreadedServer

SN_PATH = "/api/now/table/incident"
JIRA_PATH = "/rest/api/3/myself"
SN_AUTH = ("admin", "demo")
JIRA_AUTH = ("demo@example.com", "demo-token")


def faults_of(sandbox: ThreadedServer) -> Faults:
    return sandbox.app.state.faults  # type: ignore[attr-defined, no-any-return]


def test_middleware_is_pure_asgi() -> None:
    assert not issubclass(FaultMiddleware, BaseHTTPMiddleware)


def test_control_endpoint_reads_and_sets_faults(sandbox: ThreadedServer) -> None:
    with httpx.Client(base_url=sandbox.url) as http:
        assert http.get("/_sandbox/faults").json()["latency_ms"] == 0
        changed = http.post("/_sandbox/faults", json={"fail_rate": 0.25, "rate_limit": 5})
        assert changed.status_code == 200
        assert changed.json()["fail_rate"] == 0.25
        assert faults_of(sandbox).rate_limit == 5
        refused = http.post("/_sandbox/faults", json={"explode": True})
        assert refused.status_code == 400
        assert "explode" in refused.json()["error"]


def test_latency_is_added(sandbox: ThreadedServer) -> None:
    faults_of(sandbox).update({"latency_ms": 300})
    started = time.monotonic()
    response = httpx.get(f"{sandbox.url}{SN_PATH}", auth=SN_AUTH)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fail_rate_answers_503_in_each_services_envelope(sandbox: ThreadedServer) -> None:
    faults_of(sandbox).update({"fail_rate": 1.0})
    sn = httpx.get(f"{sandbox.url}{SN_PATH}", auth=SN_AUTH)
    assert sn.status_code == 503
    assert sn.json() == {
        "error": {"message": "Service Unavailable", "detail": None},
        "status": "failure",
    }
    jira = httpx.get(f"{sandbox.url}{JIRA_PATH}", auth=JIRA_AUTH)
    assert jira.status_code == 503
    assert jira.json() == {"errorMessages": ["Service Unavailable"], "errors": {}}
    # the controls stay reachable
    assert httpx.get(f"{sandbox.url}/_sandbox/faults").status_code == 200


def test_fail_rate_is_a_fraction(sandbox: ThreadedServer) -> None:
    faults_of(sandbox).update({"fail_rate": 0.5, "seed": 7})
    with httpx.Client(base_url=sandbox.url, auth=SN_AUTH) as http:
        codes = [http.get(SN_PATH, params={"sysparm_limit": "1"}).status_code for _ in range(60)]
    assert set(codes) == {200, 503}
    assert 10 <= codes.count(503) <= 50


@pytest.mark.parametrize(("path", "auth"), [(SN_PATH, SN_AUTH), (JIRA_PATH, JIRA_AUTH)])
def test_rate_limit_answers_429_with_retry_after_and_headers(
    sandbox: ThreadedServer, path: str, auth: tuple[str, str]
) -> None:
    faults_of(sandbox).update({"rate_limit": 2})
    with httpx.Client(base_url=sandbox.url, auth=auth) as http:
        responses = [http.get(path) for _ in range(6)]
    codes = [r.status_code for r in responses]
    assert codes[:2] == [200, 200]
    limited = [r for r in responses if r.status_code == 429]
    assert limited
    first = limited[0]
    assert int(first.headers["Retry-After"]) >= 1
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "0"
    assert first.headers["X-RateLimit-Reset"]
    if path == SN_PATH:
        assert first.json()["status"] == "failure"
        assert first.json()["error"]["message"] == "Rate limit exceeded"
        assert first.headers["X-RateLimit-Reset"].isdigit()  # epoch seconds
    else:
        assert first.json()["errorMessages"] == ["Rate limit exceeded."]
    time.sleep(0.6)  # the bucket refills at 2 a second
    with httpx.Client(base_url=sandbox.url, auth=auth) as http:
        assert http.get(path).status_code == 200


def test_forced_status_for_the_next_requests(sandbox: ThreadedServer) -> None:
    faults_of(sandbox).update({"force_status": 500, "force_count": 2})
    with httpx.Client(base_url=sandbox.url, auth=SN_AUTH) as http:
        codes = [http.get(SN_PATH).status_code for _ in range(3)]
    assert codes == [500, 500, 200]


def test_reset_clears_faults_and_reseeds(sandbox: ThreadedServer) -> None:
    with httpx.Client(base_url=sandbox.url, auth=SN_AUTH) as http:
        assert http.post(SN_PATH, json={"short_description": "x"}).status_code == 201
        faults_of(sandbox).update({"latency_ms": 50, "fail_rate": 1.0})
        assert http.post("/_sandbox/reset").json()["fail_rate"] == 0
        assert http.get(SN_PATH).json()["result"] == []
    assert faults_of(sandbox).latency_ms == 0


def test_a_write_held_across_a_reset_is_refused_not_applied_to_the_reseeded_sandbox(
    sandbox: ThreadedServer,
) -> None:
    faults_of(sandbox).update({"latency_ms": 600})
    answers: list[httpx.Response] = []

    def create() -> None:
        with httpx.Client(base_url=sandbox.url, auth=SN_AUTH, timeout=10) as http:
            answers.append(http.post(SN_PATH, json={"short_description": "held over a reset"}))

    writer = threading.Thread(target=create)
    writer.start()
    time.sleep(0.2)  # it waits out its latency now
    httpx.post(f"{sandbox.url}/_sandbox/reset", timeout=10).raise_for_status()
    writer.join(10)
    assert answers[0].status_code == 503
    with httpx.Client(base_url=sandbox.url, auth=SN_AUTH) as http:
        found = http.get(SN_PATH, params={"sysparm_query": "short_description=held over a reset"})
    assert found.json()["result"] == []
