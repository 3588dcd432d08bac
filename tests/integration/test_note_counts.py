"""What became of each linked ticket's notes is visible: delivered, pending, held behind a dead
note, dead, cancelled; and the list row says how many wait for a person.

Before, a note waiting behind a dead job was invisible: the toast said "Comment added" and
nothing anywhere said it was stuck.
"""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Desk


def counts(desk: Desk, anomaly_id: int) -> dict[str, dict[str, int]]:
    detail = desk.api.get(f"/api/anomalies/{anomaly_id}").json()
    return {link["ticket_key"]: link["notes"] for link in detail["links"]}


def row(desk: Desk, anomaly_id: int) -> dict[str, Any]:
    items = desk.api.get("/api/anomalies", params={"status": "all", "limit": 500}).json()["items"]
    found: dict[str, Any] = next(r for r in items if r["id"] == anomaly_id)
    return found


def zero(**some: int) -> dict[str, int]:
    return {"delivered": 0, "pending": 0, "held": 0, "dead": 0, "cancelled": 0, **some}


def test_held_and_dead_notes_are_counted_per_ticket_and_clear_after_a_retry(desk: Desk) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    api = desk.api
    jira = api.post(
        "/api/anomalies/10231/tickets", json={"connection": "jira", "fields": {"summary": "n"}}
    ).json()
    snow = api.post(
        "/api/anomalies/10231/tickets",
        json={"connection": "servicenow", "fields": {"short_description": "n"}},
    ).json()
    desk.wait_idle()
    before = counts(desk, 10231)
    assert row(desk, 10231)["stuck_notes"] == 0

    desk.faults.update({"force_status": 401, "force_count": 1})  # the next note is refused
    api.post("/api/anomalies/10231/comments", json={"text": "first"})
    desk.wait_idle()
    answer = api.post("/api/anomalies/10231/comments", json={"text": "second"}).json()
    # the action's answer says it too: the dashboard tells "held" without asking again
    assert all(link["notes"] is not None for link in answer["links"])
    assert sum(link["notes"]["held"] + link["notes"]["pending"] for link in answer["links"]) >= 1
    desk.wait_idle()
    now = counts(desk, 10231)
    dead_key = next(k for k in now if now[k]["dead"] == 1)
    other = next(k for k in now if k != dead_key)
    assert now[dead_key] == zero(delivered=before[dead_key]["delivered"], dead=1, held=1)
    assert now[other] == zero(delivered=before[other]["delivered"] + 2)
    assert row(desk, 10231)["stuck_notes"] == 2
    assert row(desk, 10232)["stuck_notes"] == 0  # another anomaly is not touched

    dead_job = api.get("/api/sync-jobs", params={"state": "dead"}).json()["items"][0]
    assert api.post(f"/api/sync-jobs/{dead_job['id']}/retry").status_code == 200
    desk.wait_idle()
    after = counts(desk, 10231)
    assert after[dead_key] == zero(delivered=before[dead_key]["delivered"] + 2)
    assert row(desk, 10231)["stuck_notes"] == 0
    assert {jira["ticket_key"], snow["ticket_key"]} == set(after)


def test_unlinking_cancels_what_was_held(desk: Desk) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    api = desk.api
    link = api.post(
        "/api/anomalies/10232/tickets", json={"connection": "jira", "fields": {"summary": "u"}}
    ).json()
    desk.wait_idle()
    desk.faults.update({"force_status": 401, "force_count": 1})
    api.post("/api/anomalies/10232/comments", json={"text": "first"})
    desk.wait_idle()
    api.post("/api/anomalies/10232/comments", json={"text": "second"})
    desk.wait_idle()
    assert row(desk, 10232)["stuck_notes"] == 2
    assert api.delete(f"/api/anomalies/10232/links/{link['id']}").status_code == 200
    assert row(desk, 10232)["stuck_notes"] == 0
    jobs = api.get("/api/sync-jobs", params={"anomaly_id": 10232}).json()["items"]
    assert [j["state"] for j in jobs] == ["cancelled", "cancelled"]
