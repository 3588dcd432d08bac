"""SVG snapshots of the dashboard over a receiver whose data is fixed (see ``frozen_desk``).

The header shows a fixed address (the receiver's real port changes per run), the store holds
fixed timestamps, and nothing on screen reads the clock, so the pictures only change when the
dashboard does. Update with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Static

from anomaly_desk.core.views import ImportProgressView
from anomaly_desk.tui.screens.create_ticket import CreateTicketScreen, SpecForm
from anomaly_desk.tui.screens.import_platform import ImportScreen
from anomaly_desk.tui.screens.keymap import KeyMapScreen
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer
from tests.tui.conftest import SIZE, dashboard, main_screen, ready, seed_frozen, wait_for

ADDRESS = "http://127.0.0.1:8787"


async def settle(pilot: Pilot[Any]) -> None:
    screen = await ready(pilot)
    assert screen.table.current.id == 20024
    await wait_for(pilot, lambda: screen.sync_log.dead_count == 1, what="dead job marked")


def test_main_screen(frozen_desk: Desk, snap_compare: Any) -> None:
    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_main_screen_80x24(frozen_desk: Desk, snap_compare: Any) -> None:
    """The list across the width, tabs and search box on one line, no detail (d shows it), a
    7-row sync log, Quit and Help first in the footer, the header abbreviated, not wrapped."""
    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_main_screen_80x24_with_the_detail(frozen_desk: Desk, snap_compare: Any) -> None:
    """`d` in a small terminal: the detail below the list, sharing its height."""

    async def detail(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("d")

    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=detail)


def test_main_screen_200x60(frozen_desk: Desk, snap_compare: Any) -> None:
    """The detail beside the list, the sync log about 30 % of the height."""
    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=(200, 60), run_before=settle)


def test_sync_log_with_a_dead_job(frozen_desk: Desk, snap_compare: Any) -> None:
    async def focus_dead(pilot: Pilot[Any]) -> None:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: screen.sync_log.dead_count == 1, what="dead job marked")
        screen.sync_log.focus()
        await pilot.pause()
        selected = screen.sync_log.selected
        assert selected is not None
        assert selected.outcome == "dead"

    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=(120, 40), run_before=focus_dead)


# -- notes held behind a dead one, the dead-only sync log and the key map, small and large -------

SIZES = {"80x24": (80, 24), "200x60": (200, 60)}


def detail_lines(pilot: Pilot[Any]) -> list[str]:
    """The detail pane's whole text, one string per line, as drawn at its width."""
    screen = main_screen(pilot)
    body = screen.query_one("#detail-body", Static)
    return [strip.text for strip in body.render_lines(Region(0, 0, *body.size))]


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_detail_with_a_dead_note_and_one_held_behind_it(
    frozen_desk: Desk, snap_compare: Any, size: tuple[int, int]
) -> None:
    """DQ-7's status note died on a 401; the comment after it waits in its queue. The detail
    says so under its title and in DQ-7's notes line; the row has the ⚠2 badge. Zoomed (`z` on
    the detail) and, where it does not fit, scrolled to the Tickets section."""

    async def zoomed(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        screen = main_screen(pilot)
        doc = screen.detail_doc
        assert doc is not None
        (link,) = doc.links
        assert link.notes is not None
        assert (link.notes.delivered, link.notes.dead, link.notes.held) == (1, 1, 1)
        if not screen.detail_shown():
            await pilot.press("d")
        screen.detail_pane.focus()
        await pilot.press("z")
        await pilot.pause()
        lines = detail_lines(pilot)
        tickets = next(i for i, line in enumerate(lines) if line.strip() == "Tickets")
        if tickets + 8 > screen.detail_pane.scrollable_content_region.height:
            screen.detail_pane.scroll_to(y=tickets - 1, animate=False, immediate=True)
        await pilot.pause()

    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=size, run_before=zoomed)


def test_detail_with_a_comment_from_its_ticket_80x24(frozen_desk: Desk, snap_compare: Any) -> None:
    """Two-way sync: what alice said on DQ-7 is marked ``⇠ DQ-7 alice@example.com`` (its
    ``[ops]`` shown as written, not taken for markup) and its history line reads the same way;
    the detail is zoomed and scrolled to the Comments section."""

    async def comments(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        screen = main_screen(pilot)
        doc = screen.detail_doc
        assert doc is not None
        assert [c.origin for c in doc.comments] == [None, None, doc.links[0].id]
        if not screen.detail_shown():
            await pilot.press("d")
        screen.detail_pane.focus()
        await pilot.press("z")
        await pilot.pause()
        lines = detail_lines(pilot)
        assert any("⇠ DQ-7 alice@example.com" in line for line in lines)
        assert any("CRM export ran late [ops] — rerun scheduled" in line for line in lines)
        found = next(i for i, line in enumerate(lines) if line.strip() == "Comments")
        screen.detail_pane.scroll_to(y=found - 1, animate=False, immediate=True)
        await pilot.pause()

    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=comments)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_sync_log_dead_only(frozen_desk: Desk, snap_compare: Any, size: tuple[int, int]) -> None:
    """`D` on the focused log: only the dead line, the title says "dead only" and "1 dead"."""

    async def dead_only(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        log = main_screen(pilot).sync_log
        log.focus()
        await pilot.press("D")
        await wait_for(pilot, lambda: log.row_count == 1, what="the dead line only")
        assert log.selected is not None
        assert log.selected.outcome == "dead"

    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=size, run_before=dead_only)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_key_map(frozen_desk: Desk, snap_compare: Any, size: tuple[int, int]) -> None:
    async def keys(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, KeyMapScreen), what="key map")
        await pilot.pause()

    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=size, run_before=keys)


# -- import from the platform ------------------------------------------------------------------


async def open_import(pilot: Pilot[Any]) -> ImportScreen:
    await settle(pilot)
    await pilot.press("I")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ImportScreen), what="import")
    dialog = pilot.app.screen
    assert isinstance(dialog, ImportScreen)
    return dialog


def test_import_dialog_with_progress_80x24(frozen_desk: Desk, snap_compare: Any) -> None:
    """Page 2 of 3 stored: the line, the bar at 67 %, the header's "import 2/3", and what esc
    does. The progress is one ``import.progress`` event handed to the screen, so the picture
    is the same every run (the frozen receiver has no platform to import from)."""

    async def progress(pilot: Pilot[Any]) -> None:
        dialog = await open_import(pilot)
        view = ImportProgressView(page=2, pages=3, total=300, created=120, updated=30)
        main_screen(pilot).import_progress(view, "event")
        await wait_for(pilot, lambda: dialog.view == view, what="the progress shown")
        await pilot.pause()

    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=progress)


def test_import_dialog_options_with_an_error_80x24(frozen_desk: Desk, snap_compare: Any) -> None:
    """The options, a day that is not one marked under its field."""

    async def options(pilot: Pilot[Any]) -> None:
        dialog = await open_import(pilot)
        dialog.query_one("#since", Input).value = "2026-02-30"
        await pilot.pause()  # its Changed clears the field's error: before the submit
        await pilot.press("ctrl+s")
        await wait_for(
            pilot,
            lambda: "calendar" in str(dialog.query_one("#since-error", Static).render()),
            what="the error",
        )
        dialog.query_one("#archived", Checkbox).focus()
        await pilot.pause()

    app = dashboard(frozen_desk, address=ADDRESS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=options)


# -- the create form built from the provider's fields (#15) -----------------------------------


@pytest.fixture
def frozen_finance(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """The frozen store, its Jira connection creating in FIN: custom fields of every type."""
    seed_frozen(tmp_path / "data")
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    config.write_text(config.read_text().replace('project = "DQ"', 'project = "FIN"'))
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        deadline = time.monotonic() + 10
        while any(c["health"] is None for c in api.get("/api/connections").json()["items"]):
            assert time.monotonic() < deadline, "connection checks did not finish"
            time.sleep(0.05)
        yield Desk(receiver, sandbox, api, tmp_path / "data", config)
    finally:
        api.close()
        receiver.stop()


async def open_create_form(pilot: Pilot[Any]) -> CreateTicketScreen:
    """`c` on the newest anomaly, the jira connection: its FIN form read and shown."""
    await settle(pilot)
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CreateTicketScreen), what="form")
    dialog = pilot.app.screen
    assert isinstance(dialog, CreateTicketScreen)
    await wait_for(pilot, lambda: bool(dialog.query("#connections")), what="connections")
    await pilot.press("enter")
    status = dialog.query_one("#status")
    await wait_for(
        pilot,
        lambda: bool(dialog.query(SpecForm)) and not status.has_class("-busy"),
        what="the FIN form",
    )
    for widget in dialog.query("Input, TextArea"):
        widget.cursor_blink = False  # type: ignore[attr-defined]
    await pilot.pause()
    return dialog


def test_create_form_from_createmeta_80x24(frozen_finance: Desk, snap_compare: Any) -> None:
    """The type row, then the required fields first and marked (Region, a custom select, above
    the summary), the rest below to scroll to."""
    app = dashboard(frozen_finance, address=ADDRESS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=open_create_form)


def test_create_form_required_refused_200x60(frozen_finance: Desk, snap_compare: Any) -> None:
    """A submit with Region empty is refused before anything is sent: the status names it, the
    field is marked and focused; below, the custom fields of other kinds."""

    async def refused(pilot: Pilot[Any]) -> None:
        dialog = await open_create_form(pilot)
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: "Required: Region" in str(dialog.query_one("#status").render())
        )
        assert dialog.sent == 0
        await pilot.pause()

    app = dashboard(frozen_finance, address=ADDRESS)
    assert snap_compare(app, terminal_size=(200, 60), run_before=refused)
