"""The platform client's requests and error classes, with ``httpx.MockTransport`` as the network.

What no emulator should be taught (an HTML 502, a timeout after the send, a token echoed in an
error) is answered here; everything above the transport is the real client and request loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest

from anomaly_desk.core.providers.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.platform import (
    PlatformClient,
    RefusedError,
    make_platform_client,
)
from tests.platform.conftest import UNIT_TOKEN, mock_client, platform
from tests.retries import fast_retries

ANOMALY = {"id": 20001, "status": "Active", "type": "record", "datastore": {"id": 12}}


def page(
    items: list[dict[str, object]], total: int, page: int = 1, size: int = 100
) -> dict[str, object]:
    return {"items": items, "total": total, "page": page, "size": size}


class Recorder:
    """Answers with ``answer`` (a response, or an exception to raise) and keeps every request."""

    def __init__(self, *answers: httpx.Response | type[Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, httpx.Response):
            return answer
        raise answer("simulated", request=request)  # type: ignore[call-arg]


def detail(status: int, text: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": text}, headers=headers)


def assert_no_token(*texts: str) -> None:
    for text in texts:
        assert UNIT_TOKEN not in text


# ------------------------------------------------------------------------------ requests


async def test_requests_carry_the_bearer_token_in_the_header_only() -> None:
    rec = Recorder(httpx.Response(200, json=page([ANOMALY], 1)))
    async with mock_client(rec) as client:
        await client.list_page(
            2, 50, "include", date(2026, 11, 1), 12, status=["Active", "Resolved"]
        )
    (request,) = rec.requests
    assert request.method == "GET"
    assert request.headers["Authorization"] == f"Bearer {UNIT_TOKEN}"
    assert request.url.path == "/api/anomalies"
    assert UNIT_TOKEN not in str(request.url)
    assert list(request.url.params.multi_items()) == [
        ("page", "2"),
        ("size", "50"),
        ("sort_created", "asc"),
        ("archived", "include"),
        ("start_date", "2026-11-01"),
        ("datastore", "12"),
        ("status", "Active"),
        ("status", "Resolved"),
    ]


async def test_a_datetime_since_is_sent_exactly_in_utc() -> None:
    rec = Recorder(httpx.Response(200, json=page([], 0)))
    paris = timezone(timedelta(hours=1))
    async with mock_client(rec) as client:
        await client.list_page(since=datetime(2026, 11, 3, 23, 59, 1, 500000, tzinfo=paris))
        await client.list_page(since=datetime(2026, 11, 3, 8, 0))  # naive: UTC
    first, second = (request.url.params for request in rec.requests)
    assert first["start_date"] == "2026-11-03T22:59:01.500Z"
    assert second["start_date"] == "2026-11-03T08:00:00.000Z"
    assert "archived" not in first  # the platform's default: no archived ones
    assert "status" not in first


async def test_writes_send_what_the_platform_documents() -> None:
    rec = Recorder(
        httpx.Response(200, json={**ANOMALY, "status": "Acknowledged"}),
        httpx.Response(200, json={**ANOMALY, "status": "Duplicate"}),
        httpx.Response(200, json={"id": 9, "message": "rerun scheduled", "anomaly_id": 20001}),
    )
    async with mock_client(rec) as client:
        acked = await client.acknowledge(20001)
        archived = await client.archive(20001, "Duplicate")
        comment = await client.add_comment(20001, "rerun scheduled")
    put, delete, post = rec.requests
    assert (put.method, put.url.path) == ("PUT", "/api/anomalies/20001")
    assert json.loads(put.content) == {"status": "Acknowledged"}
    assert (delete.method, delete.url.path) == ("DELETE", "/api/anomalies/20001")
    assert dict(delete.url.params) == {"archive": "true", "status": "Duplicate"}
    assert (post.method, post.url.path) == ("POST", "/api/comments")
    assert json.loads(post.content) == {"message": "rerun scheduled", "anomaly_id": 20001}
    assert acked is not None
    assert acked["status"] == "Acknowledged"
    assert archived is not None
    assert archived["status"] == "Duplicate"
    assert comment["id"] == 9


async def test_an_empty_answer_to_a_write_is_no_anomaly() -> None:
    async with mock_client(Recorder(httpx.Response(204))) as client:
        assert await client.archive(1, "Resolved") is None
        assert await client.acknowledge(1) is None


async def test_check_counts_open_anomalies_with_one_small_read() -> None:
    rec = Recorder(httpx.Response(200, json=page([ANOMALY], 1, size=1)))
    async with mock_client(rec) as client:
        assert await client.check() == "1 open anomaly"
    assert rec.requests[0].url.params["size"] == "1"
    rec = Recorder(httpx.Response(200, json=page([ANOMALY], 212, size=1)))
    async with mock_client(rec) as client:
        assert await client.check() == "212 open anomalies"
    assert len(rec.requests) == 1


async def test_anomalies_pages_until_the_total_is_reached() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        number, size = int(request.url.params["page"]), int(request.url.params["size"])
        ids = range((number - 1) * size + 1, min(number * size, 7) + 1)
        return httpx.Response(200, json=page([{"id": i} for i in ids], 7, number, size))

    async with mock_client(answer) as client:
        ids = [item["id"] async for item in client.anomalies(size=3)]
    assert ids == [1, 2, 3, 4, 5, 6, 7]


async def test_comments_are_read_oldest_first_as_listed() -> None:
    listed = [{"id": 1, "message": "a"}, {"id": 2, "message": "b"}]
    rec = Recorder(httpx.Response(200, json=listed))
    async with mock_client(rec) as client:
        assert await client.comments(20001) == listed
    assert rec.requests[0].url.path == "/api/anomalies/20001/comments"


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthError), (403, AuthError), (404, NotFoundError), (400, ValidationError)],
)
async def test_error_statuses_become_typed_errors_in_the_platforms_words(
    status: int, cls: type[ProviderError]
) -> None:
    rec = Recorder(detail(status, "Anomaly 7 does not exist" if status == 404 else "Nope"))
    async with mock_client(rec) as client:
        with pytest.raises(cls) as info:
            await client.get_anomaly(7)
    assert info.value.status == status
    assert info.value.connection == "Qualytics"
    assert str(info.value).startswith("Qualytics: ")
    assert not isinstance(info.value, RefusedError)
    assert len(rec.requests) == 1  # not a transient failure: not retried


async def test_409_is_refused_as_a_conflict_carrying_the_detail() -> None:
    rec = Recorder(detail(409, "Anomaly 20001 is archived and cannot be commented on"))
    async with mock_client(rec) as client:
        with pytest.raises(RefusedError) as info:
            await client.add_comment(20001, "hello")
    exc = info.value
    assert isinstance(exc, ValidationError)  # refused for good, like a validation error
    assert (exc.status, exc.conflict, exc.retryable) == (409, True, False)
    assert exc.message == "Anomaly 20001 is archived and cannot be commented on"
    assert str(exc) == (
        "Qualytics: Anomaly 20001 is archived and cannot be commented on (HTTP 409)"
    )


async def test_422_names_the_parameters_fastapi_complained_about() -> None:
    body = {
        "detail": [
            {"type": "less_than_equal", "loc": ["query", "size"], "msg": "Input should be <= 100"},
            {"type": "enum", "loc": ["query", "status"], "msg": "Input should be 'Resolved'"},
        ]
    }
    rec = Recorder(httpx.Response(422, json=body))
    async with mock_client(rec) as client:
        with pytest.raises(RefusedError) as info:
            await client.list_page(1, 500)
    exc = info.value
    assert (exc.status, exc.conflict) == (422, False)
    assert exc.field_errors == {
        "size": "Input should be <= 100",
        "status": "Input should be 'Resolved'",
    }
    assert exc.message == "size: Input should be <= 100; status: Input should be 'Resolved'"


async def test_429_carries_retry_after_and_a_long_wait_is_not_held_in_a_read() -> None:
    rec = Recorder(detail(429, "Too many requests", **{"Retry-After": "30"}))
    async with mock_client(rec) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get_anomaly(1)
    assert info.value.retry_after == 30
    assert len(rec.requests) == 1


async def test_reads_retry_transient_failures() -> None:
    rec = Recorder(
        detail(429, "slow down", **{"Retry-After": "1"}),
        httpx.Response(503, text="<html>maintenance</html>"),
        httpx.Response(200, json=ANOMALY),
    )
    with fast_retries():
        async with mock_client(rec) as client:
            assert (await client.get_anomaly(20001))["id"] == 20001
    assert len(rec.requests) == 3


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.Response(503, json={"detail": "down"})],
    ids=["timeout", "dropped", "503"],
)
async def test_reads_give_up_after_the_attempts_as_unavailable(
    failure: httpx.Response | type[Exception],
) -> None:
    rec = Recorder(failure)
    with fast_retries():
        async with mock_client(rec) as client:
            with pytest.raises(UnavailableError) as info:
                await client.comments(1)
    assert len(rec.requests) == 3
    assert info.value.ambiguous is False  # a read has no effect to look for


@pytest.mark.parametrize(
    ("failure", "ambiguous"),
    [
        (httpx.ReadTimeout, True),  # sent; the answer never came
        (httpx.RemoteProtocolError, True),
        (httpx.Response(502, text="Bad Gateway"), True),
        (httpx.Response(504, text="Gateway Timeout"), True),
        (httpx.Response(200, text="<html>login</html>"), True),  # not the API's answer
        (httpx.ConnectError, False),  # never left
        (httpx.ConnectTimeout, False),
        (httpx.Response(500, json={"detail": "boom"}), False),  # the platform failed it
        (httpx.Response(503, json={"detail": "maintenance"}), False),
    ],
    ids=[
        "timeout",
        "dropped",
        "502",
        "504",
        "html-200",
        "refused",
        "connect-timeout",
        "500",
        "503",
    ],
)
async def test_writes_are_sent_once_and_ambiguous_only_when_their_fate_is_unknown(
    failure: httpx.Response | type[Exception], ambiguous: bool
) -> None:
    writes: dict[str, Callable[[PlatformClient], Awaitable[object]]] = {
        "acknowledge": lambda client: client.acknowledge(5),
        "archive": lambda client: client.archive(5, "Resolved"),
        "add_comment": lambda client: client.add_comment(5, "hello"),
    }
    for write, send in writes.items():
        rec = Recorder(failure)
        with fast_retries():
            async with mock_client(rec) as client:
                with pytest.raises(UnavailableError) as info:
                    await send(client)
        assert len(rec.requests) == 1, write  # the outbox retries writes, not the client
        assert info.value.ambiguous is ambiguous, write


async def test_a_page_that_is_not_the_apis_is_unavailable() -> None:
    rec = Recorder(httpx.Response(200, json={"results": []}))
    with fast_retries():
        async with mock_client(rec) as client:
            with pytest.raises(UnavailableError, match="without a list of items"):
                await client.list_page()


async def test_an_html_error_page_is_summarised_not_dumped() -> None:
    rec = Recorder(httpx.Response(403, text="<html><body><h1>Forbidden</h1></body></html>"))
    async with mock_client(rec) as client:
        with pytest.raises(AuthError) as info:
            await client.acknowledge(1)
    assert info.value.message == "Forbidden"


# ------------------------------------------------------------------------------ the token


async def test_the_token_never_shows_in_errors_reprs_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = f"Invalid token {UNIT_TOKEN}"  # a platform that echoes the credential
    rec = Recorder(detail(401, echo))
    caplog.set_level(logging.DEBUG)
    client = mock_client(rec)
    try:
        with pytest.raises(AuthError) as info:
            await client.check()
    finally:
        await client.aclose()
    exc = info.value
    assert "***" in exc.message
    assert_no_token(
        str(exc), repr(exc), exc.message, repr(client), repr(client._http.auth), caplog.text
    )
    assert_no_token(repr(client.platform), str(client.platform.model_dump()))


async def test_the_token_is_scrubbed_from_422_field_errors() -> None:
    body = {"detail": [{"loc": ["body", "message"], "msg": f"bad {UNIT_TOKEN}"}]}
    async with mock_client(Recorder(httpx.Response(422, json=body))) as client:
        with pytest.raises(RefusedError) as info:
            await client.add_comment(1, "x")
    assert_no_token(str(info.value), str(info.value.field_errors))


async def test_without_a_token_nothing_is_sent() -> None:
    rec = Recorder(httpx.Response(200, json=page([], 0)))
    async with mock_client(rec, token=None) as client:
        with pytest.raises(AuthError, match="no API token configured"):
            await client.check()
    assert rec.requests == []


# ------------------------------------------------------------------------------ the factory


async def test_make_platform_client_needs_a_url_and_a_token() -> None:
    assert make_platform_client(platform(token=None)) is None
    assert make_platform_client(platform(url=None)) is None
    client = make_platform_client(platform())
    assert isinstance(client, PlatformClient)
    try:
        assert (client.name, client.url) == ("Qualytics", "https://acme.qualytics.io")
        assert repr(client) == "PlatformClient(name='Qualytics', url='https://acme.qualytics.io')"
    finally:
        await client.aclose()


async def test_a_trailing_slash_in_the_url_is_not_doubled() -> None:
    rec = Recorder(httpx.Response(200, json=ANOMALY))
    async with mock_client(rec, url="https://acme.qualytics.io/") as client:
        await client.get_anomaly(20001)
    assert str(rec.requests[0].url) == "https://acme.qualytics.io/api/anomalies/20001"


def test_a_client_without_a_url_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no url"):
        PlatformClient(platform(url=None))
