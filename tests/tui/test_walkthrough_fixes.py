"""What a tmux walkthrough of the dashboard found (issues #15 forms, #16 retention), each fixed
and driven with Pilot against a real receiver and the sandbox on loopback: a ServiceNow defect's
required priority, the Jira project shown read-only, who a ticket is raised for said before the
create, the people field's keys, the rules screen at 80 and 120 columns, bad values named, and
the cold archive's notices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from textual.widgets import DataTable, Input, OptionList

from anomaly_desk.core.views import CreateFormView
from anomaly_desk.tui.screens.create_ticket import CreateTicketScreen
from anomaly_desk.tui.screens.rules import RulesScreen
from anomaly_desk.tui.screens.spec_form import form_specs
from anomaly_desk.tui.widgets.form_fields import ChoiceField, DerivedField
from anomaly_desk.tui.widgets.user_field import UserField
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import FIXTURES, ThreadedServer
from tests.tui.conftest import dashboard, ready, wait_for
from tests.tui.test_create_form import jira_get, snow_row
from tests.tui.test_forms import (
    NOT_YET,
    SIZE,
    Host,
    Live,
    choose,
    field,
    screen_text,
    settle,
    type_into,
    until,
)
from tests.tui.test_main_keys import toasts
from tests.tui.test_rules_screen import RULES

TABLES = 'tables = ["incident", "problem", "change_request", "rm_defect"]'
OPERATOR = "alice@example.com"


def start(tmp_path: Path, sandbox: ThreadedServer, project: str = "DQ", extra: str = "") -> Live:
    """A receiver (operator alice, ServiceNow offering a defect too) fed the first webhook."""
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, servicenow=TABLES)
    text = config.read_text().replace('project = "DQ"', f'project = "{project}"')
    config.write_text(f'operator_email = "{OPERATOR}"\n{text}{extra}')
    server = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=server.url, timeout=30)
    body = (FIXTURES / "webhooks" / "01-flow-anomalies-detected.json").read_bytes()
    api.post(
        "/webhooks/qualytics", content=body, headers={"content-type": "application/json"}
    ).raise_for_status()
    live = Live(server.url, sandbox, api)
    live.server = server  # type: ignore[attr-defined]
    return live


def stop(live: Live) -> None:
    live.api.close()
    live.server.stop()  # type: ignore[attr-defined]


@pytest.fixture
def walk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    live = start(tmp_path, sandbox)
    try:
        yield live
    finally:
        stop(live)


@pytest.fixture
def fin(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    """Jira creates in FIN (custom fields of every type)."""
    live = start(tmp_path, sandbox, project="FIN")
    try:
        yield live
    finally:
        stop(live)


@pytest.fixture
def ruled(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    live = start(tmp_path, sandbox, extra=RULES)
    try:
        yield live
    finally:
        stop(live)


def snow_app(live: Live) -> Host:
    client = live.client()
    return Host(
        lambda: CreateTicketScreen(client, live.anomaly(), live.connections("servicenow")), client
    )


def jira_app(live: Live) -> Host:
    client = live.client()
    return Host(
        lambda: CreateTicketScreen(client, live.anomaly(), live.connections("jira")), client
    )


def form_of(live: Live, connection: str, kind: str | None = None) -> CreateFormView:
    params = {"type": kind} if kind else {}
    answer = live.api.get(f"/api/connections/{connection}/form", params=params)
    return CreateFormView.model_validate_json(answer.raise_for_status().content)


# -- 1. a ServiceNow defect requires its priority ------------------------------------------------


async def test_a_defect_asks_for_its_required_priority_and_is_created(walk: Live) -> None:
    defect = form_of(walk, "servicenow", "rm_defect")
    assert next(f for f in defect.fields if f.id == "priority").required  # the form says so
    shown = {spec.id: f for spec, f in form_specs(defect, {}, "servicenow")}
    assert (shown["priority"].kind, shown["priority"].required) == ("choice", True)
    incident = {s.id: f for s, f in form_specs(form_of(walk, "servicenow"), {}, "servicenow")}
    assert incident["priority"].kind == "derived"  # an incident still works it out

    app = snow_app(walk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(field(app, "priority"), DerivedField)
        await choose(pilot, "table", "Defect")
        await settle(pilot)
        priority = field(app, "priority")
        assert isinstance(priority, ChoiceField)
        assert "Priority *" in screen_text(app)
        assert "impact × urgency" not in screen_text(app)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Required: Priority." in screen_text(app)
        assert app.screen.sent == 0  # type: ignore[attr-defined]
        await choose(pilot, "priority", "2 - High")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    link = app.result
    row = snow_row(walk, "rm_defect", link.ticket_id)
    assert row["priority"]["value"] == "2"


# -- 2. the Jira project is the connection's -----------------------------------------------------


async def test_the_jira_project_is_shown_read_only_and_the_issue_goes_there(fin: Live) -> None:
    form = form_of(fin, "jira")
    assert "project" not in {f.id for f in form.fields}  # the form is FIN's; no project to pick
    assert fin.connections("jira")[0].project == "FIN"
    app = jira_app(fin)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        project = field(app, "project")
        assert isinstance(project, DerivedField)
        assert project.shown == "FIN"
        assert project.query_one(Input).disabled
        assert "Region *" in screen_text(app)  # FIN's required field is on the form
        app.screen.query_one("#issuetype").focus()
        await pilot.press("tab")  # past the project: nothing to type there
        assert app.focused is not None
        assert app.focused.id != "project"
        await choose(pilot, "customfield_10050", "EMEA")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result.ticket_key == "FIN-1"
    assert jira_get(fin, "/rest/api/3/issue/FIN-1")["fields"]["project"]["key"] == "FIN"


# -- 3. who the ticket is raised for, said before the create -------------------------------------


async def test_the_header_says_beforehand_when_a_type_has_no_caller(walk: Live) -> None:
    app = snow_app(walk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert f"Raised for {OPERATOR} (the caller)" in screen_text(app)
        await choose(pilot, "table", "Problem")
        await settle(pilot)
        text = screen_text(app)
        assert f"No caller will be set for {OPERATOR}: a Problem has no caller field" in text
        assert "Raised for" not in text
        await choose(pilot, "table", "Change Request")
        await settle(pilot)
        assert "a Change Request has no caller field" in screen_text(app)
        await choose(pilot, "table", "Incident")
        await settle(pilot)
        assert f"Raised for {OPERATOR} (the caller)" in screen_text(app)


async def test_the_jira_header_names_the_reporter(walk: Live) -> None:
    app = jira_app(walk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert f"Raised for {OPERATOR} (the reporter)" in screen_text(app)


# -- 4. the people field's keys ------------------------------------------------------------------


async def found(pilot: object, people: UserField) -> None:
    await until(pilot, lambda: people.results.option_count > 0)  # type: ignore[arg-type]


async def test_tab_leaves_the_people_field_and_closes_its_list(walk: Live) -> None:
    app = snow_app(walk)  # an incident: the due date follows the assignee
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        people = app.screen.query_one("#field-assigned_to", UserField)
        results = app.screen.query_one("#assigned_to-results", OptionList)
        assert not results.can_focus
        people.input.focus()
        await pilot.press(*"ali")
        await found(pilot, people)
        assert people.listing
        await pilot.press("tab")
        await pilot.pause()
        assert not people.listing  # the list goes with the focus
        after = app.focused
        assert isinstance(after, Input)
        assert after.id == "due_date"
        await pilot.press(*"2026-12-24")
        assert field(app, "due_date").value == "2026-12-24"  # nothing typed is lost
        assert people.value == "ali"  # typed, not picked

        await pilot.press("shift+tab")  # back into the people field
        assert app.focused is people.input
        await pilot.press("end", "c")  # the focus selected what was typed
        await found(pilot, people)
        await pilot.press("shift+tab")
        await pilot.pause()
        assert not people.listing
        assert app.focused is not people.input
        assert app.focused is not results


async def test_escape_closes_the_list_and_down_enter_pick(walk: Live) -> None:
    app = jira_app(walk)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        people = app.screen.query_one("#field-assignee", UserField)
        people.input.focus()
        await pilot.press(*"ali")
        await found(pilot, people)
        await pilot.press("escape")  # the list, not the dialog
        await pilot.pause()
        assert not people.listing
        assert app.result is NOT_YET
        assert app.focused is people.input
        await pilot.press("backspace", "i")  # typing searches again
        await found(pilot, people)
        await pilot.press("down", "enter")
        await until(pilot, lambda: people.picked is not None)
        assert people.input.value == "Alice Émond <alice@example.com>"
        assert not people.listing
        assert app.result is NOT_YET  # Enter picked; it did not submit
        await pilot.press("escape")  # no list now: the dialog's
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result is None


# -- 5. the rules screen fits 80 and 120 columns -------------------------------------------------


@pytest.mark.parametrize(("size", "columns"), [((80, 24), 6), ((120, 40), 9)])
async def test_the_rules_fit_the_terminal(ruled: Live, size: tuple[int, int], columns: int) -> None:
    ruled.api.post("/api/rules/finance feeds/pause").raise_for_status()
    client = ruled.client()
    app = Host(lambda: RulesScreen(client), client)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        assert isinstance(screen, RulesScreen)
        await until(pilot, lambda: screen.loads > 0)
        await pilot.pause()
        table = screen.query_one("#rules", DataTable)
        assert len(table.columns) == columns
        assert table.virtual_size.width <= table.content_region.width  # nothing clipped
        assert screen.query_one("#dialog").region.right <= size[0]
        states = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
        assert states == ["active", "paused"]
        await pilot.press("down")
        await pilot.pause()
        text = screen_text(app)
        assert "finance feeds · paused by the operator" in text
        assert "throttled 0 · skipped 0" in text


# -- 6. bad values named -------------------------------------------------------------------------


async def test_a_submit_with_bad_values_names_them(fin: Live) -> None:
    app = jira_app(fin)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await choose(pilot, "customfield_10050", "EMEA")
        await type_into(pilot, "#customfield_10056", "lots")
        await type_into(pilot, "#customfield_10057", "next friday")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Fix: Estimated loss (not a number), Fix by (not a date)." in screen_text(app)
        assert app.screen.sent == 0  # type: ignore[attr-defined]


# -- 7. the cold archive's notices ---------------------------------------------------------------


async def test_6_from_open_says_the_list_went_to_all(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=(160, 48), notifications=True) as pilot:
        screen = await ready(pilot)
        assert screen.model.query.filter == "open"
        await pilot.press("6")
        await wait_for(pilot, lambda: screen.model.query.archive, what="the archive on")
        assert screen.model.query.filter == "all"
        await wait_for(pilot, lambda: "Cold archive on" in toasts(pilot), what="the toast")
        assert "so the list shows All, not Open" in toasts(pilot)
        await pilot.press("6")
        await wait_for(pilot, lambda: "Cold archive off" in toasts(pilot), what="off")


async def test_the_archived_tab_hints_at_the_cold_archive(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=(160, 48)) as pilot:
        screen = await ready(pilot)
        version = screen.rows_version
        await pilot.press("4", "/", *"no-such-anomaly", "enter")
        await wait_for(
            pilot,
            lambda: screen.rows_version > version and screen.model.query.q == "no-such-anomaly",
            what="the empty search",
        )
        assert screen.model.query.filter == "archived"
        hint = "press 6 to include the cold archive"
        assert hint in screen.table.empty_text
        await pilot.press("6")
        await wait_for(pilot, lambda: screen.model.query.archive, what="the archive on")
        await wait_for(pilot, lambda: hint not in screen.table.empty_text, what="no hint")
