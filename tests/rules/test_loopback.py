"""Rules over loopback: a receiver, the sandbox's Jira and ServiceNow, fixtures replayed."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from anomaly_desk.check import report
from anomaly_desk.core.config import load_settings
from tests.integration.conftest import ENV, Desk
from tests.rules.conftest import (
    EXPECTED_JIRA,
    EXPECTED_SNOW,
    FILES,
    JIRA_RULE,
    SNOW_RULE,
    TWO_RULES,
    jira_anomalies,
    jira_issues,
    post,
    rules_by_name,
    snow_anomalies,
)
from tests.support import FIXTURES, free_port, sse_events, wait_for

StartDesk = Callable[..., Desk]


def replay(desk: Desk) -> None:
    for path in FILES:
        post(desk.api, path)
        desk.wait_idle()


def test_a_replay_with_two_rules_makes_exactly_the_expected_tickets(
    rules_desk: StartDesk,
) -> None:
    desk = rules_desk(TWO_RULES)
    replay(desk)
    assert jira_anomalies(desk.sandbox) == sorted(EXPECTED_JIRA)
    assert snow_anomalies(desk.sandbox) == sorted(EXPECTED_SNOW)
    (issue,) = [i for i in jira_issues(desk.sandbox) if "anomaly-10231" in i["fields"]["labels"]]
    assert issue["fields"]["issuetype"]["name"] == "Bug"
    assert issue["fields"]["priority"]["name"] == "High"
    assert "dq" in issue["fields"]["labels"]

    # 10232 (same container, inside the window) joined 10231's ticket, with a note saying why
    (first,) = desk.api.get("/api/anomalies/10231").json()["links"]
    (joined,) = desk.api.get("/api/anomalies/10232").json()["links"]
    assert (first["origin"], joined["origin"]) == ("created", "linked")
    assert joined["ticket_key"] == first["ticket_key"]
    note = "Anomaly 10232 matched rule 'warehouse to Jira' (same container as anomaly 10231)"
    assert desk.jira_notes(first["ticket_key"]).count(note) == 1
    for anomaly_id in EXPECTED_SNOW:
        (link,) = desk.api.get(f"/api/anomalies/{anomaly_id}").json()["links"]
        assert (link["connection"], link["origin"]) == ("servicenow", "created")
    for anomaly_id in (10233, 10250, 10270):  # matched by no rule
        assert desk.api.get(f"/api/anomalies/{anomaly_id}").json()["links"] == []

    rules = rules_by_name(desk.api)
    jira, snow = rules[JIRA_RULE], rules[SNOW_RULE]
    assert (jira["created"], jira["linked"], jira["throttled"]) == (2, 1, 0)
    assert (snow["created"], snow["linked"], snow["connection"]) == (3, 0, "servicenow")
    assert not jira["paused"]
    assert jira["last_fired_at"]

    # the same replay again: every anomaly is known, no rule fires
    replay(desk)
    assert jira_anomalies(desk.sandbox) == sorted(EXPECTED_JIRA)
    assert snow_anomalies(desk.sandbox) == sorted(EXPECTED_SNOW)
    assert rules_by_name(desk.api) == rules


EVERYTHING = """
[[rules]]
name = "all of the warehouse"
match = { datastores = ["warehouse_prod"] }
action = { connection = "jira" }
"""


def test_repeated_refusals_pause_the_rule_until_it_is_resumed(rules_desk: StartDesk) -> None:
    port = free_port()  # the lock names the receiver's address: check asks it there
    desk = rules_desk(EVERYTHING, f"\n[receiver]\nport = {port}\n", port=port)
    name = "all of the warehouse"
    desk.faults.update({"force_status": 400, "force_count": 3, "path_prefix": "/rest/api/3/issue"})
    post(desk.api, FIXTURES / "webhooks" / "01-flow-anomalies-detected.json")  # 3 anomalies
    wait_for(lambda: rules_by_name(desk.api)[name]["paused"], "the rule to pause itself")
    rule = rules_by_name(desk.api)[name]
    assert rule["paused_by"] == "failures"
    assert rule["failures"] == 3
    assert "jira refused the ticket" in rule["paused_reason"]
    assert "400" in rule["paused_reason"]
    assert jira_anomalies(desk.sandbox) == []

    # paused: a new match makes no job, it is counted
    post(desk.api, FIXTURES / "webhooks" / "02-flow-field-string-variant.json")
    desk.wait_idle()
    assert rules_by_name(desk.api)[name]["skipped"] == 1

    # `anomaly-desk check` names the paused rule and why (asking the running receiver)
    settings = load_settings(desk.config, overrides={"data_dir": desk.data_dir}, env=ENV)
    out = io.StringIO()
    report(settings, timeout=5, out=out)
    text = out.getvalue()
    assert "rules     1 configured, 1 paused" in text
    assert f"paused    {name} (jira) since " in text
    assert "jira refused the ticket" in text

    # resumed (the refusals are over): its dead jobs go again and make their tickets
    resumed = desk.api.post(f"/api/rules/{name}/resume")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["paused"], resumed.json()["failures"]) == (False, 0)
    desk.wait_idle()
    assert jira_anomalies(desk.sandbox) == [10231, 10232, 10233]
    rule = rules_by_name(desk.api)[name]
    assert (rule["created"], rule["failures"], rule["skipped"]) == (3, 0, 1)
    assert desk.api.get("/api/anomalies/10240").json()["links"] == []  # skipped while paused


def test_the_operator_pauses_and_resumes_a_rule(rules_desk: StartDesk) -> None:
    desk = rules_desk(EVERYTHING)
    name = "all of the warehouse"
    paused = desk.api.post(f"/api/rules/{name}/pause")
    assert paused.status_code == 200
    assert (paused.json()["paused"], paused.json()["paused_by"]) == (True, "operator")
    again = desk.api.post(f"/api/rules/{name}/pause")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    post(desk.api, FIXTURES / "webhooks" / "01-flow-anomalies-detected.json")
    desk.wait_idle()
    assert jira_anomalies(desk.sandbox) == []
    assert rules_by_name(desk.api)[name]["skipped"] == 3
    assert desk.api.post(f"/api/rules/{name}/resume").status_code == 200
    assert desk.api.post(f"/api/rules/{name}/resume").status_code == 409
    missing = desk.api.post("/api/rules/no such rule/pause")
    assert missing.status_code == 404
    assert "known: all of the warehouse" in missing.json()["detail"]
    # a match after resuming fires again
    post(desk.api, FIXTURES / "webhooks" / "02-flow-field-string-variant.json")
    desk.wait_idle()
    assert jira_anomalies(desk.sandbox) == [10240]


CAPPED = """
[[rules]]
name = "capped"
match = { datastores = ["warehouse_prod"] }
action = { connection = "jira" }
max_per_hour = 2
"""


def test_max_per_hour_is_respected(rules_desk: StartDesk) -> None:
    desk = rules_desk(CAPPED)
    for name in ("01-flow-anomalies-detected.json", "02-flow-field-string-variant.json"):
        post(desk.api, FIXTURES / "webhooks" / name)  # 3 + 1 matches
    post(desk.api, FIXTURES / "webhooks" / "03-flow-shape-anomaly-detected.json")  # + 1
    desk.wait_idle()
    assert jira_anomalies(desk.sandbox) == [10231, 10232]  # the first two, in order
    rule = rules_by_name(desk.api)["capped"]
    assert (rule["created"], rule["throttled"], rule["max_per_hour"]) == (2, 3, 2)


def test_rule_changes_are_events(rules_desk: StartDesk) -> None:
    desk = rules_desk(CAPPED)
    with desk.api.stream("GET", "/api/events") as events:
        assert desk.api.post("/api/rules/capped/pause").status_code == 200
        changed = next(
            data for _, kind, data in sse_events(events.iter_lines()) if kind == "rule.changed"
        )
    assert (changed["name"], changed["paused"], changed["paused_by"]) == (
        "capped",
        True,
        "operator",
    )
    schema = desk.api.get("/api/schema").json()
    assert "rule.changed" in schema["events"]
    assert "GET /api/rules" in schema["responses"]


def test_a_reload_takes_new_rules_and_keeps_the_counters(
    rules_desk: StartDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():  # a reload reads the process's environment
        monkeypatch.setenv(name, value)
    desk = rules_desk(CAPPED)
    post(desk.api, FIXTURES / "webhooks" / "01-flow-anomalies-detected.json")
    desk.wait_idle()
    with desk.config.open("a", encoding="utf-8") as fh:
        fh.write(EVERYTHING)
    reloaded = desk.api.post("/api/reload")
    assert reloaded.status_code == 200, reloaded.text
    rules = rules_by_name(desk.api)
    assert list(rules) == ["capped", "all of the warehouse"]
    assert (rules["capped"]["created"], rules["capped"]["throttled"]) == (2, 1)
    post(desk.api, FIXTURES / "webhooks" / "02-flow-field-string-variant.json")
    desk.wait_idle()
    assert jira_anomalies(desk.sandbox) == [10231, 10232, 10240]  # the new rule's ticket


ODD = [
    {"id": 77001, "status": "Active", "weight": "high", "type": ["record"]},
    {
        "id": 77002,
        "status": 3,
        "weight": None,
        "container": ["orders"],
        "datastore": "warehouse_prod",
    },
    {"id": 77003, "weight": 99, "global_tags": [1, None, {"x": 1}], "container": {"name": 5}},
    {"id": 77004, "weight": 1e308, "failed_checks": [{"rule_type": 7}, "notNull", None]},
    {
        "id": 77005,
        "weight": 50,
        "datastore": {"name": "warehouse_prod"},
        "container": {"name": "orders_eu"},
        "type": "record",
    },
]


def test_values_of_the_wrong_type_never_fail_a_delivery_with_rules(rules_desk: StartDesk) -> None:
    """Rules read the anomaly as stored, odd values included: a rule that cannot judge a value
    does not match it, and the delivery is stored whole (never a 500 for the envelope)."""
    desk = rules_desk(TWO_RULES)
    response = desk.api.post("/webhooks/qualytics", json=ODD)
    assert response.status_code == 200, response.text
    desk.wait_idle()
    for anomaly in ODD:
        assert desk.api.get(f"/api/anomalies/{anomaly['id']}").status_code == 200
    assert 77005 in jira_anomalies(desk.sandbox)  # the one usable match still made its ticket
    assert not {77001, 77002, 77003, 77004} & set(jira_anomalies(desk.sandbox))
