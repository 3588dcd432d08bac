"""What the receiver keeps aside or keeps as sent, as the operator sees it in the dashboard:
quarantined items, odd values and unknown statuses, a degraded store, and platform text that
must stay text (never Rich/Textual markup)."""

from __future__ import annotations

from typing import Any

import orjson
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Static

from anomaly_desk.tui.screens.main import MainScreen
from anomaly_desk.tui.screens.quarantine import (
    RAW_MAX_CHARS,
    QuarantineScreen,
    raw_json,
    render_items,
)
from tests.integration.conftest import Desk
from tests.support import ROOT
from tests.tui.conftest import SIZE, dashboard, ready, wait_for

HOSTILE = "[@click=app.quit]x[/]"
REASON = "journal write failed: [Errno 28] No space left on device"


def anomaly(anomaly_id: int, **changes: Any) -> dict[str, Any]:
    """A valid anomaly, newer than every fixture, so it is the first row and in the detail."""
    body = orjson.loads((ROOT / "fixtures/webhooks/04-api-record-anomaly.json").read_bytes())
    body.update(id=anomaly_id, uuid=f"u-{anomaly_id}", created="2026-11-22T00:00:00Z")
    body.update(url=f"https://acme.qualytics.io/anomalies/{anomaly_id}")
    body.update(changes)
    return body


def post(desk: Desk, body: Any) -> dict[str, Any]:
    response = desk.api.post("/webhooks/qualytics", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def drawn(widget: Widget) -> str:
    """The text the widget puts on screen, as drawn (markup would be gone by now)."""
    width, height = widget.size
    lines = widget.render_lines(Region(0, 0, width, height))
    return "\n".join(strip.text.rstrip() for strip in lines)


def words(text: str) -> str:
    """Whitespace folded: a narrow pane wraps and pads, the words stay in order."""
    return " ".join(text.split())


def click_actions(widget: Widget) -> list[Any]:
    """Every ``@click`` action in what the widget draws: none may come from platform text."""
    width, height = widget.size
    return [
        segment.style.meta["@click"]
        for strip in widget.render_lines(Region(0, 0, width, height))
        for segment in strip
        if segment.style is not None and "@click" in segment.style.meta
    ]


def header_text(screen: MainScreen) -> str:
    return drawn(screen.header)


async def test_the_quarantine_screen_lists_an_item_kept_aside_from_its_siblings(
    tui_desk: Desk,
) -> None:
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await wait_for(pilot, lambda: screen.header.quarantined == 0, what="quarantine count")
        assert "quarantined" not in header_text(screen)
        assert "Quarantine" in {b.description for b in screen.BINDINGS if b.key == "Q"}

        await pilot.press("Q")  # nothing yet: the empty state says so
        await wait_for(pilot, lambda: isinstance(app.screen, QuarantineScreen), what="screen")
        quarantine = app.screen
        assert isinstance(quarantine, QuarantineScreen)
        await wait_for(pilot, lambda: quarantine.loads == 1, what="the empty list")
        assert "Nothing quarantined" in drawn(quarantine.query_one("#items", Static))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the main screen")

        result = post(tui_desk, [anomaly(99101), {"name": "no id", "weight": 7}])
        assert result["created"] == [99101]
        assert result["quarantined"] == [{"path": "[1]", "reason": "id: missing"}]
        # the sibling is stored and listed; the header counts the one kept aside, live
        await wait_for(pilot, lambda: screen.model.get(99101) is not None, what="sibling row")
        await wait_for(pilot, lambda: screen.header.quarantined == 1, what="header count")
        assert "⚠ 1 quarantined" in header_text(screen)

        await pilot.press("Q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuarantineScreen), what="screen")
        quarantine = app.screen
        assert isinstance(quarantine, QuarantineScreen)
        await wait_for(pilot, lambda: quarantine.items, what="the quarantined item")
        (item,) = quarantine.items or []
        assert item.raw == {"name": "no id", "weight": 7}
        text = drawn(quarantine.query_one("#items", Static))
        head = next(line for line in text.splitlines() if "id: missing" in line)
        assert head.split() == [*item.at[:19].split("T"), "UTC", "[1]", "id:", "missing"]
        assert f"delivery {item.delivery}" in text
        assert '  "name": "no id",\n  "weight": 7\n' in text  # pretty-printed, order as sent
        assert "1 item" in str(quarantine.query_one("#dialog").border_title)

        # a second delivery while the list is open: the list and the count follow
        envelope = {
            "event": "qualytics.flow.triggered",
            "trigger": {"type": "anomaly", "timestamp": "2026-11-22T00:00:00Z"},
            "context": {"anomalies": [anomaly(99102), {"id": "ABC"}]},
        }
        post(tui_desk, envelope)
        await wait_for(pilot, lambda: len(quarantine.items or ()) == 2, what="the list follows")
        assert quarantine.items is not None
        assert quarantine.items[0].path == "context.anomalies[1]"  # newest first
        await wait_for(pilot, lambda: screen.header.quarantined == 2, what="header count")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="escape closes")
        assert "⚠ 2 quarantined" in header_text(screen)


async def test_the_detail_pane_shows_values_kept_as_sent_and_an_unknown_status(
    tui_desk: Desk,
) -> None:
    post(tui_desk, anomaly(99201, weight="heavy", message={"en": "x"}, status="Snoozed"))
    stored = tui_desk.api.get("/api/anomalies/99201").json()
    assert stored["odd"] == {"weight": "heavy", "message": {"en": "x"}}
    assert stored["status"] == "Snoozed"
    async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        # listed as open, first, with its status as sent
        assert screen.table.current is not None
        assert screen.table.current.id == 99201
        assert screen.table.current.status == "Snoozed"
        assert screen.detail_doc is not None
        text = words(drawn(screen.query_one("#detail-body", Static)))
        assert "status Snoozed (unknown; listed as open)" in text
        kept = text[text.index("Kept as sent") : text.index("Failed checks")]
        assert kept.startswith("Kept as sent values the platform sent that fit no field ")
        assert 'weight = "heavy"' in kept
        assert 'message = {"en":"x"}' in kept
        assert "Snoozed 1" in header_text(screen)  # counted, beside the six known statuses
        # a fixture anomaly has nothing kept aside: no such section
        await pilot.press("down")
        await wait_for(pilot, lambda: screen.detail_doc.id != 99201, what="next detail")
        assert "Kept as sent" not in drawn(screen.query_one("#detail-body", Static))


async def test_platform_text_is_shown_literally_never_as_markup(tui_desk: Desk) -> None:
    """A quarantined item, an odd value and a message holding markup are drawn as written: no
    style, no ``@click`` action (``[@click=app.quit]`` would quit on a click)."""
    post(
        tui_desk,
        [
            anomaly(99301, weight=HOSTILE, message="[bold]loud[/bold] [red]"),
            {"note": HOSTILE, "[b]": "[/]"},
        ],
    )
    app = dashboard(tui_desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert screen.detail_doc is not None
        assert screen.detail_doc.id == 99301
        detail = screen.query_one("#detail-body", Static)
        text = drawn(detail)
        assert f'weight = "{HOSTILE}"' in text
        assert "[bold]loud[/bold] [red]" in text
        assert click_actions(detail) == []
        await wait_for(pilot, lambda: screen.header.quarantined == 1, what="count at start")

        await pilot.press("Q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuarantineScreen), what="screen")
        quarantine = app.screen
        assert isinstance(quarantine, QuarantineScreen)
        await wait_for(pilot, lambda: quarantine.items, what="the quarantined item")
        items = quarantine.query_one("#items", Static)
        text = drawn(items)
        assert f'"note": "{HOSTILE}"' in text
        assert '"[b]": "[/]"' in text
        assert click_actions(items) == []
        await pilot.click(items, offset=(12, 3))  # on the hostile value: nothing happens
        await pilot.pause()
        assert app.is_running
        assert app.screen is quarantine


async def test_the_header_says_when_the_store_is_degraded(tui_desk: Desk) -> None:
    """``/healthz`` answers 503 degraded: the header says why, the stream stays "live"."""
    store = tui_desk.receiver.app.state.store
    store.write_error = REASON  # what a failed journal write leaves (see core/store.py)
    try:
        health = tui_desk.api.get("/healthz")
        assert health.status_code == 503
        assert health.json()["reason"] == REASON
        async with dashboard(tui_desk).run_test(size=SIZE) as pilot:
            screen = await ready(pilot)
            assert screen.header.degraded == REASON
            assert f"⚠ store degraded: {REASON}" in header_text(screen)
            assert "unreachable" not in header_text(screen)
            assert screen.header.counts is not None
            assert screen.header.counts.get("Active") == 5  # the counts still come
            store.write_error = None  # the disk takes writes again
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: screen.header.degraded is None, what="recovered")
            assert "degraded" not in header_text(screen)
    finally:
        store.write_error = None


def test_any_raw_value_renders_as_json_text_and_a_huge_one_is_cut() -> None:
    """``raw`` is whatever was sent: a string, a list, a number; never read as markup."""
    assert raw_json(HOSTILE).plain == f'"{HOSTILE}"'
    assert raw_json([1, "[b]"]).plain == '[\n  1,\n  "[b]"\n]'
    assert raw_json(None).plain == "null"
    huge = raw_json({"blob": "x" * (RAW_MAX_CHARS * 2)})
    assert len(huge.plain) < RAW_MAX_CHARS + 40
    full = len('{\n  "blob": ""\n}') + RAW_MAX_CHARS * 2  # pretty-printed
    assert huge.plain.endswith(f"\n… {full - RAW_MAX_CHARS:,} more characters")
    assert "Nothing quarantined" in str(render_items([]))
