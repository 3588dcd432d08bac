"""Webhooks in, anomalies out: every fixture, redeliveries, status changes, the list API."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.receiver.conftest import snapshot_dir
from tests.support import FIXTURES, ThreadedServer

WEBHOOKS = sorted((FIXTURES / "webhooks").glob("*.json"))


def post(client: httpx.Client, path: Path, **headers: str) -> httpx.Response:
    return client.post(
        "/webhooks/qualytics",
        content=path.read_bytes(),
        headers={"content-type": "application/json", **headers},
    )


def all_ids(client: httpx.Client) -> list[int]:
    return [
        a["id"]
        for a in client.get("/api/anomalies", params={"status": "all", "limit": 500}).json()[
            "items"
        ]
    ]


def test_every_fixture_is_ingested_and_listed(client: httpx.Client) -> None:
    expected: set[int] = set()
    for path in WEBHOOKS:
        body = orjson.loads(path.read_bytes())
        items = (
            body["context"]["anomalies"] if isinstance(body, dict) and "context" in body else body
        )
        expected |= {a["id"] for a in (items if isinstance(items, list) else [items])}
        response = post(client, path)
        assert response.status_code == 200, (path.name, response.text)
    assert set(all_ids(client)) == expected
    assert len(expected) == 12  # 14 rows, two of them status changes

    # the Flow variants were folded into one shape
    payments = client.get("/api/anomalies/10240").json()
    assert payments["fields"] == ["currency"]
    assert payments["status"] == "Active"
    assert payments["container"]["name"] == "payments"
    orders = client.get("/api/anomalies/10250").json()
    assert orders["type"] == "shape"
    assert orders["failed_checks"][0]["rule_type"] == "expectedSchema"
    assert orders["datastore"]["name"] == "warehouse_prod"
    crm = client.get("/api/anomalies/10260").json()
    assert crm["failed_checks"][0]["check_id"] == 9100
    assert crm["assignees"] == [{"id": 5, "name": "Priya Raman"}]  # unknown keys are kept
    text = client.get("/api/anomalies/10280").json()
    assert "東京" in text["message"]
    assert text["global_tags"] == ["équipe-données"]


def test_status_change_is_recorded_in_history(client: httpx.Client) -> None:
    post(client, FIXTURES / "webhooks" / "01-flow-anomalies-detected.json")
    response = post(client, FIXTURES / "webhooks" / "08-flow-status-acknowledged.json")
    assert response.json()["status_changed"] == [10231]
    anomaly = client.get("/api/anomalies/10231").json()
    assert anomaly["status"] == "Acknowledged"
    assert anomaly["history"][-1]["kind"] == "status"
    assert (anomaly["history"][-1]["from"], anomaly["history"][-1]["to"]) == (
        "Active",
        "Acknowledged",
    )
    assert anomaly["history"][-1]["by"] == "platform"
    # what the status delivery did not carry is kept from the first delivery
    assert anomaly["failed_checks"][0]["rule_type"] == "notNull"
    assert anomaly["fingerprint"] == 883127731
    post(client, FIXTURES / "webhooks" / "09-flow-status-resolved.json")
    assert client.get("/api/anomalies/10232").json()["status"] == "Resolved"
    open_ids = [a["id"] for a in client.get("/api/anomalies").json()["items"]]
    assert 10232 not in open_ids
    assert 10231 in open_ids


def test_redelivery_changes_nothing(client: httpx.Client, receiver: ThreadedServer) -> None:
    path = FIXTURES / "webhooks" / "01-flow-anomalies-detected.json"
    first = post(client, path)
    assert first.json()["created"] == [10231, 10232, 10233]
    before = snapshot_dir(receiver.data_dir)  # type: ignore[attr-defined]
    detail = client.get("/api/anomalies/10231").json()
    again = post(client, path)  # no webhook-id: the merge itself makes it a no-op
    assert again.status_code == 200
    assert again.json()["unchanged"] == [10231, 10232, 10233]
    assert snapshot_dir(receiver.data_dir) == before  # type: ignore[attr-defined]
    assert client.get("/api/anomalies/10231").json() == detail

    # same webhook-id, even with a different body, is the same delivery
    other = FIXTURES / "webhooks" / "04-api-record-anomaly.json"
    assert post(client, other, **{"webhook-id": "msg_1"}).json()["created"] == [10260]
    before = snapshot_dir(receiver.data_dir)  # type: ignore[attr-defined]
    assert post(client, path, **{"webhook-id": "msg_1"}).json()["duplicate"] is True
    assert snapshot_dir(receiver.data_dir) == before  # type: ignore[attr-defined]


def test_same_content_in_a_new_delivery_is_unchanged(
    client: httpx.Client, receiver: ThreadedServer
) -> None:
    body = orjson.loads((FIXTURES / "webhooks" / "05-api-shape-anomaly.json").read_bytes())
    client.post("/webhooks/qualytics", json=body)
    before = snapshot_dir(receiver.data_dir)  # type: ignore[attr-defined]
    reordered = dict(reversed(list(body.items())))  # other bytes, same anomaly
    response = client.post("/webhooks/qualytics", json=reordered)
    assert response.json()["unchanged"] == [10261]
    assert snapshot_dir(receiver.data_dir) == before  # type: ignore[attr-defined]


def test_list_pages_filters_and_searches(client: httpx.Client) -> None:
    for path in WEBHOOKS:
        post(client, path)
    seen: list[int] = []
    cursor = None
    while True:
        params = {"status": "all", "limit": "4", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/anomalies", params=params).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == all_ids(client)
    assert len(seen) == 12
    created = [client.get(f"/api/anomalies/{i}").json()["created"] for i in seen]
    assert created == sorted(created, reverse=True)  # newest first

    archived = client.get("/api/anomalies", params={"status": "archived"}).json()["items"]
    assert {a["id"] for a in archived} == {10232, 10270, 10271, 10272, 10273}
    ack = client.get("/api/anomalies", params={"status": "acknowledged"}).json()["items"]
    assert {a["id"] for a in ack} == {10231, 10261}
    found = client.get("/api/anomalies", params={"q": "CUSTOMER_ID", "status": "all"}).json()[
        "items"
    ]
    assert [a["id"] for a in found] == [10231]
    found = client.get("/api/anomalies", params={"q": "clients_europe"}).json()["items"]
    assert [a["id"] for a in found] == [10280]


def test_query_errors_are_problems(client: httpx.Client) -> None:
    for params, word in (
        ({"status": "nope"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "!!"}, "cursor"),
    ):
        response = client.get("/api/anomalies", params=params)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert word in response.json()["detail"]
    missing = client.get("/api/anomalies/999999")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no anomaly with id 999999"
    assert client.get("/healthz").json()["status"] == "ok"
