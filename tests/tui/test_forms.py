"""The dashboard's dialogs against a real receiver and the sandbox, driven with Textual's Pilot.

Each screen is hosted in a tiny app that pushes it and keeps what it dismisses with, so these
tests need nothing of the main screen. What a dialog created is checked twice: through the
receiver's API (the link) and through the provider's own API on the sandbox (the fields).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from textual import events
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, OptionList, Select, Static, TextArea

from anomaly_desk.core.formatting.adf import adf_to_text
from anomaly_desk.core.views import AnomalyDetail, ConnectionPage, ConnectionView, RefView
from anomaly_desk.tui.client import DeskClient
from anomaly_desk.tui.screens.archive import ArchiveScreen
from anomaly_desk.tui.screens.comment import CommentScreen
from anomaly_desk.tui.screens.create_ticket import CreateTicketScreen, default_summary
from anomaly_desk.tui.screens.link_ticket import LinkTicketScreen
from anomaly_desk.tui.widgets.form_fields import OTHER, ChoiceField, DerivedField, FormField
from tests.integration.conftest import ENV, start_receiver, write_config
from tests.support import FIXTURES, ThreadedServer

ANOMALY = 10231  # "customer_id is null in 1,204 records" in warehouse_prod / orders
SIZE = (100, 46)
ALICE = "5b10a2844c20165700ede21f"  # seeded Jira user "Alice Émond"


# -- a receiver and the sandbox ------------------------------------------------------------------


@dataclass
class Live:
    """A running receiver (fed the first webhook fixture) and the sandbox behind it."""

    url: str
    sandbox: ThreadedServer
    api: httpx.Client

    def anomaly(self, anomaly_id: int = ANOMALY) -> AnomalyDetail:
        response = self.api.get(f"/api/anomalies/{anomaly_id}").raise_for_status()
        return AnomalyDetail.model_validate_json(response.content)

    def connections(self, *names: str) -> list[ConnectionView]:
        response = self.api.get("/api/connections").raise_for_status()
        items = ConnectionPage.model_validate_json(response.content).items
        return [c for c in items if not names or c.name in names]

    @property
    def faults(self) -> Any:
        return self.sandbox.app.state.faults  # type: ignore[attr-defined]

    def client(self) -> DeskClient:
        return DeskClient(self.url)

    def jira_issue(self, key: str) -> dict[str, Any]:
        with httpx.Client(base_url=self.sandbox.url, auth=("demo@example.com", "demo-token")) as c:
            return c.get(f"/rest/api/3/issue/{key}").raise_for_status().json()

    def incident(self, sys_id: str) -> dict[str, Any]:
        with httpx.Client(
            base_url=self.sandbox.url,
            auth=("admin", "demo"),
            headers={"accept": "application/json"},
        ) as c:
            params = {"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"}
            response = c.get(f"/api/now/table/incident/{sys_id}", params=params)
            return response.raise_for_status().json()["result"]

    def create(self, connection: str, **fields: str) -> dict[str, Any]:
        """A ticket made beforehand through the API, as another operator would have."""
        response = self.api.post(
            f"/api/anomalies/{ANOMALY + 2}/tickets",
            json={"connection": connection, "fields": fields},
        )
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def live(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    body = (FIXTURES / "webhooks" / "01-flow-anomalies-detected.json").read_bytes()
    api.post(
        "/webhooks/qualytics", content=body, headers={"content-type": "application/json"}
    ).raise_for_status()
    try:
        yield Live(receiver.url, sandbox, api)
    finally:
        api.close()
        receiver.stop()


# -- hosting a screen -----------------------------------------------------------------------------


NOT_YET = object()


class Host(App[None]):
    """Pushes one screen and keeps what it dismissed with; closes the client on the way out."""

    def __init__(self, make: Callable[[], Screen[Any]], client: DeskClient | None = None) -> None:
        super().__init__()
        self.make = make
        self.client = client
        self.result: Any = NOT_YET

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        self.push_screen(self.make(), self.done)

    def done(self, result: Any) -> None:
        self.result = result

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.aclose()


async def until(pilot: Pilot, condition: Callable[[], bool], within: float = 10.0) -> None:
    """Let the app run until ``condition`` holds (workers talk to real servers)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.02)


async def settle(pilot: Pilot) -> None:
    """Every worker done and the screen repainted: ready for a look or a screenshot."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def screen_text(app: App[Any]) -> str:
    """The screen as plain text, for asserting on what a person sees."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


def field(app: App[Any], name: str) -> FormField:
    return app.screen.query_one(f"#field-{name}", FormField)


async def paste(pilot: Pilot, text: str) -> None:
    """Text arrives as a terminal paste: one event, where typing costs a Pilot round per key."""
    assert pilot.app.focused is not None
    pilot.app.post_message(events.Paste(text))  # as the driver does; the app forwards it
    await pilot.pause()


async def type_into(pilot: Pilot, selector: str, text: str) -> None:
    """Focus a control, clear it (select all, backspace) and paste ``text`` in."""
    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    await pilot.pause()
    if isinstance(widget, Input):
        widget.action_select_all()
    elif isinstance(widget, TextArea):
        widget.select_all()
    await pilot.press("backspace")
    if text:
        await paste(pilot, text)


async def choose(pilot: Pilot, name: str, label: str) -> None:
    """Open a drop-down with Enter, walk down to ``label``, Enter; like a keyboard user."""
    select = pilot.app.screen.query_one(f"#{name}", Select)
    select.focus()
    await pilot.press("enter")
    await until(pilot, lambda: select.expanded)
    labels = [str(prompt) for prompt, _ in select._options]
    assert label in labels, f"{label!r} not among {labels}"
    await pilot.press("home")
    for _ in range(len(labels)):
        overlay = select.query_one("SelectOverlay")
        highlighted = overlay.highlighted_option  # type: ignore[attr-defined]
        if highlighted is not None and str(highlighted.prompt) == label:
            break
        await pilot.press("down")
    await pilot.press("enter")
    await until(pilot, lambda: not select.expanded)


async def other(pilot: Pilot, name: str, text: str) -> None:
    """Choose "Other…" and type a value the drop-down does not list."""
    await choose(pilot, name, "Other…")
    assert pilot.app.screen.query_one(f"#{name}", Select).value == OTHER
    await until(pilot, lambda: pilot.app.focused is pilot.app.screen.query_one(f"#{name}-other"))
    await paste(pilot, text)


async def pick_user(pilot: Pilot, name: str, text: str, label: str) -> None:
    """Type ``text`` into a person field, wait for the live search to list ``label``, pick it
    (down into the list, Enter)."""
    await type_into(pilot, f"#{name}", text)
    people = pilot.app.screen.query_one(f"#{name}-results", OptionList)
    await until(pilot, lambda: any(str(o.prompt) == label for o in people.options))
    await pilot.press("down")
    for _ in range(people.option_count):
        if str(people.get_option_at_index(people.highlighted or 0).prompt) == label:
            break
        await pilot.press("down")
    await pilot.press("enter")
    await until(pilot, lambda: pilot.app.screen.query_one(f"#field-{name}").picked is not None)  # type: ignore[attr-defined]


def no_cursor_blink(app: App[Any]) -> None:
    """A blinking cursor would make a screenshot depend on the moment it is taken."""
    for widget in app.screen.query("Input, TextArea"):
        widget.cursor_blink = False  # type: ignore[attr-defined]


# -- create: Jira ---------------------------------------------------------------------------------


async def test_jira_create_with_every_field(live: Live) -> None:
    client = live.client()
    anomaly = live.anomaly()
    app = Host(lambda: CreateTicketScreen(client, anomaly, live.connections()), client)
    async with app.run_test(size=SIZE) as pilot:
        # step 1: two connections configured, so the dialog asks which one
        await until(pilot, lambda: bool(app.screen.query("#connections")))
        assert "jira  Jira Cloud · DQ / Task" in screen_text(app)
        assert "servicenow  ServiceNow" in screen_text(app)
        await pilot.press("enter")  # the first connection: jira
        await settle(pilot)
        assert field(app, "summary").value == ("[DQ] orders: customer_id is null in 1,204 records")
        project = field(app, "project")  # the connection's, shown read-only (#15 walkthrough)
        assert isinstance(project, DerivedField)
        assert project.shown == "DQ"
        assert project.query_one(Input).disabled
        # the connection's default type, Task, by its id (the form of #15: types from Jira)
        assert field(app, "issuetype").value == "10001"
        assert "Reading drop-down" not in screen_text(app)

        await type_into(pilot, "#summary", "Null customer ids in orders")
        await type_into(pilot, "#description", "Loaded by the nightly job.")
        await choose(pilot, "issuetype", "Bug")
        await settle(pilot)  # the Bug form replaces the Task one, what was typed kept
        assert field(app, "summary").value == "Null customer ids in orders"
        await choose(pilot, "priority", "High")
        # people are searched as one types (#15), no longer a drop-down of assignable users
        await pick_user(pilot, "assignee", "alice", "Alice Émond <alice@example.com>")
        await type_into(pilot, "#labels", "pipeline, urgent fix")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)

    link = app.result
    assert link.connection == "jira"
    assert link.ticket_key == "DQ-1"
    assert link.origin == "created"
    stored = live.anomaly().links
    assert [(s.ticket_key, s.id) for s in stored] == [("DQ-1", link.id)]

    fields = live.jira_issue("DQ-1")["fields"]
    assert fields["summary"] == "Null customer ids in orders"
    assert fields["issuetype"]["name"] == "Bug"
    assert fields["priority"]["name"] == "High"
    assert fields["assignee"]["accountId"] == ALICE
    assert fields["project"]["key"] == "DQ"
    assert set(fields["labels"]) >= {"pipeline", "urgent-fix", f"anomaly-{ANOMALY}"}
    description = adf_to_text(fields["description"])
    assert description.startswith("Loaded by the nightly job.")
    assert "customer_id is null in 1,204 records" in description


async def test_jira_unknown_values_show_the_providers_message_on_the_field(live: Live) -> None:
    client = live.client()
    app = Host(lambda: CreateTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # one connection: straight to the form
        assert not app.screen.query("#connections")
        await other(pilot, "priority", "Urgent")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: field(app, "priority").error is not None)
        assert field(app, "priority").error == "Priority name 'Urgent' is not valid"
        assert "Priority name 'Urgent' is not valid" in screen_text(app)
        assert app.result is NOT_YET  # the dialog stays open for a fix
        assert app.screen.query_one("#submit").disabled is False

        # a person Jira does not know, typed as free text (nobody picked from the search)
        await choose(pilot, "priority", "Low")
        assert field(app, "priority").error is None  # a change clears the provider's error
        await type_into(pilot, "#assignee", "nobody@example.com")
        await pilot.press("enter")  # Enter in a field submits too
        await until(pilot, lambda: field(app, "assignee").error is not None)
        assert field(app, "assignee").error == "no Jira user matches 'nobody@example.com'"
        assert app.result is NOT_YET

        # typed as an email the provider resolves, it goes through
        await type_into(pilot, "#assignee", "bob@example.com")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result.ticket_key == "DQ-1"
    fields = live.jira_issue("DQ-1")["fields"]
    assert fields["priority"]["name"] == "Low"
    assert fields["assignee"]["emailAddress"] == "bob@example.com"
    assert live.api.get(f"/api/anomalies/{ANOMALY}").json()["links"][0]["ticket_key"] == "DQ-1"


async def test_required_fields_are_checked_before_sending(live: Live) -> None:
    client = live.client()
    app = Host(lambda: CreateTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_into(pilot, "#summary", "   ")
        assert field(app, "summary").error == "Summary is required"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Fix the marked fields. Required: Summary." in screen_text(app)
        # the first bad field (the project above the form is the connection's, not typed)
        assert app.focused is app.screen.query_one("#summary")
        assert app.result is NOT_YET
        await pilot.press("escape")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result is None
    # nothing was sent: no issue in Jira, no link on the anomaly
    assert live.anomaly().links == []
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        live.jira_issue("DQ-1")


async def test_without_drop_down_values_every_field_takes_free_text(live: Live) -> None:
    live.faults.update({"force_status": 503, "force_count": 1000})  # Jira is down for reads
    client = live.client()
    app = Host(lambda: CreateTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "Reading drop-down values from jira" in screen_text(app))
        await settle(pilot)
        assert "Drop-down values unavailable" in screen_text(app)
        priority = app.screen.query_one("#field-priority", ChoiceField)
        assert priority.options == []
        # the connection's default issue type is kept, as free text
        assert app.screen.query_one("#issuetype", Select).value == OTHER
        assert field(app, "issuetype").value == "Task"
        live.faults.reset()  # Jira is back before the user sends
        await other(pilot, "priority", "Highest")
        await other(pilot, "assignee", "carol@example.com")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result.ticket_key == "DQ-1"
    fields = live.jira_issue("DQ-1")["fields"]
    assert fields["priority"]["name"] == "Highest"
    assert fields["issuetype"]["name"] == "Task"
    assert fields["assignee"]["emailAddress"] == "carol@example.com"


def test_summary_is_prefilled_and_cut_to_the_providers_limit() -> None:
    anomaly = AnomalyDetail(
        id=7, status="Active", container=RefView(name="orders"), message="x" * 400
    )
    jira, snow = default_summary(anomaly, 255), default_summary(anomaly, 160)
    assert len(jira) == 255
    assert len(snow) == 160
    assert jira.startswith("[DQ] orders: xxx")
    assert jira.endswith("…")
    shape = AnomalyDetail(id=8, status="Active", type="shape")
    assert default_summary(shape, 255) == "[DQ] shape anomaly 8"


# -- create: ServiceNow ---------------------------------------------------------------------------


async def test_servicenow_create_with_category_group_and_people(live: Live) -> None:
    client = live.client()
    app = Host(
        lambda: CreateTicketScreen(client, live.anomaly(), live.connections("servicenow")), client
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        sub = app.screen.query_one("#field-subcategory", ChoiceField)
        # the instance's default category (read from its dictionary since #15) gives its own
        assert field(app, "category").value == "inquiry"
        assert [label for label, _ in sub.options][:1] == ["Antivirus"]
        await choose(pilot, "category", "Data Quality")
        assert [label for label, _ in sub.options] == ["Completeness", "Validity", "Freshness"]
        await choose(pilot, "subcategory", "Completeness")
        await choose(pilot, "impact", "2 - Medium")
        await choose(pilot, "urgency", "1 - High")
        await choose(pilot, "assignment_group", "Data Platform")
        # people are searched as one types (#15); a user name typed and not picked is sent as is
        await pick_user(pilot, "assigned_to", "alice", "Alice Nguyen <alice.nguyen@example.com>")
        await type_into(pilot, "#caller_id", "carla.diaz")
        await type_into(pilot, "#description", "Seen after the 02:00 load.")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)

    link = app.result
    assert (link.connection, link.ticket_key) == ("servicenow", "INC0010001")
    assert live.anomaly().links[0].ticket_key == "INC0010001"
    incident = live.incident(link.ticket_id)
    value = {name: item["value"] for name, item in incident.items()}
    shown = {name: item["display_value"] for name, item in incident.items()}
    assert value["short_description"] == "[DQ] orders: customer_id is null in 1,204 records"
    assert (value["category"], value["subcategory"]) == ("data_quality", "completeness")
    assert (value["impact"], value["urgency"], value["priority"]) == ("2", "1", "2")
    assert shown["assignment_group"] == "Data Platform"
    assert shown["assigned_to"] == "Alice Nguyen"
    assert shown["caller_id"] == "Carla Diaz"
    assert value["description"].startswith("Seen after the 02:00 load.")


async def test_servicenow_group_error_lands_on_the_group_field(live: Live) -> None:
    client = live.client()
    app = Host(
        lambda: CreateTicketScreen(client, live.anomaly(), live.connections("servicenow")), client
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await other(pilot, "assignment_group", "Nobody")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: field(app, "assignment_group").error is not None)
        assert field(app, "assignment_group").error == "No group named 'Nobody'"
        assert field(app, "short_description").error is None
        assert app.result is NOT_YET
    assert live.anomaly().links == []


# -- link -----------------------------------------------------------------------------------------


async def test_link_search_shows_key_summary_state_and_enter_links(live: Live) -> None:
    live.create("jira", summary="Orders feed late again")
    live.create("jira", summary="Customer emails malformed")
    client = live.client()
    app = Host(lambda: LinkTicketScreen(client, live.anomaly(), live.connections()), client)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: bool(app.screen.query("#connections")))
        await pilot.press("enter")  # jira
        await settle(pilot)
        await pilot.press(*"emails")
        table = app.screen.query_one("#results", DataTable)
        await until(pilot, lambda: len(app.screen.results) == 1)  # type: ignore[attr-defined]
        assert table.row_count == 1
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row == ["DQ-2", "To Do", "Customer emails malformed"]
        assert "DQ-2          To Do           Customer emails malformed" in screen_text(app)
        await pilot.press("enter")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result.ticket_key == "DQ-2"
    assert app.result.origin == "linked"
    assert [s.ticket_key for s in live.anomaly().links] == ["DQ-2"]


async def test_link_by_typed_key_and_provider_errors_inline(live: Live) -> None:
    incident = live.create("servicenow", short_description="Warehouse load failed")
    client = live.client()
    app = Host(
        lambda: LinkTicketScreen(client, live.anomaly(), live.connections("servicenow")), client
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        status = app.screen.query_one("#status", Static)
        await paste(pilot, "INC0099999")
        await pilot.press("enter")  # before the debounced search for the text has started
        await until(pilot, lambda: status.has_class("-error"))
        await asyncio.sleep(0.5)  # longer than the debounce: no search may overwrite the error
        await pilot.pause()
        assert "No incident INC0099999" in screen_text(app)
        assert app.result is NOT_YET
        await type_into(pilot, "#query", incident["ticket_key"].lower())
        await pilot.press("enter")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result.ticket_key == incident["ticket_key"]
    links = live.anomaly().links
    assert [s.ticket_key for s in links] == [incident["ticket_key"]]
    # ServiceNow records the link on the incident itself
    assert "customer_id is null" in live.incident(incident["ticket_id"])["description"]["value"]


async def test_linking_again_says_it_is_already_linked(live: Live) -> None:
    live.create("jira", summary="Orders feed late again")
    live.api.post(
        f"/api/anomalies/{ANOMALY}/links", json={"connection": "jira", "ticket": "DQ-1"}
    ).raise_for_status()
    client = live.client()
    app = Host(lambda: LinkTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#results", DataTable).row_count == 1  # recent tickets
        await pilot.press("enter")
        await until(pilot, lambda: "already linked" in screen_text(app))
        assert "DQ-1 is already linked to anomaly 10231" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result is None


async def test_a_newer_search_wins_over_a_slower_older_one(live: Live) -> None:
    live.create("jira", summary="Orders feed late again")
    live.create("jira", summary="Customer emails malformed")
    client = live.client()
    app = Host(lambda: LinkTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        status = screen.query_one("#status", Static)
        live.faults.update({"latency_ms": 800})
        await pilot.press(*"orders")
        await until(pilot, lambda: "Searching" in str(status.render()))  # slow, on its way
        live.faults.update({"latency_ms": 0})
        await type_into(pilot, "#query", "customer")
        await until(pilot, lambda: [r.key for r in screen.results] == ["DQ-2"])  # type: ignore[attr-defined]
        await asyncio.sleep(1.0)  # the answer for "orders" would have come back by now
        await pilot.pause()
        assert [r.key for r in screen.results] == ["DQ-2"]  # type: ignore[attr-defined]
        assert screen.query_one("#results", DataTable).row_count == 1


# -- archive and comment --------------------------------------------------------------------------


async def test_archive_returns_status_and_comment(live: Live) -> None:
    anomaly = live.anomaly()
    app = Host(lambda: ArchiveScreen(anomaly))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "enter")  # Resolved → Invalid, pressed
        await type_into(pilot, "#comment", "False alarm: backfill in progress")
        await pilot.press("enter")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result == ("Invalid", "False alarm: backfill in progress")

    app = Host(lambda: ArchiveScreen(anomaly))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result == ("Resolved", None)

    app = Host(lambda: ArchiveScreen(anomaly))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result is None


async def test_comment_needs_text(live: Live) -> None:
    anomaly = live.anomaly()
    app = Host(lambda: CommentScreen(anomaly))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("space", "ctrl+s")
        await pilot.pause()
        assert "A comment needs some text." in screen_text(app)
        assert app.result is NOT_YET
        await paste(pilot, "Checked with the owners")
        await pilot.press("enter")
        await paste(pilot, "fix on Monday")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result == "Checked with the owners\nfix on Monday"

    app = Host(lambda: CommentScreen(anomaly))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result is None


# -- snapshots ------------------------------------------------------------------------------------


def test_snapshot_jira_form(live: Live, snap_compare: Any) -> None:
    client = live.client()
    anomaly = live.anomaly()
    app = Host(lambda: CreateTicketScreen(client, anomaly, live.connections("jira")), client)

    async def fill(pilot: Pilot) -> None:
        await settle(pilot)
        await choose(pilot, "priority", "High")
        await pick_user(pilot, "assignee", "alice", "Alice Émond <alice@example.com>")
        await type_into(pilot, "#labels", "pipeline")
        no_cursor_blink(app)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=fill)


def test_snapshot_servicenow_form_with_field_error(live: Live, snap_compare: Any) -> None:
    client = live.client()
    anomaly = live.anomaly()
    app = Host(lambda: CreateTicketScreen(client, anomaly, live.connections("servicenow")), client)

    async def fill(pilot: Pilot) -> None:
        await settle(pilot)
        await choose(pilot, "category", "Data Quality")
        await choose(pilot, "subcategory", "Completeness")
        await choose(pilot, "impact", "2 - Medium")
        await other(pilot, "assignment_group", "Nobody")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: field(app, "assignment_group").error is not None)
        no_cursor_blink(app)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=fill)


def test_snapshot_link_search_results(live: Live, snap_compare: Any) -> None:
    live.create("jira", summary="Orders feed late again")
    live.create("jira", summary="Customer emails malformed")
    live.create("jira", summary="Orders missing customer ids")
    client = live.client()
    anomaly = live.anomaly()
    app = Host(lambda: LinkTicketScreen(client, anomaly, live.connections("jira")), client)

    async def search(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press(*"orders")
        screen = app.screen
        await until(pilot, lambda: len(screen.results) == 2)  # type: ignore[attr-defined]
        no_cursor_blink(app)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=search)
