"""Pilot tests of the dashboard against a real receiver and sandbox on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from anomaly_desk.core.store import Store
from anomaly_desk.tui.launcher import ChildReceiver, probe
from anomaly_desk.tui.screens.choose_link import ConfirmScreen
from anomaly_desk.tui.screens.main import ACTIONS
from tests.integration.conftest import Desk
from tests.support import ROOT, ThreadedServer, free_port
from tests.tui.conftest import LINKED_ANOMALY, SIZE, dashboard, ready, wait_for


def subscribed(desk: Desk) -> bool:
    return desk.receiver.app.state.desk.bus.subscribers > 0


def statuses(screen) -> set[str]:  # type: ignore[no-untyped-def]
    return {row.status for row in screen.model.view}


async def test_browse_rows_newest_first_and_detail_follows_the_cursor(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        ids = [row.id for row in screen.model.view]
        assert ids == [10280, 10261, 10260, 10250, 10240, 10233, 10231]  # open, newest first
        assert screen.detail_doc is not None
        assert screen.detail_doc.id == LINKED_ANOMALY
        (link,) = screen.detail_doc.links
        assert link.ticket_key.startswith("DQ-")
        assert link.state
        assert link.state_read_at
        assert screen.header.counts == {
            "Active": 5,
            "Acknowledged": 2,
            "Resolved": 2,
            "Duplicate": 1,
            "Invalid": 1,
            "Discarded": 1,
        }
        assert screen.header.health_text() == "jira=ok servicenow=ok"
        await pilot.press("down", "down")
        await wait_for(pilot, lambda: screen.detail_doc.id == 10260, what="detail of 10260")
        await pilot.press("end")
        assert screen.table.current.id == 10231
        await wait_for(pilot, lambda: screen.detail_doc.id == 10231, what="detail of 10231")


async def test_status_filter_keys_and_sorting(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        version = screen.rows_version
        await pilot.press("4")
        await wait_for(pilot, lambda: screen.rows_version > version, what="archived rows")
        assert statuses(screen) == {"Resolved", "Duplicate", "Invalid", "Discarded"}
        assert len(screen.model) == 5
        version = screen.rows_version
        await pilot.press("3")
        await wait_for(pilot, lambda: screen.rows_version > version, what="acknowledged rows")
        assert [r.id for r in screen.model.view] == [10261, 10231]
        version = screen.rows_version
        await pilot.press("5")
        await wait_for(pilot, lambda: screen.rows_version > version, what="all rows")
        assert len(screen.model) == 12
        await pilot.press("s")  # oldest first (of the loaded rows)
        assert screen.model.view[0].id == 10270
        await pilot.press("s")  # weight, heaviest first
        weights = [row.weight for row in screen.model.view]
        assert weights == sorted(weights, reverse=True)
        assert "weight" in str(screen.query_one("#sort").render())


async def test_slash_searches_through_the_receiver(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("/")
        assert screen.focused is not None
        assert screen.focused.id == "search"
        version = screen.rows_version
        await pilot.press(*"payments")
        await wait_for(
            pilot, lambda: screen.model.query.q == "payments" and screen.rows_version > version
        )
        assert [row.id for row in screen.model.view] == [10240]
        await wait_for(pilot, lambda: screen.detail_doc.id == 10240, what="detail follows")
        await pilot.press("enter")
        assert screen.focused is screen.table
        version = screen.rows_version
        await pilot.press("/", "ctrl+a", "ctrl+k")  # Input: select all is not needed; clear line
        await wait_for(pilot, lambda: screen.model.query.q == "" and screen.rows_version > version)
        assert len(screen.model) == 7


async def test_acknowledge_sends_a_note_the_sync_log_shows(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        assert screen.table.current.id == LINKED_ANOMALY
        await pilot.press("a", "y")  # y: notify its ticket
        await wait_for(
            pilot, lambda: screen.table.current.status == "Acknowledged", what="row acknowledged"
        )
        await wait_for(
            pilot,
            lambda: any(
                e.outcome == "done" and e.kind == "status" and e.anomaly_id == LINKED_ANOMALY
                for e in screen.sync_log.entries.values()
            ),
            what="the note in the sync log",
        )
        link = screen.detail_doc.links[0]
        notes = tui_desk.jira_notes(link.ticket_key)
        assert notes[-1].endswith("Qualytics Anomaly Status: Acknowledged")
        await wait_for(pilot, lambda: screen.header.counts.get("Acknowledged") == 3, what="counts")


async def test_retry_key_retries_the_selected_dead_job(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        tui_desk.faults.update({"force_status": 401, "force_count": 5})
        await pilot.press("a", "y")  # y: notify its ticket
        await wait_for(pilot, lambda: screen.sync_log.dead_count == 1, what="a dead job")
        (dead,) = [e for e in screen.sync_log.entries.values() if e.outcome == "dead"]
        assert "401" in dead.message or "auth" in dead.message.lower()
        assert "1 dead" in str(screen.query_one("#log-pane").border_title)
        tui_desk.faults.reset()
        await pilot.press("tab", "tab")  # table → detail → sync log
        await wait_for(pilot, lambda: screen.sync_log.has_focus, what="sync log focus")
        assert screen.sync_log.selected == dead
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: any(
                e.outcome == "done" and e.job_id == dead.job_id
                for e in screen.sync_log.entries.values()
            ),
            what="the retried job delivered",
        )
        assert screen.sync_log.dead_count == 0
        link = screen.detail_doc.links[0]
        assert tui_desk.jira_notes(link.ticket_key)[-1].endswith("Status: Acknowledged")


async def test_unlink_asks_then_forgets_the_link(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        key = screen.detail_doc.links[0].ticket_key
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), what="confirm")
        assert key in pilot.app.screen.question
        await pilot.press("n")  # cancelling changes nothing
        await pilot.pause(0.2)
        assert tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"]
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: not screen.detail_doc.links, what="link gone")
        assert tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"] == []
        assert screen.table.current.tickets == []


async def test_a_webhook_posted_while_running_appears_live(tui_desk: Desk) -> None:
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: subscribed(tui_desk), what="event stream")
        body = orjson.loads((ROOT / "fixtures/webhooks/04-api-record-anomaly.json").read_bytes())
        body.update(id=99001, uuid="99001", created="2026-11-21T00:00:00Z", message="late arrival")
        response = tui_desk.api.post("/webhooks/qualytics", json=body)
        assert response.status_code == 200, response.text
        await wait_for(pilot, lambda: screen.model.view[0].id == 99001, what="new row on top")
        # the cursor stayed on the anomaly the user was looking at
        assert screen.table.current.id == LINKED_ANOMALY
        await wait_for(pilot, lambda: screen.header.counts.get("Active") == 6, what="counts")
        # a status change arriving by webhook moves it out of the Active view
        await pilot.press("2")
        await wait_for(
            pilot,
            lambda: (
                screen.model.query.filter == "active" and 99001 in [r.id for r in screen.model.view]
            ),
        )
        body.update(status="Resolved")
        assert tui_desk.api.post("/webhooks/qualytics", json=body).status_code == 200
        await wait_for(pilot, lambda: screen.model.get(99001) is None, what="row leaves the view")


async def test_the_table_pages_in_more_rows_as_the_cursor_nears_the_end(tui_desk: Desk) -> None:
    base = orjson.loads((ROOT / "fixtures/webhooks/04-api-record-anomaly.json").read_bytes())
    batch = [
        {
            **base,
            "id": 50000 + n,
            "uuid": f"u-{n}",
            "created": f"2026-10-{1 + n // 100:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
        }
        for n in range(250)
    ]
    assert tui_desk.api.post("/webhooks/qualytics", json=batch).status_code == 200
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert len(screen.model) == 100  # one page, not everything
        assert screen.model.has_more
        await pilot.press("end")  # the last loaded row: the next page comes in
        await wait_for(pilot, lambda: len(screen.model) == 257, what="second page")
        assert not screen.model.has_more
        ids = [row.id for row in screen.model.view]
        assert len(set(ids)) == len(ids)
        keys = [(row.created, row.id) for row in screen.model.view]
        assert keys == sorted(keys, reverse=True)
        assert screen.table.current.id == ids[99]  # the cursor stayed where it was


async def test_archive_and_comment_go_through_the_forms(tui_desk: Desk) -> None:
    from anomaly_desk.tui.screens.archive import ArchiveScreen
    from anomaly_desk.tui.screens.comment import CommentScreen

    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("m")
        await wait_for(
            pilot, lambda: isinstance(pilot.app.screen, CommentScreen), what="comment form"
        )
        await pilot.press(*"looking at it")
        await pilot.press("ctrl+s")
        await wait_for(
            pilot,
            lambda: [c.text for c in screen.detail_doc.comments] == ["looking at it"],
            what="the comment",
        )
        await pilot.press("x")
        await wait_for(
            pilot, lambda: isinstance(pilot.app.screen, ArchiveScreen), what="archive form"
        )
        await pilot.press("ctrl+s", "y")  # Resolved is preselected; y: notify its ticket
        await wait_for(pilot, lambda: screen.model.get(LINKED_ANOMALY) is None, what="left Open")
        assert tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["status"] == "Resolved"


async def test_command_palette_lists_every_action(tui_desk: Desk) -> None:
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        titles = [command.title for command in app.get_system_commands(screen)]
        for _, title, _ in ACTIONS:
            assert title in titles
        keyed = {b.action for b in screen.BINDINGS}
        for action in (
            "acknowledge",
            "create",
            "link",
            "unlink",
            "archive",
            "comment",
            "retry",
            "open",
        ):
            assert action in keyed
        await pilot.press("ctrl+p")
        await pilot.press(*"Show archived", "enter")
        await wait_for(
            pilot, lambda: screen.model.query.filter == "archived", what="palette action"
        )


# -- the launcher ---------------------------------------------------------------------------


def test_launcher_reports_a_locked_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store(data, owner_url="http://127.0.0.1:9").open()
    try:
        port = free_port()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "anomaly_desk",
                "dashboard",
                "--url",
                f"http://127.0.0.1:{port}",
                "--start",  # not the default URL: start a receiver only when asked to
                "--data-dir",
                str(data),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        store.close_sync()
    assert result.returncode == 1
    assert "in use by another anomaly-desk process" in result.stderr
    assert "locked by another anomaly-desk process" in result.stderr
    assert probe(f"http://127.0.0.1:{port}") is False


def test_child_receiver_starts_and_stops(tmp_path: Path) -> None:
    port = free_port()
    child = ChildReceiver(
        f"http://127.0.0.1:{port}", tmp_path / "data", None, log=tmp_path / "r.log"
    )
    assert child.start() is None
    try:
        assert probe(child.url) is True
    finally:
        child.stop()
    assert child.proc is not None
    assert child.proc.returncode is not None
    assert probe(child.url) is False


def test_help_still_works_and_names_the_dashboard() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "dashboard" in result.stdout


def test_no_subcommand_runs_the_dashboard_launcher(sandbox: ThreadedServer) -> None:
    """``anomaly-desk`` alone is the dashboard: pointed at a server that is not a receiver."""
    result = subprocess.run(
        [sys.executable, "-m", "anomaly_desk"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ANOMALY_DESK_URL": sandbox.url},
    )
    assert result.returncode == 1
    assert f"{sandbox.url} answers, but it is not an Anomaly Desk receiver" in result.stderr


async def test_create_and_link_from_the_main_screen(tui_desk: Desk) -> None:
    """`c` and `l` on the highlighted anomaly: the new links show in its detail at once."""
    from anomaly_desk.tui.screens.create_ticket import CreateTicketScreen
    from anomaly_desk.tui.screens.link_ticket import LinkTicketScreen

    jira_key = tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"][0]["ticket_key"]
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("down")  # 10261: no ticket yet
        await wait_for(pilot, lambda: screen.detail_doc.id == 10261, what="detail of 10261")
        await pilot.press("c")
        await wait_for(
            pilot, lambda: isinstance(pilot.app.screen, CreateTicketScreen), what="create form"
        )
        await pilot.press("down", "enter")  # the second connection: servicenow
        await wait_for(
            pilot, lambda: bool(pilot.app.screen.query("#short_description")), what="its form"
        )
        await pilot.press("ctrl+s")  # the short description is pre-filled from the anomaly
        await wait_for(
            pilot,
            lambda: [link.ticket_key for link in screen.detail_doc.links] == ["INC0010001"],
            what="the new incident in the detail",
        )
        await pilot.press("l")
        await wait_for(
            pilot, lambda: isinstance(pilot.app.screen, LinkTicketScreen), what="link form"
        )
        await pilot.press("enter")  # jira
        await pilot.press(*jira_key, "enter")
        await wait_for(
            pilot,
            lambda: (
                [link.ticket_key for link in screen.detail_doc.links] == ["INC0010001", jira_key]
            ),
            what="the linked issue in the detail",
        )
    links = tui_desk.api.get("/api/anomalies/10261").json()["links"]
    assert [(link["ticket_key"], link["origin"]) for link in links] == [
        ("INC0010001", "created"),
        (jira_key, "linked"),
    ]


async def test_open_hands_the_ticket_to_the_browser_and_q_quits(
    tui_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setenv("DISPLAY", ":0")  # a browser is asked only where one can appear
    monkeypatch.setattr(
        "webbrowser.open", lambda url, *a, **k: opened.append(url)
    )  # the OS browser
    link = tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"][0]
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("o")
        await wait_for(
            pilot, lambda: opened == [link["url"]], what="the browser asked to open the ticket"
        )
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
