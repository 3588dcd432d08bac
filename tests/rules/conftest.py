"""A receiver with ``[[rules]]`` and the sandbox behind it, and ways to count what the rules made
through the providers' own APIs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import FIXTURES, ThreadedServer

FILES = sorted((FIXTURES / "webhooks").glob("*.json"))

# The two rules of the replay tests: warehouse anomalies of the orders and payments containers to
# Jira, one ticket per container a day; CRM and French-named datastores to ServiceNow.
TWO_RULES = """
[[rules]]
name = "warehouse to Jira"
match = { datastores = ["warehouse_prod"], containers = ["orders*", "payments"], min_weight = 30, types = ["record"] }
action = { connection = "jira", issue_type = "Bug", fields = { priority = "High", labels = ["dq"] } }
dedup = { key = "container", window = "24h" }
max_per_hour = 20

[[rules]]
name = "crm to ServiceNow"
match = { datastores = ["crm_replica", "données_*"], min_weight = 30 }
action = { connection = "servicenow", fields = { urgency = "2" } }
dedup = { key = "datastore+container", window = "7d" }
"""
JIRA_RULE, SNOW_RULE = "warehouse to Jira", "crm to ServiceNow"
EXPECTED_JIRA = {10231, 10240}  # 10232 joins 10231's ticket (same container)
EXPECTED_SNOW = {10260, 10261, 10280}


def configure(tmp_path: Path, sandbox_url: str, rules: str, extra: str = "") -> Path:
    path = write_config(tmp_path / "anomaly-desk.toml", sandbox_url)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(rules + extra)
    return path


@pytest.fixture
def rules_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Callable[..., Desk]]:
    """``start(rules, extra="")``: a receiver configured with the sandbox and these rules."""
    started: list[Desk] = []

    def start(rules: str, extra: str = "", port: int = 0) -> Desk:
        config = configure(tmp_path, sandbox.url, rules, extra)
        receiver = start_receiver(config, tmp_path / "data", ENV, port=port)
        api = httpx.Client(base_url=receiver.url, timeout=30)
        desk = Desk(receiver, sandbox, api, tmp_path / "data", config)
        started.append(desk)
        return desk

    yield start
    for desk in started:
        desk.api.close()
        desk.receiver.stop()


def post(api: httpx.Client, path: Path) -> httpx.Response:
    response = api.post(
        "/webhooks/qualytics",
        content=path.read_bytes(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response


def jira_issues(sandbox: ThreadedServer) -> list[dict[str, Any]]:
    """Every issue this integration made, through Jira's search."""
    with httpx.Client(base_url=sandbox.url, auth=("demo@example.com", "demo-token")) as c:
        page = c.get(
            "/rest/api/3/search/jql",
            params={
                "jql": 'labels = "anomaly-desk" ORDER BY created ASC',
                "fields": "summary,labels,issuetype,priority",
                "maxResults": 100,
            },
        )
    page.raise_for_status()
    issues: list[dict[str, Any]] = page.json()["issues"]
    return issues


def jira_anomalies(sandbox: ThreadedServer) -> list[int]:
    """The anomaly of each issue made (from its ``anomaly-<id>`` label), a repeat for a double."""
    found = []
    for issue in jira_issues(sandbox):
        for label in issue["fields"]["labels"]:
            if label.startswith("anomaly-") and label != "anomaly-desk":
                found.append(int(label.removeprefix("anomaly-")))
    return sorted(found)


def incidents(sandbox: ThreadedServer) -> list[dict[str, Any]]:
    with httpx.Client(
        base_url=sandbox.url, auth=("admin", "demo"), headers={"accept": "application/json"}
    ) as c:
        page = c.get(
            "/api/now/table/incident",
            params={"sysparm_query": "correlation_display=Anomaly Desk", "sysparm_limit": 500},
        )
    page.raise_for_status()
    rows: list[dict[str, Any]] = page.json()["result"]
    return rows


def snow_anomalies(sandbox: ThreadedServer) -> list[int]:
    return sorted(int(row["correlation_id"]) for row in incidents(sandbox))


def rules_by_name(api: httpx.Client) -> dict[str, dict[str, Any]]:
    page = api.get("/api/rules")
    page.raise_for_status()
    return {rule["name"]: rule for rule in page.json()["items"]}
