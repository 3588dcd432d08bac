"""Create and link tickets; status changes and comments arrive as exact notes, in order."""

from __future__ import annotations

import re
import time

import httpx
import orjson
import pytest

from tests.integration.conftest import Desk, status_note

PROVIDERS = [("jira", "summary"), ("servicenow", "short_description")]


def matches(notes: list[str], expected: list[str]) -> bool:
    return len(notes) == len(expected) and all(
        re.match(p, n) for p, n in zip(expected, notes, strict=True)
    )


@pytest.mark.parametrize(("connection", "summary_field"), PROVIDERS)
def test_create_then_ack_comment_archive_arrive_in_order(
    desk: Desk, connection: str, summary_field: str
) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    response = desk.api.post(
        "/api/anomalies/10231/tickets",
        json={
            "connection": connection,
            "fields": {
                summary_field: "customer_id nulls in orders",
                "description": "Seen in the nightly scan.",
            },
        },
    )
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["origin"] == "created"
    if connection == "jira":
        issue = desk.jira_issue(link["ticket_key"])
        from anomaly_desk.core.formatting.adf import adf_to_text

        description = issue["fields"]["description"]
        # the link back is a link mark: its href is what a click in Jira opens
        text = adf_to_text(description) + " " + orjson.dumps(description).decode()
        assert '"href":"https://acme.qualytics.io/anomalies/10231"' in text
        assert issue["fields"]["status"]["name"] == "To Do"
    else:
        incident = desk.incident(link["ticket_id"])
        text = incident["description"]
        assert incident["correlation_id"] == "10231"
    assert "Seen in the nightly scan." in text
    for fact in (
        "10231",
        "record",
        "Active",
        "customer_id is null in 1,204 records",
        "notNull",
        "https://acme.qualytics.io/anomalies/10231",
    ):
        assert fact in text, fact

    assert desk.api.post("/api/anomalies/10231/acknowledge").status_code == 200
    assert (
        desk.api.post(
            "/api/anomalies/10231/comments", json={"text": "Owner: data platform — Zoë"}
        ).status_code
        == 201
    )
    archived = desk.api.post(
        "/api/anomalies/10231/archive", json={"status": "Resolved", "comment": "Backfilled"}
    )
    assert archived.status_code == 200
    desk.wait_idle()

    notes = desk.notes(link)
    expected = [
        status_note("Acknowledged"),
        re.escape("Comment from Qualytics: Owner: data platform — Zoë"),
        status_note("Resolved"),
        re.escape("Comment from Qualytics: Backfilled"),
    ]
    assert matches(notes, expected), notes
    # notes never touch the ticket's own workflow
    if connection == "jira":
        assert desk.jira_issue(link["ticket_key"])["fields"]["status"]["name"] == "To Do"
    else:
        assert desk.incident(link["ticket_id"])["state"] == "1"
    log = desk.api.get("/api/sync-log").json()["items"]
    assert [e["outcome"] for e in log] == ["done"] * 4
    assert all(e["duration_ms"] >= 0 and e["ticket_key"] == link["ticket_key"] for e in log)


def test_linking_existing_tickets(desk: Desk) -> None:
    desk.post_webhook("04-api-record-anomaly.json")
    with desk.jira() as jira:
        created = jira.post(
            "/rest/api/3/issue",
            json={
                "fields": {
                    "project": {"key": "DQ"},
                    "issuetype": {"name": "Bug"},
                    "summary": "Existing CRM issue",
                }
            },
        ).json()
    before = desk.jira_issue(created["key"])
    with desk.snow() as snow:
        incident = snow.post(
            "/api/now/table/incident",
            json={
                "short_description": "Existing CRM incident",
                "description": "Reported by the CRM team.",
            },
        ).json()["result"]

    jira_link = desk.api.post(
        "/api/anomalies/10260/links", json={"connection": "jira", "ticket": created["key"]}
    )
    snow_link = desk.api.post(
        "/api/anomalies/10260/links",
        json={"connection": "servicenow", "ticket": incident["number"]},
    )
    assert jira_link.status_code == 201, jira_link.text
    assert snow_link.status_code == 201, snow_link.text
    assert jira_link.json()["origin"] == snow_link.json()["origin"] == "linked"

    # Jira: untouched
    assert desk.jira_issue(created["key"]) == before
    assert desk.jira_notes(created["key"]) == []
    # ServiceNow: description appended, one work note with the link
    after = desk.incident(incident["sys_id"])
    assert after["description"].startswith("Reported by the CRM team.")
    assert "Anomaly ID: 10260" in after["description"]
    notes = desk.snow_notes(incident["sys_id"])
    assert len(notes) == 1
    assert "10260" in notes[0]
    assert "https://acme.qualytics.io/anomalies/10260" in notes[0]

    again = desk.api.post(
        "/api/anomalies/10260/links", json={"connection": "jira", "ticket": created["key"]}
    )
    assert again.status_code == 409

    detail = desk.api.get("/api/anomalies/10260").json()
    assert [link["ticket_key"] for link in detail["links"]] == [created["key"], incident["number"]]
    assert detail["links"][1]["state"] == "New"


def test_two_links_get_every_note(desk: Desk) -> None:
    desk.post_webhook("04-api-record-anomaly.json")
    jira = desk.api.post(
        "/api/anomalies/10260/tickets",
        json={"connection": "jira", "fields": {"summary": "CRM region mismatch"}},
    ).json()
    snow = desk.api.post(
        "/api/anomalies/10260/tickets",
        json={"connection": "servicenow", "fields": {"short_description": "CRM region mismatch"}},
    ).json()
    desk.api.post("/api/anomalies/10260/comments", json={"text": "first"})
    desk.api.post("/api/anomalies/10260/acknowledge")
    desk.api.post("/api/anomalies/10260/comments", json={"text": "second"})
    desk.wait_idle()
    expected = [
        re.escape("Comment from Qualytics: first"),
        status_note("Acknowledged"),
        re.escape("Comment from Qualytics: second"),
    ]
    assert matches(desk.notes(jira), expected), desk.notes(jira)
    assert matches(desk.notes(snow), [*expected]), desk.notes(snow)


def test_platform_status_change_syncs_like_a_dashboard_action(desk: Desk) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    link = desk.api.post(
        "/api/anomalies/10231/tickets",
        json={"connection": "servicenow", "fields": {"short_description": "nulls"}},
    ).json()
    desk.post_webhook("08-flow-status-acknowledged.json")
    desk.post_webhook("08-flow-status-acknowledged.json")  # a redelivery: no second note
    desk.wait_idle()
    assert matches(desk.notes(link), [status_note("Acknowledged")]), desk.notes(link)
    history = desk.api.get("/api/anomalies/10231").json()["history"]
    assert history[-1]["kind"] == "status"
    assert history[-1]["by"] == "platform"


def test_unlink_is_local_and_cancels_undelivered_notes(desk: Desk) -> None:
    desk.post_webhook("05-api-shape-anomaly.json")
    link = desk.api.post(
        "/api/anomalies/10261/tickets", json={"connection": "jira", "fields": {"summary": "phone"}}
    ).json()
    desk.faults.update({"force_status": 503, "force_count": 1000})
    desk.api.post("/api/anomalies/10261/comments", json={"text": "will never arrive"})
    response = desk.api.delete(f"/api/anomalies/10261/links/{link['id']}")
    assert response.status_code == 200
    assert response.json()["links"] == []
    # A note already in flight when the link goes finishes its attempt (documented); wait until
    # that attempt has failed and the job is cancelled before the provider comes back.
    deadline = time.monotonic() + 20
    while [
        j["state"]
        for j in desk.api.get("/api/sync-jobs", params={"anomaly_id": 10261}).json()["items"]
    ] != ["cancelled"]:
        assert time.monotonic() < deadline, desk.api.get("/api/sync-jobs").json()
        time.sleep(0.05)
    desk.faults.update({"force_status": None, "force_count": 0})
    desk.wait_idle()
    assert desk.jira_notes(link["ticket_key"]) == []
    assert desk.jira_issue(link["ticket_key"])["fields"]["summary"] == "phone"  # the ticket stays
    states = [
        j["state"]
        for j in desk.api.get("/api/sync-jobs", params={"anomaly_id": 10261}).json()["items"]
    ]
    assert states == ["cancelled"]


def _issues_for(desk: Desk, anomaly_id: int) -> list[str]:
    jira = desk.sandbox.app.state.jira  # type: ignore[attr-defined]
    return [i.key for i in list(jira.issues.values()) if f"anomaly-{anomaly_id}" in i.labels]


def test_an_ambiguous_create_is_found_not_repeated(desk: Desk) -> None:
    """Jira made the issue but the answer timed out: the desk finds and links it."""
    import threading
    import time

    desk.post_webhook("05-api-shape-anomaly.json")
    desk.faults.update({"latency_ms": 2600})  # the connection gives up after 2 s
    result: dict[str, object] = {}

    def create() -> None:
        result["response"] = desk.api.post(
            "/api/anomalies/10261/tickets",
            json={"connection": "jira", "fields": {"summary": "slow create"}},
        )

    worker = threading.Thread(target=create)
    worker.start()
    deadline = time.monotonic() + 10
    while not _issues_for(desk, 10261):  # the create lands in the sandbox after its delay
        assert time.monotonic() < deadline
        time.sleep(0.02)
    desk.faults.update({"latency_ms": 0})
    worker.join(30)
    response = result["response"]
    assert isinstance(response, httpx.Response)
    assert response.status_code == 201, response.text
    assert _issues_for(desk, 10261) == [
        response.json()["ticket_key"]
    ]  # one issue, and it is linked


def test_an_ambiguous_create_that_did_not_land_says_so(desk: Desk) -> None:
    desk.post_webhook("05-api-shape-anomaly.json")
    desk.faults.update({"force_status": 504, "force_count": 1})  # a gateway gave up on the create
    response = desk.api.post(
        "/api/anomalies/10261/tickets", json={"connection": "jira", "fields": {"summary": "lost"}}
    )
    assert response.status_code == 502
    assert "creating again is safe" in response.json()["detail"]
    assert _issues_for(desk, 10261) == []
    assert desk.api.get("/api/anomalies/10261").json()["links"] == []


def test_search_finds_an_anomaly_by_its_ticket_key(desk: Desk) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    link = desk.api.post(
        "/api/anomalies/10232/tickets", json={"connection": "jira", "fields": {"summary": "amount"}}
    ).json()
    found = desk.api.get("/api/anomalies", params={"q": link["ticket_key"].lower()}).json()["items"]
    assert [a["id"] for a in found] == [10232]


def test_ticket_states_are_read_back_on_demand_and_never_change_the_anomaly(desk: Desk) -> None:
    desk.post_webhook("05-api-shape-anomaly.json")
    link = desk.api.post(
        "/api/anomalies/10261/tickets",
        json={"connection": "servicenow", "fields": {"short_description": "phone"}},
    ).json()
    assert link["state"] == "New"
    with desk.snow() as snow:  # the incident's team moves it along
        snow.patch(
            f"/api/now/table/incident/{link['ticket_id']}", json={"state": "2"}
        ).raise_for_status()
    time.sleep(0.01)
    refreshed = desk.api.post("/api/anomalies/10261/refresh")
    assert refreshed.status_code == 200
    (after,) = refreshed.json()["links"]
    assert after["state"] == "In Progress"
    assert after["state_read_at"] > link["state_read_at"]
    assert refreshed.json()["status"] == "Acknowledged"  # the anomaly is untouched
    assert desk.api.get("/api/sync-jobs").json()["items"] == []  # and nothing is sent back


def test_a_ticket_for_an_anomaly_with_a_status_we_do_not_know(desk: Desk) -> None:
    """A status the platform introduced later is kept as sent; ticket texts show it as is."""
    body = {"id": 10299, "status": "Snoozed", "type": "row", "weight": 12.5, "message": "m"}
    assert desk.api.post("/webhooks/qualytics", json=body).status_code == 200
    for connection, field in (("jira", "summary"), ("servicenow", "short_description")):
        response = desk.api.post(
            "/api/anomalies/10299/tickets",
            json={"connection": connection, "fields": {field: "odd anomaly"}},
        )
        assert response.status_code == 201, response.text
    links = desk.api.get("/api/anomalies/10299").json()["links"]
    jira = next(link for link in links if link["provider"] == "jira")
    description = desk.jira_issue(jira["ticket_key"])["fields"]["description"]
    assert "Snoozed" in str(description)
