"""Two-way sync against the Jira emulator over loopback HTTP: reading changes back (a person's
status change and comments, our own notes marked ours), and moving an issue's workflow (done with
or without a resolution screen, several done transitions, already done, reopen)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from anomaly_desk.core.formatting.adf import text_to_adf
from anomaly_desk.core.providers.base import NoteTag, TicketRef
from anomaly_desk.core.providers.errors import UnavailableError, ValidationError
from anomaly_desk.core.providers.jira import HISTORY_TYPE, NOTE_PROPERTY, JiraClient, iso_utc
from anomaly_desk.sandbox import jira_workflows
from anomaly_desk.sandbox.jira import JiraEmulator
from tests.jira.conftest import connection
from tests.support import ThreadedServer

ALICE = ("alice@example.com", "alice-token")
ALICE_ID = "5b10a2844c20165700ede21f"
OURS_ID = "5b10ac8d82e05b22cc7d4ef5"  # demo@example.com: the integration's account
API = "/rest/api/3"


@pytest.fixture
def alice(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """A person working the tickets, with her own API token."""
    with httpx.Client(base_url=sandbox.url, auth=ALICE, timeout=5.0) as person:
        yield person


async def _client(sandbox: ThreadedServer, **overrides: Any) -> JiraClient:
    return JiraClient(connection(sandbox.url, **overrides))


@pytest.fixture
async def jira(sandbox: ThreadedServer) -> AsyncIterator[JiraClient]:
    client = await _client(sandbox)
    yield client
    await client.aclose()


def _issue(http: httpx.Client, project: str = "DQ", summary: str = "two-way") -> TicketRef:
    fields = {"project": {"key": project}, "issuetype": {"name": "Task"}, "summary": summary}
    response = http.post(f"{API}/issue", json={"fields": fields})
    assert response.status_code == 201, response.text
    created = response.json()
    return TicketRef(str(created["key"]), str(created["id"]))


def _transition(person: httpx.Client, key: str, name: str, **extra: Any) -> None:
    offered = person.get(f"{API}/issue/{key}/transitions").json()["transitions"]
    tid = next(t["id"] for t in offered if t["name"] == name)
    response = person.post(
        f"{API}/issue/{key}/transitions", json={"transition": {"id": tid}, **extra}
    )
    assert response.status_code == 204, response.text


def _comment(person: httpx.Client, key: str, text: str) -> None:
    response = person.post(f"{API}/issue/{key}/comment", json={"body": text_to_adf(text)})
    assert response.status_code == 201, response.text


def _backdate(emulator: JiraEmulator, key: str, hours: float) -> None:
    """The issue and everything on it happened ``hours`` ago."""
    issue = emulator.find(key)
    assert issue is not None
    shift = timedelta(hours=hours)
    issue.updated -= shift
    issue.created -= shift
    for comment in issue.comments:
        comment.created -= shift
    for history in issue.histories:
        history.created -= shift


def _status(emulator: JiraEmulator, key: str) -> tuple[str, str | None]:
    issue = emulator.find(key)
    assert issue is not None
    return issue.status, issue.resolution


def _now() -> str:
    return iso_utc(datetime.now(UTC) - timedelta(seconds=1))


TAG = NoteTag("job-1")


# --------------------------------------------------------------------------- account, changes


async def test_account_is_the_integrations_account_id(jira: JiraClient) -> None:
    assert await jira.account() == OURS_ID
    assert await jira.account() == OURS_ID  # cached: /myself is read once
    assert jira._me is not None


async def test_changes_see_a_persons_status_change_and_comment_and_our_note(
    jira: JiraClient, http: httpx.Client, alice: httpx.Client, emulator: JiraEmulator
) -> None:
    ref = _issue(http)
    quiet = _issue(http, summary="nobody touches this one")
    _backdate(emulator, quiet.key, 3)
    since = _now()
    _transition(alice, ref.key, "Start Progress")
    _comment(alice, ref.key, "Looking into it: the load job ran twice.")
    await jira.add_note(ref, "Comment from Qualytics: rerun scheduled", TAG)

    changes = await jira.changes([ref, quiet], since)

    assert [c.ticket.key for c in changes] == [ref.key]
    change = changes[0]
    assert change.ticket.state == "In Progress"
    assert change.ticket.updated is not None
    assert change.ticket.updated.endswith("Z")
    assert not change.done
    assert change.state_by == ALICE_ID
    person, ours = change.comments
    assert (person.author_id, person.author, person.ours) == (ALICE_ID, ALICE[0], False)
    assert person.text == "Looking into it: the load job ran twice."
    assert person.created.endswith("Z")
    assert person.created <= ours.created
    assert (ours.author_id, ours.ours) == (OURS_ID, True)
    assert ours.text == "Comment from Qualytics: rerun scheduled"


async def test_since_leaves_out_old_tickets_and_old_comments(
    jira: JiraClient, http: httpx.Client, alice: httpx.Client, emulator: JiraEmulator
) -> None:
    old, busy = _issue(http, summary="old"), _issue(http, summary="busy")
    _comment(alice, old.key, "an old remark")
    _comment(alice, busy.key, "an old remark too")
    _backdate(emulator, old.key, 3)
    _backdate(emulator, busy.key, 3)
    since = _now()
    _comment(alice, busy.key, "a new remark")

    changes = await jira.changes([old, busy], since)
    assert [c.ticket.key for c in changes] == [busy.key]
    assert [c.text for c in changes[0].comments] == ["a new remark"]
    assert changes[0].state_by is None  # nobody moved its status

    everything = await jira.changes([old, busy], None)
    assert sorted(c.ticket.key for c in everything) == sorted([old.key, busy.key])
    by_key = {c.ticket.key: [n.text for n in c.comments] for c in everything}
    assert by_key[busy.key] == ["an old remark too", "a new remark"]
    assert await jira.changes([], since) == []


async def test_a_ticket_that_no_longer_exists_is_left_out(
    jira: JiraClient, http: httpx.Client, alice: httpx.Client
) -> None:
    ref = _issue(http)
    since = _now()
    _comment(alice, ref.key, "still here")
    changes = await jira.changes([TicketRef("DQ-999", "99999"), ref], since)
    assert [c.ticket.key for c in changes] == [ref.key]


async def test_changelogs_are_read_one_by_one_where_bulkfetch_is_missing(
    jira: JiraClient, http: httpx.Client, alice: httpx.Client, sandbox: ThreadedServer
) -> None:
    ref = _issue(http)
    since = _now()
    _transition(alice, ref.key, "Start Progress")
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    faults.update(
        {"force_status": 404, "force_count": 1, "path_prefix": f"{API}/changelog/bulkfetch"}
    )
    changes = await jira.changes([ref], since)
    assert changes[0].state_by == ALICE_ID
    assert not jira._bulkfetch
    _transition(alice, ref.key, "Stop Progress")
    again = await jira.changes([ref], since)  # no second try of bulkfetch
    assert (again[0].ticket.state, again[0].state_by) == ("To Do", ALICE_ID)


async def test_many_tickets_are_asked_in_batches(
    jira: JiraClient, http: httpx.Client, alice: httpx.Client, emulator: JiraEmulator
) -> None:
    refs = [_issue(http, summary=f"issue {n}") for n in range(105)]
    for ref in refs:
        _backdate(emulator, ref.key, 3)  # out of the overlap: changes re-reads 2 minutes back
    since = _now()
    _comment(alice, refs[0].key, "first")
    _comment(alice, refs[-1].key, "last")
    changes = await jira.changes(refs, since)
    assert sorted(c.ticket.key for c in changes) == sorted([refs[0].key, refs[-1].key])


# --------------------------------------------------------------------------- move_to_done


async def test_done_with_the_resolution_screen(
    jira: JiraClient, http: httpx.Client, emulator: JiraEmulator
) -> None:
    ref = _issue(http)
    assert await jira.move_to_done(ref, "Anomaly archived as Resolved in Qualytics", TAG) is None
    assert _status(emulator, ref.key) == ("Done", "10000")  # resolution Done
    issue = emulator.find(ref.key)
    assert issue is not None
    history = issue.histories[-1]
    assert history.metadata == {"type": HISTORY_TYPE, "activityDescription": TAG.nonce}
    assert history.author.account_id == OURS_ID
    [note] = issue.comments
    assert note.properties == {NOTE_PROPERTY: {"job": TAG.nonce}}

    [change] = await jira.changes([ref], None)
    assert change.done
    assert change.state_by == OURS_ID
    assert [(c.text, c.ours) for c in change.comments] == [
        ("Anomaly archived as Resolved in Qualytics", True)
    ]


async def test_the_configured_resolution_when_allowed_else_the_first(
    sandbox: ThreadedServer, http: httpx.Client, emulator: JiraEmulator
) -> None:
    for wanted, expected in (("Won't Do", "10001"), ("Fixed", "10000")):
        client = await _client(sandbox, resolution=wanted)
        try:
            ref = _issue(http)
            assert await client.move_to_done(ref, "", TAG) is None
        finally:
            await client.aclose()
        assert _status(emulator, ref.key) == ("Done", expected)
        assert emulator.find(ref.key).comments == []  # type: ignore[union-attr]


async def test_done_on_a_team_managed_project_has_no_resolution_but_keeps_the_note(
    jira: JiraClient, http: httpx.Client, emulator: JiraEmulator
) -> None:
    ref = _issue(http, project="TM")
    assert ref.key.startswith("TM-")
    assert await jira.move_to_done(ref, "Anomaly archived in Qualytics", TAG) is None
    assert _status(emulator, ref.key) == ("Done", None)
    # Jira drops a transition's comment when there is no screen: the note is a comment of its own
    issue = emulator.find(ref.key)
    assert issue is not None
    assert [c.properties for c in issue.comments] == [{NOTE_PROPERTY: {"job": TAG.nonce}}]


@pytest.fixture
def two_done_transitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """DQ's workflow with a second way into Done ("Won't Fix", no screen)."""
    extra = jira_workflows.Transition("51", "Won't Fix", "Done", sources=("To Do", "In Progress"))
    dq = dataclasses.replace(jira_workflows.DQ, transitions=(*jira_workflows.DQ.transitions, extra))
    monkeypatch.setattr(jira_workflows, "PROJECTS", (dq, jira_workflows.TM))


@pytest.mark.usefixtures("two_done_transitions")
async def test_several_transitions_to_done_need_done_transition(
    sandbox: ThreadedServer, jira: JiraClient, http: httpx.Client, emulator: JiraEmulator
) -> None:
    ref = _issue(http)
    with pytest.raises(ValidationError) as caught:
        await jira.move_to_done(ref, "archived", TAG)
    assert caught.value.message == (
        "several transitions lead to done: Done, Won't Fix; set done_transition"
    )
    assert _status(emulator, ref.key) == ("To Do", None)
    assert emulator.find(ref.key).comments == []  # type: ignore[union-attr]

    wrong = await _client(sandbox, done_transition="Close")
    try:
        with pytest.raises(ValidationError) as unknown:
            await wrong.move_to_done(ref, "archived", TAG)
    finally:
        await wrong.aclose()
    assert "'Close'" in unknown.value.message
    assert "Done, Won't Fix" in unknown.value.message

    chosen = await _client(sandbox, done_transition="won't fix")
    try:
        assert await chosen.move_to_done(ref, "archived", TAG) is None
    finally:
        await chosen.aclose()
    assert _status(emulator, ref.key) == ("Done", None)  # no screen: no resolution


async def test_an_issue_already_done_is_left_alone(
    jira: JiraClient, http: httpx.Client, alice: httpx.Client, emulator: JiraEmulator
) -> None:
    ref = _issue(http)
    _transition(alice, ref.key, "Done", fields={"resolution": {"name": "Duplicate"}})
    before = len(emulator.find(ref.key).histories)  # type: ignore[union-attr]
    answer = await jira.move_to_done(ref, "archived", TAG)
    assert answer == f"{ref.key} is already Done: left alone"
    issue = emulator.find(ref.key)
    assert issue is not None
    assert (len(issue.histories), issue.comments, issue.resolution) == (before, [], "10002")


class _LoseTransition(httpx.AsyncBaseTransport):
    """Loopback HTTP that loses the first transition request: before sending it (the request
    never left) or after (Jira did it, the answer got lost)."""

    def __init__(self, sent: bool) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent = sent
        self.armed = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lose = self.armed and request.method == "POST" and request.url.path.endswith("/transitions")
        if lose:
            self.armed = False
            if not self.sent:
                raise httpx.ConnectError("refused", request=request)
            response = await self.inner.handle_async_request(request)
            await response.aread()
            raise httpx.ReadTimeout("lost", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("sent", [False, True], ids=["not-sent", "answer-lost"])
async def test_a_retry_writes_the_note_once(
    sandbox: ThreadedServer, http: httpx.Client, emulator: JiraEmulator, sent: bool
) -> None:
    ref = _issue(http)
    client = JiraClient(connection(sandbox.url), transport=_LoseTransition(sent))
    try:
        with pytest.raises(UnavailableError) as caught:
            await client.move_to_done(ref, "archived", TAG)
        assert caught.value.ambiguous is sent
        again = await client.move_to_done(ref, "archived", TAG)
    finally:
        await client.aclose()
    assert again == (f"{ref.key} is already Done: left alone" if sent else None)
    issue = emulator.find(ref.key)
    assert issue is not None
    assert (issue.status, len(issue.comments)) == ("Done", 1)


# --------------------------------------------------------------------------- reopen


async def test_reopen_goes_back_to_a_new_status(
    jira: JiraClient, http: httpx.Client, emulator: JiraEmulator
) -> None:
    ref, team = _issue(http), _issue(http, project="TM")
    for each in (ref, team):
        assert await jira.move_to_done(each, "", TAG) is None
    reopen = NoteTag("job-2")
    assert await jira.reopen(ref, "The anomaly came back", reopen) is None
    assert await jira.reopen(team, "", reopen) is None
    assert _status(emulator, ref.key) == ("To Do", None)  # Reopen clears the resolution
    assert _status(emulator, team.key) == ("To Do", None)
    issue = emulator.find(ref.key)
    assert issue is not None
    assert issue.histories[-1].metadata == {
        "type": HISTORY_TYPE,
        "activityDescription": "job-2",
    }
    assert [c.properties for c in issue.comments] == [{NOTE_PROPERTY: {"job": "job-2"}}]
    [change] = await jira.changes([ref], None)
    assert (change.done, change.state_by) == (False, OURS_ID)


async def test_reopen_leaves_an_open_issue_alone(
    jira: JiraClient, http: httpx.Client, alice: httpx.Client, emulator: JiraEmulator
) -> None:
    ref = _issue(http)
    _transition(alice, ref.key, "Start Progress")
    answer = await jira.reopen(ref, "came back", TAG)
    assert answer == f"{ref.key} is not done (In Progress): left alone"
    assert emulator.find(ref.key).comments == []  # type: ignore[union-attr]
