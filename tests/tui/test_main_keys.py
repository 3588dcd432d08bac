"""Every key on the main screen does what it says, on what the detail pane shows.

Pilot tests over a real receiver and sandbox on loopback (issue #11).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console
from textual import events
from textual.actions import parse
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Static

from anomaly_desk.tui.app import DashboardApp
from anomaly_desk.tui.client import DeskClient
from anomaly_desk.tui.screens.main import ACTIONS, MainScreen
from tests.integration.conftest import Desk
from tests.tui.conftest import LINKED_ANOMALY, SIZE, dashboard, ready, wait_for

UNLINKED = 10260  # Active, no ticket: third in the Open view


def toasts(pilot: Pilot[Any]) -> str:
    """The notifications on screen, as the user reads them."""
    return "\n".join(str(toast.render()) for toast in pilot.app.screen.query("Toast"))


def detail_text(screen: MainScreen) -> str:
    """The detail pane's text as the user reads it."""
    console = Console(width=80, file=io.StringIO(), record=True)
    console.print(screen.query_one("#detail-body", Static).content)
    return console.export_text()


def status_of(desk: Desk, anomaly_id: int) -> str:
    return str(desk.api.get(f"/api/anomalies/{anomaly_id}").json()["status"])


def dead_jobs(desk: Desk, anomaly_id: int | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"state": "dead"}
    if anomaly_id is not None:
        params["anomaly_id"] = anomaly_id
    return list(desk.api.get("/api/sync-jobs", params=params).json()["items"])


def kill_a_note(desk: Desk, anomaly_id: int = LINKED_ANOMALY) -> dict[str, Any]:
    """Acknowledge ``anomaly_id`` through the API while its ticket system refuses the note."""
    desk.faults.update({"force_status": 401, "force_count": 5})
    try:
        response = desk.api.post(f"/api/anomalies/{anomaly_id}/acknowledge")
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 10
        while not dead_jobs(desk, anomaly_id):
            assert time.monotonic() < deadline, "the note did not die"
            time.sleep(0.05)
    finally:
        desk.faults.reset()
    (job,) = dead_jobs(desk, anomaly_id)
    return job


async def quickly(condition: Callable[[], bool]) -> None:
    """Until ``condition()``, checked every 2 ms: far inside the detail's 120 ms debounce."""
    for _ in range(2500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"timed out waiting for {condition}")


def log_title(screen: MainScreen) -> str:
    return str(screen.query_one("#log-pane").border_title)


# -- 1. the detail and the actions agree ------------------------------------------------------


async def test_archiving_the_only_row_clears_the_detail_and_the_actions_agree(
    tui_desk: Desk,
) -> None:
    from anomaly_desk.tui.screens.archive import ArchiveScreen

    async with dashboard(tui_desk).run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        version = screen.rows_version
        await pilot.press("/", *"payments", "enter")
        await wait_for(pilot, lambda: screen.rows_version > version, what="the search")
        assert [row.id for row in screen.model.view] == [10240]
        await wait_for(pilot, lambda: screen.detail_doc.id == 10240, what="detail of 10240")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ArchiveScreen), what="form")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not screen.model.view, what="the row leaves Open")
        await pilot.pause(0.6)  # the anomaly.updated event and any detail load have landed
        assert screen.table.current is None
        assert screen.detail_doc is None
        assert "No anomaly selected" in detail_text(screen)
        assert "10240" not in detail_text(screen)
        await pilot.press("a")
        await wait_for(pilot, lambda: "No anomaly selected" in toasts(pilot), what="warning")
    assert status_of(tui_desk, 10240) == "Resolved"


async def test_a_detail_load_does_not_outlive_the_highlight(tui_desk: Desk) -> None:
    """Down, then a search that matches nothing, answered before the detail's debounce ends."""
    async with dashboard(tui_desk).run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        version = screen.rows_version
        # as fast as a terminal delivers them: down, / and a paste (Pilot's press waits longer)
        search = screen.query_one("#search")
        for event, done in (
            (events.Key("down", None), lambda: screen.table.cursor_row == 1),
            (events.Key("slash", "/"), lambda: search.has_focus),
            (events.Paste("zzzz"), lambda: screen.model.query.q == "zzzz"),
        ):
            pilot.app.post_message(event)
            await quickly(done)
        await wait_for(pilot, lambda: screen.rows_version > version, what="the empty search")
        await wait_for(pilot, lambda: screen.model.query.q == "zzzz" and not screen.model.view)
        await pilot.pause(0.6)
        assert screen.detail_doc is None
        assert "No anomaly selected" in detail_text(screen)
        await pilot.press("enter", "a")
        await wait_for(pilot, lambda: "No anomaly selected" in toasts(pilot), what="warning")


async def test_a_quick_move_then_a_key_acts_on_the_row_the_detail_shows(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        await pilot.press("down", "down", "a")  # before the debounced detail of 10260 came in
        await wait_for(pilot, lambda: status_of(tui_desk, UNLINKED) == "Acknowledged")
        assert screen.table.current.id == UNLINKED
        await wait_for(
            pilot,
            lambda: screen.detail_doc is not None and screen.detail_doc.status == "Acknowledged",
            what="the detail shows what was acknowledged",
        )
        assert screen.detail_doc.id == UNLINKED
        assert f"Anomaly {UNLINKED}" in detail_text(screen)
    assert status_of(tui_desk, LINKED_ANOMALY) == "Active"
    assert status_of(tui_desk, 10261) == "Acknowledged"  # as the fixtures left it


# -- 2. r retries the highlighted anomaly's job, or the selected line's ----------------------


async def test_r_on_the_table_never_retries_another_anomalys_job(tui_desk: Desk) -> None:
    job = kill_a_note(tui_desk)
    async with dashboard(tui_desk).run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        log = screen.sync_log
        await wait_for(pilot, lambda: log.dead_count == 1, what="the dead job")
        assert log.selected is not None
        assert log.selected.job_id == job["id"]  # the log's cursor is on A's dead job
        await pilot.press("down")
        await wait_for(pilot, lambda: screen.detail_doc.id == 10261, what="detail of 10261")
        assert screen.table.has_focus
        await pilot.press("r")
        await wait_for(pilot, lambda: "10261 has no dead sync job" in toasts(pilot))
        await pilot.pause(0.3)
        assert [j["id"] for j in dead_jobs(tui_desk)] == [job["id"]]
        assert log.dead_count == 1
        await pilot.press("up")  # A itself: r retries its job
        await wait_for(pilot, lambda: screen.detail_doc.id == LINKED_ANOMALY, what="detail")
        await pilot.press("r")
        await wait_for(pilot, lambda: log.dead_count == 0, what="the job retried")
        await wait_for(
            pilot,
            lambda: any(
                e.outcome == "done" and e.job_id == job["id"] for e in log.entries.values()
            ),
            what="the retried job delivered",
        )
    assert dead_jobs(tui_desk) == []


async def test_r_on_the_sync_log_retries_the_selected_line_only(tui_desk: Desk) -> None:
    comment = {"text": "a note that is delivered"}
    response = tui_desk.api.post(f"/api/anomalies/{LINKED_ANOMALY}/comments", json=comment)
    assert response.status_code == 201, response.text
    tui_desk.wait_idle()  # a done line before the dead one
    job = kill_a_note(tui_desk)
    async with dashboard(tui_desk).run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        log = screen.sync_log
        await wait_for(pilot, lambda: log.dead_count == 1, what="the dead job")
        await pilot.press("tab", "tab")
        await wait_for(pilot, lambda: log.has_focus, what="sync log focus")
        await pilot.press("up")  # a line that is not the dead one
        assert log.selected is not None
        assert log.selected.outcome != "dead"
        await pilot.press("r")
        await wait_for(pilot, lambda: "not a dead job" in toasts(pilot), what="warning")
        assert [j["id"] for j in dead_jobs(tui_desk)] == [job["id"]]
        await pilot.press("end", "r")
        await wait_for(pilot, lambda: log.dead_count == 0, what="the job retried")
    assert dead_jobs(tui_desk) == []


# -- 5. unlinking forgets the ticket's dead jobs -----------------------------------------------


@pytest.mark.parametrize("stream", ["live", "down"])
async def test_unlink_drops_the_tickets_dead_jobs(tui_desk: Desk, stream: str) -> None:
    """With the event stream live or down (then no sync.job event tells the jobs' new state)."""
    from anomaly_desk.tui.screens.choose_link import ConfirmScreen

    kill_a_note(tui_desk)
    bus = tui_desk.receiver.app.state.desk.bus
    async with dashboard(tui_desk).run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: "1 dead" in log_title(screen), what="1 dead")
        if stream == "down":
            screen.workers.cancel_group(screen, "events")
            await wait_for(pilot, lambda: bus.subscribers == 0, what="the stream closed")
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: not screen.detail_doc.links, what="link gone")
        await wait_for(pilot, lambda: "dead" not in log_title(screen), what="no dead job")
        assert screen.sync_log.dead_count == 0
        await pilot.press("r")
        await wait_for(pilot, lambda: "no dead sync job" in toasts(pilot), what="nothing to retry")
        await pilot.press("tab", "tab", "end", "r")
        await wait_for(pilot, lambda: "not a dead job" in toasts(pilot), what="nothing to retry")
    assert dead_jobs(tui_desk) == []


# -- 3. ? lists every key --------------------------------------------------------------------


def key_map_text(pilot: Pilot[Any]) -> str:
    """Every section of the key map as shown (the dialog scrolls: not all of it fits)."""
    console = Console(width=200, file=io.StringIO(), record=True)  # one line per key
    for section in pilot.app.screen.query(".section").results(Static):
        console.print(section.content)
    return console.export_text()


async def test_question_mark_lists_every_binding_by_purpose(tui_desk: Desk) -> None:
    from anomaly_desk.tui.screens.keymap import KeyMapScreen

    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("?")
        await wait_for(pilot, lambda: isinstance(app.screen, KeyMapScreen), what="key map")
        text = key_map_text(pilot)
        lines = [line.rstrip() for line in text.splitlines()]
        described = [
            b
            for b in Binding.make_bindings(MainScreen.BINDINGS)
            if b.description and screen.check_action(*parse(b.action)[1:]) is not False
        ]  # check_action: the keys this screen offers here (not the demo's, outside a demo)
        assert len(described) >= 20
        for binding in described:
            key = app.get_key_display(binding)
            assert any(line.startswith(key) and binding.description in line for line in lines), (
                f"{key} {binding.description} missing from the key map"
            )
        for title in ("Notes", "Tickets", "View", "Anomaly table", "Sync log", "App"):
            assert title in lines
        notes = text.split("Notes", 1)[1].split("Tickets", 1)[0]
        assert "Ack" in notes
        assert "Archive" in notes
        assert "Comment" in notes
        # the same words as the palette: one source
        (ack_help,) = [h for a, _, h in ACTIONS if a == "acknowledge"]
        assert ack_help.removesuffix(" (a)") in text
        assert "^p" in text  # the app's own keys too: the command palette
        for close in ("question_mark", "escape", "q"):
            await pilot.press(close)
            await wait_for(pilot, lambda: app.screen is screen, what=f"{close} closes it")
            await pilot.press("?")
            await wait_for(pilot, lambda: isinstance(app.screen, KeyMapScreen), what="again")
        assert app.is_running  # q closed the map, it did not quit


# -- 4. a question before notes go to linked tickets -----------------------------------------


async def test_acknowledge_asks_before_noting_the_linked_tickets(tui_desk: Desk) -> None:
    from anomaly_desk.tui.screens.confirm import ConfirmNotesScreen

    link = tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"][0]
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        for cancel in ("n", "escape"):
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmNotesScreen), what="ask")
            question = str(app.screen.query_one("#question", Static).content)
            assert question == f"Acknowledge {LINKED_ANOMALY} and notify {link['ticket_key']}?"
            await pilot.press(cancel)
            await wait_for(pilot, lambda: app.screen is screen, what=f"{cancel} cancels")
            await pilot.pause(0.3)
            assert status_of(tui_desk, LINKED_ANOMALY) == "Active"
            assert screen.table.current.status == "Active"
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmNotesScreen), what="ask")
        await pilot.press("y")
        await wait_for(pilot, lambda: status_of(tui_desk, LINKED_ANOMALY) == "Acknowledged")
        await wait_for(pilot, lambda: screen.detail_doc.status == "Acknowledged", what="detail")
    tui_desk.wait_idle()
    assert tui_desk.notes(link)[-1].endswith("Qualytics Anomaly Status: Acknowledged")


async def test_archive_asks_after_the_form_and_enter_confirms(tui_desk: Desk) -> None:
    from anomaly_desk.tui.screens.archive import ArchiveScreen
    from anomaly_desk.tui.screens.confirm import ConfirmNotesScreen

    link = tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"][0]
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        for answer in ("n", "enter"):
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ArchiveScreen), what="form")
            await pilot.press("ctrl+s")  # Resolved
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmNotesScreen), what="ask")
            question = str(app.screen.query_one("#question", Static).content)
            assert question == (
                f"Archive {LINKED_ANOMALY} as Resolved and notify {link['ticket_key']}?"
            )
            await pilot.press(answer)
            await wait_for(pilot, lambda: app.screen is screen, what=f"{answer} answers")
            if answer == "n":
                await pilot.pause(0.3)
                assert status_of(tui_desk, LINKED_ANOMALY) == "Active"
        await wait_for(pilot, lambda: status_of(tui_desk, LINKED_ANOMALY) == "Resolved")


async def test_no_question_without_a_linked_ticket(tui_desk: Desk) -> None:
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("down", "down")
        await wait_for(pilot, lambda: screen.detail_doc.id == UNLINKED, what="detail of 10260")
        assert screen.detail_doc.links == []
        await pilot.press("a")  # nothing else pressed: acknowledged means nothing was asked
        await wait_for(pilot, lambda: status_of(tui_desk, UNLINKED) == "Acknowledged")
        assert app.screen is screen


async def test_confirm_notes_off_skips_the_question(tui_desk: Desk) -> None:
    app = DashboardApp(DeskClient(tui_desk.receiver.url), confirm_notes=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert screen.detail_doc.links
        await pilot.press("a")
        await wait_for(pilot, lambda: status_of(tui_desk, LINKED_ANOMALY) == "Acknowledged")
        assert app.screen is screen
