"""``GET /api/anomalies?archive=1`` without ``status`` lists every status: the cold archive holds
archived anomalies only, so the usual default (``open``) found none of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support import ThreadedServer

ENV = {"ANOMALY_DESK_RETENTION__ARCHIVE_AFTER_DAYS": "0"}  # resolved a moment ago is old enough


def anomaly(i: int, status: str) -> dict[str, object]:
    return {
        "id": i,
        "status": status,
        "message": f"needle {i}",
        "created": f"2026-11-1{i}T08:00:00Z",
    }


@pytest.fixture
def api(start_receiver: Callable[..., ThreadedServer]) -> Iterator[httpx.Client]:
    """A receiver with 1 open anomaly (hot) and 2 resolved ones moved to the cold archive."""
    receiver = start_receiver(ENV)
    with httpx.Client(base_url=receiver.url, timeout=30) as client:
        sent = [anomaly(1, "Active"), anomaly(2, "Resolved"), anomaly(3, "Resolved")]
        assert client.post("/webhooks/qualytics", json=sent).status_code == 200
        assert client.post("/api/compact").json()["moved"] == 2
        yield client


def listed(api: httpx.Client, **params: str) -> list[tuple[int, bool]]:
    answer = api.get("/api/anomalies", params=params)
    assert answer.status_code == 200, answer.text
    return sorted((item["id"], item.get("cold", False)) for item in answer.json()["items"])


def test_a_search_of_the_archive_without_status_finds_cold_anomalies(api: httpx.Client) -> None:
    assert listed(api, q="needle", archive="1") == [(1, False), (2, True), (3, True)]
    assert listed(api, archive="1") == [(1, False), (2, True), (3, True)]
    assert listed(api, q="needle 3", archive="true") == [(3, True)]


def test_an_explicit_status_is_kept_with_the_archive(api: httpx.Client) -> None:
    assert listed(api, q="needle", archive="1", status="open") == [(1, False)]
    assert listed(api, q="needle", archive="1", status="archived") == [(2, True), (3, True)]
    assert listed(api, archive="1", status="Resolved") == [(2, True), (3, True)]
    assert listed(api, archive="1", status="all") == [(1, False), (2, True), (3, True)]


def test_without_the_archive_the_default_is_still_open(api: httpx.Client) -> None:
    assert listed(api, q="needle") == [(1, False)]
    assert listed(api, q="needle", archive="0") == [(1, False)]
    assert listed(api, status="all") == [(1, False)]  # the hot store only


def test_the_dashboard_client_still_sends_its_status(api: httpx.Client) -> None:
    """The dashboard's archive mode (``6``) switches an open tab to All and always sends the
    tab's status, so the new default does not change what it shows."""
    import asyncio

    from anomaly_desk.tui.client import DeskClient

    async def pages() -> tuple[list[int], list[int]]:
        client = DeskClient(str(api.base_url))
        try:
            everything = await client.list_anomalies("all", "needle", archive=True)
            opened = await client.list_anomalies("open", "needle", archive=True)
        finally:
            await client.aclose()
        return [row.id for row in everything.items], [row.id for row in opened.items]

    everything, opened = asyncio.run(pages())
    assert sorted(everything) == [1, 2, 3]
    assert opened == [1]
