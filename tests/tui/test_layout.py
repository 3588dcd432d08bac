"""The main screen's layout at the sizes people use: 80×24, 120×30 and 200×60.

What is checked is what a user would look for: the list is wide enough to read, the filter tabs
and the search box are there and have room, the footer still offers Quit and Help, the sync log
takes a share of the height (not half of a small terminal, not 9 rows of a big one), the detail
sits beside the list only where there is room for both, `z` maximises the focused pane, and a
notification does not cover the sync log's newest lines.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Footer, Input, Tabs
from textual.widgets._footer import FooterKey
from textual.widgets._toast import Toast

from anomaly_desk.tui.screens.main import MainScreen
from tests.integration.conftest import Desk
from tests.tui.conftest import dashboard, ready, wait_for

SMALL = (80, 24)
MEDIUM = (120, 30)
LARGE = (200, 60)


def shown(widget: Widget) -> Region:
    """Where the widget is on screen; empty when it is not displayed."""
    if not widget.display or not widget.is_on_screen:
        return Region()
    return widget.region


def footer_words(screen: MainScreen) -> list[str]:
    """The footer's descriptions that are fully on screen, left to right (palette excluded)."""
    width = screen.size.width
    keys = [
        key
        for key in screen.query_one(Footer).query(FooterKey)
        if not key.has_class("-command-palette")
    ]
    palette = [k for k in screen.query_one(Footer).query(FooterKey) if k not in keys]
    limit = min([k.region.x for k in palette] + [width])
    visible = [k for k in keys if k.region.width and k.region.right <= limit]
    return [k.description for k in sorted(visible, key=lambda k: k.region.x)]


def lines_of(widget: Widget) -> list[str]:
    """The text a leaf widget shows, line by line."""
    return [strip.text for strip in widget.render_lines(Region(0, 0, *widget.size))]


def header_lines(screen: MainScreen) -> list[str]:
    return lines_of(screen.header)


async def open_at(pilot: Pilot[Any]) -> MainScreen:
    screen = await ready(pilot)
    await wait_for(pilot, lambda: screen.sync_log.row_count > 0, what="sync log")
    await pilot.pause()
    return screen


def check_always(screen: MainScreen) -> None:
    """What every size must have."""
    width, height = screen.size
    tabs = shown(screen.query_one("#status-tabs", Tabs))
    search = shown(screen.query_one("#search", Input))
    assert tabs.width >= 40, "filter tabs cut"
    assert tabs.height == 2, "filter tabs cut"
    assert search.width >= 20, f"search box too small: {search}"
    assert search.height == 1, f"search box too small: {search}"
    assert search.right <= shown(screen.query_one("#list-pane")).right
    words = footer_words(screen)
    assert words[:2] == ["Quit", "Help"], words
    top, bottom = header_lines(screen)
    assert "Anomaly Desk" in top
    assert "live" in top
    assert bottom.strip().endswith("total 24"), f"header counts cut or wrapped: {bottom!r}"
    log = shown(screen.query_one("#log-pane"))
    assert log.width == width
    assert 7 <= log.height <= max(7, round(height * 0.3)), f"log height {log.height} of {height}"
    assert log.bottom == height - 1  # the footer below


@pytest.mark.parametrize("size", [SMALL, MEDIUM, LARGE], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_essentials_fit_at_every_size(frozen_desk: Desk, size: tuple[int, int]) -> None:
    async with dashboard(frozen_desk).run_test(size=size) as pilot:
        check_always(await open_at(pilot))


async def test_80x24_gives_the_list_the_width_and_hides_the_detail(frozen_desk: Desk) -> None:
    async with dashboard(frozen_desk).run_test(size=SMALL) as pilot:
        screen = await open_at(pilot)
        assert screen.has_class("-narrow", "-short")
        listing = shown(screen.query_one("#list-pane"))
        assert listing.width == 80
        assert listing.height >= 14  # 10 rows of anomalies under the tabs and titles
        assert shown(screen.table).height >= 10
        log = shown(screen.query_one("#log-pane"))
        assert log.height == 7  # not half the screen: the column titles and 4 entries
        assert shown(screen.query_one("#detail")).area == 0
        assert not screen.detail_shown()

        screen.action_focus_log()
        await pilot.press("d")  # the detail comes back, below the list, in the log's place
        await pilot.pause()
        assert screen.detail_shown()
        detail = shown(screen.query_one("#detail"))
        listing = shown(screen.query_one("#list-pane"))
        assert detail.width == 80
        assert detail.height >= 10
        assert detail.y == listing.bottom
        assert detail.bottom == 23  # the footer's row
        assert shown(screen.table).height >= 5
        assert shown(screen.query_one("#log-pane")).area == 0
        assert screen.table.has_focus  # not left on the hidden log
        assert "Anomaly 20024" in lines_of(screen.query_one("#detail-body"))[0]

        await pilot.press("d")
        await pilot.pause()
        assert not screen.detail_shown()
        assert shown(screen.query_one("#detail")).area == 0
        assert shown(screen.query_one("#log-pane")).height == 7


async def test_120x30_detail_beside_the_list(frozen_desk: Desk) -> None:
    async with dashboard(frozen_desk).run_test(size=MEDIUM) as pilot:
        screen = await open_at(pilot)
        assert screen.has_class("-wide", "-short")
        listing = shown(screen.query_one("#list-pane"))
        detail = shown(screen.query_one("#detail"))
        assert listing.width >= 70
        assert detail.width >= 50
        assert detail.x == listing.right
        assert detail.y == listing.y
        assert detail.height == listing.height
        assert shown(screen.query_one("#log-pane")).height == 8
        assert shown(screen.table).height >= 15


async def test_200x60_the_list_gets_the_height(frozen_desk: Desk) -> None:
    async with dashboard(frozen_desk).run_test(size=LARGE) as pilot:
        screen = await open_at(pilot)
        assert screen.has_class("-wide", "-tall")
        listing = shown(screen.query_one("#list-pane"))
        detail = shown(screen.query_one("#detail"))
        assert detail.x == listing.right
        assert listing.width >= 130
        log = shown(screen.query_one("#log-pane"))
        assert 15 <= log.height <= 18  # about 30 %: more than 9 rows, less than half
        assert shown(screen.table).height >= 35


async def test_narrow_but_tall_puts_the_detail_below_the_list(frozen_desk: Desk) -> None:
    async with dashboard(frozen_desk).run_test(size=(100, 50)) as pilot:
        screen = await open_at(pilot)
        assert screen.has_class("-narrow", "-tall")
        listing = shown(screen.query_one("#list-pane"))
        detail = shown(screen.query_one("#detail"))
        assert listing.width == detail.width == 100
        assert detail.y == listing.bottom
        assert detail.height >= 12
        assert shown(screen.table).height >= 12


async def test_layout_follows_a_resize(frozen_desk: Desk) -> None:
    async with dashboard(frozen_desk).run_test(size=LARGE) as pilot:
        screen = await open_at(pilot)
        assert shown(screen.query_one("#detail")).x > 0
        await pilot.resize_terminal(*SMALL)
        await wait_for(pilot, lambda: screen.has_class("-narrow", "-short"), what="narrow")
        await pilot.pause()
        check_always(screen)
        assert shown(screen.query_one("#detail")).area == 0
        await pilot.resize_terminal(*MEDIUM)
        await wait_for(pilot, lambda: screen.has_class("-wide"), what="wide")
        await pilot.pause()
        check_always(screen)
        assert shown(screen.query_one("#detail")).x == shown(screen.query_one("#list-pane")).right


async def test_z_maximises_the_focused_pane_and_escape_restores(frozen_desk: Desk) -> None:
    async with dashboard(frozen_desk).run_test(size=SMALL) as pilot:
        screen = await open_at(pilot)
        assert screen.table.has_focus
        rows_before = shown(screen.table).height

        await pilot.press("z")
        await pilot.pause()
        listing = screen.query_one("#list-pane")
        assert screen.maximized is listing
        assert shown(listing) == Region(0, 2, 80, 21)  # between the header and the footer
        assert shown(screen.table).height > rows_before
        assert shown(screen.query_one("#log-pane")).area == 0
        assert footer_words(screen)[:2] == ["Quit", "Help"]
        await pilot.press("down")  # the keys still work in the maximised pane
        assert screen.table.current is not None
        assert screen.table.current.id == 20023

        await pilot.press("escape")
        await pilot.pause()
        assert screen.maximized is None
        assert shown(screen.query_one("#log-pane")).height == 7
        assert shown(screen.table).height == rows_before

        screen.action_focus_log()
        await pilot.press("z")
        await pilot.pause()
        log = screen.query_one("#log-pane")
        assert screen.maximized is log
        assert shown(log) == Region(0, 2, 80, 21)
        assert shown(screen.query_one("#list-pane")).area == 0
        await pilot.press("z")  # z again restores too
        await pilot.pause()
        assert screen.maximized is None
        assert shown(screen.query_one("#list-pane")).width == 80


async def test_z_maximises_the_detail_beside_the_list(frozen_desk: Desk) -> None:
    async with dashboard(frozen_desk).run_test(size=MEDIUM) as pilot:
        screen = await open_at(pilot)
        detail = screen.query_one("#detail")
        detail.focus()
        await pilot.press("z")
        await pilot.pause()
        assert screen.maximized is detail
        assert shown(detail) == Region(0, 2, 120, 27)
        assert shown(screen.query_one("#list-pane")).area == 0
        await pilot.press("escape")
        await pilot.pause()
        assert screen.maximized is None
        assert shown(detail).x == shown(screen.query_one("#list-pane")).right


async def test_notifications_stay_clear_of_the_sync_log(frozen_desk: Desk) -> None:
    async with dashboard(frozen_desk).run_test(size=SMALL, notifications=True) as pilot:
        screen = await open_at(pilot)
        screen.notify("Anomaly 20024 acknowledged; a note goes to 1 ticket(s)")
        await wait_for(pilot, lambda: bool(screen.query(Toast)), what="toast")
        await pilot.pause()
        (toast,) = screen.query(Toast)
        where = shown(toast)
        assert where.area > 0
        assert where.x >= 38
        assert where.right >= 76  # top right (the rack keeps a gutter)
        assert where.y <= 4
        assert where.bottom <= shown(screen.query_one("#log-pane")).y
