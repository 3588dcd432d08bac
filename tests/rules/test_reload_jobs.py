"""A rule's jobs follow its configuration: one made before a reload pointed the rule at another
connection creates nothing on the old one (it goes dead saying why). Over the wire."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import ENV, Desk
from tests.rules.conftest import jira_anomalies, snow_anomalies
from tests.support import FIXTURES, wait_for

TO_JIRA = """
[[rules]]
name = "crm"
match = { datastores = ["crm_replica"] }
action = { connection = "jira", fields = { priority = "No such priority" } }
pause_after = 5
"""


def jobs(desk: Desk) -> list[dict[str, object]]:
    items: list[dict[str, object]] = desk.api.get("/api/sync-jobs").json()["items"]
    return items


def test_a_job_made_for_the_old_connection_creates_nothing_after_a_reload(
    rules_desk: Callable[..., Desk], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():  # a reload reads the process's environment
        monkeypatch.setenv(name, value)
    desk = rules_desk(TO_JIRA)
    body = (FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes()
    answer = desk.api.post(
        "/webhooks/qualytics", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200
    wait_for(lambda: [j["state"] for j in jobs(desk)] == ["dead"], "Jira's refusal")
    # the operator points the rule at ServiceNow, then retries the job made for Jira
    text = desk.config.read_text()
    desk.config.write_text(
        text.replace(
            'connection = "jira", fields = { priority = "No such priority" }',
            'connection = "servicenow"',
        )
    )
    assert desk.api.post("/api/reload").status_code == 200
    job = jobs(desk)[0]
    assert desk.api.post(f"/api/sync-jobs/{job['id']}/retry").status_code == 200
    wait_for(lambda: jobs(desk)[0]["attempts"] == 2, "the retried attempt")
    desk.wait_idle()
    again = jobs(desk)[0]
    assert again["state"] == "dead"
    assert "now makes tickets on 'servicenow'" in str(again["last_error"])
    assert jira_anomalies(desk.sandbox) == []
    assert snow_anomalies(desk.sandbox) == []
