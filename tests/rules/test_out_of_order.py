"""A detection that arrives after its own status event: the older, complete delivery still fills
what the thin one lacked (never a value it holds), and the rules that could not judge the thin
anomaly judge the completed one, once. No platform API here: nothing else would complete it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.conftest import Desk
from tests.rules.conftest import jira_anomalies, rules_by_name

PICKY = """
[[rules]]
name = "orders nulls"
match = { containers = ["orders*"], check_types = ["notNull"], min_weight = 40 }
action = { connection = "jira" }
dedup = { key = "container", window = "24h" }

[[rules]]
name = "anything active"
match = { statuses = ["Active", "Acknowledged"] }
action = { connection = "jira" }
"""
CHECK = {"check_id": 9001, "rule_type": "notNull", "fields": ["customer_id"], "message": "null"}


def envelope(at: str, anomaly: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "qualytics.flow.triggered",
        "trigger": {"type": "anomaly", "timestamp": at},
        "datastore": {"id": 12, "name": "warehouse_prod"},
        "context": {"anomalies": [anomaly]},
    }


def post(api: httpx.Client, body: dict[str, Any]) -> None:
    answer = api.post("/webhooks/qualytics", json=body)
    assert answer.status_code == 200, answer.text


def test_a_late_detection_completes_its_thin_status_event_and_its_rules_fire_once(
    rules_desk: Callable[..., Desk],
) -> None:
    desk = rules_desk(PICKY)
    thin = {"id": 97001, "status": "Acknowledged"}  # the status event, sent last, came first
    post(desk.api, envelope("2026-11-20T08:30:00Z", thin))
    desk.wait_idle()
    assert jira_anomalies(desk.sandbox) == [97001]  # the status rule judged it at once
    full = {
        "id": 97001,
        "status": "Active",
        "weight": 55,
        "container": {"id": 301, "name": "orders"},
        "failed_checks": [CHECK],
    }
    post(desk.api, envelope("2026-11-20T08:20:00Z", full))  # the detection, older
    post(desk.api, envelope("2026-11-20T08:20:00Z", full))  # and again
    desk.wait_idle()
    doc = desk.api.get("/api/anomalies/97001").json()
    assert doc["status"] == "Acknowledged"  # the older delivery changes nothing it held
    assert (doc["weight"], doc["container"]["name"]) == (55, "orders")  # but fills what it lacked
    rules = rules_by_name(desk.api)
    assert (rules["orders nulls"]["created"], rules["anything active"]["created"]) == (1, 1)
    assert jira_anomalies(desk.sandbox) == [97001, 97001]  # one ticket per rule, no third


def test_a_thin_anomaly_gone_cold_gets_its_rules_when_a_delivery_completes_it(
    rules_desk: Callable[..., Desk],
) -> None:
    desk = rules_desk(PICKY, "\n[retention]\narchive_after_days = 0\n")
    post(desk.api, envelope("2026-11-20T08:30:00Z", {"id": 97002, "status": "Resolved"}))
    desk.wait_idle()
    assert desk.api.post("/api/compact").json()["moved"] == 1
    assert desk.api.get("/api/anomalies/97002").json()["cold"] is True
    full = {
        "id": 97002,
        "status": "Active",  # reopened, and complete at last
        "weight": 55,
        "container": {"id": 301, "name": "orders"},
        "failed_checks": [CHECK],
    }
    post(desk.api, envelope("2026-11-21T08:30:00Z", full))
    desk.wait_idle()
    assert rules_by_name(desk.api)["orders nulls"]["created"] == 1
    assert 97002 in jira_anomalies(desk.sandbox)


def test_an_older_delivery_never_puts_back_what_a_newer_one_emptied(
    rules_desk: Callable[..., Desk],
) -> None:
    desk = rules_desk(PICKY)
    newer = {
        "id": 97003,
        "status": "Active",
        "weight": 55,
        "container": {"id": 301, "name": "orders"},
        "failed_checks": [CHECK],
        "description": None,
        "global_tags": [],
        "fields": [],
    }
    older = {**newer, "description": "old text", "global_tags": ["finance"], "fields": ["a"]}
    post(desk.api, envelope("2026-11-20T09:00:00Z", newer))
    post(desk.api, envelope("2026-11-20T08:00:00Z", older))
    doc = desk.api.get("/api/anomalies/97003").json()
    assert (doc["description"], doc["global_tags"], doc["fields"]) == (None, [], [])
    # a thin newer one takes what it lacks from the older, still not its texts or tags
    thin = {"id": 97004, "status": "Active", "global_tags": []}
    post(desk.api, envelope("2026-11-20T09:00:00Z", thin))
    post(desk.api, envelope("2026-11-20T08:00:00Z", {**older, "id": 97004}))
    doc = desk.api.get("/api/anomalies/97004").json()
    assert (doc["weight"], doc["container"]["name"], doc["global_tags"]) == (55, "orders", [])
