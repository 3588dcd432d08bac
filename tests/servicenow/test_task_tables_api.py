"""Issue #15 end to end: the operator API creates tickets on ServiceNow's other task tables, an
acknowledge delivers a work note to each, a refusal names its field, the caller is set or the
answer says why not. A real receiver and the sandbox, both on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_desk.sandbox.servicenow import seed_id
from tests.integration.conftest import ENV, Desk, start_receiver, status_note, write_config
from tests.support import ThreadedServer

TABLES = '["incident", "problem", "change_request", "rm_defect", "rm_enhancement"]'
ANOMALY = 10231
CASES = [  # table, extra fields, number prefix
    ("problem", {}, "PRB"),
    ("change_request", {"risk_impact_analysis": "Loader only"}, "CHG"),
    ("rm_defect", {"priority": "2"}, "DFCT"),
    ("rm_enhancement", {}, "ENHC"),
]


@pytest.fixture
def tdesk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    config = write_config(
        tmp_path / "anomaly-desk.toml", sandbox.url, servicenow=f"tables = {TABLES}"
    )
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        yield Desk(receiver, sandbox, api, tmp_path / "data", config)
    finally:
        api.close()
        receiver.stop()


def create(desk: Desk, fields: dict[str, Any], **body: Any) -> httpx.Response:
    return desk.api.post(
        f"/api/anomalies/{ANOMALY}/tickets",
        json={"connection": "servicenow", "fields": fields, **body},
    )


def record(desk: Desk, table: str, sys_id: str) -> dict[str, Any]:
    with desk.snow() as c:
        answer = c.get(f"/api/now/table/{table}/{sys_id}").raise_for_status()
    result: dict[str, Any] = answer.json()["result"]
    return result


def test_a_ticket_on_each_table_gets_the_acknowledge_note(tdesk: Desk) -> None:
    tdesk.post_webhook("01-flow-anomalies-detected.json")
    links = []
    for table, extra, prefix in CASES:
        answer = create(tdesk, {"table": table, "short_description": f"Nulls ({table})", **extra})
        assert answer.status_code == 201, answer.text
        link = answer.json()
        assert link["table"] == table, link
        assert link["ticket_key"].startswith(prefix), link
        assert record(tdesk, table, link["ticket_id"])["correlation_id"] == str(ANOMALY)
        links.append(link)
    detail = tdesk.api.get(f"/api/anomalies/{ANOMALY}").json()
    assert sorted(link["table"] for link in detail["links"]) == sorted(t for t, _, _ in CASES)

    assert tdesk.api.post(f"/api/anomalies/{ANOMALY}/acknowledge").status_code == 200
    tdesk.wait_idle()
    for link in links:
        [note] = tdesk.snow_notes(link["ticket_id"])
        assert re.match(status_note("Acknowledged"), note), (link["table"], note)
    jobs = tdesk.api.get("/api/sync-jobs").json()
    assert all(job["state"] == "done" for job in jobs["items"]), jobs


def test_refusals_answer_422_naming_the_field(tdesk: Desk) -> None:
    tdesk.post_webhook("01-flow-anomalies-detected.json")
    missing = create(tdesk, {"table": "rm_defect", "short_description": "no priority"})
    assert missing.status_code == 422, missing.text
    assert [e["path"] for e in missing.json()["errors"]] == ["fields.priority"]
    policy = create(tdesk, {"table": "change_request", "short_description": "no analysis"})
    assert policy.status_code == 422, policy.text
    assert [e["path"] for e in policy.json()["errors"]] == ["fields.risk_impact_analysis"]
    assert tdesk.api.get(f"/api/anomalies/{ANOMALY}").json()["links"] == []


def test_the_caller_and_its_fallbacks_in_the_answer(tdesk: Desk) -> None:
    tdesk.post_webhook("01-flow-anomalies-detected.json")
    fields = {"short_description": "who raised it"}
    found = create(tdesk, fields, **{"as": "alice.nguyen@example.com"})
    assert found.status_code == 201, found.text
    assert not found.json().get("warnings")
    incident = record(tdesk, "incident", found.json()["ticket_id"])
    assert incident["caller_id"]["value"] == seed_id("sys_user", "alice.nguyen")
    for email, why in [
        ("ana@example.com", "2 active ServiceNow users have ana@example.com"),
        ("olga.timer@example.com", "the ServiceNow user with olga.timer@example.com is inactive"),
        ("nobody@example.com", "no ServiceNow user has nobody@example.com"),
        ("ana@example.com^ORactive=true", "cannot be looked up safely"),
    ]:
        answer = create(tdesk, fields, **{"as": email})
        assert answer.status_code == 201, answer.text
        [warning] = answer.json()["warnings"]
        assert warning.startswith("caller left empty: "), warning
        assert why in warning, warning
        assert record(tdesk, "incident", answer.json()["ticket_id"])["caller_id"] == ""


def test_types_form_and_people_through_the_api(tdesk: Desk) -> None:
    types = tdesk.api.get("/api/connections/servicenow/types")
    assert types.status_code == 200, types.text
    assert [t["id"] for t in types.json()["items"]] == [
        "incident",
        "problem",
        "change_request",
        "rm_defect",
        "rm_enhancement",
    ]
    form = tdesk.api.get("/api/connections/servicenow/form", params={"type": "rm_defect"})
    assert form.status_code == 200, form.text
    assert [f["id"] for f in form.json()["fields"] if f["required"]] == ["priority"]
    users = tdesk.api.get("/api/connections/servicenow/users", params={"q": "ana"})
    assert users.status_code == 200, users.text
    assert [u["email"] for u in users.json()["items"]] == ["ana@example.com"] * 2
    hostile = tdesk.api.get("/api/connections/servicenow/users", params={"q": "x^ORactive=false"})
    assert hostile.status_code == 422, hostile.text
