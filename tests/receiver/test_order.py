"""Senders deliver at least once and out of order: the newest platform state wins, every time."""

from __future__ import annotations

import random

import httpx

STATES = [  # (sent at, status): the platform's own history of one anomaly
    ("2026-11-20T08:00:00Z", "Active"),
    ("2026-11-20T09:00:00Z", "Acknowledged"),
    ("2026-11-20T10:00:00Z", "Active"),  # reopened on the platform
    ("2026-11-20T11:00:00Z", "Acknowledged"),
    ("2026-11-20T12:00:00Z", "Resolved"),
]


def delivery(anomaly_id: int, sent_at: str | None, status: str) -> dict[str, object]:
    trigger: dict[str, str] = {"type": "anomaly_status_changed"}
    if sent_at:
        trigger["timestamp"] = sent_at
    return {
        "event": "qualytics.flow.triggered",
        "trigger": trigger,
        "context": {"anomalies": [{"id": anomaly_id, "status": status, "message": "m"}]},
    }


def post(client: httpx.Client, body: object) -> dict[str, object]:
    response = client.post("/webhooks/qualytics", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_a_stale_delivery_is_recorded_and_ignored(client: httpx.Client) -> None:
    post(client, delivery(88001, STATES[0][0], "Active"))
    post(client, delivery(88001, STATES[1][0], "Acknowledged"))
    result = post(client, delivery(88001, "2026-11-20T08:30:00Z", "Active"))  # sent in between
    assert result["stale"] == [88001]
    assert result["status_changed"] == []
    doc = client.get("/api/anomalies/88001").json()
    assert doc["status"] == "Acknowledged"
    assert doc["history"][-1] == {
        "at": doc["history"][-1]["at"],
        "kind": "stale",
        "status": "Active",
        "sent_at": "2026-11-20T08:30:00.000Z",
        "by": "platform",
    }
    # the same stale delivery again is recorded once
    post(client, delivery(88001, "2026-11-20T08:30:00Z", "Active"))
    history = client.get("/api/anomalies/88001").json()["history"]
    assert [h["kind"] for h in history].count("stale") == 1


def test_shuffled_and_repeated_deliveries_end_in_the_newest_state(client: httpx.Client) -> None:
    rng = random.Random(20261201)
    for round_ in range(8):
        anomaly_id = 88100 + round_
        deliveries = [delivery(anomaly_id, at, status) for at, status in STATES] * 2
        rng.shuffle(deliveries)
        for body in deliveries:
            post(client, body)
        doc = client.get(f"/api/anomalies/{anomaly_id}").json()
        assert doc["status"] == "Resolved", (round_, doc["history"])
        assert doc["platform_at"] == "2026-11-20T12:00:00.000Z"
        # every status change applied moved forward in the platform's time
        applied = [h for h in doc["history"] if h["kind"] == "status"]
        assert len(applied) <= len(STATES)


def test_a_redelivered_state_never_undoes_an_acknowledgement_made_here(
    client: httpx.Client,
) -> None:
    body = {"id": 88200, "status": "Active", "message": "no timestamps in a bare object"}
    post(client, body)
    assert client.post("/api/anomalies/88200/acknowledge").status_code == 200
    result = post(client, body)  # the platform's at-least-once redelivery, byte for byte
    assert result["status_changed"] == []
    assert result["unchanged"] == [88200]
    assert client.get("/api/anomalies/88200").json()["status"] == "Acknowledged"


def test_a_genuinely_repeated_body_is_applied(client: httpx.Client) -> None:
    """Active, Acknowledged, Active again: the third body is byte-identical to the first and is
    still news (it used to be dropped as a redelivery for seven days)."""
    active = {"id": 88300, "status": "Active", "message": "m"}
    post(client, active)
    post(client, {"id": 88300, "status": "Acknowledged", "message": "m"})
    result = post(client, active)
    assert result["status_changed"] == [88300]
    doc = client.get("/api/anomalies/88300").json()
    assert doc["status"] == "Active"
    moves = [(h["from"], h["to"]) for h in doc["history"] if h["kind"] == "status"]
    assert moves == [("Active", "Acknowledged"), ("Acknowledged", "Active")]


def test_the_same_webhook_id_is_one_delivery_whatever_the_body(client: httpx.Client) -> None:
    headers = {"webhook-id": "msg_order_1"}
    first = client.post(
        "/webhooks/qualytics", json={"id": 88400, "status": "Active"}, headers=headers
    )
    assert first.json()["created"] == [88400]
    again = client.post(
        "/webhooks/qualytics", json={"id": 88400, "status": "Resolved"}, headers=headers
    )
    assert again.json()["duplicate"] is True
    assert client.get("/api/anomalies/88400").json()["status"] == "Active"
