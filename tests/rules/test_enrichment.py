"""Rules and thin webhooks: a rule judges an anomaly once the platform has completed it.

A Flow webhook may carry an anomaly without its checks, weight or container name. With the
platform's API configured the desk enriches it off the hot path; its rules wait for that (a rule
on containers, check types or weight cannot judge it before) and run exactly once, over the
wire, against the sandbox's Jira and the platform emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_desk.sandbox.faults import PLATFORM_PATHS
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.rules.conftest import jira_anomalies, rules_by_name
from tests.support import ThreadedServer, wait_for

# Needs what only the platform knows: the container's name, a check type and the weight.
PICKY = """
[[rules]]
name = "orders nulls"
match = { containers = ["orders*"], check_types = ["notNull"], min_weight = 40 }
action = { connection = "jira" }
"""
# Needs only what the thin webhook has: its status.
LOOSE = """
[[rules]]
name = "anything active"
match = { statuses = ["Active"] }
action = { connection = "jira" }
"""
THIN_ID = 95001


@pytest.fixture
def platform(sandbox: ThreadedServer) -> Any:
    return sandbox.app.state.platform  # type: ignore[attr-defined]


def start(tmp_path: Path, sandbox: ThreadedServer, rules: str) -> Desk:
    config = write_config(tmp_path / "desk.toml", sandbox.url, platform=True, rules=rules)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    return Desk(
        receiver, sandbox, httpx.Client(base_url=receiver.url, timeout=30), tmp_path, config
    )


def thin(api: httpx.Client, anomaly_id: int = THIN_ID, delivery: str | None = None) -> None:
    """A Flow webhook's thin anomaly: its id, status and container id, nothing else."""
    body = {"id": anomaly_id, "status": "Active", "container_id": 301}
    headers = {"webhook-id": delivery} if delivery else {}
    answer = api.post("/webhooks/qualytics", json=body, headers=headers)
    assert answer.status_code == 200, answer.text


def stop(desk: Desk) -> None:
    desk.api.close()
    desk.receiver.stop()


def test_a_rule_needing_what_only_the_platform_knows_fires_once_after_enrichment(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    platform.add(id=THIN_ID, weight=55, container=(301, "orders"), rule_type="notNull")
    desk = start(tmp_path, sandbox, PICKY)
    try:
        thin(desk.api, delivery="msg-1")
        thin(desk.api, delivery="msg-1")  # the same delivery again
        thin(desk.api, delivery="msg-2")  # and the same anomaly in another one
        desk.wait_idle()
        wait_for(lambda: jira_anomalies(sandbox) == [THIN_ID], "the rule's ticket")
        desk.wait_idle()
        assert jira_anomalies(sandbox) == [THIN_ID]  # once
        doc = desk.api.get(f"/api/anomalies/{THIN_ID}").json()
        assert doc["container"] == {"id": 301, "name": "orders"}  # the name came from the platform
        assert doc["weight"] == 55
        assert [link["connection"] for link in doc["links"]] == ["jira"]
        assert rules_by_name(desk.api)["orders nulls"]["created"] == 1
    finally:
        stop(desk)
    # a restart finds nothing left waiting and makes nothing more
    desk = start(tmp_path, sandbox, PICKY)
    try:
        desk.wait_idle()
        assert jira_anomalies(sandbox) == [THIN_ID]
    finally:
        stop(desk)


def test_a_rule_the_enriched_anomaly_does_not_match_makes_nothing(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    platform.add(id=THIN_ID, weight=10, container=(301, "orders"), rule_type="notNull")
    desk = start(tmp_path, sandbox, PICKY)
    try:
        thin(desk.api)
        desk.wait_idle()
        doc = desk.api.get(f"/api/anomalies/{THIN_ID}").json()
        assert doc["weight"] == 10  # enriched, and below the rule's min_weight
        assert jira_anomalies(sandbox) == []
        assert rules_by_name(desk.api)["orders nulls"]["created"] == 0
    finally:
        stop(desk)


def test_an_anomaly_the_platform_does_not_know_is_judged_on_what_the_webhook_gave(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    desk = start(tmp_path, sandbox, LOOSE + PICKY)
    try:
        thin(desk.api, 95002)  # the platform answers 404 for it
        desk.wait_idle()
        wait_for(lambda: jira_anomalies(sandbox) == [95002], "the loose rule's ticket")
        desk.wait_idle()
        rules = rules_by_name(desk.api)
        assert (rules["anything active"]["created"], rules["orders nulls"]["created"]) == (1, 0)
        assert jira_anomalies(sandbox) == [95002]
    finally:
        stop(desk)


def test_rules_do_not_wait_forever_for_a_platform_that_is_down(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    platform.add(id=THIN_ID, weight=55, container=(301, "orders"), rule_type="notNull")
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    desk = start(tmp_path, sandbox, LOOSE + PICKY)
    try:
        faults.update({"fail_rate": 1.0, "path_prefix": PLATFORM_PATHS})  # the platform down
        thin(desk.api)
        wait_for(lambda: jira_anomalies(sandbox) == [THIN_ID], "the ticket, without enrichment")
        assert rules_by_name(desk.api)["orders nulls"]["created"] == 0  # it cannot judge it yet
        faults.reset()  # back: the late enrichment completes it, and the rule it needed fires
        desk.wait_idle()
        wait_for(
            lambda: desk.api.get(f"/api/anomalies/{THIN_ID}").json()["weight"] == 55,
            "the late enrichment",
        )
        wait_for(lambda: jira_anomalies(sandbox) == [THIN_ID, THIN_ID], "the picky rule's ticket")
        desk.wait_idle()
        assert jira_anomalies(sandbox) == [THIN_ID, THIN_ID]  # each rule once, no third
        rules = rules_by_name(desk.api)
        assert (rules["anything active"]["created"], rules["orders nulls"]["created"]) == (1, 1)
    finally:
        faults.reset()
        stop(desk)


def test_anomalies_waiting_for_enrichment_are_judged_once_the_platform_is_unconfigured(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    platform.add(id=THIN_ID, weight=55)
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    config = write_config(
        tmp_path / "desk.toml", sandbox.url, platform=True, rules=LOOSE, backoff_base_s=60
    )
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        faults.update({"fail_rate": 1.0, "path_prefix": PLATFORM_PATHS})  # the platform down
        thin(api)
        wait_for(
            lambda: any(j["kind"] == "enrich" and j["attempts"] == 1 for j in jobs(api)),
            "a first, failed enrichment",
        )
        assert jira_anomalies(sandbox) == []  # the rule waits (next try in a minute)
    finally:
        api.close()
        receiver.stop()
        faults.reset()
    # the operator removes the platform's API: nothing will enrich it, the rule judges it now
    config = write_config(tmp_path / "desk.toml", sandbox.url, platform=False, rules=LOOSE)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    desk = Desk(receiver, sandbox, api, tmp_path, config)
    try:
        wait_for(lambda: jira_anomalies(sandbox) == [THIN_ID], "the rule's ticket")
        desk.wait_idle()
        assert rules_by_name(desk.api)["anything active"]["created"] == 1
    finally:
        stop(desk)


def jobs(api: httpx.Client) -> list[dict[str, Any]]:
    answer = api.get("/api/sync-jobs", params={"anomaly_id": THIN_ID})
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items
