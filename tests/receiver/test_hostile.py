"""Hostile shapes get a precise 4xx problem, a bounded reply, and never stall the receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import orjson
import pytest

from tests.receiver.conftest import AUTH, JSON
from tests.support import ThreadedServer


def test_a_deeply_nested_extra_field_is_a_422_not_a_500(
    seeded: Callable[..., httpx.Response], receiver: ThreadedServer
) -> None:
    deep = b'{"id": 91001, "extra": ' + b"[" * 300 + b"1" + b"]" * 300 + b"}"
    response = seeded(deep, {**JSON, **AUTH})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["message"] == "nested deeper than 64 levels"
    assert response.json()["errors"][0]["path"].startswith("extra")
    # reasonable nesting is kept as sent
    nested = {"id": 91002, "extra": {"a": [{"b": [1, 2, {"c": "d"}]}]}}
    ok = httpx.post(
        receiver.url + "/webhooks/qualytics",
        content=orjson.dumps(nested),
        headers={**JSON, **AUTH},
    )
    assert ok.status_code == 200, ok.text


def test_a_body_of_a_million_zeros_gets_a_small_reply(
    seeded: Callable[..., httpx.Response],
) -> None:
    body = b"[" + b"0," * (512 * 1024 - 1) + b"0]"
    assert len(body) > 1_000_000
    response = seeded(body, {**JSON, **AUTH})
    assert response.status_code == 413  # more items than one delivery may carry
    assert len(response.content) < 4096

    body = b"[" + b"0," * 9_999 + b"0]"  # within the item limit, nothing usable in it
    response = seeded(body, {**JSON, **AUTH})
    assert response.status_code == 422
    problem = response.json()
    assert len(problem["errors"]) == 20
    assert problem["error_count"] == 10_000
    assert problem["detail"].endswith("and 9980 more")
    assert len(response.content) < 8192


def test_many_anomalies_in_one_delivery_are_refused_precisely(
    seeded: Callable[..., httpx.Response],
) -> None:
    body = orjson.dumps([{"id": i} for i in range(1, 10_002)])
    response = seeded(body, {**JSON, **AUTH})
    assert response.status_code == 413
    assert "10001 anomalies; send at most 10000" in response.json()["detail"]


@pytest.mark.slow
def test_a_large_delivery_does_not_stall_other_requests(receiver: ThreadedServer) -> None:
    """10,000 anomalies in one delivery: the event loop keeps answering meanwhile."""
    big = orjson.dumps([{"id": 200_000 + i, "message": "m"} for i in range(10_000)])
    stalls: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=receiver.url) as probe_client:
            while not done.is_set():
                started = time.perf_counter()
                probe_client.get("/healthz")
                stalls.append(time.perf_counter() - started)
                time.sleep(0.01)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        time.sleep(0.1)
        response = httpx.post(
            f"{receiver.url}/webhooks/qualytics", content=big, headers={**JSON, **AUTH}, timeout=60
        )
    finally:
        done.set()
        thread.join()
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["created"]) == 10_000
    worst = max(stalls)
    print(f"10k-anomaly delivery: worst /healthz latency meanwhile {worst * 1000:.0f} ms")
    assert worst < 1.0


@pytest.mark.parametrize(
    "body",
    [
        {"event": "qualytics.flow.triggered", "trigger": 5, "flow": "x", "context": {}},
        {
            "event": "qualytics.flow.triggered",
            "trigger": {"type": ["x"], "timestamp": {"a": 1}},
            "datastore": [1, 2],
            "operation": 7,
            "target_link": {"u": 1},
            "context": {
                "anomalies": [
                    {
                        "id": 91100,
                        "container_id": [1],
                        "quality_check_ids": [{"x": 1}, 5, None],
                        "datastore": {"id": {"x": 1}, "name": ["n"]},
                    }
                ],
                "containers": [{"id": [1]}, 7, {"id": {"a": 1}}],
                "quality_checks": "nope",
            },
        },
    ],
)
def test_wrong_types_in_envelope_metadata_never_cost_the_anomalies(
    client: httpx.Client, body: dict[str, object]
) -> None:
    response = client.post("/webhooks/qualytics", json=body)
    assert response.status_code == 200, response.text
    if body["context"]:
        assert response.json()["created"] == [91100]
