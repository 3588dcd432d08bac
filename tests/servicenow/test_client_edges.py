"""Transport-level edge cases a live sandbox cannot stage on demand: timeouts and lost answers.

``httpx.MockTransport`` stands in for the network only; everything above it is our real client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from anomaly_desk.core.providers.errors import AuthError, RateLimitedError, UnavailableError
from anomaly_desk.core.providers.servicenow import ServiceNowClient
from tests.retries import fast_retries
from tests.servicenow.conftest import connection, make_anomaly

URL = "https://acme.service-now.com"
Handler = Callable[[httpx.Request], httpx.Response]


def client_with(handler: Handler, **conn: object) -> ServiceNowClient:
    return ServiceNowClient(connection(URL, **conn), transport=httpx.MockTransport(handler))


def raising(exc: type[httpx.TransportError]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc("simulated", request=request)

    return handle


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError])
async def test_write_without_an_answer_is_ambiguous(exc: type[httpx.TransportError]) -> None:
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise exc("simulated", request=request)

    snc = client_with(handle)
    with pytest.raises(UnavailableError) as caught:
        await snc.create_ticket(make_anomaly(), {"short_description": "x"})
    await snc.aclose()
    assert caught.value.ambiguous
    assert len(calls) == 1  # writes are never retried


@pytest.mark.parametrize("exc", [httpx.ConnectError, httpx.ConnectTimeout])
async def test_write_that_never_left_is_not_ambiguous(exc: type[httpx.TransportError]) -> None:
    snc = client_with(raising(exc))
    with fast_retries(), pytest.raises(UnavailableError) as caught:
        await snc.check()
    assert not caught.value.ambiguous
    with pytest.raises(UnavailableError) as caught:
        await snc.create_ticket(make_anomaly(), {"short_description": "x"})
    assert not caught.value.ambiguous
    await snc.aclose()


@pytest.mark.parametrize(("status", "reason"), [(504, "Gateway Timeout"), (502, "Bad Gateway")])
async def test_a_gateway_error_on_a_write_is_ambiguous_but_503_is_not(
    status: int, reason: str
) -> None:
    """502 is ambiguous too since the clients share one loop (it used to be Jira's rule only)."""
    answer = {"code": status}

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answer["code"], text="<html>gateway</html>")

    snc = client_with(handle)
    with pytest.raises(UnavailableError) as caught:
        await snc.create_ticket(make_anomaly(), {"short_description": "x"})
    assert caught.value.ambiguous
    assert caught.value.message == reason
    answer["code"] = 503
    with pytest.raises(UnavailableError) as caught:
        await snc.create_ticket(make_anomaly(), {"short_description": "x"})
    assert not caught.value.ambiguous
    await snc.aclose()


async def test_reads_retry_a_timeout_then_succeed() -> None:
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"result": []}, headers={"X-Total-Count": "0"})

    snc = client_with(handle)
    with fast_retries():
        assert await snc.search("x") == []
    assert len(calls) == 3
    await snc.aclose()


async def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)

    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"error": {"message": "Rate limit exceeded", "detail": None}, "status": "failure"}
        headers = {"Retry-After": format_datetime(when, usegmt=True)}
        return httpx.Response(429, content=json.dumps(body), headers=headers)

    snc = client_with(handle)
    with pytest.raises(RateLimitedError) as caught:
        await snc.search("x")  # too long a wait to retry inside a read: the caller honours it
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31
    assert len(calls) == 1


async def test_a_429_with_a_short_wait_is_retried_by_a_read() -> None:
    """Reads now retry a 429 as Jira's did (ServiceNow's never did before the shared loop)."""
    body = {"error": {"message": "Rate limit exceeded", "detail": None}, "status": "failure"}
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "0"}, json=body),
            httpx.Response(200, json={"result": []}),
        ]
    )
    snc = client_with(lambda request: next(answers))
    assert await snc.search("x") == []
    await snc.aclose()
    await snc.aclose()


async def test_requests_carry_basic_auth_and_json_accept_only_in_headers() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": []})

    snc = client_with(handle, password="pa55-word-xyz")
    await snc.check()
    await snc.aclose()
    request = seen[0]
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"].startswith("Basic ")
    assert "pa55-word-xyz" not in str(request.url)
    assert request.url.params["sysparm_limit"] == "1"
    assert "pa55-word-xyz" not in repr(snc)


async def test_missing_password_fails_without_a_request() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": []})

    snc = client_with(handle, password=None)
    with pytest.raises(AuthError, match="No password configured"):
        await snc.check()
    assert seen == []
    await snc.aclose()


async def test_a_login_page_instead_of_json_is_unavailable() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "text/html"}
        return httpx.Response(
            200, text="<html>Your instance is hibernating</html>", headers=headers
        )

    snc = client_with(handle, password="pw")
    with fast_retries(), pytest.raises(UnavailableError, match="got text/html") as caught:
        await snc.search("x")
    assert not caught.value.ambiguous  # a read
    await snc.aclose()


async def test_a_number_of_a_custom_table_is_found_on_the_tables_the_connection_offers() -> None:
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        table = request.url.path.rsplit("/", 1)[-1]
        asked.append(table)
        rows = []
        if table == "u_dq_issue":
            rows = [{"sys_id": "a" * 32, "number": "DQI0001001", "state": "1"}]
        return httpx.Response(200, json={"result": rows})

    snc = client_with(handle, tables=["incident", "u_dq_issue"])
    ticket = await snc.get_ticket("DQI0001001")  # a prefix of no table this version knows
    await snc.aclose()
    assert (ticket.key, ticket.table) == ("DQI0001001", "u_dq_issue")
    assert asked == ["incident", "u_dq_issue"]
