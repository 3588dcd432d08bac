"""The rules screen against a real receiver with two ``[[rules]]``: listed with their state and
counters, ``p`` pauses one after a confirmation (and ``GET /api/rules`` agrees), a pause made
elsewhere arrives as a ``rule.changed`` event, and the key and the command palette open it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from textual.widgets import DataTable

from anomaly_desk.core.views import RulePage
from anomaly_desk.tui.screens.commands import MAIN_COMMANDS
from anomaly_desk.tui.screens.rules import RulesScreen
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer
from tests.tui.conftest import SIZE as TUI_SIZE
from tests.tui.conftest import dashboard, ready, wait_for
from tests.tui.test_forms import NOT_YET, SIZE, Host, Live, screen_text, until

RULES = """
[[rules]]
name = "orders nulls"
[rules.match]
containers = ["orders"]
[rules.action]
connection = "jira"

[[rules]]
name = "finance feeds"
[rules.match]
tags_any = ["finance"]
[rules.action]
connection = "servicenow"
"""


@pytest.fixture
def ruled(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Live]:
    """A receiver with two rules and no anomaly yet (nothing fires)."""
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    config.write_text(config.read_text() + RULES)
    server = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Live(server.url, sandbox, api)
    finally:
        api.close()
        server.stop()


def rules_api(live: Live) -> RulePage:
    return RulePage.model_validate_json(live.api.get("/api/rules").raise_for_status().content)


def rows(screen: RulesScreen) -> list[list[str]]:
    table = screen.query_one("#rules", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_two_rules_listed_and_p_pauses_one(ruled: Live) -> None:
    client = ruled.client()
    app = Host(lambda: RulesScreen(client), client)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RulesScreen)
        await until(pilot, lambda: screen.loads > 0)
        assert rows(screen) == [
            ["orders nulls", "jira", "active", "0", "0", "0", "0", "0/3", "never"],
            ["finance feeds", "servicenow", "active", "0", "0", "0", "0", "0/3", "never"],
        ]
        assert "Rules · 2 · 0 paused" in screen_text(app)

        await pilot.press("down", "p")  # the second rule
        await until(pilot, lambda: "Pause rule 'finance feeds' on servicenow?" in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: screen.rules["finance feeds"].paused)
        await pilot.pause()
        assert rows(screen)[1][2].startswith("paused")
        assert rows(screen)[0][2] == "active"
        assert "Rules · 2 · 1 paused" in screen_text(app)
        paused = {r.name: r for r in rules_api(ruled).items}
        assert paused["finance feeds"].paused
        assert paused["finance feeds"].paused_by == "operator"
        assert not paused["orders nulls"].paused

        # p again resumes it; "n" at the question changes nothing
        await pilot.press("p")
        await until(pilot, lambda: "Resume rule 'finance feeds'" in screen_text(app))
        await pilot.press("n")
        await pilot.pause()
        assert rules_api(ruled).items[1].paused
        await pilot.press("p", "y")
        await until(pilot, lambda: not screen.rules["finance feeds"].paused)
        assert not rules_api(ruled).items[1].paused
        await pilot.press("escape")
        await until(pilot, lambda: app.result is not NOT_YET)


async def test_a_pause_made_elsewhere_arrives_as_an_event(ruled: Live) -> None:
    client = ruled.client()
    app = Host(lambda: RulesScreen(client), client)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RulesScreen)
        await until(pilot, lambda: screen.loads > 0)
        await pilot.pause(0.3)  # the event stream is open by then
        ruled.api.post("/api/rules/orders nulls/pause").raise_for_status()
        await until(pilot, lambda: screen.rules["orders nulls"].paused)
        assert screen.events >= 1
        assert screen.loads == 1  # from the event, not from a reload
        assert rows(screen)[0][2].startswith("paused")


def test_rules_have_a_key_and_a_palette_entry() -> None:
    command = next(c for c in MAIN_COMMANDS if c.action == "rules")
    assert command.key == "R"
    assert command.palette
    keys = [c.key for c in MAIN_COMMANDS if c.key is not None]
    assert keys.count("R") == 1  # free: no other command has it


async def test_r_and_the_command_palette_open_the_rules(tui_desk: Desk) -> None:
    app = dashboard(tui_desk)
    async with app.run_test(size=TUI_SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, RulesScreen), what="rules by key")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RulesScreen), what="closed")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Show rules")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RulesScreen), what="from palette")
        screen = app.screen
        assert isinstance(screen, RulesScreen)
        await wait_for(pilot, lambda: screen.loads > 0, what="rules read")
        assert screen.rules == {}  # this receiver has none
        assert "No rules: add [[rules]] to the configuration" in screen_text(app)
