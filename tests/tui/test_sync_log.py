"""The sync log: following the tail, its filters, the entry dialog, cancelled jobs, attempt
numbers and provider text shown as written. Pilot tests over the real receiver and sandbox, plus
the widget alone for text the sandbox cannot be made to send."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static

from anomaly_desk.core.views import SyncJobView, SyncLogEntryView
from anomaly_desk.tui.screens.log_entry import LogEntryScreen
from anomaly_desk.tui.screens.main import MainScreen
from anomaly_desk.tui.widgets.sync_log import PAUSED, SyncLog
from tests.integration.conftest import Desk
from tests.tui.conftest import LINKED_ANOMALY, SIZE, dashboard, ready, wait_for

HOSTILE = "[bold]x[/] [@click=app.quit] [red]y"
OTHER_ANOMALY = 10261  # the second open row: no ticket until a test makes one


# -- helpers ----------------------------------------------------------------------------------


def subscribed(desk: Desk) -> bool:
    return desk.receiver.app.state.desk.bus.subscribers > 0


def comment(desk: Desk, anomaly_id: int, text: str) -> None:
    """A comment on the anomaly: a note to each of its tickets, so a line in the log."""
    response = desk.api.post(f"/api/anomalies/{anomaly_id}/comments", json={"text": text})
    assert response.status_code in (200, 201), response.text


def new_ticket(desk: Desk, anomaly_id: int) -> str:
    response = desk.api.post(
        f"/api/anomalies/{anomaly_id}/tickets",
        json={"connection": "jira", "fields": {"summary": f"anomaly {anomaly_id}"}},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["ticket_key"])


def lines_about(log: SyncLog, text: str) -> list[SyncLogEntryView]:
    """Log entries (shown or not) whose note carries ``text``."""
    return [e for e in log.entries.values() if text in (e.text or "")]


def shown(log: SyncLog) -> list[SyncLogEntryView]:
    """The entries of the lines the table shows, top to bottom."""
    return [log.entries[row.key.value or ""] for row in log.ordered_rows]


def screen_lines(widget: Widget) -> list[str]:
    """What the widget shows, line by line, as plain text."""
    return [widget.render_line(y).text for y in range(widget.size.height)]


def pane(pilot: Pilot[Any]) -> Widget:
    return pilot.app.screen.query_one("#log-pane")


def fact(screen: LogEntryScreen, name: str) -> str:
    return str(screen.query_one(f"#fact-{name}", Static).render())


def attempt_lines(dialog: LogEntryScreen) -> list[str]:
    """The dialog's list of the job's attempts: one line each, without their messages."""
    return [str(line.render()) for line in dialog.query("#attempts .attempt").results(Static)]


async def focus_log(pilot: Pilot[Any], screen: MainScreen) -> SyncLog:
    screen.sync_log.focus()
    await pilot.pause()
    return screen.sync_log


# -- following the tail -----------------------------------------------------------------------


async def test_the_log_follows_new_lines_until_the_cursor_moves_up(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        log = await focus_log(pilot, screen)
        for n in range(3):
            comment(tui_desk, LINKED_ANOMALY, f"first batch {n}")
        await wait_for(pilot, lambda: len(lines_about(log, "first batch")) == 3, what="3 lines")
        await pilot.pause()
        assert log.cursor_row == log.row_count - 1
        assert "first batch 2" in (log.selected.text or "")
        assert not pane(pilot).border_subtitle

        await pilot.press("up")
        assert str(pane(pilot).border_subtitle) == PAUSED
        held = log.selected
        assert held is not None
        assert "first batch 1" in (held.text or "")
        comment(tui_desk, LINKED_ANOMALY, "while paused")
        await wait_for(pilot, lambda: lines_about(log, "while paused"), what="a new line")
        await pilot.pause()
        assert log.selected == held  # the cursor stayed on the line the user was reading
        assert log.cursor_row < log.row_count - 1
        assert str(pane(pilot).border_subtitle) == PAUSED

        await pilot.press("end")  # the last line, and follow again
        assert not pane(pilot).border_subtitle
        assert log.cursor_row == log.row_count - 1
        comment(tui_desk, LINKED_ANOMALY, "after end")
        await wait_for(
            pilot,
            lambda: log.selected is not None and "after end" in (log.selected.text or ""),
            what="the cursor on the newest line",
        )

        await pilot.press("home")
        assert log.cursor_row == 0
        assert str(pane(pilot).border_subtitle) == PAUSED
        await pilot.press("end")
        assert log.cursor_row == log.row_count - 1
        assert not pane(pilot).border_subtitle


# -- filters ----------------------------------------------------------------------------------


async def test_this_anomaly_only_follows_the_highlighted_row(tui_desk: Desk) -> None:
    new_ticket(tui_desk, OTHER_ANOMALY)
    tui_desk.wait_idle()
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        comment(tui_desk, LINKED_ANOMALY, "about the linked one")
        comment(tui_desk, OTHER_ANOMALY, "about the other one")
        log = screen.sync_log
        await wait_for(
            pilot,
            lambda: lines_about(log, "the linked one") and lines_about(log, "the other one"),
            what="lines of both anomalies",
        )
        assert {e.anomaly_id for e in shown(log)} >= {LINKED_ANOMALY, OTHER_ANOMALY}
        assert screen.table.current.id == LINKED_ANOMALY

        await focus_log(pilot, screen)
        await pilot.press("t")
        assert {e.anomaly_id for e in shown(log)} == {LINKED_ANOMALY}
        assert f"anomaly {LINKED_ANOMALY} only" in str(pane(pilot).border_title)

        # new lines are filtered as they stream in
        comment(tui_desk, OTHER_ANOMALY, "other, streamed")
        comment(tui_desk, LINKED_ANOMALY, "linked, streamed")
        await wait_for(
            pilot,
            lambda: lines_about(log, "other, streamed") and lines_about(log, "linked, streamed"),
            what="both streamed lines",
        )
        await pilot.pause()
        assert {e.anomaly_id for e in shown(log)} == {LINKED_ANOMALY}
        assert "linked, streamed" in (shown(log)[-1].text or "")

        # the highlight moves in the table: the log shows that anomaly's lines
        screen.table.focus()
        await pilot.press("down")
        assert screen.table.current.id == OTHER_ANOMALY
        await wait_for(
            pilot,
            lambda: {e.anomaly_id for e in shown(log)} == {OTHER_ANOMALY},
            what="the other anomaly's lines",
        )
        assert f"anomaly {OTHER_ANOMALY} only" in str(pane(pilot).border_title)
        assert "other, streamed" in (shown(log)[-1].text or "")

        await focus_log(pilot, screen)
        await pilot.press("t")  # off again: everything
        assert {e.anomaly_id for e in shown(log)} >= {LINKED_ANOMALY, OTHER_ANOMALY}
        assert len(shown(log)) == len(log.entries)
        assert "only" not in str(pane(pilot).border_title)


async def test_dead_only_shows_dead_lines_as_they_come(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        log = screen.sync_log
        comment(tui_desk, LINKED_ANOMALY, "delivered fine")
        await wait_for(pilot, lambda: lines_about(log, "delivered fine"), what="a done line")

        await focus_log(pilot, screen)
        await pilot.press("D")
        assert shown(log) == []
        assert "dead only" in str(pane(pilot).border_title)

        tui_desk.faults.update({"force_status": 401, "force_count": 5})
        comment(tui_desk, LINKED_ANOMALY, "refused")
        await wait_for(pilot, lambda: log.dead_count == 1, what="a dead job")
        tui_desk.faults.reset()
        await pilot.pause()
        (dead,) = shown(log)
        assert dead.outcome == "dead"
        assert "refused" in (dead.text or "")
        title = str(pane(pilot).border_title)
        assert "dead only" in title
        assert "1 dead" in title

        # a line that is not dead, streamed in meanwhile, stays out of the filtered view
        new_ticket(tui_desk, OTHER_ANOMALY)
        comment(tui_desk, OTHER_ANOMALY, "elsewhere")
        await wait_for(pilot, lambda: lines_about(log, "elsewhere"), what="another line")
        await pilot.pause()
        assert shown(log) == [dead]

        await pilot.press("D")
        assert len(shown(log)) == len(log.entries)
        assert "dead only" not in str(pane(pilot).border_title)


# -- the entry dialog and attempt numbers -----------------------------------------------------


async def test_enter_opens_the_whole_entry_with_every_attempt_of_its_job(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        log = screen.sync_log
        key = screen.detail_doc.links[0].ticket_key
        tui_desk.faults.update({"force_status": 503, "force_count": 1})
        comment(tui_desk, LINKED_ANOMALY, "once refused, then delivered")
        await wait_for(
            pilot,
            lambda: [e.outcome for e in lines_about(log, "once refused")] == ["retry", "done"],
            what="a retry, then the delivery",
        )
        retry, done = lines_about(log, "once refused")
        assert retry.job_id == done.job_id
        assert (retry.attempt, done.attempt) == (1, 2)  # the retry counts on
        await focus_log(pilot, screen)
        await pilot.pause()
        assert log.selected == done
        tries = [line.split()[4] for line in screen_lines(log)[1:] if key in line]
        assert tries[-2:] == ["1", "2"]  # the "try" column as the user reads it

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogEntryScreen), what="dialog")
        dialog = pilot.app.screen
        assert isinstance(dialog, LogEntryScreen)
        assert key in fact(dialog, "ticket")
        assert fact(dialog, "anomaly") == str(LINKED_ANOMALY)
        assert fact(dialog, "kind") == "comment"
        assert fact(dialog, "outcome") == "done"
        assert fact(dialog, "attempt") == "try 2"
        assert "once refused, then delivered" in fact(dialog, "note")
        attempts = attempt_lines(dialog)
        assert len(attempts) == 2
        assert "try 1" in attempts[0]
        assert "retry" in attempts[0]
        assert retry.at[11:19] in attempts[0]
        assert "try 2" in attempts[1]
        assert "done" in attempts[1]
        assert done.at[11:19] in attempts[1]
        assert attempts[1].startswith("›")  # the line the dialog is about

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="closed")
        assert log.has_focus

        # the retry's message is whole in the dialog, however long
        await pilot.press("up")
        assert log.selected == retry
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogEntryScreen), what="dialog")
        dialog = pilot.app.screen
        assert isinstance(dialog, LogEntryScreen)
        assert retry.message
        assert "next try in" in retry.message
        assert " ".join(fact(dialog, "message").split()) == " ".join(retry.message.split())
        assert fact(dialog, "outcome") == "retry"
        assert fact(dialog, "attempt") == "try 1"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="closed")


async def test_a_job_retried_by_hand_lists_both_runs_in_the_dialog(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        log = screen.sync_log
        tui_desk.faults.update({"force_status": 401, "force_count": 5})
        comment(tui_desk, LINKED_ANOMALY, "refused, then retried")
        await wait_for(pilot, lambda: log.dead_count == 1, what="a dead job")
        tui_desk.faults.reset()
        await focus_log(pilot, screen)
        (dead,) = lines_about(log, "then retried")
        response = tui_desk.api.post(f"/api/sync-jobs/{dead.job_id}/retry")  # a person retries
        assert response.status_code == 200, response.text
        await wait_for(
            pilot,
            lambda: [e.outcome for e in lines_about(log, "then retried")] == ["dead", "done"],
            what="the retried delivery",
        )
        dead, done = lines_about(log, "then retried")
        assert log.dead_count == 0
        await pilot.pause()
        assert log.selected == done
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogEntryScreen), what="dialog")
        dialog = pilot.app.screen
        assert isinstance(dialog, LogEntryScreen)
        # the numbers the receiver gave each attempt, both times, with the manual retry between
        first, second = attempt_lines(dialog)
        assert f"try {dead.attempt}" in first
        assert "dead" in first
        assert f"try {done.attempt}" in second
        assert "done" in second
        assert len(dialog.query(".attempt-requeued")) == 1
        assert fact(dialog, "attempt") == f"try {done.attempt}"
        await pilot.press("escape")


# -- cancelled jobs ---------------------------------------------------------------------------


async def test_a_dead_job_cancelled_by_an_unlink_stops_counting_as_dead(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        log = screen.sync_log
        link = screen.detail_doc.links[0]
        tui_desk.faults.update({"force_status": 401, "force_count": 5})
        comment(tui_desk, LINKED_ANOMALY, "never delivered")
        await wait_for(pilot, lambda: log.dead_count == 1, what="a dead job")
        tui_desk.faults.reset()
        assert "1 dead" in str(pane(pilot).border_title)
        (dead,) = lines_about(log, "never delivered")

        response = tui_desk.api.delete(f"/api/anomalies/{LINKED_ANOMALY}/links/{link.id}")
        assert response.status_code == 200, response.text
        await wait_for(pilot, lambda: log.dead_count == 0, what="no longer dead")
        assert "dead" not in str(pane(pilot).border_title)
        row = log.get_row(str(dead.id))
        outcome = row[5]
        assert str(outcome) == "cancelled"
        assert "dim" in str(outcome.style)
        assert log.dead_job_for(dead) is None  # `r` has nothing to retry there

        # read again from the receiver (ctrl+r): still not dead
        await focus_log(pilot, screen)
        await pilot.press("ctrl+r")
        await pilot.pause(0.5)
        assert log.dead_count == 0
        assert str(log.get_row(str(dead.id))[5]) == "cancelled"


# -- provider and user text is text -----------------------------------------------------------


async def test_a_note_that_looks_like_markup_is_shown_as_written(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        log = screen.sync_log
        comment(tui_desk, LINKED_ANOMALY, HOSTILE)
        await wait_for(pilot, lambda: lines_about(log, HOSTILE), what="the note's line")
        await pilot.pause()
        assert any(HOSTILE in line for line in screen_lines(log))
        await focus_log(pilot, screen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogEntryScreen), what="dialog")
        assert isinstance(pilot.app.screen, LogEntryScreen)
        assert HOSTILE in fact(pilot.app.screen, "note")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="closed")
        assert pilot.app.is_running


# -- the widget alone: a provider message the sandbox cannot send ------------------------------


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        with Vertical(id="log-pane"):
            yield SyncLog(id="sync-log")


def entry(
    entry_id: int,
    outcome: str = "done",
    message: str | None = None,
    ticket_key: str = "DQ-1",
    job_id: int = 1,
    attempt: int = 1,
) -> SyncLogEntryView:
    return SyncLogEntryView(
        id=entry_id,
        at=f"2026-11-20T09:00:{entry_id:02d}.000Z",
        job_id=job_id,
        anomaly_id=20001,
        link_id="l1",
        connection="jira",
        ticket_key=ticket_key,
        kind="status",
        attempt=attempt,
        outcome=outcome,
        duration_ms=12.0,
        message=message,
        text="a note",
    )


def job(job_id: int, state: str) -> SyncJobView:
    return SyncJobView(
        id=job_id,
        anomaly_id=20001,
        link_id="l1",
        connection="jira",
        ticket_key="DQ-1",
        kind="status",
        text="a note",
        state=state,
        attempts=1,
        next_at=0.0,
    )


async def test_provider_text_in_the_widget_is_never_markup() -> None:
    app = LogApp()
    async with app.run_test(size=(160, 20)) as pilot:
        log = app.query_one(SyncLog)
        hostile_key = "[b]DQ[/b]-[@click=app.quit]"
        log.add_entries([entry(1, "dead", message=HOSTILE, ticket_key=hostile_key)])
        await pilot.pause()
        (line,) = [text for text in screen_lines(log) if "dead" in text]
        assert HOSTILE[:30] in line  # the message column may cut the end, never the brackets
        assert "[b]DQ[/b]" in line
        log.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LogEntryScreen), what="dialog")
        assert isinstance(app.screen, LogEntryScreen)
        assert fact(app.screen, "message") == HOSTILE
        assert fact(app.screen, "ticket").startswith(hostile_key)
        await pilot.press("escape")
        assert app.is_running


async def test_job_states_read_again_clear_a_dead_job_that_left_that_state() -> None:
    app = LogApp()
    async with app.run_test(size=(160, 20)) as pilot:
        log = app.query_one(SyncLog)
        log.add_entries([entry(1, "dead", message="refused", job_id=1)])
        log.add_entries([entry(2, "dead", message="refused", job_id=2)])
        log.set_job_states([job(1, "dead"), job(2, "dead")], every_dead=True)
        assert log.dead_count == 2
        log.job_changed(job(2, "cancelled"))
        assert log.dead_count == 1
        assert str(log.get_row("2")[5]) == "cancelled"
        # read again: no job is dead any more (job 1 was retried meanwhile, unseen here)
        log.set_job_states([], every_dead=True)
        await pilot.pause()
        assert log.dead_count == 0
        assert str(log.get_row("1")[5]) == "dead · retried"
        assert str(log.get_row("2")[5]) == "cancelled"
        assert "dead" not in str(app.query_one("#log-pane").border_title)


async def test_the_wheel_or_a_click_above_the_tail_pauses_following() -> None:
    app = LogApp()
    async with app.run_test(size=(120, 14)) as pilot:
        log = app.query_one(SyncLog)
        log.add_entries([entry(n, job_id=n) for n in range(1, 31)])
        await pilot.pause()
        assert log.selected is not None
        assert log.selected.id == 30
        log.post_message(events.MouseScrollUp(log, 5, 5, 0, -1, 0, False, False, False))
        await pilot.pause()
        assert str(app.query_one("#log-pane").border_subtitle) == PAUSED
        log.add_entries([entry(31, job_id=31)])
        await pilot.pause()
        assert log.selected.id == 30  # the view was left alone
        await pilot.press("end")
        assert log.selected.id == 31
        assert not app.query_one("#log-pane").border_subtitle
        await pilot.click(log, offset=(2, 2))  # the second line on screen, far above the tail
        assert log.selected.id < 31
        assert str(app.query_one("#log-pane").border_subtitle) == PAUSED
