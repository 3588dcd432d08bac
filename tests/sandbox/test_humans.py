"""People working the tickets with their own accounts: Jira's alice@example.com (API token
alice-token) and ServiceNow's bob.martin (password demo), and what the instance does with their
updates: states, close codes and the data policy, journal entries, the polling queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pysnc
import pytest

from anomaly_desk.sandbox.app import create_app
from anomaly_desk.sandbox.server import (
    JIRA_HUMAN_LOGIN,
    JIRA_LOGIN,
    SERVICENOW_HUMAN_LOGIN,
    make_tls,
)
from anomaly_desk.sandbox.servicenow import ServiceNowEmulator, seed_id
from tests.support import ThreadedServer

API = "/rest/api/3"
INCIDENTS = "/api/now/table/incident"
JOURNAL = "/api/now/table/sys_journal_field"
BOB = SERVICENOW_HUMAN_LOGIN
RESOLVE = {"state": "6", "close_code": "Solution provided", "close_notes": "Reloaded the feed"}
POLICY = "Data Policy Exception: \n\tThe following fields are mandatory: {}\n"


@pytest.fixture
def bob(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, auth=BOB, timeout=10) as client:
        yield client


@pytest.fixture
def instance(sandbox: ThreadedServer) -> ServiceNowEmulator:
    return sandbox.app.state.servicenow  # type: ignore[attr-defined, no-any-return]


def incident(client: httpx.Client, **fields: str) -> dict[str, Any]:
    answer = client.post(INCIDENTS, json={"short_description": "Orders feed is stale", **fields})
    assert answer.status_code == 201, answer.text
    row: dict[str, Any] = answer.json()["result"]
    return row


def patch(client: httpx.Client, sys_id: str, **fields: str) -> httpx.Response:
    return client.patch(
        f"{INCIDENTS}/{sys_id}", json=fields, params={"sysparm_exclude_reference_link": "true"}
    )


# -- Jira: alice ----------------------------------------------------------------------------------


def test_alice_is_a_person_of_her_own_who_comments_and_transitions(sandbox: ThreadedServer) -> None:
    with (
        httpx.Client(base_url=sandbox.url, auth=JIRA_LOGIN, timeout=10) as demo,
        httpx.Client(base_url=sandbox.url, auth=JIRA_HUMAN_LOGIN, timeout=10) as alice,
    ):
        me, integration = alice.get(f"{API}/myself").json(), demo.get(f"{API}/myself").json()
        assert me["emailAddress"] == "alice@example.com"
        assert me["accountId"] != integration["accountId"]
        fields = {"project": {"key": "DQ"}, "issuetype": {"name": "Task"}, "summary": "stale"}
        key = demo.post(f"{API}/issue", json={"fields": fields}).json()["key"]
        body = {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": "on it"}]}],
        }
        made = alice.post(f"{API}/issue/{key}/comment", json={"body": body})
        assert made.status_code == 201
        assert made.json()["author"]["accountId"] == me["accountId"]
        listed = demo.get(f"{API}/issue/{key}/comment").json()["comments"]
        assert [c["author"]["accountId"] for c in listed] == [me["accountId"]]
        offered = alice.get(f"{API}/issue/{key}/transitions").json()["transitions"]
        start = next(t["id"] for t in offered if t["name"] == "Start Progress")
        moved = alice.post(f"{API}/issue/{key}/transitions", json={"transition": {"id": start}})
        assert moved.status_code == 204
        [history] = demo.get(f"{API}/issue/{key}/changelog").json()["values"]
        assert history["author"]["accountId"] == me["accountId"]
        wrong = httpx.get(f"{sandbox.url}{API}/myself", auth=("alice@example.com", "nope"))
        assert wrong.status_code == 401


# -- ServiceNow: bob ------------------------------------------------------------------------------


def test_bob_updates_state_and_writes_work_notes_and_comments(
    bob: httpx.Client, sn: httpx.Client
) -> None:
    row = incident(sn)
    assert row["sys_updated_by"] == "admin"
    answer = patch(
        bob,
        row["sys_id"],
        state="2",
        work_notes="Looking at the loader",
        comments="We are on it",
    )
    assert answer.status_code == 200, answer.text
    updated = answer.json()["result"]
    assert (updated["state"], updated["sys_updated_by"]) == ("2", "bob.martin")
    assert updated["sys_updated_on"] >= row["sys_updated_on"]
    assert (updated["work_notes"], updated["comments"]) == ("", "")  # journal fields read empty
    journal = sn.get(
        JOURNAL,
        params={
            "sysparm_query": f"element_id={row['sys_id']}^elementINwork_notes,comments"
            "^ORDERBYelement",
        },
    ).json()["result"]
    assert [(j["element"], j["value"], j["sys_created_by"]) for j in journal] == [
        ("comments", "We are on it", "bob.martin"),
        ("work_notes", "Looking at the loader", "bob.martin"),
    ]
    assert {j["name"] for j in journal} == {"incident"}
    assert {j["sys_created_on"] for j in journal} == {updated["sys_updated_on"]}


def test_bob_may_create_but_not_delete_and_the_viewer_may_not_write(
    bob: httpx.Client, sandbox: ThreadedServer
) -> None:
    row = incident(bob)
    assert (row["sys_created_by"], row["opened_by"]["value"]) == (
        "bob.martin",
        seed_id("sys_user", "bob.martin"),
    )
    denied = bob.delete(f"{INCIDENTS}/{row['sys_id']}")
    assert denied.status_code == 403
    assert "ACL Exception Delete Failed" in denied.json()["error"]["detail"]
    with httpx.Client(base_url=sandbox.url, auth=("viewer", "demo"), timeout=10) as viewer:
        assert patch(viewer, row["sys_id"], state="2").status_code == 403
    assert bob.post("/api/now/table/sys_choice", json={"name": "x"}).status_code == 403


def test_states_and_close_codes_are_the_instances_choices(sn: httpx.Client) -> None:
    states = sn.get(
        "/api/now/table/sys_choice",
        params={"sysparm_query": "name=incident^element=state^ORDERBYsequence"},
    ).json()["result"]
    assert [(s["value"], s["label"]) for s in states] == [
        ("1", "New"),
        ("2", "In Progress"),
        ("3", "On Hold"),
        ("6", "Resolved"),
        ("7", "Closed"),
        ("8", "Canceled"),
    ]
    codes = sn.get(
        "/api/now/table/sys_choice",
        params={
            "sysparm_query": "name=incident^element=close_code^inactive=false^ORDERBYsequence",
            "sysparm_fields": "value,label",
        },
    ).json()["result"]
    values = [c["value"] for c in codes]
    for code in (
        "Solution provided",
        "Workaround provided",
        "Duplicate",
        "Resolved by caller",
        "No resolution provided",
    ):
        assert code in values
    assert "Closed/Resolved by Caller" not in values  # a legacy code, inactive
    everything = sn.get(
        "/api/now/table/sys_choice", params={"sysparm_query": "element=close_code"}
    ).json()["result"]
    assert "Closed/Resolved by Caller" in {c["value"] for c in everything}


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"state": "6"}, "Resolution code, Resolution notes"),
        ({"state": "6", "close_code": "Solution provided"}, "Resolution notes"),
        ({"state": "6", "close_notes": "done"}, "Resolution code"),
        # an invalid or inactive code is dropped silently, then the policy fires
        ({"state": "6", "close_code": "Fixed it", "close_notes": "done"}, "Resolution code"),
        (
            {"state": "6", "close_code": "Closed/Resolved by Caller", "close_notes": "done"},
            "Resolution code",
        ),
        ({"state": "7", "close_notes": "done"}, "Resolution code"),
    ],
)
def test_the_data_policy_wants_close_information(
    bob: httpx.Client, sn: httpx.Client, fields: dict[str, str], missing: str
) -> None:
    row = incident(sn)
    answer = patch(bob, row["sys_id"], **fields)
    assert answer.status_code == 403
    assert answer.json() == {
        "error": {"message": "Operation Failed", "detail": POLICY.format(missing)},
        "status": "failure",
    }
    unchanged = sn.get(f"{INCIDENTS}/{row['sys_id']}").json()["result"]
    assert (unchanged["state"], unchanged["close_code"], unchanged["sys_mod_count"]) == (
        "1",
        "",
        "0",
    )


def test_resolving_and_reopening(bob: httpx.Client, sn: httpx.Client) -> None:
    row = incident(sn)
    answer = patch(bob, row["sys_id"], **RESOLVE)
    assert answer.status_code == 200, answer.text
    resolved = answer.json()["result"]
    assert (resolved["state"], resolved["close_code"], resolved["close_notes"]) == (
        "6",
        "Solution provided",
        "Reloaded the feed",
    )
    assert resolved["resolved_by"] == seed_id("sys_user", "bob.martin")
    assert resolved["resolved_at"] == resolved["sys_updated_on"]
    assert resolved["active"] == "true"
    shown = sn.get(
        f"{INCIDENTS}/{row['sys_id']}",
        params={"sysparm_display_value": "true", "sysparm_fields": "state,close_code,resolved_by"},
    ).json()["result"]
    assert (shown["state"], shown["close_code"], shown["resolved_by"]["display_value"]) == (
        "Resolved",
        "Solution provided",
        "Bob Martin",
    )
    noted = patch(bob, row["sys_id"], work_notes="still resolved")  # the policy holds: info kept
    assert noted.status_code == 200
    reopened = patch(bob, row["sys_id"], state="2", comments="it is back").json()["result"]
    assert (reopened["state"], reopened["resolved_at"], reopened["resolved_by"]) == ("2", "", "")
    closed = patch(sn, row["sys_id"], **{**RESOLVE, "state": "7"}).json()["result"]
    assert (closed["state"], closed["active"]) == ("7", "false")
    assert closed["closed_by"] == seed_id("sys_user", "admin")
    canceled = incident(sn)
    assert patch(sn, canceled["sys_id"], state="8").json()["result"]["active"] == "false"


def test_the_polling_queries(
    bob: httpx.Client, sn: httpx.Client, instance: ServiceNowEmulator
) -> None:
    old, busy, other = incident(sn), incident(sn), incident(sn)
    for row in (old, busy):
        stored = instance.tables["incident"][row["sys_id"]]
        stored["sys_updated_on"] = "2024-06-01 08:00:00"
    cursor = "2024-06-01 09:00:00"
    assert patch(bob, busy["sys_id"], comments="a person writes", work_notes="and notes").is_success
    ids = ",".join(r["sys_id"] for r in (old, busy))
    for value in (cursor, "javascript:gs.dateGenerate('2024-06-01','09:00:00')"):
        found = sn.get(
            INCIDENTS,
            params={
                "sysparm_query": f"sys_idIN{ids}^sys_updated_on>={value}^ORDERBYsys_updated_on",
                "sysparm_fields": "sys_id,sys_updated_on,sys_updated_by",
            },
        ).json()["result"]
        assert [(r["sys_id"], r["sys_updated_by"]) for r in found] == [
            (busy["sys_id"], "bob.martin")
        ]
    everything = sn.get(
        INCIDENTS,
        params={"sysparm_query": f"sys_idIN{ids},{other['sys_id']}^ORDERBYsys_updated_on"},
    ).json()["result"]
    assert everything[0]["sys_id"] == old["sys_id"]  # the oldest first
    journal = sn.get(
        JOURNAL,
        params={
            "sysparm_query": f"element_id={busy['sys_id']}^elementINwork_notes,comments"
            f"^sys_created_on>={cursor}^ORDERBYsys_created_on",
        },
    ).json()["result"]
    assert sorted((j["element"], j["sys_created_by"]) for j in journal) == [
        ("comments", "bob.martin"),
        ("work_notes", "bob.martin"),
    ]
    later = sn.get(
        JOURNAL,
        params={
            "sysparm_query": f"element_id={busy['sys_id']}^sys_created_on>=2999-01-01 00:00:00"
        },
    ).json()["result"]
    assert later == []


# -- pysnc as bob ---------------------------------------------------------------------------------


@pytest.fixture
def tls_sandbox(tmp_path: Path) -> Iterator[tuple[ThreadedServer, Path]]:
    files = make_tls(tmp_path)
    app = create_app()
    with ThreadedServer(app, ssl_certfile=str(files.cert), ssl_keyfile=str(files.key)) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server, files.ca


def test_pysnc_as_bob_resolves_an_incident(
    tls_sandbox: tuple[ThreadedServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca = tls_sandbox
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    admin = pysnc.ServiceNowClient(server.url, ("admin", "demo"), verify=str(ca))
    client = pysnc.ServiceNowClient(server.url, BOB, verify=str(ca))
    try:
        made = admin.GlideRecord("incident")
        made.initialize()
        made.short_description = "pysnc: the feed is late"
        sys_id = str(made.insert())

        gr = client.GlideRecord("incident")
        assert gr.get(sys_id)
        gr.state = "6"
        gr.close_notes = "no close code"
        with pytest.raises(pysnc.exceptions.RoleException):
            gr.update()  # the data policy: a close code is mandatory

        again = client.GlideRecord("incident")
        assert again.get(sys_id)
        again.state = "6"
        again.close_code = "Workaround provided"
        again.close_notes = "Rerouted the loader"
        again.work_notes = "resolved from pysnc"
        assert again.update()
        assert again.get_value("sys_updated_by") == "bob.martin"

        check = client.GlideRecord("incident")
        assert check.get(sys_id)
        assert check.get_display_value("state") == "Resolved"
        assert check.get_value("close_code") == "Workaround provided"

        journal = client.GlideRecord("sys_journal_field")
        journal.add_query("element_id", sys_id)
        journal.add_query("element", "IN", "work_notes,comments")
        journal.query()
        assert journal.next()
        assert (journal.get_value("value"), journal.get_value("sys_created_by")) == (
            "resolved from pysnc",
            "bob.martin",
        )
    finally:
        admin.session.close()
        client.session.close()
