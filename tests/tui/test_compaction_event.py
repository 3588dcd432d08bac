"""An open dashboard hears a compaction (``anomalies.compacted``) with no key pressed: a list
without the archive loses the moved rows, one with it (``6``) marks them ❄ and an open detail of
a moved anomaly turns into its cold view; past the bound the list is read again; one quiet
notification per run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot

from anomaly_desk.tui.screens.main import MainScreen
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.retention.support import mixed, seed
from tests.retention.test_dashboard_cold import detail_text
from tests.support import ThreadedServer
from tests.tui.conftest import SIZE, WEBHOOKS, dashboard, make_desk, ready, wait_for


@pytest.fixture
def old_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """Every fixture webhook in; with ``archive_after_days = 0`` every archived one is old
    enough to move, but nothing has been compacted yet."""
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    env = {**ENV, "ANOMALY_DESK_RETENTION__ARCHIVE_AFTER_DAYS": "0"}
    receiver = start_receiver(config, tmp_path / "data", env)
    desk = Desk(
        receiver,
        sandbox,
        httpx.Client(base_url=receiver.url, timeout=30),
        tmp_path / "data",
        config,
    )
    try:
        for name in WEBHOOKS:
            desk.post_webhook(name)
        yield desk
    finally:
        desk.api.close()
        receiver.stop()


def archived_ids(desk: Desk) -> set[int]:
    page = desk.api.get("/api/anomalies", params={"status": "archived", "limit": 500}).json()
    return {item["id"] for item in page["items"]}


async def compact(desk: Desk) -> int:
    """``POST /api/compact`` from outside the dashboard (off its loop): how many moved."""
    answer = await asyncio.to_thread(desk.api.post, "/api/compact")
    assert answer.status_code == 200, answer.text
    moved: int = answer.json()["moved"]
    return moved


def compaction_notes(pilot: Pilot[Any]) -> list[str]:
    return [n.message for n in pilot.app._notifications if "moved to the archive" in n.message]


async def archived_tab(pilot: Pilot[Any], screen: MainScreen, ids: set[int]) -> None:
    await pilot.press("4")
    await wait_for(
        pilot,
        lambda: (
            screen.model.query.filter == "archived" and {row.id for row in screen.model.view} == ids
        ),
        what="the archived rows",
    )
    first = screen.model.view[0].id
    await wait_for(
        pilot,
        lambda: screen.detail_doc is not None and screen.detail_doc.id == first,
        what="the first archived anomaly's detail",
    )


async def test_a_hot_list_loses_the_moved_rows_without_a_key(old_desk: Desk) -> None:
    ids = archived_ids(old_desk)
    assert len(ids) >= 2
    async with dashboard(old_desk).run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        await archived_tab(pilot, screen, ids)
        open_before = {row.id for row in screen.model.view}

        assert await compact(old_desk) == len(ids)
        await wait_for(pilot, lambda: len(screen.model) == 0, what="the moved rows dropped")
        assert screen.model.query == screen.model.query.__class__("archived", "", False)
        await wait_for(pilot, lambda: screen.detail_doc is None, what="no detail of a moved one")
        await wait_for(pilot, lambda: compaction_notes(pilot) != [], what="the notification")
        await pilot.pause(0.6)  # two more flush ticks: still one notification for the run
        assert compaction_notes(pilot) == [f"{len(ids)} anomalies moved to the archive"]
        assert open_before == ids

        await pilot.press("1")  # the open list never held them, and still has its rows
        await wait_for(
            pilot,
            lambda: screen.model.query.filter == "open" and len(screen.model) > 0,
            what="open rows",
        )
        assert not ids & {row.id for row in screen.model.view}


async def test_with_the_archive_the_moved_rows_are_marked_cold_and_the_detail_follows(
    old_desk: Desk,
) -> None:
    ids = archived_ids(old_desk)
    async with dashboard(old_desk).run_test(size=SIZE, notifications=True) as pilot:
        screen = await ready(pilot)
        await archived_tab(pilot, screen, ids)
        version = screen.rows_version
        await pilot.press("6")  # with the cold archive: empty so far, the rows are all hot
        await wait_for(
            pilot,
            lambda: screen.model.query.archive and screen.rows_version > version,
            what="rows with the cold archive",
        )
        assert {row.id for row in screen.model.view} == ids
        assert not any(row.cold for row in screen.model.view)
        shown = screen.model.view[0].id
        await wait_for(
            pilot,
            lambda: screen.detail_doc is not None and screen.detail_doc.id == shown,
            what="the detail of a hot archived anomaly",
        )
        assert screen.detail_doc is not None
        assert not screen.detail_doc.cold
        assert "in the cold archive" not in detail_text(screen)
        loads = screen.rows_version

        assert await compact(old_desk) == len(ids)
        await wait_for(
            pilot,
            lambda: all(row.cold for row in screen.model.view),
            what="the moved rows marked cold",
        )
        assert {row.id for row in screen.model.view} == ids  # kept, in their places
        assert screen.rows_version == loads  # marked from the event, not by reading the list
        await wait_for(
            pilot,
            lambda: screen.detail_doc is not None and screen.detail_doc.cold,
            what="the open detail turned cold",
        )
        assert screen.detail_doc is not None
        assert screen.detail_doc.id == shown
        assert "in the cold archive" in detail_text(screen)
        await pilot.pause(0.3)  # the cold detail's row keeps its mark
        assert all(row.cold for row in screen.model.view)
        assert "❄" in screen.table.render_line(1).text  # drawn, too
        assert len(compaction_notes(pilot)) == 1


async def test_past_the_bound_the_list_is_read_again(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    """1,040 moved at once: the event names none (``reload``); the list is read again, once."""
    seed(tmp_path / "data", mixed(1300))  # 1,040 archived long ago (the default 30 days)
    desk = make_desk(tmp_path, sandbox)
    try:
        async with dashboard(desk).run_test(size=SIZE, notifications=True) as pilot:
            screen = await ready(pilot)
            await pilot.press("4")
            await wait_for(
                pilot,
                lambda: screen.model.query.filter == "archived" and len(screen.model) >= 100,
                what="the archived rows",
            )
            loads = screen.rows_version
            assert await compact(desk) == 1040
            await wait_for(pilot, lambda: len(screen.model) == 0, what="the list read again")
            assert screen.rows_version == loads + 1
            await wait_for(pilot, lambda: compaction_notes(pilot) != [], what="the notification")
            assert compaction_notes(pilot) == ["1,040 anomalies moved to the archive"]
    finally:
        desk.api.close()
        desk.receiver.stop()
