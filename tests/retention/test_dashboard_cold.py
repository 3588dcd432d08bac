"""The dashboard and the cold archive: ``6`` includes it in the list and search (the sort label
and the list's title say so), its rows are marked ❄, and a cold anomaly's detail says where it
is."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from textual.widgets import Static

from anomaly_desk.tui.screens.main import MainScreen
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer
from tests.tui.conftest import SIZE, WEBHOOKS, dashboard, ready, wait_for


@pytest.fixture
def cold_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """Every fixture webhook in, then the archived ones compacted into the cold archive."""
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
        moved = desk.api.post("/api/compact")
        assert moved.status_code == 200, moved.text
        assert moved.json()["moved"] > 0
        yield desk
    finally:
        desk.api.close()
        receiver.stop()


def detail_text(screen: MainScreen) -> str:
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(screen.query_one("#detail-body", Static).content)
    return console.export_text()


async def test_six_includes_the_cold_archive_and_marks_what_comes_from_it(
    cold_desk: Desk,
) -> None:
    cold = {
        item["id"]
        for item in cold_desk.api.get(
            "/api/anomalies", params={"status": "archived", "archive": "1"}
        ).json()["items"]
        if item.get("cold")
    }
    assert cold
    async with dashboard(cold_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("4")  # archived: the hot store holds none of them any more
        await wait_for(pilot, lambda: screen.model.query.filter == "archived", what="archived")
        await wait_for(pilot, lambda: len(screen.model) == 0, what="no hot archived rows")
        version = screen.rows_version
        await pilot.press("6")
        await wait_for(
            pilot,
            lambda: screen.model.query.archive and screen.rows_version > version,
            what="rows with the cold archive",
        )
        assert {row.id for row in screen.model.view} == cold
        assert all(row.cold for row in screen.model.view)
        assert "cold archive" in str(screen.query_one("#sort").render())
        assert "with the cold archive" in str(screen.query_one("#list-pane").border_title)
        first = screen.model.view[0].id
        await wait_for(
            pilot,
            lambda: screen.detail_doc is not None and screen.detail_doc.id == first,
            what="the cold anomaly's detail",
        )
        assert screen.detail_doc is not None
        assert screen.detail_doc.cold
        assert "in the cold archive" in detail_text(screen)
        version = screen.rows_version
        await pilot.press("6")  # and back to the hot store alone
        await wait_for(
            pilot,
            lambda: not screen.model.query.archive and screen.rows_version > version,
            what="hot rows only",
        )
        assert len(screen.model) == 0
        assert "cold archive" not in str(screen.query_one("#sort").render())
        await pilot.press("1", "6")  # from an open tab: All, the cold archive included
        await wait_for(
            pilot,
            lambda: screen.model.query.archive and screen.model.query.filter == "all",
            what="all, with the cold archive",
        )
        await wait_for(pilot, lambda: cold <= {row.id for row in screen.model.view}, what="rows")
