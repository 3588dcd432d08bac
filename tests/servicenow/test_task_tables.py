"""Tickets on task tables besides incident, their create forms, the caller and user search:
our client against the sandbox's emulator over loopback HTTP (issue #15)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.providers.base import NoteTag, TicketRef, TicketText
from anomaly_desk.core.providers.errors import UnavailableError, ValidationError
from anomaly_desk.core.providers.servicenow import TRUNCATED, ServiceNowClient
from anomaly_desk.core.vocabulary import FieldKind
from anomaly_desk.sandbox.servicenow import seed_id
from tests.servicenow.conftest import PASSWORD, connection, make_anomaly
from tests.support import ThreadedServer

ALICE = seed_id("sys_user", "alice.nguyen")
GROUP = seed_id("sys_user_group", "Data Platform")
TAG = NoteTag(nonce="n-1")
TABLES = ["incident", "problem", "change_request", "rm_defect", "rm_enhancement"]
# what a create on each table needs besides a short description, and the number's prefix
EXTRA: dict[str, tuple[dict[str, str], str]] = {
    "problem": ({}, "PRB"),
    "change_request": ({"risk_impact_analysis": "Loader only; no schema change"}, "CHG"),
    "rm_defect": ({"priority": "2"}, "DFCT"),
    "rm_enhancement": ({}, "ENHC"),
}


@pytest.fixture
async def snc(sandbox: ThreadedServer) -> AsyncIterator[ServiceNowClient]:
    client = ServiceNowClient(connection(sandbox.url, tables=TABLES), Platform())
    yield client
    await client.aclose()


def rows(sandbox: ThreadedServer, table: str, query: str = "") -> list[dict[str, Any]]:
    """What the instance holds, read straight from its Table API as admin (values only)."""
    with httpx.Client(base_url=sandbox.url, auth=("admin", PASSWORD)) as http:
        answer = http.get(f"/api/now/table/{table}", params={"sysparm_query": query})
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["result"]
    return [{k: v["value"] if isinstance(v, dict) else v for k, v in r.items()} for r in result]


def notes(sandbox: ThreadedServer, sys_id: str) -> list[str]:
    found = rows(sandbox, "sys_journal_field", f"element_id={sys_id}^element=work_notes")
    return [row["value"] for row in found]


# -- ticket types and forms -------------------------------------------------------------------


async def test_ticket_types_are_the_offered_tables_labelled_by_the_instance(
    snc: ServiceNowClient,
) -> None:
    types = await snc.ticket_types()
    assert [(t.id, t.name) for t in types] == [
        ("incident", "Incident"),
        ("problem", "Problem"),
        ("change_request", "Change Request"),
        ("rm_defect", "Defect"),
        ("rm_enhancement", "Enhancement"),
    ]


async def test_problem_form_from_the_dictionary_required_first(snc: ServiceNowClient) -> None:
    form = await snc.create_form("problem")
    assert form.connection == "servicenow"
    assert (form.ticket_type.id, form.ticket_type.name) == ("problem", "Problem")
    first = form.fields[0]
    assert (first.id, first.name, first.kind, first.required, first.max_length) == (
        "short_description",
        "Problem statement",  # the problem's own dictionary row wins over task's
        FieldKind.TEXT,
        True,
        160,
    )
    assert [f.id for f in form.fields if f.required] == ["short_description"]
    by_id = {f.id: f for f in form.fields}
    assert by_id["cause_notes"].kind == FieldKind.TEXTAREA
    assert by_id["description"].kind == FieldKind.TEXTAREA
    assert by_id["assigned_to"].kind == FieldKind.USER
    assert by_id["assignment_group"].kind == FieldKind.REFERENCE
    assert by_id["due_date"].kind == FieldKind.DATETIME
    assert [(c.value, c.label) for c in by_id["known_error"].choices] == [
        ("true", "true"),
        ("false", "false"),
    ]
    assert by_id["resolution_code"].kind == FieldKind.OPTION
    assert [c.value for c in by_id["resolution_code"].choices] == [
        "fix_applied",
        "risk_accepted",
        "duplicate",
        "canceled",
    ]
    assert [c.label for c in by_id["impact"].choices] == ["1 - High", "2 - Medium", "3 - Low"]
    assert by_id["impact"].default == "3"
    for never in ("number", "state", "work_notes", "correlation_id", "sys_created_on"):
        assert never not in by_id


async def test_defect_form_follows_its_parents_to_task(snc: ServiceNowClient) -> None:
    form = await snc.create_form("rm_defect")
    by_id = {f.id: f for f in form.fields}
    assert [f.id for f in form.fields if f.required] == ["priority"]  # rm_defect's own row
    assert by_id["priority"].kind == FieldKind.OPTION
    assert [c.value for c in by_id["priority"].choices] == ["1", "2", "3", "4", "5"]
    assert by_id["story_points"].kind == FieldKind.NUMBER  # from rm_task, its parent
    assert by_id["u_found_in"].custom
    assert not by_id["priority"].custom
    default = await snc.create_form()
    assert default.ticket_type.id == "incident"
    assert {"caller_id", "category"} <= {f.id for f in default.fields}


async def test_a_table_the_instance_lacks_or_a_bad_name_is_a_field_error(
    snc: ServiceNowClient,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await snc.create_form("u_no_such_table")
    assert set(caught.value.field_errors) == {"table"}
    with pytest.raises(ValidationError) as caught:
        await snc.create_ticket(make_anomaly(), {"table": "incident/../sys_user", "summary": "x"})
    assert set(caught.value.field_errors) == {"table"}


# -- a ticket on each table ---------------------------------------------------------------------


@pytest.mark.parametrize("table", list(EXTRA))
async def test_a_ticket_on_each_table_with_notes_and_two_way(
    snc: ServiceNowClient, sandbox: ThreadedServer, table: str
) -> None:
    extra, prefix = EXTRA[table]
    anomaly = make_anomaly(700 + len(table))
    fields: dict[str, Any] = {"table": table, "short_description": f"Nulls ({table})", **extra}
    ticket = await snc.create_ticket(anomaly, fields)
    assert ticket.key.startswith(prefix)
    assert ticket.table == table
    assert ticket.url.endswith(f"{table}.do%3Fsys_id%3D{ticket.id}")
    stored = rows(sandbox, table, f"sys_id={ticket.id}")[0]
    assert stored["correlation_id"] == str(anomaly.id)
    assert "1,204 records" in stored["description"]
    assert [t.id for t in await snc.find_created(anomaly.id)] == [ticket.id]

    ref = TicketRef(ticket.key, ticket.id, table=table)
    await snc.add_note(ref, "Qualytics Anomaly Status: Acknowledged")
    await snc.add_note(TicketRef(ticket.key, ""), "by number")  # the prefix finds the table
    assert notes(sandbox, ticket.id) == ["Qualytics Anomaly Status: Acknowledged", "by number"]
    assert await snc.has_note(ref, "by number", TAG)
    assert (await snc.get_ticket(ticket.key)).id == ticket.id

    [change] = await snc.changes([ref], None)
    assert (change.ticket.key, change.done) == (ticket.key, False)
    assert await snc.move_to_done(ref, "Fixed upstream", TAG) is None
    [change] = await snc.changes([ref], None)
    assert change.done, change.ticket.state
    assert "already" in (await snc.move_to_done(ref, "again", TAG) or "")


async def test_done_and_reopen_use_each_tables_states(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    problem = await snc.create_ticket(make_anomaly(1), {"table": "problem", "summary": "p"})
    ref = TicketRef(problem.key, problem.id, table="problem")
    await snc.move_to_done(ref, "Root cause fixed", TAG)
    stored = rows(sandbox, "problem", f"sys_id={problem.id}")[0]
    assert (stored["state"], stored["close_notes"]) == ("106", "Root cause fixed")
    assert await snc.reopen(ref, "It came back", TAG) is None
    assert rows(sandbox, "problem", f"sys_id={problem.id}")[0]["state"] == "104"

    change = await snc.create_ticket(
        make_anomaly(2), {"table": "change_request", **EXTRA["change_request"][0], "summary": "c"}
    )
    cref = TicketRef(change.key, change.id, table="change_request")
    await snc.move_to_done(cref, "Deployed", TAG)
    stored = rows(sandbox, "change_request", f"sys_id={change.id}")[0]
    # the configured "Solution provided" is not a change's code: its first one is used
    assert (stored["state"], stored["close_code"], stored["active"]) == ("3", "successful", "false")
    answer = await snc.reopen(cref, "again", TAG)
    assert (
        answer == f"{change.key} is Closed: a closed change request cannot be reopened; left alone"
    )

    defect = await snc.create_ticket(
        make_anomaly(3), {"table": "rm_defect", "summary": "d", "priority": "2 - High"}
    )
    assert rows(sandbox, "rm_defect", f"sys_id={defect.id}")[0]["priority"] == "2"  # by label
    dref = TicketRef(defect.key, defect.id, table="rm_defect")
    await snc.move_to_done(dref, "", TAG)
    assert rows(sandbox, "rm_defect", f"sys_id={defect.id}")[0]["state"] == "3"


async def test_a_change_request_goes_through_the_change_api(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    fields = {"table": "change_request", "summary": "Reload", "type": "emergency"}
    fields.update(EXTRA["change_request"][0])
    ticket = await snc.create_ticket(make_anomaly(), fields)
    assert ticket.key.startswith("CHG")
    assert ticket.state == "New"
    # the Change Management API's endpoint sets the type (D5: an emergency goes to
    # /change/emergency, no longer silently to /change/normal)
    assert rows(sandbox, "change_request", f"sys_id={ticket.id}")[0]["type"] == "emergency"


# -- refusals -------------------------------------------------------------------------------


async def test_a_table_the_connection_does_not_offer_is_refused_before_the_write(
    snc: ServiceNowClient,
) -> None:
    """An interrupted create is looked for on the connection's tables only: a ticket on any
    other table could be made twice after a crash, so none is made there."""
    with pytest.raises(ValidationError) as caught:
        await snc.create_ticket(make_anomaly(), {"table": "sc_task", "short_description": "x"})
    assert "not one of this connection's tables" in caught.value.field_errors["table"]


async def test_a_mandatory_dictionary_field_is_refused_before_the_write(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    with pytest.raises(ValidationError) as caught:
        await snc.create_ticket(make_anomaly(), {"table": "rm_defect", "summary": "no priority"})
    assert caught.value.field_errors == {"priority": "Priority is mandatory on Defect"}
    assert rows(sandbox, "rm_defect") == []


async def test_a_data_policy_refusal_names_the_field_by_its_id(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    with pytest.raises(ValidationError) as caught:
        await snc.create_ticket(make_anomaly(), {"table": "change_request", "summary": "x"})
    assert caught.value.status == 403
    assert "mandatory: Risk and impact analysis" in caught.value.message
    # the label is not the id's words: the dictionary maps it
    assert caught.value.field_errors == {"risk_impact_analysis": "mandatory"}
    assert rows(sandbox, "change_request") == []


async def test_unknown_columns_are_refused_and_dictionary_columns_taken(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    with pytest.raises(ValidationError) as caught:
        await snc.create_ticket(
            make_anomaly(), {"table": "problem", "summary": "x", "colour": "red"}
        )
    assert set(caught.value.field_errors) == {"colour"}
    ticket = await snc.create_ticket(
        make_anomaly(),
        {
            "table": "problem",
            "summary": "x",
            "cause_notes": "a late upstream job",
            "known_error": True,
            "assigned_to": "alice.nguyen",
        },
    )
    stored = rows(sandbox, "problem", f"sys_id={ticket.id}")[0]
    assert (stored["cause_notes"], stored["known_error"], stored["assigned_to"]) == (
        "a late upstream job",
        "true",
        ALICE,
    )


# -- text: templates and limits -------------------------------------------------------------


async def test_long_short_description_is_cut_with_a_marker_and_a_warning(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    ticket = await snc.create_ticket(
        make_anomaly(), {"table": "rm_enhancement", "summary": "word " * 60}
    )
    stored = rows(sandbox, "rm_enhancement", f"sys_id={ticket.id}")[0]
    assert len(stored["short_description"]) == 160
    assert stored["short_description"].endswith(TRUNCATED)
    assert ticket.warnings == ("short description cut to 160 characters",)


async def test_a_template_text_replaces_title_and_anomaly_block(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    text = TicketText(title="[DQ] orders: nulls", description="Templated body.\n\nSecond part.")
    ticket = await snc.create_ticket(make_anomaly(), {"table": "problem"}, text=text)
    stored = rows(sandbox, "problem", f"sys_id={ticket.id}")[0]
    assert stored["short_description"] == "[DQ] orders: nulls"
    assert stored["description"] == "Templated body.\n\nSecond part."
    mine = await snc.create_ticket(
        make_anomaly(), {"table": "problem", "summary": "Mine"}, text=text
    )
    assert mine.summary == "Mine"  # the form's own summary wins


# -- the caller and people --------------------------------------------------------------------


async def test_the_caller_is_the_one_active_user_with_the_email(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    ticket = await snc.create_ticket(
        make_anomaly(), {"summary": "x"}, operator_email="alice.nguyen@example.com"
    )
    assert ticket.warnings == ()
    assert ticket.extra["caller_id"] == ALICE
    assert rows(sandbox, "incident", f"sys_id={ticket.id}")[0]["caller_id"] == ALICE


@pytest.mark.parametrize(
    ("email", "warning"),
    [
        ("ana@example.com", "caller left empty: 2 active ServiceNow users have ana@example.com"),
        (
            "olga.timer@example.com",
            "caller left empty: the ServiceNow user with olga.timer@example.com is inactive",
        ),
        ("nobody@example.com", "caller left empty: no ServiceNow user has nobody@example.com"),
        (
            "x@example.com^ORactive=true",
            "caller left empty: 'x@example.com^ORactive=true' cannot be looked up safely",
        ),
    ],
)
async def test_the_caller_is_left_empty_with_the_reason(
    snc: ServiceNowClient, sandbox: ThreadedServer, email: str, warning: str
) -> None:
    ticket = await snc.create_ticket(make_anomaly(), {"summary": "x"}, operator_email=email)
    assert ticket.warnings == (warning,)
    assert rows(sandbox, "incident", f"sys_id={ticket.id}")[0]["caller_id"] == ""


async def test_a_table_without_a_caller_says_so(snc: ServiceNowClient) -> None:
    ticket = await snc.create_ticket(
        make_anomaly(), {"table": "problem", "summary": "x"}, operator_email="alice@example.com"
    )
    assert ticket.warnings == ("caller not set: a problem has no caller field (alice@example.com)",)


async def test_user_search_is_live_and_active_only(snc: ServiceNowClient) -> None:
    found = await snc.find_users("ana")
    assert [(u.name, u.email) for u in found] == [
        ("Ana Lopez", "ana@example.com"),
        ("Ana Lopez", "ana@example.com"),
    ]
    assert [u.id for u in await snc.find_users("alice.nguyen@")] == [ALICE]
    assert await snc.find_users("olga") == []  # inactive
    assert len(await snc.find_users("", limit=3)) == 3
    with pytest.raises(ValidationError):
        await snc.find_users("a^ORactive=false")


async def test_linking_an_existing_problem_by_number_finds_its_table(
    snc: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    made = await snc.create_ticket(make_anomaly(1), {"table": "problem", "summary": "earlier"})
    linked = await snc.link(make_anomaly(2), made.key.lower())
    assert (linked.key, linked.table) == (made.key, "problem")
    [note] = notes(sandbox, made.id)
    assert note == "Linked to Qualytics anomaly 2: https://acme.qualytics.io/anomalies/2"
    assert "https://acme.qualytics.io/anomalies/2" in rows(sandbox, "problem")[0]["description"]
    # a link stored before tickets had a table: the number's prefix still finds it
    await snc.add_note(TicketRef(made.key, made.id), "old link")
    assert notes(sandbox, made.id)[-1] == "old link"


async def test_an_unanswered_create_is_looked_for_on_its_own_table() -> None:
    """The network only is simulated: the POST of a problem gets no answer (ambiguous), and
    the search for it afterwards asks the problem table alone."""
    found = {"sys_id": {"value": "a" * 32}, "number": {"value": "PRB0040007"}}
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            raise httpx.ReadTimeout("no answer", request=request)
        if path.endswith("/sys_dictionary"):
            row = {"name": "problem", "element": "", "column_label": "Problem"}
            return httpx.Response(200, json={"result": [row]})
        if path.endswith("/sys_db_object"):
            return httpx.Response(200, json={"result": []})
        asked.append(f"{path}?{request.url.params['sysparm_query']}")
        return httpx.Response(200, json={"result": [found]})

    client = ServiceNowClient(
        connection("https://acme.service-now.com", tables=TABLES),
        transport=httpx.MockTransport(handle),
    )
    with pytest.raises(UnavailableError) as caught:
        await client.create_ticket(make_anomaly(42), {"table": "problem", "summary": "x"})
    assert caught.value.ambiguous
    [ticket] = await client.find_created(42)
    assert (ticket.key, ticket.table) == ("PRB0040007", "problem")
    assert asked == [
        "/api/now/table/problem?correlation_id=42^correlation_display=Anomaly Desk"
        "^ORDERBYsys_created_on"
    ]
    await client.aclose()


def test_table_settings_are_identifiers() -> None:
    conn = connection("https://acme.service-now.com", table="problem", tables=["incident"])
    assert ServiceNowClient(conn).tables == ["problem", "incident"]  # the default first
    for bad in ("incident?x=1", "1table", "sys user", ""):
        with pytest.raises(ValueError, match="not a ServiceNow table name"):
            connection("https://acme.service-now.com", tables=[bad])
    with pytest.raises(ValueError, match="not a ServiceNow table name"):
        connection("https://acme.service-now.com", table="incident/../x")
