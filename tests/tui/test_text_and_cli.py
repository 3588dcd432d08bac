"""Issue #11: provider text is text, the default command takes the dashboard's options, `o`
and `y` are honest about the clipboard, the ServiceNow form cannot ask for a priority the
instance refuses, the demo's banner is inside the dashboard, the launcher's log is private,
and the detail says how long ago things happened.

Everything runs against the real receiver and sandbox on loopback (Pilot), or as the real
``anomaly-desk`` command in a subprocess.
"""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from rich.console import Console
from textual.app import App

from anomaly_desk.core.views import AnomalyDetail, CommentView, TicketLinkView
from anomaly_desk.tui.launcher import ChildReceiver, check_url, is_default, probe
from anomaly_desk.tui.screens.archive import ArchiveScreen
from anomaly_desk.tui.screens.choose_link import ChooseLinkScreen, ChooseValueScreen
from anomaly_desk.tui.screens.create_ticket import FIX_FIELDS, CreateTicketScreen
from anomaly_desk.tui.screens.demo_info import DemoInfoScreen
from anomaly_desk.tui.screens.link_ticket import LinkTicketScreen
from anomaly_desk.tui.widgets.detail import render_detail
from anomaly_desk.tui.widgets.form_fields import DerivedField
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import FIXTURES, ROOT, ThreadedServer, free_port
from tests.tui.conftest import LINKED_ANOMALY, SIZE, dashboard, ready, wait_for
from tests.tui.test_forms import (  # the dialogs' own harness: a host app over one screen
    NOT_YET,
    Host,
    Live,
    choose,
    field,
    other,
    screen_text,
    settle,
    type_into,
    until,
)

HOSTILE = "Loader [/] fails on [bold] columns [@click=app.quit]"


def toasts(app: App[Any]) -> list[str]:
    """Every notification on screen, title and message, as the toast draws it (unwrapped)."""
    texts = []
    for toast in app.screen.query("Toast"):
        rendered = toast.render()
        texts.append(str(getattr(rendered, "plain", rendered)))
    return texts


def jira_issue(desk: Desk, summary: str) -> str:
    """A Jira issue made in the sandbox directly, as someone in Jira would: its key."""
    with desk.jira() as jira:
        response = jira.post(
            "/rest/api/3/issue",
            json={
                "fields": {
                    "project": {"key": "DQ"},
                    "issuetype": {"name": "Task"},
                    "summary": summary,
                }
            },
        )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def link(desk: Desk, anomaly_id: int, key: str) -> dict[str, Any]:
    response = desk.api.post(
        f"/api/anomalies/{anomaly_id}/links", json={"connection": "jira", "ticket": key}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def live(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    """A receiver fed the first webhook fixture, as test_forms has it, for the dialogs."""
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


# -- 5. provider and platform text is text ------------------------------------------------------


async def test_hostile_ticket_text_is_shown_verbatim_and_obeyed_nowhere(tui_desk: Desk) -> None:
    key = jira_issue(tui_desk, HOSTILE)
    link(tui_desk, LINKED_ANOMALY, key)
    other_key = jira_issue(tui_desk, HOSTILE + " again")
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: len(screen.detail_doc.links) == 2, what="two links")
        screen.query_one("#detail").scroll_end(animate=False)  # the tickets, at the end
        await pilot.pause()
        assert HOSTILE[:40] in screen_text(app)  # cut at the pane's width, brackets and all

        await pilot.press("u")  # two links: which one?
        await wait_for(pilot, lambda: isinstance(app.screen, ChooseLinkScreen), what="chooser")
        await pilot.pause()
        chooser = screen_text(app)
        assert "[To Do]" in chooser
        assert "Loader [/] fails on [bold] columns" in chooser
        assert "[@click=app.quit]" in chooser
        await pilot.press("escape")

        # linking from the dashboard: the notification names the ticket with its summary
        await pilot.press("down")
        await wait_for(pilot, lambda: screen.detail_doc.id != LINKED_ANOMALY, what="next row")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LinkTicketScreen), what="link form")
        await pilot.press("enter")  # jira
        await pilot.press(*other_key, "enter")
        await wait_for(pilot, lambda: any(other_key in t for t in toasts(app)), what="toast")
        assert f"Linked {other_key} (jira): {HOSTILE} again" in toasts(app)
        await pilot.pause(0.3)
        assert app.is_running
        assert app.return_code is None


async def test_a_platform_status_in_a_notification_is_text(tui_desk: Desk) -> None:
    body = orjson.loads((ROOT / "fixtures/webhooks/04-api-record-anomaly.json").read_bytes())
    body.update(id=10299, status="[@click=app.quit]", created="2026-11-21T00:00:00+00:00")
    tui_desk.api.post("/webhooks/qualytics", json=body).raise_for_status()
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: screen.detail_doc.id == 10299, what="the new anomaly")
        assert "[@click=app.quit]" in screen_text(app)  # the detail's status line
        await pilot.press("a")
        await wait_for(pilot, lambda: bool(toasts(app)), what="a notification")
        assert "Anomaly 10299 is [@click=app.quit]" in toasts(app)
        for toast in app.screen.query("Toast"):
            await pilot.click(toast)  # a link in it would quit the app
        await pilot.pause(0.3)
        assert app.is_running
        assert app.return_code is None


async def test_a_search_for_brackets_is_searched_for_not_parsed(tui_desk: Desk) -> None:
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        await pilot.press("slash", *"[/]", "enter")
        await wait_for(pilot, lambda: screen.model.query.q == "[/]", what="the search")
        await wait_for(pilot, lambda: "search “[/]”" in screen_text(app), what="the title")
        assert app.is_running


# -- 8. `o` is honest, `y` copies ---------------------------------------------------------------


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The OS browser replaced by a list of what it was asked to open (it says "no")."""
    opened: list[str] = []

    def open_url(url: str, *args: object, **kwargs: object) -> bool:
        opened.append(url)
        return bool(os.environ.get("TEST_BROWSER_SAYS_YES"))

    monkeypatch.setattr("webbrowser.open", open_url)
    return opened


async def test_open_without_a_display_copies_the_url_and_says_so(
    tui_desk: Desk, browser: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    url = tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"][0]["url"]
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("o")
        await wait_for(pilot, lambda: app.clipboard == url, what="the URL on the clipboard")
        await wait_for(pilot, lambda: bool(toasts(app)), what="a notification")
        shown = "\n".join(toasts(app))
        assert f"Copied URL: {url}" in shown
        assert "Opened" not in shown
    assert browser == []  # no text browser started on top of the dashboard


async def test_open_claims_a_browser_only_when_one_said_yes(
    tui_desk: Desk, browser: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    url = tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"][0]["url"]
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("o")  # the browser says no
        await wait_for(pilot, lambda: app.clipboard == url, what="the URL copied instead")
        assert browser == [url]
        assert any(f"Copied URL: {url}" in t for t in toasts(app))

        app.clear_notifications()
        app.copy_to_clipboard("")
        monkeypatch.setenv("TEST_BROWSER_SAYS_YES", "1")
        await pilot.press("o")
        await wait_for(pilot, lambda: len(browser) == 2, what="the browser asked again")
        await wait_for(pilot, lambda: bool(toasts(app)), what="a notification")
        assert any("in the browser" in t for t in toasts(app))
        assert app.clipboard == ""  # nothing copied when the browser took it


async def test_y_copies_the_ticket_key_or_a_chosen_url(tui_desk: Desk) -> None:
    first = tui_desk.api.get(f"/api/anomalies/{LINKED_ANOMALY}").json()["links"][0]
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        await pilot.press("y")  # one link: its key, at once
        await wait_for(pilot, lambda: app.clipboard == first["ticket_key"], what="the key")
        assert any(f"Copied {first['ticket_key']}" in t for t in toasts(app))

        second = link(tui_desk, LINKED_ANOMALY, jira_issue(tui_desk, "Second ticket"))
        await wait_for(pilot, lambda: len(screen.detail_doc.links) == 2, what="two links")
        await pilot.press("y")  # two links: a chooser of keys and URLs
        await wait_for(pilot, lambda: isinstance(app.screen, ChooseValueScreen), what="chooser")
        chooser = app.screen
        assert isinstance(chooser, ChooseValueScreen)
        values = [value for _, value in chooser.choices]
        assert values[:4] == [
            first["ticket_key"],
            first["url"],
            second["ticket_key"],
            second["url"],
        ]
        await pilot.press("down", "down", "down", "enter")  # the second ticket's URL
        await wait_for(pilot, lambda: app.clipboard == second["url"], what="the second URL")


# -- 9. messages and choices in the dialogs ---------------------------------------------------


async def test_servicenow_priority_is_derived_from_impact_and_urgency(live: Live) -> None:
    client = live.client()
    app = Host(
        lambda: CreateTicketScreen(client, live.anomaly(), live.connections("servicenow")), client
    )
    async with app.run_test(size=(100, 60)) as pilot:
        await settle(pilot)
        priority = app.screen.query_one("#field-priority", DerivedField)
        # the instance's defaults, read from its dictionary since #15: 3 - Low and 3 - Low
        assert (field(app, "impact").value, field(app, "urgency").value) == ("3", "3")
        assert priority.shown == "5 - Planning"
        expected = {
            ("1 - High", "1 - High"): "1 - Critical",
            ("2 - Medium", "1 - High"): "2 - High",
            ("2 - Medium", "2 - Medium"): "3 - Moderate",
            ("3 - Low", "2 - Medium"): "4 - Low",
            ("3 - Low", "3 - Low"): "5 - Planning",
        }
        for (impact, urgency), shown in expected.items():
            await choose(pilot, "impact", impact)
            await choose(pilot, "urgency", urgency)
            assert priority.shown == shown, (impact, urgency)
        await other(pilot, "impact", "medium")  # typed, as the provider accepts it
        assert priority.shown == "4 - Low"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    incident = live.incident(app.result.ticket_id)
    value = {name: item["value"] for name, item in incident.items()}
    assert (value["impact"], value["urgency"], value["priority"]) == ("2", "3", "4")


async def test_fix_the_marked_fields_goes_once_they_are_fixed(live: Live) -> None:
    client = live.client()
    app = Host(lambda: CreateTicketScreen(client, live.anomaly(), live.connections("jira")), client)
    async with app.run_test(size=(100, 46)) as pilot:
        await settle(pilot)
        await type_into(pilot, "#summary", "")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert FIX_FIELDS in screen_text(app)
        await type_into(pilot, "#summary", "Orders without customers")
        await pilot.pause()
        assert field(app, "summary").error is None
        assert FIX_FIELDS not in screen_text(app)


async def test_a_provider_field_error_goes_once_the_field_is_changed(live: Live) -> None:
    client = live.client()
    app = Host(
        lambda: CreateTicketScreen(client, live.anomaly(), live.connections("servicenow")), client
    )
    async with app.run_test(size=(100, 60)) as pilot:
        await settle(pilot)
        await other(pilot, "assignment_group", "Nobody")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: field(app, "assignment_group").error is not None)
        assert "No group named 'Nobody'" in screen_text(app)
        await choose(pilot, "assignment_group", "Data Platform")
        await pilot.pause()
        assert field(app, "assignment_group").error is None
        assert "Nobody" not in screen_text(app)


async def test_archive_preselects_the_status_an_archived_anomaly_has(live: Live) -> None:
    anomaly = live.anomaly().model_copy(update={"status": "Duplicate"})
    app = Host(lambda: ArchiveScreen(anomaly))
    async with app.run_test(size=(100, 46)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result == ("Duplicate", None)

    app = Host(lambda: ArchiveScreen(anomaly))
    async with app.run_test(size=(100, 46)) as pilot:
        await pilot.pause()
        await pilot.press("down", "enter", "ctrl+s")  # from Duplicate, one down: Invalid
        await until(pilot, lambda: app.result is not NOT_YET)
    assert app.result == ("Invalid", None)


async def test_a_failing_connection_is_named_once(tui_desk: Desk) -> None:
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        tui_desk.faults.update({"force_status": 503, "force_count": 1000})
        await screen.run_action("check_connections")
        await wait_for(
            pilot, lambda: any("Connection problems" in t for t in toasts(app)), what="problems"
        )
        problems = next(t for t in toasts(app) if "Connection problems" in t)
        assert re.search(r"^jira: \S", problems, re.MULTILINE), problems
        assert "jira: jira:" not in problems
        assert "servicenow: servicenow:" not in problems

        await pilot.press("c")  # the connection chooser says it once too
        await wait_for(pilot, lambda: isinstance(app.screen, CreateTicketScreen), what="form")
        await pilot.pause()
        line = next(x for x in screen_text(app).splitlines() if "jira  Jira Cloud" in x)
        assert "✗ " in line
        assert "jira: " not in line
        tui_desk.faults.reset()


# -- 10. the demo's banner inside the dashboard --------------------------------------------------

BANNER = f"""
Anomaly Desk demo
  Receiver    http://127.0.0.1:1   (demo-only webhook secret: s3cr[e]t)
  Replay more anomaly-desk replay fixtures --url http://127.0.0.1:1 --secret s3cr[e]t
  Note        {HOSTILE}
"""


async def test_i_shows_the_demo_info_and_the_palette_lists_it(tui_desk: Desk) -> None:
    app = dashboard(tui_desk)
    app.demo_info = BANNER
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        titles = [command.title for command in app.get_system_commands(screen)]
        assert "Demo info" in titles
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, DemoInfoScreen), what="demo info")
        await pilot.pause()
        shown = screen_text(app)
        assert "demo-only webhook secret: s3cr[e]t" in shown
        assert HOSTILE in shown
        await pilot.press("y")  # copies the replay command
        assert app.clipboard == (
            "anomaly-desk replay fixtures --url http://127.0.0.1:1 --secret s3cr[e]t"
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back")


async def test_without_the_demo_there_is_no_demo_info(tui_desk: Desk) -> None:
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        assert "Demo info" not in [c.title for c in app.get_system_commands(screen)]
        await pilot.press("i")
        await pilot.pause(0.2)
        assert app.screen is screen


def read_until(fd: int, wanted: bytes, within: float, seen: bytearray) -> bool:
    """Read a pty into ``seen`` until ``wanted`` shows up (escape sequences removed)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ready_fds, _, _ = select.select([fd], [], [], 0.2)
        if ready_fds:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return False
            if not chunk:
                return False
            seen.extend(chunk)
            plain = re.sub(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[\]P].*?(\x07|\x1b\\)", b"", seen)
            if wanted in plain:
                return True
    return False


@pytest.mark.slow
def test_the_demo_dashboard_shows_its_banner_on_i(tmp_path: Path) -> None:
    """The real ``anomaly-desk demo`` in a terminal: `i` shows the banner, `q` cleans up."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
    env = {
        # not the worker's COLUMNS/LINES (xdist sets them): the pty's size is the terminal's
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ANOMALY_DESK_") and k not in ("COLUMNS", "LINES")
        },
        "TERM": "xterm-256color",
        "TMPDIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "anomaly_desk", "demo", "--speed", "20"],
        cwd=ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        assert read_until(master, b"Quit", 60, seen), seen[-3000:]
        secret = re.search(rb"demo-only webhook secret: (\S+)\)", seen)
        assert secret, seen[-3000:]
        seen.clear()  # from here on, only what the dashboard draws
        os.write(master, b"i")
        assert read_until(master, b"demo-only webhook secret: " + secret[1], 60, seen)
        work = [p for p in tmp_path.iterdir() if p.name.startswith("anomaly-desk-demo-")]
        assert len(work) == 1
        assert (work[0] / "receiver.log").is_file()  # kept while the dashboard runs
        os.write(master, b"\x1b")
        time.sleep(0.5)
        os.write(master, b"q")
        read_until(master, b"Stopping the receiver", 30, seen)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        os.close(master)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("anomaly-desk-demo-")]


# -- 6. `anomaly-desk --url URL` -----------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_DESK_")}
    return subprocess.run(
        [sys.executable, "-m", "anomaly_desk", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


def test_the_default_command_takes_the_dashboards_options(sandbox: ThreadedServer) -> None:
    """``anomaly-desk --url URL`` is ``anomaly-desk dashboard --url URL``."""
    result = cli("--url", sandbox.url)
    assert result.returncode == 1, result.stderr
    assert f"{sandbox.url} answers, but it is not an Anomaly Desk receiver" in result.stderr
    assert "invalid choice" not in result.stderr


def test_nothing_answering_at_a_typed_url_is_reported_not_started() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    result = cli("--url", url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"anomaly-desk: nothing answers at {url}; pass --start to start a receiver there"
    ]
    assert probe(url) is False  # and none was started there


def test_a_url_without_a_scheme_is_refused_in_one_line() -> None:
    result = cli("--url", "127.0.0.1:8787")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "anomaly-desk: --url '127.0.0.1:8787' is not an http(s) URL; write it whole: "
        "http://127.0.0.1:8787"
    ]
    from_env = cli(env={"ANOMALY_DESK_URL": "localhost:8787"})
    assert from_env.returncode == 2
    assert "ANOMALY_DESK_URL 'localhost:8787' is not an http(s) URL" in from_env.stderr


def test_start_is_for_loopback_only_and_help_explains_the_rule() -> None:
    result = cli("--url", "http://desk.example.com:8787", "--start")
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr
    help_text = " ".join(cli("dashboard", "--help").stdout.split())
    assert "--start" in help_text
    assert "only at the default address http://127.0.0.1:8787 or with --start" in help_text
    top = " ".join(cli("--help").stdout.split())
    assert "'anomaly-desk --url http://127.0.0.1:9000' is 'anomaly-desk dashboard --url" in top


def test_which_urls_count_as_the_default() -> None:
    assert is_default("http://127.0.0.1:8787")
    assert not is_default("http://127.0.0.1:8788")
    assert not is_default("http://localhost:9000")
    assert not is_default("https://127.0.0.1:8787")
    assert check_url("http://127.0.0.1:8787/") == "http://127.0.0.1:8787"


# -- 11. the launcher's receiver log ----------------------------------------------------------


def test_the_child_receivers_log_is_private_and_goes_after_a_clean_run(tmp_path: Path) -> None:
    port = free_port()
    child = ChildReceiver(f"http://127.0.0.1:{port}", tmp_path / "data", None)
    shared = Path(tempfile.gettempdir())
    assert child.log.parent != shared  # not a name anyone can guess and plant a symlink at
    assert stat.S_IMODE(child.log.parent.stat().st_mode) == 0o700
    assert child.start() is None
    try:
        assert probe(child.url) is True
        assert stat.S_IMODE(child.log.stat().st_mode) == 0o600
    finally:
        child.stop()
        child.cleanup()
    assert not child.log.parent.exists()


def test_a_log_path_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    planted = tmp_path / "receiver.log"
    planted.symlink_to(target)
    child = ChildReceiver(f"http://127.0.0.1:{free_port()}", tmp_path / "data", None, log=planted)
    with pytest.raises(OSError, match="symbolic link"):  # ELOOP: O_NOFOLLOW refused it
        child.start()
    assert target.read_text() == "keep me"


# -- relative times in the detail -----------------------------------------------------------------


def test_the_detail_says_how_long_ago_beside_the_time() -> None:
    now = datetime(2026, 11, 20, 9, 3, 30, tzinfo=UTC)
    doc = AnomalyDetail(
        id=1,
        status="Active",
        created="2026-11-20T09:00:00.000Z",
        received_at=(now - timedelta(hours=5)).isoformat(),
        updated_at="2026-11-01T09:00:00.000Z",
        comments=[CommentView(at="2026-11-18T09:00:00.000Z", text="x", by="op")],
        links=[
            TicketLinkView(
                id="l",
                connection="jira",
                provider="jira",
                ticket_key="DQ-1",
                ticket_id="1",
                origin="created",
                state_read_at=(now - timedelta(seconds=20)).isoformat(),
                linked_at="2026-11-20T09:00:00.000Z",
            )
        ],
    )
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render_detail(doc, now=now))
    text = console.export_text()
    assert "2026-11-20 09:00:00 UTC (3 min ago)" in text
    assert "(5 h ago)" in text
    assert "2026-11-18 09:00:00 UTC (2 days ago)" in text
    assert "DQ-1  state unknown · read 20 s ago\n" in text  # to the second
    assert "2026-11-01 09:00:00 UTC\n" in text or "2026-11-01 09:00:00 UTC " in text
    assert "2026-11-01 09:00:00 UTC (" not in text  # older than a week: the date says it


def test_a_url_with_brackets_or_spaces_is_shown_and_linked_as_sent() -> None:
    url = "https://acme.qualytics.io/anomalies/1?q=[bold] x"
    doc = AnomalyDetail(id=1, status="Active", url=url)
    console = Console(width=200, file=io.StringIO())
    segments = list(console.render(render_detail(doc)))
    assert url in "".join(segment.text for segment in segments)
    assert any(segment.style and segment.style.link == url for segment in segments)
