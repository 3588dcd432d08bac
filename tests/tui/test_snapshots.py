"""SVG snapshots of the dashboard over a receiver whose data is fixed (see ``frozen_desk``).

The header shows a fixed address (the receiver's real port changes per run), the store holds
fixed timestamps, and nothing on screen reads the clock, so the pictures only change when the
dashboard does. Update with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.integration.conftest import Desk
from tests.tui.conftest import SIZE, dashboard, ready, wait_for

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
