"""The create form built from the provider's field metadata (#15), against a real receiver and
the sandbox, driven with Pilot: every custom field type of the sandbox's ``FIN`` project filled
and read back from Jira, a required field left empty refused before anything is sent, people
searched as one types, a ServiceNow problem, and ``--as``. Plus the receiver's routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList, Select, SelectionList

from anomaly_desk.cli import build_parser
from anomaly_desk.cli import main as cli_main
from anomaly_desk.core.formatting.adf import adf_to_text
from anomaly_desk.core.views import CreateFormView, TicketTypePage, UserPage
from anomaly_desk.tui.client import DeskClient
from anomaly_desk.tui.screens.create_ticket import CreateTicketScreen
from anomaly_desk.tui.widgets.form_fields import FormField
from anomaly_desk.tui.widgets.user_field import UserField
from tests.integration.conftest import ENV, start_receiver, write_config
from tests.support import FIXTURES, ThreadedServer
from tests.tui.test_forms import (
    ALICE,
    ANOMALY,
    NOT_YET,
    SIZE,
    Host,
    Live,
    choose,
    field,
    pick_user,
    screen_text,
    settle,
    type_into,
    until,
)

CAROL = "5d5f8ab1c2e3f40c8a1b2c3d"  # seeded Jira user "Carol Nguyen"
DANA = "712020:8c1f4e2a-6b3d-4a5e-9f70-2d4c6b8a0e13"  # dana@example.com, one active account


def receiver(
    tmp_path: Path, sandbox: ThreadedServer, project: str = "DQ", operator_email: str = ""
) -> Iterator[Live]:
    """A receiver whose Jira connection creates in ``project``, fed the first webhook."""
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    text = config.read_text().replace('project = "DQ"', f'project = "{project}"')
    if operator_email:  # a top-level key: before the first table
        text = f'operator_email = "{operator_email}"\n{text}'
    config.write_text(text)
    server = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=server.url, timeout=30)
    body = (FIXTURES / "webhooks" / "01-flow-anomalies-detected.json").read_bytes()
    api.post(
        "/webhooks/qualytics", content=body, headers={"content-type": "application/json"}
    ).raise_for_status()
    try:
        yield Live(server.url, sandbox, api)
    finally:
        api.close()
        server.stop()


@pytest.fixture
def finance(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    """Jira creates in FIN: custom fields of every type, Region required."""
    yield from receiver(tmp_path, sandbox, "FIN")


@pytest.fixture
def live(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    yield from receiver(tmp_path, sandbox)


def jira_get(live: Live, path: str) -> Any:
    with httpx.Client(base_url=live.sandbox.url, auth=("demo@example.com", "demo-token")) as c:
        return c.get(path).raise_for_status().json()


def snow_row(live: Live, table: str, sys_id: str) -> dict[str, Any]:
    """A ServiceNow row with values and display values, from the Table API."""
    with httpx.Client(
        base_url=live.sandbox.url, auth=("admin", "demo"), headers={"accept": "application/json"}
    ) as c:
        params = {"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"}
        response = c.get(f"/api/now/table/{table}/{sys_id}", params=params)
        row: dict[str, Any] = response.raise_for_status().json()["result"]
        return row


def form_order(app: Host) -> list[str]:
    """The form's field ids as shown, top to bottom (the type row first)."""
    return [f.spec.name for f in app.screen.query(FormField)]


async def tick(pilot: Pilot, name: str, *labels: str) -> None:
    """Tick ``labels`` in a multi-option list (space on each)."""
    chooser = pilot.app.screen.query_one(f"#{name}", SelectionList)
    chooser.focus()
    await pilot.pause()
    for index in range(chooser.option_count):
        if str(chooser.get_option_at_index(index).prompt) in labels:
            chooser.highlighted = index
            await pilot.press("space")
    await pilot.pause()


# -- Jira: every custom field type ---------------------------------------------------------------


async def test_every_custom_field_type_filled_from_the_form(finance: Live) -> None:
    client = finance.client()
    app = Host(
        lambda: CreateTicketScreen(client, finance.anomaly(), finance.connections("jira")), client
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        order = form_order(app)
        # the type row, then the required fields (the required custom one first), then the rest
        assert order[:4] == ["issuetype", "project", "customfield_10050", "summary"]
        assert "Region *" in screen_text(app)
        assert field(app, "customfield_10051").value == "10112"  # Severity's default: S3

        await choose(pilot, "customfield_10050", "APAC")  # select
        await choose(pilot, "customfield_10051", "S1")  # radio buttons
        await tick(pilot, "customfield_10052", "Warehouse", "CRM")  # multi-select
        await tick(pilot, "customfield_10053", "Freshness")  # checkboxes
        await choose(pilot, "customfield_10054", "Finance")  # cascading: parent…
        await choose(pilot, "customfield_10054-child", "Treasury")  # …and its child
        await pick_user(pilot, "customfield_10055", "carol", "Carol Nguyen <carol@example.com>")
        await type_into(pilot, "#customfield_10056", "1250.5")  # number
        await type_into(pilot, "#customfield_10057", "2026-12-15")  # date
        await type_into(pilot, "#customfield_10058", "2026-12-01T08:30:00")  # date-time
        await type_into(pilot, "#customfield_10059", "ledger, month end")  # labels
        await type_into(pilot, "#customfield_10060", "GL-4411")  # text field
        await type_into(pilot, "#customfield_10061", "Late feed from the ERP")  # text area
        await pick_user(pilot, "assignee", "alice", "Alice Émond <alice@example.com>")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)

    link = app.result
    assert link.ticket_key == "FIN-1"
    assert [s.ticket_key for s in finance.anomaly().links] == ["FIN-1"]
    fields = jira_get(finance, "/rest/api/3/issue/FIN-1")["fields"]
    assert fields["customfield_10050"]["value"] == "APAC"
    assert fields["customfield_10051"]["value"] == "S1"
    assert [o["value"] for o in fields["customfield_10052"]] == ["Warehouse", "CRM"]
    assert [o["value"] for o in fields["customfield_10053"]] == ["Freshness"]
    team = fields["customfield_10054"]
    assert (team["value"], team["child"]["value"]) == ("Finance", "Treasury")
    assert fields["customfield_10055"]["accountId"] == CAROL
    assert fields["customfield_10056"] == 1250.5
    assert fields["customfield_10057"] == "2026-12-15"
    assert fields["customfield_10058"].startswith("2026-12-01T08:30:00")
    assert fields["customfield_10059"] == ["ledger", "month-end"]
    assert fields["customfield_10060"] == "GL-4411"
    assert adf_to_text(fields["customfield_10061"]).strip() == "Late feed from the ERP"
    assert fields["assignee"]["accountId"] == ALICE
    assert fields["summary"] == "[DQ] orders: customer_id is null in 1,204 records"


async def test_a_required_field_left_empty_is_refused_before_sending(finance: Live) -> None:
    client = finance.client()
    app = Host(
        lambda: CreateTicketScreen(client, finance.anomaly(), finance.connections("jira")), client
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CreateTicketScreen)
        await type_into(pilot, "#customfield_10060", "GL-4411")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Fix the marked fields. Required: Region." in screen_text(app)
        assert field(app, "customfield_10050").error == "Region is required"
        assert app.focused is screen.query_one("#customfield_10050", Select)  # the first
        assert screen.sent == 0  # no request was made
        assert app.result is NOT_YET
        # filled, it goes through
        await choose(pilot, "customfield_10050", "EMEA")
        assert "Fix the marked fields" not in screen_text(app)  # the note goes with the mark
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert screen.sent == 1
    fields = jira_get(finance, "/rest/api/3/issue/FIN-1")["fields"]
    assert fields["customfield_10050"]["value"] == "EMEA"
    assert fields["customfield_10060"] == "GL-4411"


async def test_people_are_searched_while_typing_and_the_pick_sets_the_account_id(
    live: Live,
) -> None:
    client = live.client()
    app = Host(lambda: CreateTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assignee = app.screen.query_one("#field-assignee", UserField)
        app.screen.query_one("#assignee").focus()
        await pilot.press(*"ali")  # one search for the pause after the last key, not three
        results = app.screen.query_one("#assignee-results", OptionList)
        await until(pilot, lambda: results.option_count > 0)
        assert assignee.searches == 1
        assert assignee.searched == "ali"
        assert "Alice Émond <alice@example.com>" in screen_text(app)
        await pilot.press("down", "enter")
        await until(pilot, lambda: assignee.picked is not None)
        assert assignee.value == ALICE
        assert app.screen.query_one("#assignee").value == "Alice Émond <alice@example.com>"
        assert results.option_count == 0  # the list goes once someone is picked
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    fields = live.jira_issue(app.result.ticket_key)["fields"]
    assert fields["assignee"]["accountId"] == ALICE


# -- ServiceNow: another table ---------------------------------------------------------------


async def test_a_servicenow_problem_from_the_form(live: Live) -> None:
    client = live.client()
    app = Host(
        lambda: CreateTicketScreen(client, live.anomaly(), live.connections("servicenow")), client
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert field(app, "table").value == "incident"
        assert "caller_id" in form_order(app)
        await type_into(pilot, "#short_description", "Orders nulls: root cause")
        await choose(pilot, "table", "Problem")
        await settle(pilot)
        order = form_order(app)
        assert "cause_notes" in order  # the problem's own fields
        assert "caller_id" not in order
        assert field(app, "short_description").value == "Orders nulls: root cause"  # kept
        await type_into(pilot, "#cause_notes", "The ERP export ran twice")
        await pick_user(pilot, "assigned_to", "alice", "Alice Nguyen <alice.nguyen@example.com>")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)

    link = app.result
    assert link.ticket_key.startswith("PRB")
    row = snow_row(live, "problem", link.ticket_id)
    assert row["short_description"]["value"] == "Orders nulls: root cause"
    assert row["cause_notes"]["value"] == "The ERP export ran twice"
    assert row["assigned_to"]["display_value"] == "Alice Nguyen"


# -- --as: who the ticket is raised for ---------------------------------------------------------


async def test_as_raises_the_ticket_for_the_operator(live: Live) -> None:
    client = DeskClient(live.url, raised_for="dana@example.com")
    app = Host(lambda: CreateTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Raised for dana@example.com" in screen_text(app)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    fields = live.jira_issue(app.result.ticket_key)["fields"]
    assert fields["reporter"]["accountId"] == DANA


@pytest.fixture
def dana_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    """``operator_email = "dana@example.com"`` in the configuration."""
    yield from receiver(tmp_path, sandbox, operator_email="dana@example.com")


async def test_the_configured_operator_email_is_shown_and_used(dana_desk: Live) -> None:
    form = dana_desk.api.get("/api/connections/jira/form").raise_for_status().json()
    assert form["operator_email"] == "dana@example.com"
    client = dana_desk.client()  # no --as: the receiver's setting
    app = Host(
        lambda: CreateTicketScreen(client, dana_desk.anomaly(), dana_desk.connections("jira")),
        client,
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Raised for dana@example.com" in screen_text(app)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    fields = dana_desk.jira_issue(app.result.ticket_key)["fields"]
    assert fields["reporter"]["accountId"] == DANA


def test_the_create_refuses_an_as_that_is_no_address(live: Live) -> None:
    response = live.api.post(
        f"/api/anomalies/{ANOMALY}/tickets",
        json={"connection": "jira", "fields": {"summary": "x"}, "as": "dana"},
    )
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["as"]
    assert live.anomaly().links == []


# -- the receiver's routes -----------------------------------------------------------------------


def test_types_form_and_people_over_http(finance: Live) -> None:
    api = finance.api
    types = TicketTypePage.model_validate_json(api.get("/api/connections/jira/types").content)
    assert [t.name for t in types.items] == ["Task", "Bug", "Story"]
    answer = api.get("/api/connections/jira/form", params={"type": "10002"})
    form = CreateFormView.model_validate_json(answer.raise_for_status().content)
    assert (form.connection, form.ticket_type.name) == ("jira", "Bug")
    kinds = {f.id: f.kind for f in form.fields}
    assert kinds["customfield_10054"] == "cascading"
    assert kinds["customfield_10055"] == "user"
    assert [f.id for f in form.fields if f.required] == ["customfield_10050", "summary"]
    people = UserPage.model_validate_json(
        api.get("/api/connections/jira/users", params={"q": "carol"}).content
    )
    assert [(u.id, u.email) for u in people.items] == [(CAROL, "carol@example.com")]
    assert api.get("/api/connections/jira/users").status_code == 400  # no q
    assert api.get("/api/connections/nope/types").status_code == 422  # unknown connection
    missing = api.get("/api/connections/servicenow/form", params={"type": "nope"})
    assert missing.status_code in (404, 422, 502)
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_what_the_create_could_not_do_is_told(live: Live) -> None:
    """Sam has two active Jira accounts: the reporter cannot be chosen for him, and the
    dashboard says so when the issue is created (the create's warnings)."""
    client = DeskClient(live.url, raised_for="sam@example.com")
    app = Host(lambda: CreateTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
        await pilot.pause()
        told = [n for n in app._notifications if n.severity == "warning"]
    assert app.result.warnings
    assert len(told) == 1
    assert told[0].title == f"{app.result.ticket_key} created, not quite as asked"
    assert "sam@example.com" in told[0].message
    assert told[0].message == "\n".join(app.result.warnings)


def test_dashboard_as_wants_an_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--url", "http://127.0.0.1:9", "--as", "dana"]) == 2  # before anything starts
    assert "--as wants an email address" in capsys.readouterr().err
    args = build_parser().parse_args(["dashboard", "--as", "dana@example.com"])
    assert args.raised_for == "dana@example.com"
