"""A cold anomaly's linked ticket changes (two-way): the poller reads cold anomalies' tickets too,
and a person's change there brings the anomaly back to the hot store before it is applied. A poll
that only reads the ticket again (nothing new) leaves it cold."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Desk
from tests.integration.test_two_way import (
    BOTH,
    alice_comments,
    alice_moves_to_done,
    anomaly,
    link,
    two_way_desk,
)
from tests.support import ThreadedServer, wait_for


@pytest.fixture
def cold_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    desk = two_way_desk(tmp_path, sandbox, env={"ANOMALY_DESK_RETENTION__ARCHIVE_AFTER_DAYS": "0"})
    sandbox.app.state.platform.add(id=10260, status="Active")  # type: ignore[attr-defined]
    try:
        desk.post_webhook("04-api-record-anomaly.json")
        yield desk
    finally:
        desk.api.close()
        desk.receiver.stop()


def polls(desk: Desk) -> int:
    poller = desk.receiver.app.state.poller  # type: ignore[attr-defined]
    count: int = poller.polls
    return count


def test_a_comment_on_a_cold_anomalys_ticket_brings_it_back(cold_desk: Desk) -> None:
    desk = cold_desk
    jira = link(desk, 10260, "jira")
    archived = desk.api.post("/api/anomalies/10260/archive", json={"status": "Resolved"})
    assert archived.status_code == 200, archived.text
    desk.wait_idle()  # the note, the transition to done and the platform's write-back
    # once a poll has read the ticket as it is now (done, by our own transition)
    wait_for(
        lambda: anomaly(desk, 10260)["links"][0]["state_category"] == "Done", "ticket read done"
    )
    before = anomaly(desk, 10260)
    moved = desk.api.post("/api/compact")
    assert moved.status_code == 200, moved.text
    assert moved.json()["moved"] == 1
    assert anomaly(desk, 10260)["cold"] is True

    seen = polls(desk)
    wait_for(lambda: polls(desk) >= seen + 3, "three more polls")  # the overlap window included
    assert anomaly(desk, 10260)["cold"] is True  # read again, nothing new: it stays cold

    alice_comments(desk, jira["ticket_key"], "reopened on our side? [alice]")
    wait_for(lambda: not anomaly(desk, 10260).get("cold"), "the anomaly back in the hot store")
    after = anomaly(desk, 10260)
    assert after["status"] == "Resolved"  # a comment does not reopen it
    assert [c["text"] for c in after["comments"]] == ["reopened on our side? [alice]"]
    assert after["comments"][0]["by"].startswith(f"from {jira['ticket_key']}")
    assert after["history"][: len(before["history"])] == before["history"]
    assert [x["ticket_key"] for x in after["links"]] == [jira["ticket_key"]]
    time.sleep(0.6)  # more polls: the comment came once
    assert len(anomaly(desk, 10260)["comments"]) == 1
    found = desk.api.get(
        "/api/anomalies", params={"status": "all", "q": "10260", "archive": "1"}
    ).json()
    assert [(item["id"], item.get("cold", False)) for item in found["items"]] == [(10260, False)]


def test_a_recurrence_of_a_cold_anomalys_fingerprint_notes_its_done_ticket(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    """The earlier anomaly is cold (archived by its ticket, then compacted): a new one with its
    fingerprint still reaches the done ticket, and the earlier one is back in the hot store."""
    settings = BOTH.replace('on_anomaly_archived = "transition"', "") + 'on_recurrence = "comment"'
    desk = two_way_desk(
        tmp_path,
        sandbox,
        jira=settings,
        platform=False,
        env={"ANOMALY_DESK_RETENTION__ARCHIVE_AFTER_DAYS": "0"},
    )
    try:
        first = {"id": 91001, "status": "Active", "fingerprint": 777001, "message": "nulls"}
        assert desk.api.post("/webhooks/qualytics", json=first).status_code == 200
        jira = link(desk, 91001, "jira")
        desk.wait_idle()
        alice_moves_to_done(desk, jira["ticket_key"])
        wait_for(lambda: anomaly(desk, 91001)["status"] == "Resolved", "archived by the ticket")
        desk.wait_idle()
        assert desk.api.post("/api/compact").json()["moved"] == 1
        assert anomaly(desk, 91001)["cold"] is True
        again = {"id": 91002, "status": "Active", "fingerprint": 777001, "message": "nulls"}
        other = {"id": 91003, "status": "Active", "fingerprint": 999999, "message": "other"}
        assert desk.api.post("/webhooks/qualytics", json=[again, other]).status_code == 200
        desk.wait_idle()
        recurred = [n for n in desk.jira_notes(jira["ticket_key"]) if "recurred" in n]
        assert len(recurred) == 1
        assert "91002" in recurred[0]
        assert "91001" in recurred[0]
        assert anomaly(desk, 91001).get("cold", False) is False
    finally:
        desk.api.close()
        desk.receiver.stop()
