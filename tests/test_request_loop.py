"""The one request loop both provider clients share: the same retry rule for Jira and ServiceNow.

Reads (GET) are retried on 429, 5xx and lost answers, a bounded number of times, honouring a short
``Retry-After``; writes are sent once, and reported ambiguous when their answer was lost.
``httpx.MockTransport`` stands in for the network; everything above it is the real client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from anomaly_desk.core.providers.base import Provider, TicketRef
from anomaly_desk.core.providers.errors import RateLimitedError, UnavailableError
from anomaly_desk.core.providers.http import READ_RETRY, ReadRetry
from anomaly_desk.core.providers.jira import JiraClient
from anomaly_desk.core.providers.servicenow import ServiceNowClient
from tests.jira.conftest import connection as jira_connection
from tests.retries import fast_retries
from tests.servicenow.conftest import connection as snow_connection

Handler = Callable[[httpx.Request], httpx.Response]
REF = TicketRef("DQ-1", "0" * 32)
# What each provider answers to a working read (check) and write (add_note).
OK: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "jira": lambda request: httpx.Response(
        201 if request.method == "POST" else 200, json={"emailAddress": "demo@example.com"}
    ),
    "servicenow": lambda request: httpx.Response(200, json={"result": []}),
}
# How each provider spells an error body.
ERROR_BODY: dict[str, Callable[[str], dict[str, Any]]] = {
    "jira": lambda message: {"errorMessages": [message], "errors": {}},
    "servicenow": lambda message: {"error": {"message": message, "detail": None}},
}


class Script:
    """Answers the given failures in turn, then the provider's success; counts the requests."""

    def __init__(self, kind: str, failures: list[httpx.Response | type[Exception]]) -> None:
        self.kind = kind
        self.failures = list(failures)
        self.methods: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.methods.append(request.method)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, httpx.Response):
                return failure
            raise failure("simulated", request=request)  # type: ignore[call-arg]
        return OK[self.kind](request)


def make(kind: str, handler: Handler, retry: ReadRetry = READ_RETRY) -> Provider:
    transport = httpx.MockTransport(handler)
    if kind == "jira":
        return JiraClient(
            jira_connection("https://acme.atlassian.net"), transport=transport, retry=retry
        )
    return ServiceNowClient(
        snow_connection("https://acme.service-now.com"), transport=transport, retry=retry
    )


def error(kind: str, status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json=ERROR_BODY[kind]("Try later"))


@pytest.fixture
def no_waits() -> Iterator[None]:
    with fast_retries():
        yield


PROVIDERS = pytest.mark.parametrize("kind", ["jira", "servicenow"])


@PROVIDERS
@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(429, id="429"),
        pytest.param(503, id="503"),
        pytest.param(502, id="502"),
        pytest.param(httpx.ReadTimeout, id="timeout"),
        pytest.param(httpx.ConnectError, id="no-connection"),
    ],
)
@pytest.mark.usefixtures("no_waits")
async def test_a_read_is_retried_until_it_works(kind: str, failure: Any) -> None:
    answer = error(kind, failure) if isinstance(failure, int) else failure
    script = Script(kind, [answer, answer])
    client = make(kind, script)
    try:
        await client.check()
    finally:
        await client.aclose()
    assert script.methods == ["GET"] * 3


@PROVIDERS
@pytest.mark.usefixtures("no_waits")
async def test_a_read_gives_up_after_the_bounded_attempts(kind: str) -> None:
    script = Script(kind, [error(kind, 429)] * 5)
    client = make(kind, script)
    try:
        with pytest.raises(RateLimitedError) as caught:
            await client.check()
    finally:
        await client.aclose()
    assert caught.value.status == 429
    assert script.methods == ["GET"] * READ_RETRY.attempts


@PROVIDERS
async def test_a_read_waits_as_long_as_retry_after_says(kind: str) -> None:
    script = Script(kind, [error(kind, 429, {"Retry-After": "0.4"})])
    client = make(kind, script)
    started = time.monotonic()
    try:
        await client.check()
    finally:
        await client.aclose()
    assert time.monotonic() - started >= 0.4
    assert len(script.methods) == 2


@PROVIDERS
@pytest.mark.parametrize("status", [429, 503])
async def test_a_long_retry_after_is_left_to_the_caller(kind: str, status: int) -> None:
    script = Script(kind, [error(kind, status, {"Retry-After": "30"})])
    client = make(kind, script)
    started = time.monotonic()
    try:
        with pytest.raises((RateLimitedError, UnavailableError)) as caught:
            await client.check()
    finally:
        await client.aclose()
    assert time.monotonic() - started < 1
    assert script.methods == ["GET"]
    assert isinstance(caught.value, RateLimitedError | UnavailableError)
    assert caught.value.retry_after == 30.0


@PROVIDERS
@pytest.mark.parametrize(
    ("failure", "ambiguous"),
    [
        pytest.param(429, False, id="429"),
        pytest.param(503, False, id="503"),
        pytest.param(500, False, id="500"),
        pytest.param(502, True, id="502"),
        pytest.param(504, True, id="504"),
        pytest.param(httpx.ReadTimeout, True, id="timeout"),
        pytest.param(httpx.RemoteProtocolError, True, id="dropped"),
        pytest.param(httpx.ConnectError, False, id="no-connection"),
        pytest.param(httpx.ConnectTimeout, False, id="connect-timeout"),
    ],
)
async def test_a_write_is_sent_once_and_ambiguous_only_when_its_answer_was_lost(
    kind: str, failure: Any, ambiguous: bool
) -> None:
    answer = error(kind, failure, {"Retry-After": "0"}) if isinstance(failure, int) else failure
    script = Script(kind, [answer])
    client = make(kind, script)
    try:
        with pytest.raises((RateLimitedError, UnavailableError)) as caught:
            await client.add_note(REF, "hello")
    finally:
        await client.aclose()
    assert script.methods == ["POST" if kind == "jira" else "PATCH"]
    error_ = caught.value
    assert getattr(error_, "ambiguous", False) is ambiguous


@PROVIDERS
async def test_the_attempts_are_configurable_per_client(kind: str) -> None:
    script = Script(kind, [error(kind, 503)] * 3)
    client = make(kind, script, ReadRetry(attempts=1))
    try:
        with pytest.raises(UnavailableError):
            await client.check()
    finally:
        await client.aclose()
    assert script.methods == ["GET"]


@PROVIDERS
@pytest.mark.usefixtures("no_waits")
async def test_an_answer_that_is_not_the_apis_is_unavailable_and_ambiguous_on_a_write(
    kind: str,
) -> None:
    page = httpx.Response(200, headers={"Content-Type": "text/html"}, text="<html>SSO</html>")
    script = Script(kind, [page] * 4)
    client = make(kind, script)
    try:
        with pytest.raises(UnavailableError) as read:
            await client.check()
        with pytest.raises(UnavailableError) as write:
            await client.add_note(REF, "hello")
    finally:
        await client.aclose()
    assert read.value.ambiguous is False
    assert write.value.ambiguous is True
    assert len(script.methods) == READ_RETRY.attempts + 1
