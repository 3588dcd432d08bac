"""Issue #13 item 8: two-way sync in the dashboard.

Each ticket in the detail says its state and how long ago a poll read it; a comment a person
made on a ticket is marked as coming from it (``⇠ DQ-3 alice@example.com``), as plain text;
history entries a ticket made read as such; the connection picker and the key map say what each
connection syncs which way. The pilot tests run a receiver that polls every 0.2 s over the
sandbox, where alice@example.com acts on Jira through its ordinary API.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import OptionList, Static

from anomaly_desk.core.views import (
    AnomalyDetail,
    CommentView,
    ConnectionView,
    HistoryEntry,
    TicketLinkView,
    TwoWayView,
)
from anomaly_desk.tui.screens.create_ticket import CreateTicketScreen
from anomaly_desk.tui.screens.keymap import KeyMapScreen
from anomaly_desk.tui.widgets.connection_list import connection_prompt, sync_lines
from anomaly_desk.tui.widgets.detail import DetailPane, read_ago, render_detail, ticket_author
from tests.integration.conftest import Desk
from tests.integration.test_two_way import BOTH, alice_comments, alice_moves_to_done
from tests.support import ThreadedServer
from tests.tui.conftest import SIZE, dashboard, make_desk, ready, wait_for

NOW = datetime(2026, 11, 20, 9, 10, 0, tzinfo=UTC)


def text_of(renderable: Any, width: int = 200) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def lines_of(widget: Widget) -> list[str]:
    return [strip.text for strip in widget.render_lines(Region(0, 0, *widget.size))]


def two_way_doc(**changes: Any) -> AnomalyDetail:
    link = TicketLinkView(
        id="l1",
        connection="jira",
        provider="jira",
        ticket_key="DQ-3",
        ticket_id="10003",
        origin="created",
        state="Done",
        state_category="done",
        state_read_at=(NOW - timedelta(seconds=12)).isoformat(),
    )
    doc = AnomalyDetail(
        id=1,
        status="Resolved",
        links=[link],
        comments=[
            CommentView(at="2026-11-20T09:01:00Z", text="looking", by="operator"),
            CommentView(
                at="2026-11-20T09:05:00Z",
                text="[bold]seen[/] in the nightly load [@click=app.quit]x[/]",
                by="from DQ-3 ([red]alice@example.com)",
                origin="l1",
            ),
        ],
        history=[
            HistoryEntry(at="2026-11-20T09:00:00Z", kind="ticket created", ticket="DQ-3"),
            HistoryEntry(at="2026-11-20T09:05:00Z", kind="comment", by="from DQ-3 (alice@x.io)"),
            HistoryEntry.model_validate(
                {
                    "at": "2026-11-20T09:06:00Z",
                    "kind": "status",
                    "from": "Active",
                    "to": "Resolved",
                    "by": "DQ-3 (5b10a2844c20165700ede21f)",
                }
            ),
            HistoryEntry(at="2026-11-20T09:07:00Z", kind="comment", by="DQ-30 fan"),
        ],
    )
    return doc.model_copy(update=changes)


# -- the detail ---------------------------------------------------------------------------------


def test_a_tickets_state_says_how_long_ago_a_poll_read_it() -> None:
    assert read_ago((NOW - timedelta(seconds=12)).isoformat(), NOW) == "read 12 s ago"
    assert read_ago(NOW.isoformat(), NOW) == "read just now"
    assert read_ago((NOW - timedelta(minutes=3)).isoformat(), NOW) == "read 3 min ago"
    assert read_ago("2026-11-01T09:00:00Z", NOW) == "read 2026-11-01 09:00:00 UTC"
    assert read_ago(None, NOW) == "not read yet"
    text = text_of(render_detail(two_way_doc(), now=NOW))
    assert "DQ-3  Done · read 12 s ago\n  jira · created\n" in text


def test_a_comment_from_a_ticket_is_marked_and_never_markup() -> None:
    text = text_of(render_detail(two_way_doc(), now=NOW))
    assert "2026-11-20 09:01:00 UTC (9 min ago) · operator\n  looking" in text
    assert "(5 min ago) · ⇠ DQ-3 [red]alice@example.com\n" in text
    assert "  [bold]seen[/] in the nightly load [@click=app.quit]x[/]" in text


def test_history_a_ticket_made_reads_naturally() -> None:
    text = text_of(render_detail(two_way_doc(), now=NOW))
    assert "09:05:00 UTC  comment  ⇠ DQ-3 alice@x.io" in text
    assert "09:06:00 UTC  Active → Resolved  ⇠ DQ-3 done by 5b10a2844c20165700ede21f" in text
    assert "09:07:00 UTC  comment  by DQ-30 fan" in text  # a person's name, not a ticket's
    assert "by from" not in text


def test_whose_words_a_ticket_change_was() -> None:
    keys = ["DQ-12", "DQ-1"]
    assert ticket_author("from DQ-12 (ana@acme.com)", keys) == ("DQ-12", "ana@acme.com")
    assert ticket_author("DQ-1 (557058:ab)", keys) == ("DQ-1", "557058:ab")
    assert ticket_author("DQ-1", keys) == ("DQ-1", "")
    assert ticket_author("DQ-1x", keys) is None
    assert ticket_author("operator", keys) is None
    assert ticket_author(None, keys) is None


def test_a_comment_whose_ticket_was_unlinked_still_says_where_it_came_from() -> None:
    doc = two_way_doc(links=[])  # DQ-3 is still named in the history
    text = text_of(render_detail(doc, now=NOW))
    assert "· ⇠ DQ-3 [red]alice@example.com\n" in text
    doc = two_way_doc(links=[], history=[])
    text = text_of(render_detail(doc, now=NOW))
    assert "· ⇠ a ticket from DQ-3 ([red]alice@example.com)\n" in text


async def test_the_read_time_counts_up_without_an_event() -> None:
    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield DetailPane()

    now = datetime.now(UTC)
    (link,) = two_way_doc().links
    doc = two_way_doc(
        links=[link.model_copy(update={"state_read_at": (now - timedelta(seconds=3)).isoformat()})]
    )
    async with One().run_test(size=(100, 40)) as pilot:
        pane = pilot.app.query_one(DetailPane)
        pane.show(doc)
        await pilot.pause()
        body = pane.query_one("#detail-body", Static)

        def said() -> str:
            found = re.search(r"read (\d+) s ago", "\n".join(lines_of(body)))
            return found.group(1) if found else ""

        first = said()
        assert first in ("3", "4")
        await wait_for(pilot, lambda: said() not in ("", first), limit=3, what="the tick")
        assert int(said()) > int(first)


# -- directions ----------------------------------------------------------------------------------


def two_way(**settings: Any) -> TwoWayView:
    defaults: dict[str, Any] = {
        "status": "to_ticket",
        "comments": "to_ticket",
        "fan_out_ticket_comments": False,
        "on_ticket_done": None,
        "on_anomaly_archived": "note",
        "on_recurrence": "comment",
        "poll_s": 60.0,
    }
    return TwoWayView(**{**defaults, **settings})


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({}, "status → · comments → · polls 60 s"),
        (
            {"status": "both", "comments": "from_ticket", "on_ticket_done": "archive:Resolved"},
            "status ⇄ · comments ← · polls 60 s | done archives: Resolved",
        ),
        (
            {
                "status": "both",
                "comments": "both",
                "fan_out_ticket_comments": True,
                "on_anomaly_archived": "transition",
                "on_recurrence": "reopen",
                "poll_s": 300,
            },
            "status ⇄ · comments ⇄ fanned out · polls 5 min"
            " | archive → ticket done · recurrence reopens",
        ),
        (
            {"status": "off", "comments": "off", "on_recurrence": "new_ticket", "poll_s": 0},
            "status – · comments – · not polled | recurrence: new ticket",
        ),
        # a done ticket archives nothing when the status does not come back
        (
            {"on_ticket_done": "archive:Resolved", "poll_s": 0.2},
            "status → · comments → · polls 0.2 s",
        ),
    ],
)
def test_directions_compactly(settings: dict[str, Any], said: str) -> None:
    assert " | ".join(sync_lines(two_way(**settings))) == said


def test_the_picker_line_has_the_directions_under_the_health() -> None:
    connection = ConnectionView(
        name="jira", provider="jira", url="https://x", health=None, project="DQ"
    )
    assert connection_prompt(connection).plain == "jira  Jira Cloud · DQ / Task  · not checked yet"
    connection.sync = two_way(status="both")
    assert connection_prompt(connection).plain.split("\n") == [
        "jira  Jira Cloud · DQ / Task  · not checked yet",
        "  status ⇄ · comments → · polls 60 s",
    ]


# -- over loopback: alice on the Jira issue ------------------------------------------------------

JIRA_BOTH = BOTH  # status and comments both ways, done archives as Resolved, polls every 0.2 s


@pytest.fixture
def two_way_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[tuple[Desk, str]]:
    desk = make_desk(tmp_path, sandbox, jira=JIRA_BOTH)
    try:
        desk.post_webhook("04-api-record-anomaly.json")  # anomaly 10260, alone
        made = desk.api.post(
            "/api/anomalies/10260/tickets",
            json={"connection": "jira", "fields": {"summary": "two-way"}},
        )
        assert made.status_code == 201, made.text
        desk.wait_idle()
        yield desk, made.json()["ticket_key"]
    finally:
        desk.api.close()
        desk.receiver.stop()


async def test_alice_comments_and_moves_the_issue_to_done(two_way_desk: tuple[Desk, str]) -> None:
    desk, key = two_way_desk
    async with dashboard(desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert screen.table.current.id == 10260
        await pilot.press("5")  # every status: the row stays once it is archived
        body = screen.detail_pane.query_one("#detail-body", Static)

        def shown() -> str:
            """The detail's words, its lines joined (the pane is narrow at this size)."""
            return " ".join(" ".join(lines_of(body)).split())

        # the picker says what each connection syncs which way
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CreateTicketScreen))
        picker = pilot.app.screen.query_one("#connections", OptionList)
        prompts = [str(picker.get_option_at_index(i).prompt) for i in range(2)]
        assert prompts[0].endswith(
            "\n  status ⇄ · comments ⇄ · polls 0.2 s"
            "\n  done archives: Resolved · archive → ticket done"
        )
        assert prompts[1].endswith(
            "ServiceNow  ✓ authenticated as admin\n  status → · comments → · not polled"
        )
        await pilot.press("escape")
        # and so does the key map
        await wait_for(pilot, lambda: pilot.app.screen is screen, what="back")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, KeyMapScreen))
        keymap = "\n".join(
            "\n".join(lines_of(static)) for static in pilot.app.screen.query(".section")
        )
        assert "Connections" in keymap
        assert "status ⇄ · comments ⇄ · polls 0.2 s" in keymap
        assert "done archives: Resolved · archive → ticket done" in keymap
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen, what="back")
        # and the header's tooltip, under each connection's health
        assert "\n  status → · comments → · not polled" in str(screen.header.tooltip)

        alice_comments(desk, key, "[bold]seen[/] in the nightly load")
        await wait_for(
            pilot,
            lambda: any(c.origin for c in screen.detail_doc.comments),
            what="her comment in the detail",
        )
        await wait_for(pilot, lambda: f"⇠ {key} alice@example.com" in shown(), what="marked")
        assert f"⇠ {key} alice@example.com [bold]seen[/] in the nightly load" in shown()

        alice_moves_to_done(desk, key)
        await wait_for(
            pilot, lambda: screen.detail_doc.status == "Resolved", what="the anomaly archived"
        )
        await wait_for(pilot, lambda: f"⇠ {key} done by" in shown(), what="archived by DQ")
        (link,) = screen.detail_doc.links
        assert link.state == "Done"
        assert re.search(rf"{key} Done · read (just now|[0-4] s ago)", shown()), shown()
        assert screen.table.current.id == 10260
        assert screen.table.current.status == "Resolved"
