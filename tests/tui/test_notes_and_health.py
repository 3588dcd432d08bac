"""The dashboard follows connection health and shows what became of each ticket's notes.

Before, the header said "ok" through an outage and "err" long after it, the connection pickers
repeated a stale error, and a note held behind a dead one was invisible: the toast said
"Comment added" and nothing anywhere said the note was stuck.

Pilot tests over a real receiver and sandbox on loopback; the sandbox's fault injection plays
the outage (a 401 on every request, or a 503).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Static

from anomaly_desk.core.views import AnomalySummary, NoteCounts
from anomaly_desk.tui.screens.comment import CommentScreen
from anomaly_desk.tui.screens.create_ticket import CreateTicketScreen
from anomaly_desk.tui.screens.main import MainScreen
from anomaly_desk.tui.widgets.connection_list import ConnectionList
from tests.integration.conftest import Desk
from tests.support import ThreadedServer
from tests.tui.conftest import LINKED_ANOMALY, SIZE, dashboard, make_desk, ready, wait_for


def toasts(pilot: Pilot[Any]) -> str:
    """The notifications on screen, title and message, as the user reads them."""
    texts = []
    for toast in pilot.app.screen.query("Toast"):
        rendered = toast.render()
        texts.append(str(getattr(rendered, "plain", rendered)))
    return "\n".join(texts)


def header_top(screen: MainScreen) -> str:
    header = screen.header
    return header.render_lines(Region(0, 0, *header.size))[0].text


def detail_text(screen: MainScreen) -> str:
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(screen.query_one("#detail-body", Static).content)
    return console.export_text()


def table_line(screen: MainScreen, anomaly_id: int) -> str:
    """The anomaly's line in the table, as drawn."""
    table = screen.table
    for y in range(1, table.size.height):
        text = table.render_line(y).text
        if text.startswith(f" {anomaly_id} "):
            return text
    raise AssertionError(f"anomaly {anomaly_id} is not on screen")


def row(screen: MainScreen, anomaly_id: int = LINKED_ANOMALY) -> AnomalySummary:
    found = screen.model.get(anomaly_id)
    assert found is not None
    return found


def notes(screen: MainScreen) -> NoteCounts | None:
    doc = screen.detail_doc
    assert doc is not None
    (link,) = doc.links
    return link.notes


async def comment(pilot: Pilot[Any], text: str) -> None:
    await pilot.press("m")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommentScreen), what="comment")
    await pilot.press(*text)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="form closed")


async def test_a_401_shows_jira_failing_holds_the_next_comment_and_r_clears_it_all(
    tui_desk: Desk,
) -> None:
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        assert screen.detail_doc is not None
        assert screen.detail_doc.id == LINKED_ANOMALY
        key = screen.detail_doc.links[0].ticket_key
        assert screen.header.health_text() == "jira=ok servicenow=ok"
        assert "jira ok" in header_top(screen)
        assert row(screen).stuck_notes == 0
        assert "⚠" not in table_line(screen, LINKED_ANOMALY)

        tui_desk.faults.update({"force_status": 401, "force_count": 1000})  # jira refuses all
        try:
            await comment(pilot, "first")
            await wait_for(pilot, lambda: "Comment added to anomaly" in toasts(pilot))
            assert "held" not in toasts(pilot)  # nothing was dead yet
            # the delivery's 401 tells the connection is down, at once: no check needed
            await wait_for(
                pilot,
                lambda: screen.header.health_text() == "jira=failing servicenow=ok",
                what="jira failing in the header",
            )
            assert "jira failing" in header_top(screen)
            assert "servicenow ok" in header_top(screen)
            await wait_for(pilot, lambda: "Connection failing" in toasts(pilot))
            assert "401" in toasts(pilot)
            await wait_for(pilot, lambda: row(screen).stuck_notes == 1, what="the dead note")

            await comment(pilot, "second")  # waits behind the dead note: the toast says so
            await wait_for(pilot, lambda: "Note held" in toasts(pilot), what="the held toast")
            assert f"held behind a dead note on {key}" in toasts(pilot)
            await wait_for(pilot, lambda: row(screen).stuck_notes == 2, what="2 stuck")
            counts = notes(screen)
            assert counts is not None
            assert (counts.dead, counts.held, counts.pending) == (1, 1, 0)
            text = detail_text(screen)
            assert "1 held" in text
            assert "1 dead" in text
            assert "held: waiting behind the dead note" in text
            assert f"⚠ 2 notes stuck — {key}: 1 dead, 1 held" in text
            assert "⚠2" in table_line(screen, LINKED_ANOMALY)
        finally:
            tui_desk.faults.reset()

        assert screen.table.has_focus
        await pilot.press("r")  # the dead note again; the held one follows it
        await wait_for(pilot, lambda: row(screen).stuck_notes == 0, what="nothing stuck")
        await wait_for(
            pilot, lambda: "⚠" not in table_line(screen, LINKED_ANOMALY), what="badge cleared"
        )
        await wait_for(
            pilot, lambda: (notes(screen) or NoteCounts()).delivered >= 2, what="both delivered"
        )
        counts = notes(screen)
        assert counts is not None
        assert (counts.dead, counts.held, counts.pending) == (0, 0, 0)
        assert "stuck" not in detail_text(screen)
        # the delivered note tells the connection works again, before any periodic check
        await wait_for(
            pilot,
            lambda: screen.header.health_text() == "jira=ok servicenow=ok",
            what="jira ok again",
        )
        assert "jira ok" in header_top(screen)
        await wait_for(pilot, lambda: "Connection works again" in toasts(pilot))
    assert [
        c["text"] for c in tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["comments"]
    ] == ["first", "second"]


# -- the periodic check: the header and the pickers, open or opened later ----------------------


@pytest.fixture
def checked_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """A receiver that checks its connections every 0.3 s, with the first webhook's anomalies."""
    desk = make_desk(tmp_path, sandbox, health_check_s=0.3)
    try:
        desk.post_webhook("01-flow-anomalies-detected.json")
        yield desk
    finally:
        desk.faults.reset()
        desk.api.close()
        desk.receiver.stop()


def picker_line(pilot: Pilot[Any], name: str) -> str:
    prompt = pilot.app.screen.query_one(ConnectionList).get_option(name).prompt
    return str(getattr(prompt, "plain", prompt))


async def open_picker(pilot: Pilot[Any]) -> None:
    await pilot.press("c")
    await wait_for(
        pilot,
        lambda: (
            isinstance(pilot.app.screen, CreateTicketScreen)
            and bool(pilot.app.screen.query(ConnectionList))
        ),
        what="the connection picker",
    )


async def close_picker(pilot: Pilot[Any]) -> None:
    await pilot.press("escape")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="main screen")


async def test_the_header_and_the_pickers_follow_an_outage_and_the_recovery(
    checked_desk: Desk,
) -> None:
    app = dashboard(checked_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        assert screen.header.health_text() == "jira=ok servicenow=ok"
        await open_picker(pilot)
        assert "✓ authenticated as" in picker_line(pilot, "jira")

        checked_desk.faults.update({"fail_rate": 1.0})  # every request answered 503
        try:
            # the picker open on screen follows the event
            await wait_for(
                pilot, lambda: "✗" in picker_line(pilot, "jira"), what="the open picker: ✗"
            )
            assert "503" in picker_line(pilot, "jira")
            assert "jira: " not in picker_line(pilot, "jira")  # the name once, in front
            await wait_for(pilot, lambda: "✗" in picker_line(pilot, "servicenow"))
            assert screen.header.health_text() == "jira=failing servicenow=failing"
            await close_picker(pilot)
            assert "jira failing" in header_top(screen)
            # a picker opened now starts from what the events said, not from the first check
            await open_picker(pilot)
            assert "✗" in picker_line(pilot, "jira")
            assert "✗" in picker_line(pilot, "servicenow")
            await close_picker(pilot)
        finally:
            checked_desk.faults.reset()

        await wait_for(
            pilot,
            lambda: screen.header.health_text() == "jira=ok servicenow=ok",
            what="both ok again",
        )
        assert "jira ok" in header_top(screen)
        await open_picker(pilot)
        assert "✓ authenticated as" in picker_line(pilot, "jira")
        assert "✓ authenticated as" in picker_line(pilot, "servicenow")


# -- the words -----------------------------------------------------------------------------------


def test_the_notes_line_says_only_what_is_not_zero_and_why_a_note_is_held() -> None:
    from anomaly_desk.tui.widgets.detail import note_lines

    assert note_lines(None) == []  # no counts (an older receiver's answer): nothing, not "none"
    assert note_lines(NoteCounts.zero()) == []
    (line,) = note_lines(NoteCounts(delivered=3, pending=1))
    assert line.plain == "  notes: 3 delivered · 1 pending"
    line, why = note_lines(NoteCounts(delivered=3, pending=1, held=1, dead=1, cancelled=2))
    assert line.plain == "  notes: 3 delivered · 1 pending · 1 held ·  1 dead  · 2 cancelled"
    assert why.plain == "  ⚠ held: waiting behind the dead note; r retries it"
    _, why = note_lines(NoteCounts(held=3, dead=2))
    assert why.plain == "  ⚠ held: waiting behind the dead notes; r retries them"


@pytest.fixture
def restricted_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """ServiceNow's basic-auth restriction scheduled for 2030 on the instance, then a receiver."""
    import httpx

    scheduled = {"active": True, "enforce": True, "enforcement_date": "2030-01-01 00:00:00"}
    httpx.post(
        f"{sandbox.url}/_sandbox/auth", json={"basic_auth_restriction": scheduled}
    ).raise_for_status()
    desk = make_desk(tmp_path, sandbox, health_check_s=0.3)
    try:
        yield desk
    finally:
        desk.api.close()
        desk.receiver.stop()


async def test_the_header_warns_before_a_credential_stops_working(restricted_desk: Desk) -> None:
    """ServiceNow will refuse basic auth from 2030: the header marks the connection ⚠ and its
    tooltip says what and what to do, while it still works."""
    app = dashboard(restricted_desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: "servicenow ok ⚠" in header_top(screen), what="the ⚠ mark")
        assert "jira ok ⚠" not in header_top(screen)  # Jira has nothing to fear
        tooltip = str(screen.header.tooltip)
        assert "basic-auth restriction scheduled for 2030-01-01" in tooltip
        assert "oauth_client_credentials" in tooltip
