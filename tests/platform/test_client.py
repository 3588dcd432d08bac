"""``PlatformClient`` against the sandbox's platform emulator, over HTTP on loopback.

The emulator is an independent oracle (its own rules, ~300 seeded anomalies, about a third
archived); these tests read its state directly to know what the client should have seen or done.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.errors import (
    AuthError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.platform import PlatformClient, RefusedError
from anomaly_desk.sandbox.platform import READ_ONLY_TOKEN, PlatformEmulator
from tests.platform.conftest import SANDBOX_TOKEN, platform
from tests.retries import fast_retries
from tests.support import ThreadedServer


def open_ids(emulator: PlatformEmulator) -> list[int]:
    return sorted(a.id for a in emulator.anomalies.values() if not a.archived)


def an_open(emulator: PlatformEmulator) -> int:
    return open_ids(emulator)[0]


def an_archived(emulator: PlatformEmulator) -> int:
    return min(a.id for a in emulator.anomalies.values() if a.archived)


# ------------------------------------------------------------------------------ reads


async def test_check_counts_the_open_anomalies_with_one_request(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    assert await client.check() == f"{len(open_ids(emulator))} open anomalies"
    assert emulator.writes() == []


async def test_paging_through_every_open_anomaly(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    seen: list[int] = []
    number = 1
    while True:
        found = await client.list_page(number, 100)
        assert (found["page"], found["size"]) == (number, 100)
        assert found["total"] == len(open_ids(emulator))
        seen += [item["id"] for item in found["items"]]
        if number * 100 >= found["total"]:
            break
        number += 1
    assert number >= 2  # the seed does not fit in one page
    assert sorted(seen) == open_ids(emulator)
    assert len(seen) == len(set(seen))  # no anomaly twice across the pages


async def test_anomalies_iterates_every_page_oldest_first(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    items = [item async for item in client.anomalies(archived="include", size=37)]
    assert len(items) == len(emulator.anomalies) == 300
    created = [item["created"] for item in items]
    assert created == sorted(created)
    archived = [item async for item in client.anomalies(archived="only")]
    assert {item["id"] for item in archived} == {
        a.id for a in emulator.anomalies.values() if a.archived
    }


async def test_filters_by_datastore_status_and_since(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    by_store = [item async for item in client.anomalies(datastore=14)]
    assert by_store
    assert {item["datastore"]["id"] for item in by_store if item.get("datastore")} == {14}

    acked = [item async for item in client.anomalies(status=["Acknowledged"])]
    assert acked
    assert {item["status"] for item in acked} == {"Acknowledged"}

    newest = max(emulator.anomalies.values(), key=lambda a: a.created)
    since = newest.created - timedelta(milliseconds=1)
    recent = await client.list_page(archived="include", since=since)
    assert [item["id"] for item in recent["items"]] == [newest.id]
    day = await client.list_page(archived="include", since=newest.created.date())
    assert day["total"] >= 1


async def test_get_anomaly_returns_the_full_anomaly_the_desk_can_read(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    anomaly_id = an_open(emulator)
    found = await client.get_anomaly(anomaly_id)
    assert found["id"] == anomaly_id
    assert found["status"] == emulator.anomalies[anomaly_id].status
    assert {"uuid", "datastore", "container", "failed_checks", "created"} <= set(found)
    model = Anomaly.model_validate(found)
    assert model.id == anomaly_id
    assert model.failed_checks


# ------------------------------------------------------------------------------ writes


async def test_acknowledge_changes_the_status_once(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    anomaly_id = next(a.id for a in emulator.anomalies.values() if a.status == "Active")
    answer = await client.acknowledge(anomaly_id)
    assert answer is not None
    assert answer["status"] == "Acknowledged"
    assert emulator.anomalies[anomaly_id].status == "Acknowledged"
    (call,) = emulator.writes(anomaly_id)
    assert (call.method, call.status, call.body) == ("PUT", 200, {"status": "Acknowledged"})


async def test_archive_then_everything_else_is_refused_as_a_conflict(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    anomaly_id = an_open(emulator)
    answer = await client.archive(anomaly_id, "Duplicate")
    assert answer is not None
    assert answer["status"] == emulator.anomalies[anomaly_id].status == "Duplicate"

    for attempt in (
        client.acknowledge(anomaly_id),
        client.add_comment(anomaly_id, "too late"),
        client.archive(anomaly_id, "Resolved"),
    ):
        with pytest.raises(RefusedError) as info:
            await attempt
        exc = info.value
        assert isinstance(exc, ValidationError)
        assert (exc.status, exc.conflict, exc.retryable) == (409, True, False)
        assert f"Anomaly {anomaly_id} is" in exc.message
        assert "archived" in exc.message
    assert emulator.anomalies[anomaly_id].status == "Duplicate"
    assert emulator.comments_of(anomaly_id) == []


async def test_comment_then_read_it_back(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    anomaly_id = an_open(emulator)
    first = await client.add_comment(anomaly_id, "Ticket DQ-12 created: https://jira/DQ-12")
    second = await client.add_comment(anomaly_id, "Résolu côté données ✓")
    assert first["message"] == "Ticket DQ-12 created: https://jira/DQ-12"
    assert first["anomaly_id"] == anomaly_id
    listed = await client.comments(anomaly_id)
    assert [c["id"] for c in listed] == [first["id"], second["id"]]  # oldest first
    assert [c.message for c in emulator.comments_of(anomaly_id)] == [
        "Ticket DQ-12 created: https://jira/DQ-12",
        "Résolu côté données ✓",
    ]


async def test_an_ambiguous_comment_can_be_found_before_resending(
    sandbox: ThreadedServer, emulator: PlatformEmulator
) -> None:
    """The answer is late (the client gives up after sending): the comment landed anyway."""
    anomaly_id = an_open(emulator)
    slow = PlatformClient(platform(sandbox.url, SANDBOX_TOKEN, timeout=0.3))
    sandbox.app.state.faults.latency_ms = 800  # type: ignore[attr-defined]
    try:
        with pytest.raises(UnavailableError) as info:
            await slow.add_comment(anomaly_id, "rerun scheduled")
        assert info.value.ambiguous is True
    finally:
        sandbox.app.state.faults.latency_ms = 0  # type: ignore[attr-defined]
        await slow.aclose()
    async with PlatformClient(platform(sandbox.url, SANDBOX_TOKEN)) as client:
        for _ in range(50):  # the emulator finishes the request after its delay
            landed = [c["message"] for c in await client.comments(anomaly_id)]
            if landed:
                break
            await asyncio.sleep(0.05)
    assert landed == ["rerun scheduled"]
    assert len(emulator.writes(anomaly_id)) == 1  # sent once: the client did not retry it


# ------------------------------------------------------------------------------ errors


async def test_a_wrong_token_is_an_auth_error_that_never_shows_a_token(
    sandbox: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-platform-token-8c1d"
    client = PlatformClient(platform(sandbox.url, wrong))
    try:
        with pytest.raises(AuthError) as info:
            await client.check()
    finally:
        await client.aclose()
    exc = info.value
    assert exc.status == 401
    assert exc.message == "Invalid or expired token"
    assert str(exc) == "Qualytics: Invalid or expired token (HTTP 401)"
    for text in (str(exc), repr(exc), repr(client), caplog.text):
        assert wrong not in text
        assert SANDBOX_TOKEN not in text


async def test_the_sandbox_token_never_shows_in_errors_reprs_or_logs(
    client: PlatformClient, emulator: PlatformEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[Exception] = []
    for attempt in (
        client.get_anomaly(999_999),
        client.archive(an_archived(emulator), "Resolved"),
        client.list_page(1, 500),
    ):
        try:
            await attempt
        except Exception as exc:
            errors.append(exc)
    assert len(errors) == 3
    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    for text in (*texts, repr(client), repr(client.platform), caplog.text):
        assert SANDBOX_TOKEN not in text


async def test_a_read_only_token_reads_but_is_forbidden_to_write(
    sandbox: ThreadedServer, emulator: PlatformEmulator
) -> None:
    anomaly_id = an_open(emulator)
    async with PlatformClient(platform(sandbox.url, READ_ONLY_TOKEN)) as viewer:
        assert (await viewer.get_anomaly(anomaly_id))["id"] == anomaly_id
        with pytest.raises(AuthError) as info:
            await viewer.add_comment(anomaly_id, "hello")
    assert info.value.status == 403
    assert "read-only" in info.value.message
    assert emulator.comments_of(anomaly_id) == []


async def test_an_unknown_anomaly_is_not_found(client: PlatformClient) -> None:
    for attempt in (client.get_anomaly(999_999), client.comments(999_999)):
        with pytest.raises(NotFoundError) as info:
            await attempt
        assert info.value.status == 404
        assert info.value.message == "Anomaly not found"
    with pytest.raises(NotFoundError):
        await client.acknowledge(999_999)


async def test_422_is_refused_naming_the_parameter(
    client: PlatformClient, emulator: PlatformEmulator
) -> None:
    with pytest.raises(RefusedError) as info:
        await client.list_page(1, 500)
    assert info.value.status == 422
    assert info.value.conflict is False
    assert list(info.value.field_errors) == ["size"]
    assert "less than or equal to 100" in info.value.message

    anomaly_id = an_open(emulator)
    with pytest.raises(RefusedError) as archive_info:
        await client.archive(anomaly_id, "Fixed")  # type: ignore[arg-type]
    assert archive_info.value.status == 422
    assert "status" in archive_info.value.field_errors
    assert emulator.anomalies[anomaly_id].archived is False

    with pytest.raises(RefusedError) as comment_info:
        await client.add_comment(anomaly_id, "   ")
    assert comment_info.value.field_errors.keys() == {"message"}


async def test_reads_retry_a_503_and_writes_do_not(
    sandbox: ThreadedServer, client: PlatformClient, emulator: PlatformEmulator
) -> None:
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    faults.update({"force_status": 503, "force_count": 1, "path_prefix": "/api/anomalies"})
    with fast_retries():
        assert (await client.list_page(1, 1))["total"] == len(open_ids(emulator))
    assert faults.force_count == 0

    anomaly_id = an_open(emulator)
    faults.update({"force_status": 503, "force_count": 1})
    with pytest.raises(UnavailableError) as info:
        await client.acknowledge(anomaly_id)
    assert (info.value.status, info.value.ambiguous) == (503, False)
    assert emulator.writes(anomaly_id) == []  # the fault answered before the platform saw it


async def test_429_carries_the_platforms_retry_after(
    sandbox: ThreadedServer, client: PlatformClient, emulator: PlatformEmulator
) -> None:
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    faults.update({"rate_limit": 0.1, "path_prefix": "/api/comments"})  # one now, then 10 s
    anomaly_id = an_open(emulator)
    await client.add_comment(anomaly_id, "first")
    with pytest.raises(RateLimitedError) as info:
        await client.add_comment(anomaly_id, "second")
    assert info.value.status == 429
    assert info.value.retry_after is not None
    assert info.value.retry_after >= 1
    assert [c.message for c in emulator.comments_of(anomaly_id)] == ["first"]
