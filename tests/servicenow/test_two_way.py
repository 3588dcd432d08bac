"""Two-way sync against the ServiceNow emulator over loopback HTTP: reading changes back (a
person's state change, work notes and comments; our own notes marked ours), resolving with a
close code (never Closed), and reopening."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from anomaly_desk.core.providers.base import NoteTag, Ticket, TicketRef
from anomaly_desk.core.providers.errors import ValidationError
from anomaly_desk.core.providers.servicenow import ServiceNowClient
from anomaly_desk.sandbox.servicenow import ServiceNowEmulator
from tests.servicenow.conftest import connection, make_anomaly
from tests.support import ThreadedServer

TAG = NoteTag("job-1")
STAMP = "%Y-%m-%d %H:%M:%S"


@pytest.fixture
def instance(sandbox: ThreadedServer) -> ServiceNowEmulator:
    return sandbox.app.state.servicenow  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def bob(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """A person working the incidents (itil)."""
    with httpx.Client(base_url=sandbox.url, auth=("bob.martin", "demo"), timeout=5.0) as person:
        yield person


def _patch(person: httpx.Client, ticket: TicketRef, **values: str) -> None:
    response = person.patch(f"/api/now/table/incident/{ticket.id}", json=values)
    assert response.status_code == 200, response.text


async def _incident(client: ServiceNowClient, summary: str = "two-way") -> Ticket:
    return await client.create_ticket(make_anomaly(), {"short_description": summary})


def _backdate(instance: ServiceNowEmulator, ticket: TicketRef, hours: float) -> None:
    """The incident and its journal were last written ``hours`` ago."""

    def earlier(stamp: str) -> str:
        when = datetime.strptime(stamp, STAMP) - timedelta(hours=hours)
        return when.strftime(STAMP)

    record = instance.tables["incident"][ticket.id]
    record["sys_updated_on"] = earlier(record["sys_updated_on"])
    for entry in instance.tables["sys_journal_field"].values():
        if entry["element_id"] == ticket.id:
            entry["sys_created_on"] = earlier(entry["sys_created_on"])


def _since() -> str:
    return (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(instance: ServiceNowEmulator, ticket: TicketRef) -> dict[str, str]:
    return dict(instance.tables["incident"][ticket.id])


def _journal(instance: ServiceNowEmulator, ticket: TicketRef) -> list[dict[str, Any]]:
    return [
        e for e in instance.tables["sys_journal_field"].values() if e["element_id"] == ticket.id
    ]


# --------------------------------------------------------------------------- account, changes


async def test_account_is_the_configured_user_name(client: ServiceNowClient) -> None:
    assert await client.account() == "admin"


async def test_changes_see_a_persons_state_change_and_notes_and_ours(
    client: ServiceNowClient, bob: httpx.Client, instance: ServiceNowEmulator
) -> None:
    ticket, quiet = await _incident(client), await _incident(client, "nobody touches this")
    _backdate(instance, ticket, 3)
    _backdate(instance, quiet, 3)
    since = _since()
    _patch(bob, ticket, state="2", work_notes="Looking into it: the load ran twice.")
    _patch(bob, ticket, comments="Customer informed")
    await client.add_note(ticket, "Comment from Qualytics: rerun scheduled", TAG)

    changes = await client.changes([ticket, quiet], since)

    assert [c.ticket.key for c in changes] == [ticket.key]
    change = changes[0]
    assert (change.ticket.state, change.done) == ("In Progress", False)
    assert change.ticket.updated is not None
    assert change.ticket.updated.endswith("Z")
    assert change.state_by == "admin"  # the last writer: our own note came after bob's change
    texts = [(c.author_id, c.text, c.ours) for c in change.comments]
    assert texts == [
        ("bob.martin", "Looking into it: the load ran twice.", False),
        ("bob.martin", "Customer informed", False),
        ("admin", "Comment from Qualytics: rerun scheduled", True),
    ]
    assert all(c.created.endswith("Z") and c.id for c in change.comments)


async def test_state_by_is_the_last_writer(
    client: ServiceNowClient, bob: httpx.Client, instance: ServiceNowEmulator
) -> None:
    ticket = await _incident(client)
    _backdate(instance, ticket, 3)
    since = _since()
    _patch(bob, ticket, state="6", close_code="Solution provided", close_notes="fixed the load")
    [change] = await client.changes([ticket], since)
    assert (change.done, change.state_by, change.ticket.state) == (True, "bob.martin", "Resolved")
    assert change.comments == ()


async def test_since_leaves_out_old_tickets_and_old_notes(
    client: ServiceNowClient, bob: httpx.Client, instance: ServiceNowEmulator
) -> None:
    old, busy = await _incident(client, "old"), await _incident(client, "busy")
    _patch(bob, old, work_notes="an old remark")
    _patch(bob, busy, work_notes="an old remark too")
    _backdate(instance, old, 3)
    _backdate(instance, busy, 3)
    since = _since()
    _patch(bob, busy, work_notes="a new remark")

    changes = await client.changes([old, busy], since)
    assert [c.ticket.key for c in changes] == [busy.key]
    assert [c.text for c in changes[0].comments] == ["a new remark"]

    everything = await client.changes([old, busy], None)
    assert sorted(c.ticket.key for c in everything) == sorted([old.key, busy.key])
    by_key = {c.ticket.key: [n.text for n in c.comments] for c in everything}
    assert by_key[busy.key] == ["an old remark too", "a new remark"]
    assert await client.changes([], None) == []


async def test_tickets_known_by_number_only_and_missing_ones(
    client: ServiceNowClient, bob: httpx.Client
) -> None:
    ticket = await _incident(client)
    since = _since()
    _patch(bob, ticket, work_notes="by number")
    refs = [TicketRef(ticket.key, ""), TicketRef("INC0099999", "")]
    [change] = await client.changes(refs, since)
    assert change.ticket.id == ticket.id
    assert [c.text for c in change.comments] == ["by number"]


async def test_a_cursor_that_is_not_a_time_is_refused(client: ServiceNowClient) -> None:
    with pytest.raises(ValidationError, match="not an ISO time"):
        await client.changes([TicketRef("INC0010001", "")], "yesterday")


# --------------------------------------------------------------------------- move_to_done


async def test_resolve_with_the_close_code_and_notes(
    client: ServiceNowClient, instance: ServiceNowEmulator
) -> None:
    ticket = await _incident(client)
    assert await client.move_to_done(ticket, "Anomaly archived as Resolved", TAG) is None
    record = _record(instance, ticket)
    assert (record["state"], record["close_code"]) == ("6", "Solution provided")
    assert record["close_notes"] == "Anomaly archived as Resolved"
    [change] = await client.changes([ticket], None)
    assert (change.done, change.state_by) == (True, "admin")


async def test_a_close_code_given_by_its_label_in_another_case(
    sandbox: ThreadedServer, instance: ServiceNowEmulator
) -> None:
    client = ServiceNowClient(connection(sandbox.url, close_code="workaround PROVIDED"))
    try:
        ticket = await _incident(client)
        assert await client.move_to_done(ticket, "", TAG) is None
    finally:
        await client.aclose()
    record = _record(instance, ticket)
    assert (record["state"], record["close_code"]) == ("6", "Workaround provided")
    assert record["close_notes"]  # mandatory: a default when the job has no text


async def test_an_unknown_close_code_is_refused_before_writing(
    sandbox: ThreadedServer, instance: ServiceNowEmulator
) -> None:
    # "Solved (Permanently)" is a pre-Utah code, inactive on this instance
    client = ServiceNowClient(connection(sandbox.url, close_code="Solved (Permanently)"))
    try:
        ticket = await _incident(client)
        with pytest.raises(ValidationError) as caught:
            await client.move_to_done(ticket, "archived", TAG)
    finally:
        await client.aclose()
    message = caught.value.message
    assert "'Solved (Permanently)'" in message
    assert "Solution provided" in message
    assert "Workaround provided" in message
    assert caught.value.field_errors.keys() == {"close_code"}
    assert _record(instance, ticket)["state"] == "1"


async def test_the_data_policy_refusal_reads_well(
    sandbox: ThreadedServer, instance: ServiceNowEmulator
) -> None:
    """Choices not readable (403): the code goes unchecked, the instance drops it, its data
    policy refuses the save."""
    client = ServiceNowClient(connection(sandbox.url, close_code="Fixed it"))
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    try:
        ticket = await _incident(client)
        faults.update(
            {"force_status": 403, "force_count": 1, "path_prefix": "/api/now/table/sys_choice"}
        )
        with pytest.raises(ValidationError) as caught:
            await client.move_to_done(ticket, "archived", TAG)
    finally:
        await client.aclose()
    assert caught.value.status == 403
    assert caught.value.message == (
        f"{ticket.key} cannot be resolved: the instance's data policy requires Resolution code "
        "(close code sent: 'Fixed it')"
    )
    assert caught.value.field_errors == {"close_code": "mandatory"}
    assert _record(instance, ticket)["state"] == "1"


async def test_an_incident_already_resolved_is_left_alone(
    client: ServiceNowClient, bob: httpx.Client, instance: ServiceNowEmulator
) -> None:
    ticket = await _incident(client)
    _patch(bob, ticket, state="6", close_code="Duplicate", close_notes="dup of INC0010000")
    before = _record(instance, ticket)
    answer = await client.move_to_done(ticket, "archived", TAG)
    assert answer == f"{ticket.key} is already Resolved: left alone"
    assert _record(instance, ticket) == before


async def test_never_closed(client: ServiceNowClient, instance: ServiceNowEmulator) -> None:
    ticket = await _incident(client)
    await client.move_to_done(ticket, "archived", TAG)
    await client.move_to_done(ticket, "archived again", TAG)
    assert _record(instance, ticket)["state"] == "6"


# --------------------------------------------------------------------------- reopen


async def test_reopen_a_resolved_incident(
    client: ServiceNowClient, instance: ServiceNowEmulator
) -> None:
    ticket = await _incident(client)
    await client.move_to_done(ticket, "archived", TAG)
    assert await client.reopen(ticket, "The anomaly came back", NoteTag("job-2")) is None
    record = _record(instance, ticket)
    assert (record["state"], record["resolved_at"]) == ("2", "")
    assert [e["value"] for e in _journal(instance, ticket)] == ["The anomaly came back"]


async def test_reopen_by_number(client: ServiceNowClient, instance: ServiceNowEmulator) -> None:
    ticket = await _incident(client)
    await client.move_to_done(ticket, "archived", TAG)
    assert await client.reopen(TicketRef(ticket.key, ""), "", TAG) is None
    assert _record(instance, ticket)["state"] == "2"
    assert _journal(instance, ticket) == []


async def test_reopen_leaves_open_and_closed_incidents_alone(
    client: ServiceNowClient, bob: httpx.Client, instance: ServiceNowEmulator
) -> None:
    open_one, closed = await _incident(client), await _incident(client)
    _patch(bob, closed, state="7", close_code="Duplicate", close_notes="dup")
    assert await client.reopen(open_one, "came back", TAG) == (
        f"{open_one.key} is not resolved (New): left alone"
    )
    assert await client.reopen(closed, "came back", TAG) == (
        f"{closed.key} is Closed: a closed incident cannot be reopened; left alone"
    )
    assert _record(instance, open_one)["state"] == "1"
    assert _record(instance, closed)["state"] == "7"
    assert _journal(instance, open_one) == _journal(instance, closed) == []
