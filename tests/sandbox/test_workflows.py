"""The Jira emulator's workflows, edits, changelog and JQL for two-way sync, over loopback HTTP.

Company-managed DQ asks a resolution on its Done screen; team-managed TM has no screens and no
resolution. Every change is in the changelog with its author and the request's historyMetadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from jira import JIRA, JIRAError

from anomaly_desk.sandbox.jira import JiraEmulator
from tests.support import ThreadedServer

API = "/rest/api/3"
DEMO = ("demo@example.com", "demo-token")
ALICE = ("alice@example.com", "alice-token")
ALICE_ID = "5b10a2844c20165700ede21f"
DEMO_ID = "5b10ac8d82e05b22cc7d4ef5"
METADATA = {"type": "anomaly-desk", "activityDescription": "job-42"}


def adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


@pytest.fixture
def demo(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, auth=DEMO, timeout=10) as client:
        yield client


@pytest.fixture
def alice(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, auth=ALICE, timeout=10) as client:
        yield client


@pytest.fixture
def site(sandbox: ThreadedServer) -> JiraEmulator:
    return sandbox.app.state.jira  # type: ignore[attr-defined, no-any-return]


def new_issue(client: httpx.Client, project: str = "DQ", summary: str = "A stale feed") -> str:
    fields = {"project": {"key": project}, "issuetype": {"name": "Task"}, "summary": summary}
    response = client.post(f"{API}/issue", json={"fields": fields})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def offered(client: httpx.Client, key: str, expand: bool = True) -> dict[str, dict[str, Any]]:
    params = {"expand": "transitions.fields"} if expand else {}
    response = client.get(f"{API}/issue/{key}/transitions", params=params)
    assert response.status_code == 200, response.text
    return {t["name"]: t for t in response.json()["transitions"]}


def transition(client: httpx.Client, key: str, tid: str, **body: Any) -> httpx.Response:
    return client.post(f"{API}/issue/{key}/transitions", json={"transition": {"id": tid}, **body})


def fields_of(client: httpx.Client, key: str) -> dict[str, Any]:
    response = client.get(f"{API}/issue/{key}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["fields"]
    return found


# -- transitions ----------------------------------------------------------------------------------


def test_company_managed_done_offers_a_required_resolution(demo: httpx.Client) -> None:
    key = new_issue(demo)
    transitions = offered(demo, key)
    assert set(transitions) == {"Start Progress", "Done"}
    done = transitions["Done"]
    assert done["to"]["name"] == "Done"
    assert done["to"]["statusCategory"]["key"] == "done"
    assert done["hasScreen"] is True
    resolution = done["fields"]["resolution"]
    assert resolution["required"] is True
    assert [v["name"] for v in resolution["allowedValues"]][:3] == ["Done", "Won't Do", "Duplicate"]
    assert "comment" not in done["fields"]  # Jira never lists it
    start = transitions["Start Progress"]
    assert (start["to"]["statusCategory"]["key"], start["fields"]) == ("indeterminate", {})
    plain = offered(demo, key, expand=False)
    assert "fields" not in plain["Done"]
    only = demo.get(f"{API}/issue/{key}/transitions", params={"transitionId": done["id"]})
    assert [t["name"] for t in only.json()["transitions"]] == ["Done"]


def test_done_with_a_resolution_and_a_comment(demo: httpx.Client, site: JiraEmulator) -> None:
    key = new_issue(demo)
    before = fields_of(demo, key)
    done = offered(demo, key)["Done"]
    answer = transition(
        demo,
        key,
        done["id"],
        fields={"resolution": {"name": "Won't Do"}},
        update={"comment": [{"add": {"body": adf("Closing: the feed is retired")}}]},
        historyMetadata=METADATA,
    )
    assert answer.status_code == 204
    assert answer.content == b""
    after = fields_of(demo, key)
    assert after["status"]["name"] == "Done"
    assert after["status"]["statusCategory"]["key"] == "done"
    assert after["resolution"]["name"] == "Won't Do"
    assert after["resolutiondate"] is not None
    assert after["updated"] >= before["updated"]
    assert after["statuscategorychangedate"] >= before["statuscategorychangedate"]
    [comment] = after["comment"]["comments"]
    assert comment["author"]["accountId"] == DEMO_ID
    assert comment["body"] == adf("Closing: the feed is retired")
    issue = site.find(key)
    assert issue is not None
    assert (issue.status, issue.resolution) == ("Done", "10001")
    # Reopen: back to To Do, the resolution cleared (Jira's post function)
    reopen = offered(demo, key)
    assert set(reopen) == {"Reopen"}
    assert transition(demo, key, reopen["Reopen"]["id"]).status_code == 204
    again = fields_of(demo, key)
    assert (again["status"]["name"], again["resolution"], again["resolutiondate"]) == (
        "To Do",
        None,
        None,
    )


def test_the_resolution_is_required_and_checked(demo: httpx.Client) -> None:
    key = new_issue(demo)
    tid = offered(demo, key)["Done"]["id"]
    missing = transition(demo, key, tid)
    assert missing.status_code == 400
    assert missing.json() == {
        "errorMessages": [],
        "errors": {"resolution": "Resolution is required."},
    }
    wrong = transition(demo, key, tid, fields={"resolution": {"name": "Fixed"}})
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == {"resolution": "Resolution name 'Fixed' is not valid"}
    by_update = transition(demo, key, tid, update={"resolution": [{"set": {"name": "Duplicate"}}]})
    assert by_update.status_code == 204
    assert fields_of(demo, key)["resolution"]["name"] == "Duplicate"


def test_a_field_not_on_the_screen_and_unknown_transitions_are_400(demo: httpx.Client) -> None:
    key = new_issue(demo)
    transitions = offered(demo, key)
    start = transitions["Start Progress"]["id"]
    off_screen = transition(demo, key, start, fields={"resolution": {"name": "Done"}})
    assert off_screen.status_code == 400
    assert off_screen.json() == {
        "errorMessages": [],
        "errors": {
            "resolution": (
                "Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown."
            )
        },
    }
    summary = transition(demo, key, transitions["Done"]["id"], fields={"summary": "x"})
    assert summary.status_code == 400
    assert "summary" in summary.json()["errors"]
    for tid in ("999", "41"):  # unknown; Reopen is not offered from To Do
        refused = transition(demo, key, tid)
        assert refused.status_code == 400
        assert refused.json() == {
            "errorMessages": [f"Transition id '{tid}' is not valid for this issue."],
            "errors": {},
        }
    not_a_number = demo.post(f"{API}/issue/{key}/transitions", json={"transition": {"id": "x"}})
    assert not_a_number.status_code == 400
    assert not_a_number.json()["errorMessages"] == ["'transition' identifier must be an integer"]
    assert fields_of(demo, key)["status"]["name"] == "To Do"  # nothing happened
    assert demo.post(f"{API}/issue/DQ-999/transitions", json={}).status_code == 404


def test_team_managed_done_has_no_resolution_and_drops_the_comment(
    demo: httpx.Client, site: JiraEmulator
) -> None:
    key = new_issue(demo, project="TM")
    assert key.startswith("TM-")
    transitions = offered(demo, key)
    assert set(transitions) == {"To Do", "In Progress", "Done"}  # global transitions
    done = transitions["Done"]
    assert (done["hasScreen"], done["isGlobal"], done["fields"]) == (False, True, {})
    assert done["to"]["statusCategory"]["key"] == "done"
    assert done["to"]["scope"] == {"type": "PROJECT", "project": {"id": "10001"}}
    with_resolution = transition(demo, key, done["id"], fields={"resolution": {"name": "Done"}})
    assert with_resolution.status_code == 400
    assert "resolution" in with_resolution.json()["errors"]
    answer = transition(
        demo, key, done["id"], update={"comment": [{"add": {"body": adf("dropped")}}]}
    )
    assert answer.status_code == 204
    fields = fields_of(demo, key)
    assert (fields["status"]["name"], fields["resolution"]) == ("Done", None)
    assert fields["comment"]["comments"] == []  # no screen: Jira drops the comment silently
    assert fields["project"]["simplified"] is True
    issue = site.find(key)
    assert issue is not None
    assert [i.field for i in issue.histories[-1].items] == ["status"]


def test_a_reader_without_the_permission_sees_no_transitions(
    demo: httpx.Client, sandbox: ThreadedServer
) -> None:
    key = new_issue(demo)
    with httpx.Client(
        base_url=sandbox.url, auth=("readonly@example.com", "readonly-token"), timeout=10
    ) as reader:
        assert offered(reader, key) == {}
        assert transition(reader, key, "11").status_code == 400


def test_the_jira_library_transitions_an_issue(sandbox: ThreadedServer, site: JiraEmulator) -> None:
    jira = JIRA(server=sandbox.url, basic_auth=ALICE, options={"rest_api_version": "3"})
    issue = jira.create_issue(
        fields={"project": {"key": "DQ"}, "issuetype": {"name": "Task"}, "summary": "via jira"}
    )
    names = {t["name"] for t in jira.transitions(issue.key)}
    assert names == {"Start Progress", "Done"}
    jira.transition_issue(issue.key, "Start Progress")
    assert jira.issue(issue.key).fields.status.name == "In Progress"
    jira.transition_issue(
        issue.key, "Done", fields={"resolution": {"name": "Done"}}, comment=adf("done by lib")
    )
    done = jira.issue(issue.key, expand="changelog")
    assert done.fields.status.statusCategory.key == "done"
    assert done.fields.resolution.name == "Done"
    histories = done.raw["changelog"]["histories"]
    assert [[i["field"] for i in h["items"]] for h in histories] == [
        ["status"],
        ["status", "resolution"],
    ]
    assert {h["author"]["accountId"] for h in histories} == {ALICE_ID}
    assert [c.raw["author"]["accountId"] for c in jira.comments(issue.key)] == [ALICE_ID]
    with pytest.raises(JIRAError) as caught:
        jira.transition_issue(issue.key, "41", fields={"resolution": {"name": "Done"}})
    assert caught.value.status_code == 400
    issue.update(fields={"summary": "renamed via jira"})
    assert jira.issue(issue.key).fields.summary == "renamed via jira"
    jira.close()


# -- edits and the changelog ----------------------------------------------------------------------


def test_edits_are_recorded_with_author_and_history_metadata(
    demo: httpx.Client, alice: httpx.Client
) -> None:
    key = new_issue(demo)
    edit = alice.put(
        f"{API}/issue/{key}",
        json={
            "fields": {"summary": "Renamed", "priority": {"name": "High"}},
            "update": {"labels": [{"add": "sync"}, {"add": "dq"}]},
            "historyMetadata": METADATA,
        },
    )
    assert edit.status_code == 204, edit.text
    fields = fields_of(demo, key)
    assert (fields["summary"], fields["priority"]["name"], fields["labels"]) == (
        "Renamed",
        "High",
        ["sync", "dq"],
    )
    returned = alice.put(
        f"{API}/issue/{key}",
        params={"returnIssue": "true"},
        json={"update": {"labels": [{"remove": "dq"}]}},
    )
    assert returned.status_code == 200
    assert returned.json()["fields"]["labels"] == ["sync"]
    refused = alice.put(f"{API}/issue/{key}", json={"fields": {"status": {"name": "Done"}}})
    assert refused.status_code == 400
    assert "status" in refused.json()["errors"]
    tid = offered(demo, key)["Done"]["id"]
    assert transition(demo, key, tid, fields={"resolution": {"name": "Done"}}).status_code == 204

    log = demo.get(f"{API}/issue/{key}/changelog").json()
    assert (log["startAt"], log["total"], log["isLast"]) == (0, 3, True)
    first, second, third = log["values"]
    assert first["author"]["accountId"] == ALICE_ID
    assert first["historyMetadata"] == METADATA
    assert {i["field"]: (i["fromString"], i["toString"]) for i in first["items"]} == {
        "summary": ("A stale feed", "Renamed"),
        "priority": ("Medium", "High"),
        "labels": ("", "sync dq"),
    }
    assert "historyMetadata" not in second
    assert [(i["field"], i["from"], i["to"]) for i in third["items"]] == [
        ("status", "10000", "10001"),
        ("resolution", None, "10000"),
    ]
    assert third["author"]["accountId"] == DEMO_ID
    page = demo.get(f"{API}/issue/{key}/changelog", params={"maxResults": 2}).json()
    assert (len(page["values"]), page["isLast"]) == (2, False)
    assert page["nextPage"].endswith("startAt=2")
    rest = demo.get(f"{API}/issue/{key}/changelog", params={"startAt": 2}).json()
    assert [v["id"] for v in rest["values"]] == [third["id"]]


def test_bulkfetch_pages_and_filters_changelogs(demo: httpx.Client) -> None:
    keys = [new_issue(demo, summary=f"issue {n}") for n in range(3)]
    for key in keys:
        start = offered(demo, key)["Start Progress"]["id"]
        assert transition(demo, key, start, historyMetadata=METADATA).status_code == 204
        assert demo.put(f"{API}/issue/{key}", json={"fields": {"summary": "x"}}).status_code == 204
    body = {"issueIdsOrKeys": [*reversed(keys), "DQ-999"], "fieldIds": ["status"]}
    whole = demo.post(f"{API}/changelog/bulkfetch", json=body)
    assert whole.status_code == 200, whole.text
    logs = whole.json()["issueChangeLogs"]
    assert "nextPageToken" not in whole.json()
    ids = [log["issueId"] for log in logs]
    assert len(ids) == 3  # the missing issue is left out
    assert ids == sorted(ids, key=int)
    for log in logs:
        [history] = log["changeHistories"]  # the summary edits are filtered out
        assert [i["field"] for i in history["items"]] == ["status"]
        assert history["historyMetadata"] == METADATA
        assert history["author"]["accountId"] == DEMO_ID
    seen: list[str] = []
    token = None
    for _ in range(10):
        page_body: dict[str, Any] = {"issueIdsOrKeys": keys, "maxResults": 4}
        if token:
            page_body["nextPageToken"] = token
        page = demo.post(f"{API}/changelog/bulkfetch", json=page_body).json()
        seen += [h["id"] for log in page["issueChangeLogs"] for h in log["changeHistories"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 6
    for bad in (
        {"issueIdsOrKeys": []},
        {"issueIdsOrKeys": keys, "fieldIds": [f"f{n}" for n in range(11)]},
        {"issueIdsOrKeys": [f"DQ-{n}" for n in range(1001)]},
        {"issueIdsOrKeys": keys, "nextPageToken": "forged"},
    ):
        answer = demo.post(f"{API}/changelog/bulkfetch", json=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["errorMessages"]


# -- JQL for polling ------------------------------------------------------------------------------


def test_jql_key_in_and_relative_updated(demo: httpx.Client, site: JiraEmulator) -> None:
    keys = [new_issue(demo, summary=f"poll {n}") for n in range(3)]
    old = site.find(keys[0])
    assert old is not None
    old.updated -= timedelta(hours=2)
    jql = f"key in ({', '.join(keys)}) AND updated >= -10m ORDER BY updated ASC"
    found = demo.post(f"{API}/search/jql", json={"jql": jql, "fields": ["updated"]}).json()
    assert sorted(i["key"] for i in found["issues"]) == sorted(keys[1:])
    hours = demo.get(f"{API}/search/jql", params={"jql": f"key in ({keys[0]}) AND updated >= -3h"})
    assert [i["id"] for i in hours.json()["issues"]] == [old.id]
    quoted = demo.get(f"{API}/search/jql", params={"jql": 'project = DQ AND updated >= "-1w 2d"'})
    assert len(quoted.json()["issues"]) == 3


def test_jql_absolute_dates_are_in_the_users_time_zone(
    demo: httpx.Client, site: JiraEmulator
) -> None:
    key = new_issue(demo)
    issue = site.find(key)
    assert issue is not None
    issue.updated = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # 10:30 in Berlin (demo's zone)
    assert site.users[0].time_zone == "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    assert issue.updated.astimezone(berlin).hour == 10

    def keys(jql: str) -> list[str]:
        answer = demo.get(f"{API}/search/jql", params={"jql": jql, "fields": "key"})
        assert answer.status_code == 200, answer.text
        return [i["key"] for i in answer.json()["issues"]]

    assert keys(f'key = {key} AND updated >= "2026-12-01 10:00"') == [key]
    assert keys(f'key = {key} AND updated >= "2026/12/01 10:31"') == []
    assert keys(f'key = {key} AND updated >= "2026-12-01"') == [key]
    assert keys(f'key = {key} AND updated < "2026-12-02"') == [key]
    for bad in ("2026-12-01T10:00", "2026-12-01 10:00:00", "yesterday"):
        answer = demo.get(f"{API}/search/jql", params={"jql": f'updated >= "{bad}"'})
        assert answer.status_code == 400
        assert answer.json()["errorMessages"][0].startswith(f"Date value '{bad}' for field")


def test_jql_pages_with_next_page_token_and_finds_by_status(demo: httpx.Client) -> None:
    keys = [new_issue(demo, summary=f"page {n}") for n in range(5)]
    tm = new_issue(demo, project="TM")
    tid = offered(demo, tm)["Done"]["id"]
    assert transition(demo, tm, tid).status_code == 204
    jql = f"key in ({', '.join([*keys, tm])}) AND updated >= -10m ORDER BY key ASC"
    seen: list[str] = []
    token = None
    while True:
        body: dict[str, Any] = {"jql": jql, "maxResults": 2, "fields": ["status"]}
        if token:
            body["nextPageToken"] = token
        page = demo.post(f"{API}/search/jql", json=body).json()
        seen += [i["key"] for i in page["issues"]]
        token = page.get("nextPageToken")
        if page["isLast"]:
            assert token is None
            break
    assert seen == [*keys, tm]

    def keys_for(query: str) -> list[str]:
        answer = demo.get(f"{API}/search/jql", params={"jql": query, "fields": "key"})
        assert answer.status_code == 200, answer.text
        return [i["key"] for i in answer.json()["issues"]]

    assert keys_for("statusCategory = Done") == [tm]
    assert keys_for("project = TM AND resolution = Unresolved") == [tm]
    assert keys_for("project = TM AND resolution is not EMPTY") == []
