"""JiraClient against the sandbox's Jira emulator over real loopback HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.formatting.adf import TRUNCATION_MARKER, adf_to_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.base import NoteTag, TicketRef
from anomaly_desk.core.providers.errors import (
    AuthError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.jira import JiraClient
from anomaly_desk.sandbox.adf import adf_errors
from anomaly_desk.sandbox.jira import JiraEmulator
from tests.jira.conftest import connection, make_anomaly
from tests.retries import fast_retries
from tests.support import ThreadedServer

ALICE = "5b10a2844c20165700ede21f"
BOB = "712020:2f6d4a7e-0b4c-4e8b-9d1f-3c5a7b9e1f20"


async def test_check_answers_who_we_are(client: JiraClient) -> None:
    assert await client.check() == "demo@example.com"


async def test_every_seed_field_round_trips_through_create_and_get(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(
        anomaly,
        {
            "project": "DQ",
            "issuetype": "Bug",
            "summary": "Négatif montant_€ in commandes",
            "description": "Please look at this first.\nIt blocks the month-end close.",
            "priority": "highest",
            "labels": "month end, finance",
            "assignee": ALICE,
        },
    )
    assert re.fullmatch(r"DQ-\d+", ticket.key)
    assert ticket.url == f"{client.url}/browse/{ticket.key}"

    again = await client.get_ticket(ticket.key)
    assert again == ticket
    assert again.summary == "Négatif montant_€ in commandes"
    assert (again.state, again.state_category) == ("To Do", "To Do")
    assert again.extra["project"] == "DQ"
    assert again.extra["issuetype"] == "Bug"
    assert again.extra["priority"] == "Highest"
    assert again.extra["assignee"] == "Alice Émond"
    assert again.extra["labels"] == ["month-end", "finance", "anomaly-desk", "anomaly-4711"]

    stored = emulator.find(ticket.key)
    assert stored is not None
    description = stored.description
    assert adf_errors(description) == []
    text = adf_to_text(description)
    assert text.startswith("Please look at this first.\nIt blocks the month-end close.\n")
    assert "Qualytics anomaly 4711" in text
    assert "Entrepôt Zürich" in text
    assert "https://acme.qualytics.io/anomalies/4711" in str(description)


async def test_defaults_come_from_the_connection(
    sandbox: ThreadedServer, emulator: JiraEmulator
) -> None:
    conn = connection(sandbox.url, issue_type="Story", label="dq-desk")
    jira = JiraClient(conn, Platform(name="DQ Hub"))
    try:
        ticket = await jira.create_ticket(make_anomaly(8), {})
    finally:
        await jira.aclose()
    assert ticket.extra["project"] == "DQ"
    assert ticket.extra["issuetype"] == "Story"
    assert ticket.extra["priority"] == "Medium"  # Jira's default, we send none
    assert ticket.extra["labels"] == ["dq-desk", "anomaly-8"]
    assert ticket.summary.startswith("DQ Hub anomaly 8: 412 rows have a negative montant_€ ")
    assert "\n" not in ticket.summary
    assert "assignee" not in ticket.extra


async def test_assignee_is_resolved_from_an_email_or_a_display_name(
    client: JiraClient, anomaly: Anomaly
) -> None:
    by_email = await client.create_ticket(anomaly, {"assignee": "bob@example.com"})
    by_name = await client.create_ticket(anomaly, {"assignee": "Carol Nguyen"})
    assert by_email.extra["assignee"] == "Bob Okafor"
    assert by_name.extra["assignee"] == "Carol Nguyen"
    assert await client.resolve_assignee("bob@example.com") == {"accountId": BOB}

    with pytest.raises(ValidationError) as unknown:
        await client.create_ticket(anomaly, {"assignee": "nobody@example.com"})
    assert "nobody@example.com" in unknown.value.field_errors["assignee"]


async def test_long_summary_and_description_are_cut_visibly(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(
        anomaly, {"summary": "Zürich " * 60, "description": "Détail. " * 6_000}
    )
    assert len(ticket.summary) <= 255
    assert ticket.summary.endswith("…")
    stored = emulator.find(ticket.key)
    assert stored is not None
    text = adf_to_text(stored.description)
    assert TRUNCATION_MARKER in text
    assert "Qualytics anomaly 4711" in text


async def test_find_created_finds_our_issues_by_label(client: JiraClient, anomaly: Anomaly) -> None:
    first = await client.create_ticket(anomaly, {})
    await client.create_ticket(make_anomaly(99), {})
    second = await client.create_ticket(anomaly, {"summary": "again"})
    found = await client.find_created(4711)
    assert [t.key for t in found] == [first.key, second.key]
    assert await client.find_created(123456) == []


async def test_search_by_key_summary_words_and_empty_text(
    client: JiraClient, anomaly: Anomaly
) -> None:
    orders = await client.create_ticket(anomaly, {"summary": "Commandes: négatifs (montant)"})
    other = await client.create_ticket(anomaly, {"summary": "Late shipments"})

    by_key = await client.search(orders.key.lower())
    assert [t.key for t in by_key] == [orders.key]
    assert await client.search("DQ-9999") == []  # a missing key is no error

    by_words = await client.search('négat "montant')  # quotes and prefixes are safe
    assert [t.key for t in by_words] == [orders.key]
    assert [t.key for t in await client.search("ship")] == [other.key]
    assert await client.search("nothing-like-this") == []

    recent = await client.search("")
    assert [t.key for t in recent] == [other.key, orders.key]

    both = await client.search(f"{other.key} commandes")
    assert [t.key for t in both] == [other.key, orders.key]


async def test_search_follows_next_page_tokens(client: JiraClient, anomaly: Anomaly) -> None:
    for n in range(7):
        await client.create_ticket(anomaly, {"summary": f"paged issue {n}"})
    assert len(await client.search("paged", limit=5)) == 5
    assert len(await client.search("paged", limit=50)) == 7


async def test_add_note_writes_an_adf_comment(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(anomaly, {})
    note = "[2024-01-15 10:30:00 UTC] Qualytics Anomaly Status: Acknowledged"
    await client.add_note(TicketRef(ticket.key, ticket.id), note)
    await client.add_note(ticket, "Comment from Qualytics: Vérifié ✓\nsee https://x.example/1")

    stored = emulator.find(ticket.key)
    assert stored is not None
    bodies = [c.body for c in stored.comments]
    assert [adf_errors(b) for b in bodies] == [[], []]
    assert adf_to_text(bodies[0]) == note + "\n"
    assert adf_to_text(bodies[1]) == "Comment from Qualytics: Vérifié ✓\nsee https://x.example/1\n"
    assert stored.status == "To Do"  # a note never moves the ticket

    with pytest.raises(ValidationError):
        await client.add_note(ticket, "   ")


async def test_link_only_reads(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(anomaly, {})
    stored = emulator.find(ticket.key)
    assert stored is not None
    before = (stored.updated, len(stored.comments), list(stored.labels))

    linked = await client.link(make_anomaly(5), ticket.key)

    assert linked.key == ticket.key
    assert linked.state == "To Do"
    assert (stored.updated, len(stored.comments), list(stored.labels)) == before


async def test_options_come_from_createmeta_and_assignable_users(client: JiraClient) -> None:
    options = await client.options()
    assert [o.value for o in options["issuetype"]] == ["Task", "Bug", "Story"]
    assert [o.value for o in options["priority"]] == ["Highest", "High", "Medium", "Low", "Lowest"]
    assignees = {o.value: o.label for o in options["assignee"]}
    assert assignees[ALICE] == "Alice Émond <alice@example.com>"


# --------------------------------------------------------------------------- errors


async def test_bad_token_is_an_auth_error_with_jiras_message(sandbox: ThreadedServer) -> None:
    from pydantic import SecretStr

    jira = JiraClient(connection(sandbox.url, token=SecretStr("wrong-token")))
    try:
        with pytest.raises(AuthError) as caught:
            await jira.check()
    finally:
        await jira.aclose()
    assert caught.value.status == 401
    assert "Client must be authenticated to access this resource." in str(caught.value)
    assert "wrong-token" not in str(caught.value)


async def test_missing_permission_is_an_auth_error(sandbox: ThreadedServer) -> None:
    from pydantic import SecretStr

    conn = connection(sandbox.url, email="readonly@example.com", token=SecretStr("readonly-token"))
    jira = JiraClient(conn)
    try:
        with pytest.raises(AuthError) as caught:
            await jira.create_ticket(make_anomaly(), {})
    finally:
        await jira.aclose()
    assert caught.value.status == 403
    assert "You do not have permission to create issues in this project." in caught.value.message


async def test_unknown_issue_is_not_found(client: JiraClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_ticket("DQ-404")
    assert "Issue does not exist or you do not have permission to see it." in str(caught.value)
    with pytest.raises(NotFoundError):
        await client.add_note(TicketRef("DQ-404", "1"), "hello")


async def test_refused_fields_are_a_validation_error_with_field_errors(
    client: JiraClient, anomaly: Anomaly
) -> None:
    with pytest.raises(ValidationError) as caught:
        await client.create_ticket(
            anomaly, {"project": "NOPE", "issuetype": "Epic", "priority": "Urgent"}
        )
    errors = caught.value.field_errors
    assert caught.value.status == 400
    assert errors["project"] == "Specify a valid project ID or key"
    assert errors["issuetype"] == "Specify a valid issue type"
    assert errors["priority"] == "Priority name 'Urgent' is not valid"
    assert "Specify a valid project ID or key" in caught.value.message


async def test_rate_limit_on_a_write_carries_retry_after(
    sandbox: ThreadedServer, client: JiraClient, anomaly: Anomaly
) -> None:
    sandbox.app.state.faults.update({"force_status": 429, "force_count": 1})  # type: ignore[attr-defined]
    with pytest.raises(RateLimitedError) as caught:
        await client.create_ticket(anomaly, {})
    assert caught.value.retry_after == 1.0
    assert caught.value.status == 429
    assert "Rate limit exceeded." in caught.value.message


async def test_a_read_retries_transient_failures(
    sandbox: ThreadedServer, client: JiraClient
) -> None:
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    with fast_retries():
        faults.update({"force_status": 503, "force_count": 2})
        assert await client.check() == "demo@example.com"
        faults.update({"force_status": 503, "force_count": 3})
        with pytest.raises(UnavailableError) as caught:
            await client.check()
    assert caught.value.status == 503
    assert caught.value.ambiguous is False


async def test_a_write_is_never_retried(
    sandbox: ThreadedServer, client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    sandbox.app.state.faults.update({"force_status": 503, "force_count": 1})  # type: ignore[attr-defined]
    with pytest.raises(UnavailableError) as caught:
        await client.create_ticket(anomaly, {})
    assert caught.value.status == 503
    assert "Service Unavailable" in caught.value.message
    assert emulator.issues == {}


async def test_credentials_never_show_in_reprs_or_errors(sandbox: ThreadedServer) -> None:
    import base64

    from pydantic import SecretStr

    secret = "s3cr3t-T0ken-value"
    conn = connection(sandbox.url, token=SecretStr(secret))
    jira = JiraClient(conn)
    encoded = base64.b64encode(f"demo@example.com:{secret}".encode()).decode()
    try:
        with pytest.raises(AuthError) as caught:
            await jira.get_ticket("DQ-1")
    finally:
        await jira.aclose()
    for text in (repr(jira), str(jira), repr(conn), str(caught.value), repr(caught.value)):
        assert secret not in text
        assert encoded not in text


async def test_https_sandbox_with_its_own_ca_bundle(tmp_path: Path) -> None:
    """``verify_tls`` as a CA bundle path: how a client trusts ``anomaly-desk sandbox --tls``."""
    import trustme

    from anomaly_desk.sandbox.app import create_app

    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    cert_file, ca_file = tmp_path / "cert.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    authority.cert_pem.write_to_path(str(ca_file))
    server = ThreadedServer(create_app(), ssl_certfile=str(cert_file), ssl_keyfile=str(cert_file))
    with server:
        assert server.url.startswith("https://")
        trusting = JiraClient(connection(server.url, verify_tls=str(ca_file)))
        distrusting = JiraClient(connection(server.url))
        try:
            assert await trusting.check() == "demo@example.com"
            with pytest.raises(UnavailableError, match="TLS certificate not trusted"):
                await distrusting.check()
        finally:
            await trusting.aclose()
            await distrusting.aclose()


async def test_has_note_finds_a_comment_already_on_the_issue(
    client: JiraClient, anomaly: Anomaly
) -> None:
    jira = client
    ticket = await jira.create_ticket(anomaly, {"summary": "has_note"})
    note = "[2026-11-20 10:30:00 UTC] Qualytics Anomaly Status: Acknowledged"
    tag = NoteTag("job-a")
    assert await jira.has_note(ticket, note, tag) is False
    await jira.add_note(ticket, note, tag)
    assert await jira.has_note(ticket, note, tag) is True
    # the same text is not enough: another job's identical note is not on the issue
    assert await jira.has_note(ticket, note, NoteTag("job-b")) is False
