"""The footer: the screen's keys, with Quit and Help first so a narrow terminal still shows them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# keys shown before the others, in this order, whatever order the screen binds them in
FIRST_KEYS = ("q", "question_mark", "?")


def _rank(widget: Widget) -> int:
    if isinstance(widget, FooterKey) and widget.key in FIRST_KEYS:
        return FIRST_KEYS.index(widget.key)
    return len(FIRST_KEYS)


class DeskFooter(Footer):
    """Textual's footer, compact, with ``q`` and ``?`` moved to the front: an 80-column
    terminal cuts the keys on the right, and those two must never be the ones cut."""

    DEFAULT_CSS = """
    DeskFooter.-compact FooterKey.-command-palette { margin-right: 0; padding-right: 1; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)

    def compose(self) -> ComposeResult:
        items = list(super().compose())
        if all(isinstance(item, FooterKey) for item in items):  # no binding groups to keep
            items.sort(key=_rank)  # stable: the rest keep the screen's order
        yield from items
