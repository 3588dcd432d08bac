"""A rule's dedup joins an earlier ticket only while it is not done, on every ServiceNow table:
a closed defect or a cancelled change gets a new ticket, an open one is joined. Over the wire: a
real receiver, the sandbox's Table API closing the record as a person would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer, wait_for

TABLES = '["incident", "problem", "change_request", "rm_defect", "rm_enhancement"]'


def rule(table: str, fields: str) -> str:
    return f"""
[[rules]]
name = "crm to {table}"
match = {{ datastores = ["crm_replica"] }}
action = {{ connection = "servicenow", table = "{table}", fields = {{ {fields} }} }}
dedup = {{ key = "container", window = "24h" }}
"""


def anomaly(anomaly_id: int) -> dict[str, Any]:
    check = {"check_id": 9100, "rule_type": "notNull", "fields": ["a"], "message": "a is null"}
    return {
        "id": anomaly_id,
        "status": "Active",
        "weight": 40,
        "datastore": {"id": 14, "name": "crm_replica"},
        "container": {"id": 410, "name": "accounts"},
        "failed_checks": [check],
    }


def records(desk: Desk, table: str) -> list[dict[str, Any]]:
    with desk.snow() as c:
        answer = c.get(
            f"/api/now/table/{table}",
            params={"sysparm_query": "correlation_display=Anomaly Desk", "sysparm_limit": 100},
        ).raise_for_status()
    rows: list[dict[str, Any]] = answer.json()["result"]
    return rows


@pytest.mark.parametrize(
    ("table", "fields", "done", "open_"),
    [
        ("rm_defect", 'priority = "2"', "3", "2"),  # Closed Complete / Work in Progress
        ("change_request", 'risk_impact_analysis = "loader only"', "4", "-4"),  # Canceled / Assess
        ("incident", 'urgency = "2"', "6", "2"),  # Resolved / In Progress
    ],
)
def test_a_done_ticket_is_not_joined_an_open_one_is(
    tmp_path: Path, sandbox: ThreadedServer, table: str, fields: str, done: str, open_: str
) -> None:
    config = write_config(
        tmp_path / "desk.toml",
        sandbox.url,
        servicenow=f"tables = {TABLES}",
        rules=rule(table, fields),
    )
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    desk = Desk(receiver, sandbox, api, tmp_path / "data", config)
    try:
        for anomaly_id in (96001,):
            assert api.post("/webhooks/qualytics", json=anomaly(anomaly_id)).status_code == 200
        wait_for(lambda: len(records(desk, table)) == 1, f"the rule's {table} record")
        first = records(desk, table)[0]
        with desk.snow() as c:  # a person moves it on, but not to done: it is joined
            moved = c.patch(f"/api/now/table/{table}/{first['sys_id']}", json={"state": open_})
            assert moved.status_code == 200, moved.text
        assert api.post("/webhooks/qualytics", json=anomaly(96002)).status_code == 200
        desk.wait_idle()
        joined = api.get("/api/anomalies/96002").json()["links"]
        assert [link["ticket_key"] for link in joined] == [first["number"]]
        code = "successful" if table == "change_request" else "Solution provided"
        close = {"state": done, "close_code": code, "close_notes": "by hand"}
        with desk.snow() as c:  # now done: the next anomaly of the container gets its own
            closed = c.patch(f"/api/now/table/{table}/{first['sys_id']}", json=close)
            assert closed.status_code == 200, closed.text
        assert api.post("/webhooks/qualytics", json=anomaly(96003)).status_code == 200
        wait_for(lambda: len(records(desk, table)) == 2, f"a second {table} record")
        desk.wait_idle()
        own = api.get("/api/anomalies/96003").json()["links"]
        assert len(own) == 1
        assert own[0]["ticket_key"] != first["number"]
    finally:
        api.close()
        receiver.stop()
