"""The platform in the dashboard: what became of this desk's changes there (write-back), its
jobs in the sync log, `r` on a dead one, the anomaly's own link, and importing from the
platform's API with live progress.

Pilot tests over a real receiver with the platform's API configured and the sandbox's emulator
of that API (300 seeded anomalies, 196 open; a log of every write it accepted); its fault
injection, narrowed to the platform's paths, plays a refused token (401) or a slow platform.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, ProgressBar, Static

from anomaly_desk.core.views import AnomalyDetail, ImportProgressView, NoteCounts
from anomaly_desk.sandbox.faults import PLATFORM_PATHS
from anomaly_desk.tui.screens.choose_link import ChooseValueScreen
from anomaly_desk.tui.screens.comment import CommentScreen
from anomaly_desk.tui.screens.import_platform import (
    NOT_CONFIGURED,
    ImportScreen,
    parse_datastore,
    parse_since,
    progress_line,
    summary,
)
from anomaly_desk.tui.screens.log_entry import LogEntryScreen
from anomaly_desk.tui.screens.main import MainScreen
from anomaly_desk.tui.widgets.detail import platform_state, render_detail
from tests.integration.conftest import Desk
from tests.support import ThreadedServer
from tests.tui.conftest import SIZE, dashboard, make_desk, ready, wait_for

ANOMALY = 10260  # the webhook fixture 04: the platform is told it exists, open


@pytest.fixture
def platform(sandbox: ThreadedServer) -> Any:
    return sandbox.app.state.platform  # type: ignore[attr-defined]


@pytest.fixture
def platform_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """A receiver with the platform's API configured (write-back on), nothing stored yet."""
    desk = make_desk(tmp_path, sandbox, platform=True)
    try:
        yield desk
    finally:
        desk.faults.reset()
        desk.api.close()
        desk.receiver.stop()


def accepted_writes(platform: Any, anomaly_id: int) -> list[tuple[str, str]]:
    """What the platform accepted for this anomaly, in order: (status|comment, value)."""
    found = []
    for call in platform.writes(anomaly_id, ok=True):
        if call.method == "POST":
            found.append(("comment", call.body["message"]))
        elif call.method == "PUT":
            found.append(("status", call.body["status"]))
        else:
            found.append(("status", call.query["status"]))
    return found


def toasts(pilot: Pilot[Any]) -> str:
    texts = []
    for toast in pilot.app.screen.query("Toast"):
        rendered = toast.render()
        texts.append(str(getattr(rendered, "plain", rendered)))
    return "\n".join(texts)


def squeezed(text: str) -> str:
    """Each line with its runs of spaces made one (the facts' column width varies)."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def rendered(content: Any) -> str:
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(content)
    return squeezed(console.export_text())


def detail_text(screen: MainScreen) -> str:
    return rendered(screen.query_one("#detail-body", Static).content)


def platform_notes(screen: MainScreen) -> NoteCounts | None:
    doc = screen.detail_doc
    return None if doc is None else doc.platform_notes


def text_of(widget: Static) -> str:
    rendered = widget.render()
    return str(getattr(rendered, "plain", rendered))


# -- the detail's platform line -----------------------------------------------------------------


def counts(**n: int) -> NoteCounts:
    return NoteCounts(**{**NoteCounts.zero().model_dump(), **n})


def test_the_platform_line_says_in_sync_pending_or_dead() -> None:
    assert platform_state(None) is None  # no platform job: write-back off, or nothing sent yet
    in_sync = platform_state(counts(delivered=3))
    assert in_sync is not None
    assert in_sync.plain == "in sync  3 delivered"
    assert [str(span.style) for span in in_sync.spans] == ["green", "dim"]
    nothing_yet = platform_state(counts())
    assert nothing_yet is not None
    assert nothing_yet.plain == "in sync"
    pending = platform_state(counts(delivered=1, pending=2))
    assert pending is not None
    assert pending.plain == "pending (2)  1 delivered"
    stuck = platform_state(counts(dead=1, held=2))
    assert stuck is not None
    assert stuck.plain == "dead (1) · held (2) — r retries"
    assert [str(span.style) for span in stuck.spans] == ["bold red", "red"]
    held_only = platform_state(counts(held=1))  # behind a dead one that is gone: still red
    assert held_only is not None
    assert held_only.plain.startswith("held (1)")


def test_the_detail_shows_the_platform_line_and_its_stuck_notes_under_the_title() -> None:
    doc = AnomalyDetail(
        id=42,
        status="Acknowledged",
        url="https://acme.qualytics.io/anomalies/42",
        platform_notes=counts(dead=1),
    )
    text = rendered(render_detail(doc))
    assert "⚠ 1 note stuck — platform: 1 dead · r retries" in text
    assert "\nplatform dead (1) — r retries\nlink https://acme.qualytics.io/anomalies/42" in text
    text = rendered(render_detail(doc.model_copy(update={"platform_notes": None})))
    assert "platform" not in text  # no write-back: no line, no guess


# -- write-back: pending, in sync, dead, and r --------------------------------------------------


async def test_platform_write_back_pending_then_dead_then_r_brings_it_in_sync(
    platform_desk: Desk, platform: Any
) -> None:
    """A comment waits on a slow platform (pending), then lands (in sync). With the token
    refused (401), `a` dies on the platform: the detail says dead in red, the row has its
    badge, the sync log says ⇄ platform, its dialog says it is the platform's write-back. After
    the fix, `r` on the table brings it in sync, and the platform accepted one acknowledge."""
    platform.add(id=ANOMALY, status="Active")
    platform_desk.post_webhook("04-api-record-anomaly.json")
    faults = platform_desk.faults
    app = dashboard(platform_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        assert screen.detail_doc is not None
        assert screen.detail_doc.id == ANOMALY
        # write-back on, nothing to write back yet: in sync (zero counts, not "unknown")
        assert "\nplatform in sync" in detail_text(screen)

        faults.update({"latency_ms": 1500, "path_prefix": PLATFORM_PATHS})
        answer = platform_desk.api.post(
            f"/api/anomalies/{ANOMALY}/comments", json={"text": "looking at it"}
        )
        assert answer.status_code == 201, answer.text
        await wait_for(
            pilot,
            lambda: "platform pending (1)" in detail_text(screen),
            what="the comment pending on the platform",
        )
        await wait_for(
            pilot,
            lambda: "platform in sync 1 delivered" in detail_text(screen),
            limit=15,
            what="in sync once delivered",
        )

        faults.update({"latency_ms": 0, "force_status": 401, "force_count": 1000})
        await pilot.press("a")  # no ticket linked: no question
        await wait_for(pilot, lambda: "acknowledged" in toasts(pilot), what="acknowledged")
        await wait_for(
            pilot,
            lambda: (platform_notes(screen) or NoteCounts()).dead == 1,
            what="the platform job dead",
        )
        text = detail_text(screen)
        assert "platform dead (1) — r retries 1 delivered" in text
        assert "⚠ 1 note stuck — platform: 1 dead · r retries" in text
        await wait_for(pilot, lambda: screen.table.current.stuck_notes == 1, what="the row's badge")

        await pilot.press("m")  # a comment now waits behind the dead acknowledge: said so
        await wait_for(pilot, lambda: isinstance(app.screen, CommentScreen), what="comment")
        await pilot.press(*"second look")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "Note held" in toasts(pilot), what="the held toast")
        assert "held behind a dead note on the platform" in toasts(pilot)
        assert "platform dead (1) · held (1) — r retries" in detail_text(screen)
        await wait_for(pilot, lambda: screen.table.current.stuck_notes == 2, what="badge 2")

        log = screen.sync_log
        await wait_for(
            pilot,
            lambda: any(e.outcome == "dead" for e in log.entries.values()),
            what="the dead line",
        )
        log.focus()
        await pilot.pause()
        selected = log.selected
        assert selected is not None
        assert selected.outcome == "dead"
        assert selected.ticket_key == str(ANOMALY)  # the API's key: the anomaly's id
        cells = [str(cell) for cell in log.get_row_at(log.cursor_row)]
        assert cells[1:4] == ["⇄ platform", str(ANOMALY), "status"]  # not the id twice
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LogEntryScreen), what="dialog")
        dialog = app.screen
        assert isinstance(dialog, LogEntryScreen)
        assert "platform write-back" in str(dialog.query_one("#dialog").border_title)
        where = text_of(dialog.query_one("#fact-platform", Static))
        assert f"anomaly {ANOMALY} on the platform" in where
        assert "write-back" in where
        assert text_of(dialog.query_one("#fact-change", Static)) == "status → Acknowledged"
        assert "401" in text_of(dialog.query_one("#fact-message", Static))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="dialog closed")

        faults.reset()  # the token is fixed
        assert accepted_writes(platform, ANOMALY) == [("comment", "looking at it")]
        screen.table.focus()
        await pilot.press("r")
        await wait_for(pilot, lambda: "Retrying sync job" in toasts(pilot), what="retry toast")
        assert "(the platform)" in toasts(pilot)
        await wait_for(
            pilot,
            lambda: "platform in sync 3 delivered" in detail_text(screen),
            what="in sync after r (the held comment followed)",
        )
        assert "stuck" not in detail_text(screen)
        await wait_for(pilot, lambda: screen.table.current.stuck_notes == 0, what="no badge")
        await wait_for(pilot, lambda: log.dead_count == 0, what="the log no longer counts it dead")
    assert accepted_writes(platform, ANOMALY) == [
        ("comment", "looking at it"),
        ("status", "Acknowledged"),  # once: the refused try never reached the platform
        ("comment", "second look"),  # after it, in order
    ]
    assert platform.anomalies[ANOMALY].status == "Acknowledged"


# -- the anomaly's own link ---------------------------------------------------------------------


async def test_shift_o_opens_the_anomaly_and_o_offers_it_beside_several_tickets(
    tui_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)  # no browser: the URL goes to the clipboard
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("webbrowser.open", lambda *a, **k: False)
    url = tui_desk.api.get(f"/api/anomalies/{ANOMALY}").json()["url"]
    assert url == f"https://acme.qualytics.io/anomalies/{ANOMALY}"
    tickets = [
        tui_desk.api.post(
            f"/api/anomalies/{ANOMALY}/tickets",
            json={"connection": "jira", "fields": {"summary": summary_}},
        ).json()
        for summary_ in ("first", "second")
    ]
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        index = screen.model.index_of(ANOMALY)
        assert index is not None
        screen.table.cursor_row = index
        await wait_for(
            pilot,
            lambda: screen.detail_doc is not None and screen.detail_doc.id == ANOMALY,
            what="its detail",
        )
        await pilot.press("O")  # the anomaly itself, though tickets are linked
        await wait_for(pilot, lambda: app.clipboard == url, what="the anomaly's URL")
        assert f"anomaly {ANOMALY}" in toasts(pilot)

        app.copy_to_clipboard("")
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, ChooseValueScreen), what="chooser")
        chooser = app.screen
        assert isinstance(chooser, ChooseValueScreen)
        values = [value for _, value in chooser.choices]
        assert values == [tickets[0]["url"], tickets[1]["url"], url]
        assert str(chooser.choices[-1][0]).startswith(f"⇄ anomaly {ANOMALY}  in the platform")
        await pilot.press("down", "down", "enter")
        await wait_for(pilot, lambda: app.clipboard == url, what="the anomaly chosen")


# -- import -------------------------------------------------------------------------------------


def test_import_options_are_read_with_clear_messages() -> None:
    today = date(2026, 11, 20)
    assert parse_since("", today) == (None, None)
    assert parse_since(" 2026-11-01 ", today) == (date(2026, 11, 1), None)
    assert parse_since("yesterday", today)[1] == (
        "Write the day as YYYY-MM-DD, e.g. 2026-11-01 (not 'yesterday')"
    )
    assert parse_since("2026-02-30", today)[1] == "2026-02-30 is not a day of the calendar"
    assert parse_since("2026-12-01", today)[1] == (
        "2026-12-01 is in the future: no anomaly was created since"
    )
    assert parse_datastore("") == (None, None)
    assert parse_datastore("12") == (12, None)
    assert parse_datastore("orders")[1] == (
        "The datastore's id is a whole number, e.g. 12 (not 'orders')"
    )
    assert parse_datastore("0")[1] == "Datastore ids start at 1"
    assert parse_datastore("１２")[1] is not None  # full-width digits are not an id
    view = ImportProgressView(page=2, pages=3, total=300, created=120, updated=30)
    assert progress_line(view) == "page 2/3 · 120 new, 30 updated"
    assert progress_line(view.model_copy(update={"unchanged": 5, "resumed_from": 2})) == (
        "page 2/3 · 120 new, 30 updated, 5 unchanged · resumed at page 2"
    )
    assert progress_line(ImportProgressView(page=0, pages=0, total=0)).startswith("starting")
    done = ImportProgressView(page=3, pages=3, total=300, created=270, updated=30, done=True)
    assert summary(done) == "Imported 300 anomalies in 3 pages: 270 new, 30 updated, 0 unchanged"
    failed = view.model_copy(update={"error": "platform: authentication failed (401)"})
    assert summary(failed) == (
        "Stopped after page 2/3: platform: authentication failed (401). Importing again with "
        "the same options resumes where it stopped."
    )


async def open_import(pilot: Pilot[Any], how: str = "key") -> ImportScreen:
    if how == "palette":
        await pilot.press("ctrl+p")
        await pilot.press(*"Import from platform")
        await pilot.pause(0.3)
        await pilot.press("enter")
    else:
        await pilot.press("I")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ImportScreen), what="the dialog")
    dialog = pilot.app.screen
    assert isinstance(dialog, ImportScreen)
    return dialog


def field_error(dialog: ImportScreen, name: str) -> str:
    return text_of(dialog.query_one(f"#{name}-error", Static))


async def test_import_from_the_palette_shows_each_page_and_the_rows_appear(
    platform_desk: Desk, platform: Any
) -> None:
    """An empty desk; the palette's "Import from platform" with the defaults (the open ones):
    page 1/2 then 2/2 in the dialog and the header, a notification with the summary, the rows
    in the list."""
    opened = sum(1 for a in platform.anomalies.values() if not a.archived)
    assert opened == 196
    platform_desk.faults.update({"latency_ms": 700, "path_prefix": PLATFORM_PATHS})
    app = dashboard(platform_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        assert len(screen.model) == 0
        dialog = await open_import(pilot, "palette")
        assert not dialog.query_one("#archived", Checkbox).value
        await pilot.press("ctrl+s")
        await wait_for(
            pilot,
            lambda: any(v.page == 1 and not v.done for v in dialog.views),
            what="page 1 shown",
        )
        assert dialog.has_class("-progress")
        assert screen.header.importing is not None  # the header says it too
        assert "page 1/2 · 100 new, 0 updated" in text_of(
            dialog.query_one("#progress-line", Static)
        )
        bar = dialog.query_one("#import-bar", ProgressBar)
        assert (bar.progress, bar.total) == (1, 2)
        await wait_for(pilot, lambda: dialog.view is not None and dialog.view.done, what="done")
        assert text_of(dialog.query_one("#progress-line", Static)) == (
            "page 2/2 · 196 new, 0 updated"
        )
        summary_text = "Imported 196 anomalies in 2 pages: 196 new, 0 updated, 0 unchanged"
        assert text_of(dialog.query_one("#result", Static)) == summary_text
        await wait_for(pilot, lambda: "Import done" in toasts(pilot), what="the notification")
        assert summary_text in toasts(pilot)
        assert screen.header.importing is None
        await pilot.press("enter")  # the focused Close
        await wait_for(pilot, lambda: app.screen is screen, what="dialog closed")
        await wait_for(pilot, lambda: len(screen.model) >= 100, what="the imported rows")
        await wait_for(pilot, lambda: screen.header.total == 196, what="the counts")
        shown = [v.page for v in dialog.views if not v.done]
        assert shown == sorted(shown)  # never went backwards
    assert platform.writes(None) == []  # an import writes nothing back


async def test_import_checks_its_options_and_says_how_to_configure_the_platform(
    tui_desk: Desk,
) -> None:
    """A receiver without the platform's API: bad options are marked where they were typed;
    good ones get the receiver's 422, said as how to configure it."""
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        dialog = await open_import(pilot)
        await pilot.click("#since")
        await pilot.press(*"2026-13-01")
        await pilot.click("#datastore")
        await pilot.press(*"orders")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert field_error(dialog, "since") == "2026-13-01 is not a day of the calendar"
        assert "whole number" in field_error(dialog, "datastore")
        assert text_of(dialog.query_one("#status", Static)) == "Fix the marked field first."
        assert not dialog.has_class("-progress")

        dialog.query_one("#since", Input).value = "2026-01-01"  # typing clears the message
        await pilot.pause()
        assert field_error(dialog, "since") == ""
        dialog.query_one("#datastore", Input).value = "12"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(
            pilot,
            lambda: text_of(dialog.query_one("#status", Static)) == NOT_CONFIGURED,
            what="the 422, said how to fix",
        )
        assert "[platform]" in NOT_CONFIGURED
        assert "token_env" in NOT_CONFIGURED
        assert not dialog.has_class("-progress")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ImportScreen), what="closed")


async def test_an_import_running_already_is_shown_not_started_twice(
    platform_desk: Desk, platform: Any
) -> None:
    """An import started elsewhere (409 for a second one): the dialog shows its progress, the
    dashboard follows it to the end and says so."""
    platform_desk.faults.update({"latency_ms": 2500, "path_prefix": PLATFORM_PATHS})
    app = dashboard(platform_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        assert platform_desk.api.post("/api/import", json={}).status_code == 202
        started = time.monotonic()
        dialog = await open_import(pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: dialog.has_class("-progress"), what="its progress")
        assert time.monotonic() - started < 2.5, "the first page came first: no 409 to see"
        assert "running already" in text_of(dialog.query_one("#status", Static))
        await wait_for(
            pilot, lambda: dialog.view is not None and dialog.view.done, limit=20, what="done"
        )
        await wait_for(pilot, lambda: "Import done" in toasts(pilot), what="the notification")
        assert "196 new" in toasts(pilot)
        assert toasts(pilot).count("Import done") == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(screen.model) >= 100, what="the imported rows")
    assert len(platform_desk.api.get("/api/anomalies", params={"limit": 500}).json()["items"]) == (
        196
    )


async def test_an_import_the_platform_refuses_says_why_and_how_to_resume(
    platform_desk: Desk,
) -> None:
    platform_desk.faults.update(
        {"force_status": 401, "force_count": 1000, "path_prefix": PLATFORM_PATHS}
    )
    app = dashboard(platform_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        dialog = await open_import(pilot)
        await pilot.press("space")  # the focused checkbox: archived too
        assert dialog.query_one("#archived", Checkbox).value
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: dialog.view is not None and dialog.view.error, what="the error"
        )
        result = text_of(dialog.query_one("#result", Static))
        assert result.startswith("Stopped after the first page: ")
        assert "401" in result
        assert result.endswith("resumes where it stopped.")
        assert dialog.query_one("#result").has_class("-error")
        await wait_for(pilot, lambda: "Import stopped" in toasts(pilot), what="the notification")
        assert screen.header.importing is None
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="closed")
        await pilot.press("I")  # a stopped import: the options again, to resume it
        await wait_for(pilot, lambda: isinstance(app.screen, ImportScreen), what="again")
        assert not app.screen.has_class("-progress")
