"""The filter bar: status tabs, the search box and the sort order, above the table.

Two rows: the tabs on the left (their labels and underline), the search box over the sort order on
the right. The tabs take their natural width and the search box the rest, so it stays usable in
an 80-column terminal; the sort label shares the tabs' underline row instead of the search row.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Tab, Tabs

from anomaly_desk.tui.widgets.anomaly_rows import FILTERS, SORTS

TABS_WIDTH = sum(len(label) + 2 for label, _, _ in FILTERS.values())  # a tab pads its label by 1


class FilterBar(Horizontal):
    """Posts ``FilterBar.Changed`` with the status filter and search text."""

    DEFAULT_CSS = """
    FilterBar { height: 2; }
    FilterBar > #search-column { width: 1fr; height: 2; margin-left: 1; }
    FilterBar #search { width: 1fr; height: 1; border: none; padding: 0 1; }
    FilterBar #search:focus { background: $boost; }
    FilterBar #sort {
        width: 1fr;
        height: 1;
        padding: 0 1;
        color: $text-muted;
        text-align: right;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    class Changed(Message):
        def __init__(self, status: str, q: str, archive: bool = False) -> None:
            super().__init__()
            self.status = status
            self.q = q
            self.archive = archive  # the cold archive searched too

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status = "open"
        self.archive = False
        self._sort = SORTS["newest"]

    def compose(self) -> ComposeResult:
        tabs = Tabs(
            *(Tab(label, id=key) for key, (label, _, _) in FILTERS.items()), id="status-tabs"
        )
        tabs.styles.width = TABS_WIDTH  # their natural width: the search box has the rest
        yield tabs
        with Vertical(id="search-column"):
            yield Input(placeholder="/ search id, container, fields, message, ticket", id="search")
            yield Label(f"sort: {SORTS['newest']}", id="sort")

    @property
    def q(self) -> str:
        return self.query_one("#search", Input).value

    def set_status(self, status: str) -> None:
        self.query_one(Tabs).active = status

    def set_sort_label(self, sort: str) -> None:
        self._sort = SORTS[sort]
        self._label()

    def _label(self) -> None:
        cold = " · + cold archive (slower)" if self.archive else ""
        self.query_one("#sort", Label).update(f"sort: {self._sort}{cold}")

    def toggle_archive(self) -> str | None:
        """Search the cold archive too, or no longer (the label says which). It holds archived
        anomalies only: from an open tab, the list goes to All; returns the tab it left then
        (the caller says so), else None."""
        self.archive = not self.archive
        self._label()
        if self.archive and self.status not in ("archived", "all"):
            left = self.status
            self.set_status("all")  # the tab posts the change, the archive included
            return left
        self.post_message(self.Changed(self.status, self.q, self.archive))
        return None

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab is None or event.tab.id == self.status:
            return
        self.status = event.tab.id or "open"
        self.post_message(self.Changed(self.status, self.q, self.archive))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.status, event.value, self.archive))
