"""Our ServiceNow client against the sandbox emulator over real loopback HTTP."""

from __future__ import annotations

import logging

import httpx
import pytest

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.formatting.block import anomaly_block
from anomaly_desk.core.formatting.plain import block_to_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.base import NoteTag, TicketRef
from anomaly_desk.core.providers.errors import (
    AuthError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.servicenow import ServiceNowClient
from anomaly_desk.sandbox.servicenow import seed_id
from tests.retries import fast_retries
from tests.servicenow.conftest import PASSWORD, connection, make_anomaly
from tests.support import ThreadedServer

GROUP = seed_id("sys_user_group", "Data Platform")
ALICE = seed_id("sys_user", "alice.nguyen")
BOB = seed_id("sys_user", "bob.martin")


async def _table_api(
    sandbox: ThreadedServer, method: str, path: str, body: dict[str, str] | None = None
) -> dict[str, str]:
    """Straight to the emulator's Table API as admin, values only: what the instance stored."""
    async with httpx.AsyncClient(base_url=sandbox.url, auth=("admin", PASSWORD)) as http:
        response = await http.request(method, f"/api/now/table/incident{path}", json=body)
    response.raise_for_status()
    row = response.json()["result"]
    return {k: v["value"] if isinstance(v, dict) else v for k, v in row.items()}


async def _incident(sandbox: ThreadedServer, sys_id: str) -> dict[str, str]:
    return await _table_api(sandbox, "GET", f"/{sys_id}")


async def test_check_returns_the_user(client: ServiceNowClient) -> None:
    assert await client.check() == "admin"


async def test_every_seed_field_round_trips(
    client: ServiceNowClient, sandbox: ThreadedServer, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(
        anomaly,
        {
            "short_description": "Null emails in orders",
            "description": "Seen after the 02:00 load.",
            "priority": "2 - High",
            "urgency": "2",
            "category": "data_quality",
            "subcategory": "completeness",
            "assignment_group": "Data Platform",  # a name, resolved to its sys_id
            "assigned_to": "alice.nguyen",  # a user name
            "caller_id": BOB,  # a sys_id, sent as is
        },
    )
    assert ticket.key == "INC0010001"
    assert ticket.state == "New"
    assert ticket.state_category is None
    assert ticket.summary == "Null emails in orders"
    stored = await _incident(sandbox, ticket.id)
    block = block_to_text(anomaly_block(anomaly))
    assert stored["short_description"] == "Null emails in orders"
    assert stored["description"] == f"Seen after the 02:00 load.\n\n{block}"
    # priority 2 with urgency 2 can only come from impact 1: the instance derives 2 again
    assert (stored["priority"], stored["urgency"], stored["impact"]) == ("2", "2", "1")
    assert (stored["category"], stored["subcategory"]) == ("data_quality", "completeness")
    assert stored["assignment_group"] == GROUP
    assert stored["assigned_to"] == ALICE
    assert stored["caller_id"] == BOB
    assert stored["correlation_id"] == "1234"
    assert stored["correlation_display"] == "Anomaly Desk"
    # and read back through the client, with display names
    again = await client.get_ticket(ticket.key)
    assert again.id == ticket.id
    assert again.url.endswith(f"sys_id%3D{ticket.id}")
    assert again.extra["priority_label"] == "2 - High"
    assert again.extra["assignment_group_name"] == "Data Platform"
    assert again.extra["assigned_to_name"] == "Alice Nguyen"
    assert again.extra["caller_id_name"] == "Bob Martin"
    assert again.extra["subcategory_label"] == "Completeness"


@pytest.mark.parametrize(
    ("priority", "impact", "urgency"),
    [
        ("1", "1", "1"),
        ("2", "1", "2"),
        ("3", "2", "2"),
        ("4", "2", "3"),
        ("5 - Planning", "3", "3"),
    ],
)
async def test_priority_sends_matching_impact_and_urgency(
    client: ServiceNowClient, sandbox: ThreadedServer, priority: str, impact: str, urgency: str
) -> None:
    ticket = await client.create_ticket(
        make_anomaly(), {"short_description": "p", "priority": priority}
    )
    stored = await _incident(sandbox, ticket.id)
    assert (stored["impact"], stored["urgency"]) == (impact, urgency)
    assert stored["priority"] == priority[0]


async def test_conflicting_priority_is_refused_before_sending(client: ServiceNowClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await client.create_ticket(
            make_anomaly(), {"short_description": "x", "priority": "1", "impact": "3"}
        )
    assert "priority" in caught.value.field_errors


async def test_long_texts_are_cut_with_a_marker_keeping_the_block(
    client: ServiceNowClient, sandbox: ThreadedServer, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(
        anomaly, {"short_description": "s" * 500, "description": "d" * 10_000}
    )
    stored = await _incident(sandbox, ticket.id)
    assert len(stored["short_description"]) == 160
    assert stored["short_description"].endswith("… [truncated]")
    assert len(stored["description"]) <= 4000
    assert stored["description"].endswith(block_to_text(anomaly_block(anomaly)))
    assert "… [truncated]" in stored["description"]


async def test_find_created_uses_the_correlation_id(client: ServiceNowClient) -> None:
    first = await client.create_ticket(make_anomaly(501), {"short_description": "a"})
    await client.create_ticket(make_anomaly(502), {"short_description": "b"})
    found = await client.find_created(501)
    assert [t.key for t in found] == [first.key]
    assert await client.find_created(999) == []


async def test_get_ticket_by_number_or_sys_id_and_state_names(
    client: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    ticket = await client.create_ticket(make_anomaly(), {"short_description": "state"})
    names = {"2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
    for code, name in names.items():
        # Resolved and Closed need the close information (the instance's data policy)
        close = {"close_code": "Solution provided", "close_notes": "done"}
        await _table_api(sandbox, "PATCH", f"/{ticket.id}", {"state": code, **close})
        assert (await client.get_ticket(ticket.key.lower())).state == name
        assert (await client.get_ticket(ticket.id)).state == name


async def test_search_by_number_or_summary_newest_first(client: ServiceNowClient) -> None:
    older = await client.create_ticket(make_anomaly(1), {"short_description": "Orders freshness"})
    newer = await client.create_ticket(make_anomaly(2), {"short_description": "Stale ORDERS feed"})
    await client.create_ticket(make_anomaly(3), {"short_description": "Unrelated"})
    await client.add_note(older, "touch")  # now the most recently updated
    found = await client.search("orders")
    assert {t.key for t in found} == {older.key, newer.key}
    assert found[0].key == older.key or found[0].updated == found[1].updated
    assert [t.key for t in await client.search(newer.key)] == [newer.key]
    assert [t.key for t in await client.search("0010003")] == ["INC0010003"]
    assert len(await client.search("", limit=2)) == 2


async def test_search_refuses_a_caret(client: ServiceNowClient) -> None:
    with pytest.raises(ValidationError, match=r"'\^'"):
        await client.search("x^ORnumberISNOTEMPTY")


async def test_add_note_writes_a_work_note_and_keeps_state(
    client: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    ticket = await client.create_ticket(make_anomaly(), {"short_description": "n"})
    await _table_api(sandbox, "PATCH", f"/{ticket.id}", {"state": "2"})
    note = "[2024-01-15 10:30:00 UTC] Qualytics Anomaly Status: Acknowledged"
    await client.add_note(TicketRef(key=ticket.key, id=""), note)  # resolved by key
    journal = sandbox.app.state.servicenow.records("sys_journal_field")
    assert [(j["element_id"], j["element"], j["value"], j["name"]) for j in journal] == [
        (ticket.id, "work_notes", note, "incident")
    ]
    stored = await _incident(sandbox, ticket.id)
    assert stored["state"] == "2"
    assert stored["work_notes"] == ""


async def test_link_appends_block_and_notes_the_link_once(
    client: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    created = await _table_api(
        sandbox, "POST", "", {"short_description": "Existing", "description": "Their own words."}
    )
    anomaly = make_anomaly(77)
    ticket = await client.link(anomaly, created["number"])
    block = block_to_text(anomaly_block(anomaly))
    stored = await _incident(sandbox, created["sys_id"])
    assert stored["description"] == f"Their own words.\n\n{block}"
    notes = [j["value"] for j in sandbox.app.state.servicenow.records("sys_journal_field")]
    assert notes == ["Linked to Qualytics anomaly 77: https://acme.qualytics.io/anomalies/77"]
    assert ticket.key == created["number"]
    await client.link(anomaly, created["number"])  # again: nothing more is written
    assert (await _incident(sandbox, created["sys_id"]))["description"] == stored["description"]
    assert len(sandbox.app.state.servicenow.records("sys_journal_field")) == 1


async def test_options_come_from_the_instance(client: ServiceNowClient) -> None:
    options = await client.options()
    assert [o.label for o in options["priority"]] == [
        "1 - Critical",
        "2 - High",
        "3 - Moderate",
        "4 - Low",
        "5 - Planning",
    ]
    assert [o.value for o in options["urgency"]] == ["1", "2", "3"]
    assert [o.value for o in options["impact"]] == ["1", "2", "3"]
    assert ("database", "Database") in [(o.value, o.label) for o in options["category"]]
    assert ("oracle", "Oracle") in [(o.value, o.label) for o in options["subcategory:database"]]
    assert ("oracle", "Oracle") in [(o.value, o.label) for o in options["subcategory"]]
    assert (GROUP, "Data Platform") in [(o.value, o.label) for o in options["assignment_group"]]
    assert (ALICE, "Alice Nguyen (alice.nguyen)") in [
        (o.value, o.label) for o in options["assigned_to"]
    ]
    assert options["caller_id"] == options["assigned_to"]


async def test_unknown_group_or_user_is_a_field_error(client: ServiceNowClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await client.create_ticket(
            make_anomaly(), {"short_description": "x", "assignment_group": "Nobody Team"}
        )
    assert caught.value.field_errors == {"assignment_group": "No group named 'Nobody Team'"}
    with pytest.raises(ValidationError) as caught:
        await client.create_ticket(make_anomaly(), {"short_description": "x", "assigned_to": "zed"})
    assert set(caught.value.field_errors) == {"assigned_to"}


# -- errors: each class, with the instance's own message ------------------------------------


async def test_bad_password_is_an_auth_error_without_the_password(
    sandbox: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-very-secret"
    bad = ServiceNowClient(connection(sandbox.url, password=secret))
    caplog.set_level(logging.DEBUG, logger="anomaly_desk")
    with pytest.raises(AuthError) as caught:
        await bad.check()
    await bad.aclose()
    error = caught.value
    assert error.status == 401
    assert str(error) == (
        "servicenow: User Not Authenticated: Required to provide Auth information (HTTP 401)"
    )
    for text in (str(error), repr(error), repr(bad), caplog.text, repr(connection(sandbox.url))):
        assert secret not in text
        assert PASSWORD not in text.replace("demo@", "")


async def test_write_forbidden_by_acl_is_an_auth_error(sandbox: ThreadedServer) -> None:
    viewer = ServiceNowClient(connection(sandbox.url, username="viewer"))
    assert await viewer.check() == "viewer"
    with pytest.raises(AuthError, match="ACL Exception Insert Failed") as caught:
        await viewer.create_ticket(make_anomaly(), {"short_description": "x"})
    assert caught.value.status == 403
    await viewer.aclose()


async def test_data_policy_is_a_validation_error_with_the_field(client: ServiceNowClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await client.create_ticket(make_anomaly(), {"short_description": "  "})
    assert caught.value.status == 403
    assert "The following fields are mandatory: Short description" in caught.value.message
    assert caught.value.field_errors == {"short_description": "mandatory"}


async def test_400_is_a_validation_error_with_the_message(sandbox: ThreadedServer) -> None:
    wrong = ServiceNowClient(connection(sandbox.url, table="incidnt"))
    with pytest.raises(ValidationError) as caught:
        await wrong.check()
    await wrong.aclose()
    assert caught.value.status == 400
    assert caught.value.message == "Invalid table incidnt"


async def test_404_is_not_found(client: ServiceNowClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_ticket("0" * 32)
    assert caught.value.message == (
        "No Record found: Record doesn't exist or ACL restricts the record retrieval"
    )
    with pytest.raises(NotFoundError):
        await client.get_ticket("INC9999999")
    with pytest.raises(NotFoundError):
        await client.add_note(TicketRef(key="INC0010001", id="f" * 32), "x")


async def test_429_is_rate_limited_with_retry_after(
    client: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    faults = sandbox.app.state.faults
    faults.update({"force_status": 429, "force_count": 1, "rate_limit": 0.5})
    with pytest.raises(RateLimitedError) as caught:
        await client.create_ticket(make_anomaly(), {"short_description": "x"})
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1
    assert caught.value.message.startswith("Rate limit exceeded")
    assert caught.value.retryable


async def test_503_on_write_is_unavailable_not_ambiguous(
    client: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    sandbox.app.state.faults.update({"force_status": 503, "force_count": 1})
    with pytest.raises(UnavailableError) as caught:
        await client.create_ticket(make_anomaly(), {"short_description": "x"})
    assert caught.value.status == 503
    assert not caught.value.ambiguous
    assert caught.value.message == "Service Unavailable"
    assert sandbox.app.state.servicenow.records("incident") == []  # and writes never retry


async def test_reads_retry_transient_503s(
    client: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    with fast_retries():
        sandbox.app.state.faults.update({"force_status": 503, "force_count": 2})
        assert await client.search("anything") == []
        sandbox.app.state.faults.update({"force_status": 503, "force_count": 3})
        with pytest.raises(UnavailableError):
            await client.search("anything")


async def test_refused_connection_is_unavailable(sandbox: ThreadedServer) -> None:
    from tests.support import free_port

    gone = ServiceNowClient(connection(f"http://127.0.0.1:{free_port()}"), Platform())
    with pytest.raises(UnavailableError) as caught:
        await gone.create_ticket(make_anomaly(), {"short_description": "x"})
    assert not caught.value.ambiguous  # nothing was sent
    await gone.aclose()


async def test_has_note_finds_a_work_note_already_on_the_incident(
    client: ServiceNowClient, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(anomaly, {"short_description": "has_note"})
    note = "Comment from Qualytics: looking into it — Zoë"
    assert await client.has_note(ticket, note, NoteTag("job-a")) is False
    await client.add_note(ticket, note)
    assert await client.has_note(ticket, note, NoteTag("job-a")) is True
    other = "Comment from Qualytics: something else"
    assert await client.has_note(ticket, other, NoteTag("job-b")) is False
    # one identical note was there before job-c's send: job-c needs a second one
    assert await client.has_note(ticket, note, NoteTag("job-c", baseline=1)) is False
