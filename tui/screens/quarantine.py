"""The quarantine: delivered items kept aside because they had no usable anomaly id.

Their siblings in the same delivery were stored; these wait here, raw JSON as sent, for someone
to look. Everything shown came from the sender, so all of it is ``Text`` (never markup): a raw
value like ``"[@click=app.quit]x[/]"`` is shown as written.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from anomaly_desk.core.views import QuarantineItem
from anomaly_desk.tui.client import ApiError, DeskClient
from anomaly_desk.tui.screens.dialog import dialog_css
from anomaly_desk.tui.widgets.detail import when

SHOWN = 100  # newest first; the receiver keeps them all
RAW_MAX_CHARS = 10_000  # of one item's pretty JSON: a huge item must not bury the others

INTRO = (
    "Delivered items kept aside because they have no usable anomaly id; "
    "the rest of each delivery was stored. Newest first."
)
EMPTY = "Nothing quarantined: every delivered item had a usable anomaly id."


def raw_json(raw: object) -> Text:
    """The item as sent, pretty-printed and highlighted (JSON text, never markup)."""
    try:
        text = JSON.from_data(raw, indent=2).text
    except (TypeError, ValueError):  # not JSON-encodable after all: show what it is
        text = Text(repr(raw))
    if len(text) > RAW_MAX_CHARS:
        more = len(text) - RAW_MAX_CHARS
        text = text[:RAW_MAX_CHARS]
        text.append(f"\n… {more:,} more characters", style="dim italic")
    text.overflow = "fold"
    return text


def render_item(item: QuarantineItem) -> RenderableType:
    head = Text()
    head.append(when(item.at), style="dim")
    head.append("  ")
    head.append(item.path or "?", style="bold")
    head.append("  ")
    head.append(item.reason or "no reason given", style="bold red")
    delivery = Text(f"delivery {item.delivery or '?'}", style="dim", overflow="fold")
    return Group(head, delivery, raw_json(item.raw))


def render_items(items: list[QuarantineItem]) -> RenderableType:
    if not items:
        return Text(EMPTY, style="green")
    parts: list[RenderableType] = []
    for index, item in enumerate(items):
        if index:
            parts.append(Text(""))
        parts.append(render_item(item))
    return Group(*parts)


class QuarantineScreen(ModalScreen[None]):
    """Lists the newest quarantined items; ``r`` reads them again, escape closes."""

    DEFAULT_CSS = dialog_css(
        "QuarantineScreen",
        """
        QuarantineScreen > #dialog { width: 120; height: auto; }
        QuarantineScreen #intro { color: $text-muted; height: auto; }
        QuarantineScreen #items-scroll { height: auto; max-height: 80vh; margin-top: 1; }
        QuarantineScreen #items { width: 1fr; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, client: DeskClient, limit: int = SHOWN) -> None:
        super().__init__()
        self.client = client
        self.limit = limit
        self.items: list[QuarantineItem] | None = None  # None until the receiver answers
        self.loads = 0  # answers shown so far (tests wait on it)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Quarantine"
            yield Static(Text(INTRO), id="intro")
            with VerticalScroll(id="items-scroll"):
                yield Static(Text("Loading…", style="dim"), id="items")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#items-scroll").focus()
        self.load()

    def action_reload(self) -> None:
        self.load()

    def gone(self) -> bool:
        """Closed (or the app quitting) while the receiver was answering."""
        return not self.app.is_running or not self.is_attached

    @work(exclusive=True, group="items")
    async def load(self) -> None:
        try:
            items = await self.client.quarantine(limit=self.limit)
        except ApiError as exc:
            if not self.gone():
                self.query_one("#items", Static).update(
                    Text(f"Cannot read the quarantine: {exc.detail}", style="red")
                )
            return
        if not self.gone():
            self.show(items)

    def show(self, items: list[QuarantineItem]) -> None:
        self.items = items
        self.loads += 1
        if len(items) >= self.limit:  # there may be more: the receiver keeps them all
            title = f"Quarantine · the newest {self.limit:,} items"
        else:
            title = f"Quarantine · {len(items):,} item{'' if len(items) == 1 else 's'}"
        self.query_one("#dialog").border_title = title
        self.query_one("#items", Static).update(render_items(items))
