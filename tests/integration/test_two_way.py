"""Two-way sync over the wire: what people do on tickets comes back, the desk moves a ticket's
workflow when asked, and nothing ever loops.

People act as people do, through the ordinary APIs with their own accounts: Jira user
alice@example.com (API token alice-token), ServiceNow user bob.martin (password demo). The desk
polls every 0.2 s here; its writes are the integration accounts' (demo@example.com, admin).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer, wait_for

ALICE = ("alice@example.com", "alice-token")
BOB = ("bob.martin", "demo")
HOOK_SECRET = "jira-hook-secret-7d1e"

BOTH = """
status = "both"
comments = "both"
on_ticket_done = "archive:Resolved"
on_anomaly_archived = "transition"
poll_s = 0.2
"""


def adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def two_way_desk(
    tmp_path: Path,
    sandbox: ThreadedServer,
    jira: str = BOTH,
    servicenow: str = BOTH,
    platform: bool = True,
    env: dict[str, str] | None = None,
) -> Desk:
    config = write_config(
        tmp_path / "anomaly-desk.toml",
        sandbox.url,
        platform=platform,
        jira=jira,
        servicenow=servicenow,
    )
    receiver = start_receiver(config, tmp_path / "data", {**ENV, **(env or {})})
    api = httpx.Client(base_url=receiver.url, timeout=30)
    return Desk(receiver, sandbox, api, tmp_path / "data", config)


@pytest.fixture
def both(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    desk = two_way_desk(tmp_path, sandbox)
    sandbox.app.state.platform.add(id=10260, status="Active")  # type: ignore[attr-defined]
    try:
        desk.post_webhook("04-api-record-anomaly.json")
        yield desk
    finally:
        desk.api.close()
        desk.receiver.stop()


def link(desk: Desk, anomaly_id: int, connection: str) -> dict[str, Any]:
    field = "summary" if connection == "jira" else "short_description"
    made = desk.api.post(
        f"/api/anomalies/{anomaly_id}/tickets",
        json={"connection": connection, "fields": {field: "two-way"}},
    )
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


def jira_as_alice(desk: Desk) -> httpx.Client:
    return httpx.Client(base_url=desk.sandbox.url, auth=ALICE, timeout=10)


def snow_as_bob(desk: Desk) -> httpx.Client:
    return httpx.Client(base_url=desk.sandbox.url, auth=BOB, timeout=10)


def alice_moves_to_done(desk: Desk, key: str) -> None:
    with jira_as_alice(desk) as jira:
        offered = jira.get(
            f"/rest/api/3/issue/{key}/transitions", params={"expand": "transitions.fields"}
        ).json()["transitions"]
        done = next(t for t in offered if t["to"]["statusCategory"]["key"] == "done")
        body: dict[str, Any] = {"transition": {"id": done["id"]}}
        if "resolution" in done.get("fields", {}):
            body["fields"] = {"resolution": {"name": "Done"}}
        answer = jira.post(f"/rest/api/3/issue/{key}/transitions", json=body)
        assert answer.status_code == 204, answer.text


def alice_comments(desk: Desk, key: str, text: str) -> None:
    with jira_as_alice(desk) as jira:
        answer = jira.post(f"/rest/api/3/issue/{key}/comment", json={"body": adf(text)})
        assert answer.status_code == 201, answer.text


def bob_updates(desk: Desk, sys_id: str, **values: str) -> None:
    with snow_as_bob(desk) as snow:
        answer = snow.patch(f"/api/now/table/incident/{sys_id}", json=values)
        assert answer.status_code == 200, answer.text


def anomaly(desk: Desk, anomaly_id: int) -> dict[str, Any]:
    found: dict[str, Any] = desk.api.get(f"/api/anomalies/{anomaly_id}").json()
    return found


def platform_writes(desk: Desk, anomaly_id: int) -> list[tuple[str, str]]:
    platform = desk.sandbox.app.state.platform  # type: ignore[attr-defined]
    found = []
    for call in platform.writes(anomaly_id, ok=True):
        if call.method == "POST":
            found.append(("comment", call.body["message"]))
        elif call.method == "PUT":
            found.append(("status", call.body["status"]))
        else:
            found.append(("status", call.query["status"]))
    return found


def jira_issue(desk: Desk, key: str) -> dict[str, Any]:
    with jira_as_alice(desk) as jira:
        found: dict[str, Any] = jira.get(f"/rest/api/3/issue/{key}").json()
    return found


def incident(desk: Desk, sys_id: str) -> dict[str, Any]:
    with snow_as_bob(desk) as snow:
        found: dict[str, Any] = snow.get(f"/api/now/table/incident/{sys_id}").json()["result"]
    return found


# -- from the ticket ----------------------------------------------------------------------------


def test_a_jira_issue_moved_to_done_archives_the_anomaly_everywhere_but_back(both: Desk) -> None:
    jira = link(both, 10260, "jira")
    snow = link(both, 10260, "servicenow")
    both.wait_idle()
    jira_before = both.jira_notes(jira["ticket_key"])
    alice_moves_to_done(both, jira["ticket_key"])
    wait_for(lambda: anomaly(both, 10260)["status"] == "Resolved", "the anomaly archived")
    # the change is visible a moment before its jobs are queued (once durable): wait for one
    wait_for(lambda: platform_writes(both, 10260) != [], "the platform's write-back")
    both.wait_idle()
    doc = anomaly(both, 10260)
    change = [h for h in doc["history"] if h["kind"] == "status"][-1]
    assert change["by"].startswith(jira["ticket_key"])
    assert platform_writes(both, 10260) == [("status", "Resolved")]  # the platform follows
    assert both.jira_notes(jira["ticket_key"]) == jira_before  # nothing sent back to it
    snow_notes = both.snow_notes(snow["ticket_id"])
    assert sum("Anomaly Status: Resolved" in n for n in snow_notes) == 1  # the other ticket
    assert incident(both, snow["ticket_id"])["state"] == "6"  # and it is moved too


def test_a_servicenow_incident_resolved_by_a_person_archives_the_anomaly(both: Desk) -> None:
    snow = link(both, 10260, "servicenow")
    both.wait_idle()
    bob_updates(
        both, snow["ticket_id"], state="6", close_code="Solution provided", close_notes="fixed"
    )
    wait_for(lambda: anomaly(both, 10260)["status"] == "Resolved", "the anomaly archived")
    wait_for(lambda: platform_writes(both, 10260) != [], "the platform's write-back")
    both.wait_idle()
    assert platform_writes(both, 10260) == [("status", "Resolved")]
    assert not any("Anomaly Status: Resolved" in n for n in both.snow_notes(snow["ticket_id"]))


# -- to the ticket --------------------------------------------------------------------------------


def test_archiving_the_anomaly_moves_jira_with_a_resolution_and_servicenow_with_a_close_code(
    both: Desk,
) -> None:
    jira = link(both, 10260, "jira")
    snow = link(both, 10260, "servicenow")
    archived = both.api.post(
        "/api/anomalies/10260/archive", json={"status": "Resolved", "comment": "fixed upstream"}
    )
    assert archived.status_code == 200
    both.wait_idle()
    issue = jira_issue(both, jira["ticket_key"])
    assert issue["fields"]["status"]["statusCategory"]["key"] == "done"
    assert issue["fields"]["resolution"]["name"] == "Done"
    row = incident(both, snow["ticket_id"])
    assert (row["state"], row["close_code"]) == ("6", "Solution provided")
    assert "fixed upstream" in row["close_notes"]
    time.sleep(0.6)  # polls after our own moves: nothing comes back, nothing loops
    both.wait_idle()
    doc = anomaly(both, 10260)
    assert [c["text"] for c in doc["comments"]] == ["fixed upstream"]
    assert [h["kind"] for h in doc["history"]].count("status") == 1


# -- comments ---------------------------------------------------------------------------------


def test_a_persons_comment_on_each_provider_comes_back_once_and_is_not_echoed(both: Desk) -> None:
    jira = link(both, 10260, "jira")
    snow = link(both, 10260, "servicenow")
    both.wait_idle()
    alice_comments(both, jira["ticket_key"], "seen in the nightly load [alice]")
    bob_updates(both, snow["ticket_id"], comments="bob here: the CRM extract is late")
    wait_for(lambda: len(anomaly(both, 10260)["comments"]) == 2, "both comments")
    time.sleep(0.6)  # more polls, the overlap window included: still once each
    both.wait_idle()
    comments = anomaly(both, 10260)["comments"]
    assert sorted(c["text"] for c in comments) == [
        "bob here: the CRM extract is late",
        "seen in the nightly load [alice]",
    ]
    by = {c["text"]: c["by"] for c in comments}
    assert by["seen in the nightly load [alice]"].startswith(f"from {jira['ticket_key']}")
    assert "bob.martin" in by["bob here: the CRM extract is late"]
    # not echoed to its ticket, not fanned out (off by default)
    assert not any("nightly load" in n for n in both.jira_notes(jira["ticket_key"])[1:])
    assert not any("nightly load" in n for n in both.snow_notes(snow["ticket_id"]))
    writes = [w for w in platform_writes(both, 10260) if w[0] == "comment"]
    assert len(writes) == 2  # the platform has both, once


# -- recurrence -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reopen", "comment", "new_ticket"])
def test_an_anomaly_back_while_its_ticket_is_done(
    tmp_path: Path, sandbox: ThreadedServer, mode: str
) -> None:
    settings = BOTH.replace('on_anomaly_archived = "transition"', "") + f'on_recurrence = "{mode}"'
    desk = two_way_desk(tmp_path, sandbox, jira=settings, platform=False)
    try:
        desk.post_webhook("01-flow-anomalies-detected.json")
        jira = link(desk, 10232, "jira")
        desk.wait_idle()
        alice_moves_to_done(desk, jira["ticket_key"])
        wait_for(lambda: anomaly(desk, 10232)["status"] == "Resolved", "archived by the ticket")
        wait_for(
            lambda: (anomaly(desk, 10232)["links"][0]["state_category"] or "").lower() == "done",
            "the done state read",
        )
        fixtures = Path(__file__).parents[2] / "fixtures" / "webhooks"
        # the platform archives it too (write-back would have), then it recurs: Active again
        resolved = json.loads((fixtures / "09-flow-status-resolved.json").read_text())
        resolved["trigger"]["timestamp"] = "2030-01-01T00:00:00Z"
        assert desk.api.post("/webhooks/qualytics", json=resolved).status_code == 200
        active = json.loads((fixtures / "01-flow-anomalies-detected.json").read_text())
        active["trigger"]["timestamp"] = "2030-01-02T00:00:00Z"
        assert desk.api.post("/webhooks/qualytics", json=active).status_code == 200
        assert anomaly(desk, 10232)["status"] == "Active"
        desk.wait_idle()
        issue = jira_issue(desk, jira["ticket_key"])
        category = issue["fields"]["status"]["statusCategory"]["key"]
        notes = desk.jira_notes(jira["ticket_key"])
        links = anomaly(desk, 10232)["links"]
        if mode == "reopen":
            assert category != "done"
            assert len(links) == 1
        elif mode == "comment":
            assert category == "done"
            assert sum("again in Qualytics" in n for n in notes) == 1
            assert len(links) == 1
        else:
            assert category == "done"  # the done ticket stays done; a new one is opened
            assert len(links) == 2
            new = links[1]
            assert new["ticket_key"] != jira["ticket_key"]
            assert jira_issue(desk, new["ticket_key"])["fields"]["summary"].startswith(
                "Anomaly 10232 recurred"
            )
    finally:
        desk.api.close()
        desk.receiver.stop()


def test_a_servicenow_incident_is_reopened_when_the_anomaly_recurs(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    settings = BOTH.replace('on_anomaly_archived = "transition"', "") + 'on_recurrence = "reopen"'
    desk = two_way_desk(tmp_path, sandbox, servicenow=settings, platform=False)
    try:
        desk.post_webhook("01-flow-anomalies-detected.json")
        snow = link(desk, 10232, "servicenow")
        desk.wait_idle()
        bob_updates(
            desk, snow["ticket_id"], state="6", close_code="Solution provided", close_notes="ok"
        )
        wait_for(lambda: anomaly(desk, 10232)["status"] == "Resolved", "archived by the incident")
        wait_for(lambda: anomaly(desk, 10232)["links"][0]["state"] == "Resolved", "state read")
        fixtures = Path(__file__).parents[2] / "fixtures" / "webhooks"
        resolved = json.loads((fixtures / "09-flow-status-resolved.json").read_text())
        resolved["trigger"]["timestamp"] = "2030-01-01T00:00:00Z"
        desk.api.post("/webhooks/qualytics", json=resolved)
        active = json.loads((fixtures / "01-flow-anomalies-detected.json").read_text())
        active["trigger"]["timestamp"] = "2030-01-02T00:00:00Z"
        desk.api.post("/webhooks/qualytics", json=active)
        desk.wait_idle()
        assert incident(desk, snow["ticket_id"])["state"] == "2"  # In Progress again
    finally:
        desk.api.close()
        desk.receiver.stop()


# -- loops ------------------------------------------------------------------------------------


def test_a_hundred_rounds_of_back_and_forth_stay_bounded(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    fan = BOTH + "fan_out_ticket_comments = true\n"
    desk = two_way_desk(tmp_path, sandbox, jira=fan, servicenow=fan, platform=False)
    try:
        desk.post_webhook("04-api-record-anomaly.json")
        jira = link(desk, 10260, "jira")
        snow = link(desk, 10260, "servicenow")
        desk.wait_idle()
        start_jira = len(desk.jira_notes(jira["ticket_key"]))
        start_snow = len(desk.snow_notes(snow["ticket_id"]))
        rounds = 100
        for n in range(rounds):
            if n % 2:
                alice_comments(desk, jira["ticket_key"], f"round {n} from alice")
            else:
                bob_updates(desk, snow["ticket_id"], comments=f"round {n} from bob")
            wait_for(lambda n=n: len(anomaly(desk, 10260)["comments"]) == n + 1, f"round {n}")
        desk.wait_idle()
        time.sleep(0.6)  # a few more polls: nothing new appears
        desk.wait_idle()
        assert len(anomaly(desk, 10260)["comments"]) == rounds
        # each person's comment went to the other ticket once, and never came back again
        jira_notes = desk.jira_notes(jira["ticket_key"])[start_jira:]
        snow_notes = desk.snow_notes(snow["ticket_id"])[start_snow:]  # work notes: ours only
        from_bob = [n for n in jira_notes if n.startswith(f"Comment from {snow['ticket_key']}")]
        assert len(from_bob) == rounds // 2  # bob's, fanned out to Jira once each
        assert len(jira_notes) == rounds  # and alice's own fifty: nothing else was written
        assert len(snow_notes) == rounds // 2  # alice's, fanned out to ServiceNow once each
        assert all(n.startswith(f"Comment from {jira['ticket_key']}") for n in snow_notes)
    finally:
        desk.api.close()
        desk.receiver.stop()


# -- webhook hints ----------------------------------------------------------------------------


def sign(body: bytes, secret: str = HOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signed_jira_hints_poll_now_forged_and_replayed_ones_do_nothing(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    settings = BOTH.replace("poll_s = 0.2", "poll_s = 3600") + 'webhook_secret_env = "JIRA_HOOK"'
    desk = two_way_desk(
        tmp_path, sandbox, jira=settings, platform=False, env={"JIRA_HOOK": HOOK_SECRET}
    )
    try:
        desk.post_webhook("04-api-record-anomaly.json")
        jira = link(desk, 10260, "jira")
        desk.wait_idle()
        alice_comments(desk, jira["ticket_key"], "hinted")
        body = json.dumps(
            {"webhookEvent": "comment_created", "issue": {"key": jira["ticket_key"]}}
        ).encode()
        headers = {"content-type": "application/json", "x-atlassian-webhook-identifier": "h-1"}
        forged = desk.api.post(
            "/webhooks/jira", content=body, headers={**headers, "x-hub-signature": sign(body, "x")}
        )
        assert forged.status_code == 401
        time.sleep(0.3)
        assert anomaly(desk, 10260)["comments"] == []  # a forged hint polls nothing
        good = desk.api.post(
            "/webhooks/jira", content=body, headers={**headers, "x-hub-signature": sign(body)}
        )
        assert good.status_code == 200
        assert good.json()["duplicate"] is False
        wait_for(lambda: len(anomaly(desk, 10260)["comments"]) == 1, "the hinted poll")
        replay = desk.api.post(
            "/webhooks/jira", content=body, headers={**headers, "x-hub-signature": sign(body)}
        )
        assert replay.json()["duplicate"] is True
        unsigned = desk.api.post("/webhooks/jira", content=body, headers=headers)
        assert unsigned.status_code == 401
    finally:
        desk.api.close()
        desk.receiver.stop()


def test_a_signed_servicenow_hint_polls_now_and_a_forged_one_is_refused(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    settings = BOTH.replace("poll_s = 0.2", "poll_s = 3600") + 'webhook_secret_env = "SNOW_HOOK"'
    desk = two_way_desk(
        tmp_path, sandbox, servicenow=settings, platform=False, env={"SNOW_HOOK": HOOK_SECRET}
    )
    try:
        desk.post_webhook("04-api-record-anomaly.json")
        snow = link(desk, 10260, "servicenow")
        desk.wait_idle()
        bob_updates(desk, snow["ticket_id"], comments="bob: hinted")
        body = json.dumps({"sys_id": snow["ticket_id"], "table": "incident"}).encode()
        headers = {"content-type": "application/json"}
        forged = desk.api.post(
            "/webhooks/servicenow",
            content=body,
            headers={**headers, "x-snow-signature": sign(body, "wrong")},
        )
        assert forged.status_code == 401
        good = desk.api.post(
            "/webhooks/servicenow",
            content=body,
            headers={**headers, "x-snow-signature": sign(body)},
        )
        assert good.status_code == 200
        wait_for(lambda: len(anomaly(desk, 10260)["comments"]) == 1, "the hinted poll")
        assert anomaly(desk, 10260)["comments"][0]["text"] == "bob: hinted"
    finally:
        desk.api.close()
        desk.receiver.stop()


def test_a_new_anomaly_with_the_fingerprint_of_one_whose_ticket_is_done_notes_that_ticket(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    settings = BOTH.replace('on_anomaly_archived = "transition"', "") + 'on_recurrence = "comment"'
    desk = two_way_desk(tmp_path, sandbox, jira=settings, platform=False)
    try:
        first = {"id": 91001, "status": "Active", "fingerprint": 777001, "message": "nulls"}
        assert desk.api.post("/webhooks/qualytics", json=first).status_code == 200
        jira = link(desk, 91001, "jira")
        desk.wait_idle()
        alice_moves_to_done(desk, jira["ticket_key"])
        wait_for(lambda: anomaly(desk, 91001)["status"] == "Resolved", "archived by the ticket")
        again = {"id": 91002, "status": "Active", "fingerprint": 777001, "message": "nulls"}
        other = {"id": 91003, "status": "Active", "fingerprint": 999999, "message": "other"}
        assert desk.api.post("/webhooks/qualytics", json=[again, other]).status_code == 200
        desk.wait_idle()
        notes = desk.jira_notes(jira["ticket_key"])
        recurred = [n for n in notes if "recurred" in n]
        assert len(recurred) == 1  # once, and only for the same fingerprint
        assert "91002" in recurred[0]
        assert "91001" in recurred[0]
    finally:
        desk.api.close()
        desk.receiver.stop()
