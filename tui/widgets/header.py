"""The header: which receiver, whether the live stream is up, connection health, counts, and
what needs an operator: a degraded store, quarantined deliveries; an import running."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from anomaly_desk.core.views import (
    ConnectionHealth,
    ConnectionView,
    HealthView,
    ImportProgressView,
)
from anomaly_desk.tui.widgets.connection_list import health_message, sync_lines

ORDER = ("Active", "Acknowledged", "Resolved", "Duplicate", "Invalid", "Discarded")
COUNT_STYLES = {"Active": "bold yellow", "Acknowledged": "cyan", "Resolved": "green"}
# the words an 80-column terminal has room for
SHORT = {"Acknowledged": "Ack'd", "Duplicate": "Dup.", "Discarded": "Disc."}


def health_word(health: ConnectionHealth | None) -> str:
    """What the header says of a connection: ``ok``, ``failing``, or ``?`` before its check."""
    if health is None:
        return "?"
    return "ok" if health.ok else "failing"


class DeskHeader(Static):
    """Two lines, never wrapped: the long words where the terminal is wide enough, short ones
    where it is not (80 columns), and an ellipsis past that. No clock, so screenshots of the
    same data are the same."""

    DEFAULT_CSS = """
    DeskHeader {
        dock: top;
        height: 2;
        background: $panel;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address
        self.live = "connecting"
        self.connections: list[ConnectionView] | None = None
        self.counts: dict[str, int] | None = None
        self.total: int | None = None
        self.degraded: str | None = None  # the receiver's reason when /healthz says degraded
        self.quarantined: int | None = None  # None until known
        self.quarantined_more = False  # the count is a lower bound (one page's worth)
        self.importing: ImportProgressView | None = None  # an import from the platform running

    def on_mount(self) -> None:
        self._draw()

    def set_live(self, state: str) -> None:
        self.live = state
        self._draw()

    def set_connections(self, connections: list[ConnectionView]) -> None:
        """Each connection's health as last known (a check, or a ``connection.health`` event):
        the header follows every change, and its tooltip says why one is failing."""
        self.connections = connections
        self.tooltip = self._health_tooltip()
        self._draw()

    def _health_tooltip(self) -> Text | None:
        # Text, not a string: a provider's message is shown as written, never read as markup
        lines = []
        for conn in self.connections or ():
            health = conn.health
            line = Text()  # no base style: the sync lines are not bold
            line.append(f"{conn.name}: ", style="bold")
            if health is None:
                line.append("not checked yet", style="dim")
            else:
                message = health_message(conn.name, health.message)
                line.append(message or health_word(health), style="green" if health.ok else "red")
                how = "a delivery" if health.source == "sync" else "a check"
                line.append(f"  ({how}, {health.checked_at or 'time unknown'})", style="dim")
                for warning in health.warnings:
                    line.append(f"\n  ⚠ {warning}", style="yellow")
            for sync in sync_lines(conn.sync) if conn.sync else ():
                line.append(f"\n  {sync}", style="dim")
            lines.append(line)
        return Text("\n").join(lines) if lines else None

    def set_counts(self, health: HealthView) -> None:
        """From ``/healthz``: the counts (absent when not authorised) and the store's state."""
        if health.by_status is not None:
            self.counts = health.by_status
            self.total = health.anomalies
        if health.status == "degraded":
            self.degraded = health.reason or "no reason given"
        else:
            self.degraded = None
        self._draw()

    def set_quarantined(self, count: int, more: bool = False) -> None:
        """How many delivered items are quarantined (``more``: at least that many)."""
        self.quarantined = count
        self.quarantined_more = more
        self._draw()

    def set_import(self, view: ImportProgressView | None) -> None:
        """An import from the platform running (None: none is)."""
        self.importing = view
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        # the full words where they fit, else the short ones: never wrapped onto the counts line
        width = self.content_size.width
        lines = []
        for part in (self._top, self._bottom):
            line = part(compact=False)
            if width and line.cell_len > width:
                line = part(compact=True)
            lines.append(line)
        # one line each, however long the reason: cut with an ellipsis rather than wrapped away
        self.update(Text("\n", no_wrap=True, overflow="ellipsis").join(lines))

    def _top(self, compact: bool) -> Text:
        top = Text()
        top.append("Anomaly Desk", style="bold")
        top.append("  " if compact else "  receiver ", style="dim")
        address = self.address
        if compact:
            address = address.removeprefix("http://").removeprefix("https://")
        top.append(address, style="bold cyan")
        live = {"live": ("● live", "green"), "connecting": ("○ connecting", "yellow")}
        label, style = live.get(self.live, (f"○ {self.live}", "red"))
        top.append(f"  {label}", style=style)
        top.append("  " if compact else "   connections ", style="dim")
        if self.connections is None:
            top.append("…", style="dim")
        elif not self.connections:
            top.append("no connections" if compact else "none configured", style="yellow")
        for conn in self.connections or ():
            if conn.health is None:
                mark, style = "…", "dim"
            elif conn.health.ok:
                mark, style = "ok", "green"
            else:
                mark, style = "failing", "bold red"
            top.append(f"{conn.name} ", style="bold")
            if conn.health is not None and conn.health.warnings:
                top.append(mark, style=style)
                top.append(" ⚠  ", style="bold yellow")  # credential trouble ahead: the tooltip
            else:
                top.append(f"{mark}  ", style=style)
        top.rstrip()
        return top

    def _bottom(self, compact: bool) -> Text:
        bottom = Text()
        gap = "  " if compact else "   "
        # what needs the operator first: with a long reason the counts are what gets cut
        if self.degraded is not None:
            bottom.append("⚠ store degraded: ", style="bold white on red")
            bottom.append(self.degraded, style="bold red")
            bottom.append(gap)
        if self.importing is not None:
            view = self.importing
            where = f"{view.page}/{view.pages}" if view.pages else "…"
            bottom.append(f"⇣ import {where}" if compact else f"⇣ importing {where}", style="cyan")
            bottom.append(f" (I){gap}", style="dim")
        if self.quarantined:
            more = "+" if self.quarantined_more else ""
            bottom.append(f"⚠ {self.quarantined:,}{more} quarantined", style="bold yellow")
            bottom.append(f" (Q){gap}", style="dim")
        if self.counts is None:
            bottom.append("counts …", style="dim")
        else:
            # a status the platform added after this version is counted (and listed) as open
            others = sorted(s for s in self.counts if s not in ORDER)
            for status in (*ORDER, *others):
                name = SHORT.get(status, status) if compact else status
                bottom.append(f"{name} ", style="dim")
                style = COUNT_STYLES.get(status, "magenta" if status in others else "")
                bottom.append(f"{self.counts.get(status, 0):,}", style=style)
                bottom.append("  ")
            bottom.append(f"total {self.total or 0:,}", style="bold")
        return bottom

    def health_text(self) -> str:
        """Plain words for the connections, for tooltips and tests."""
        return " ".join(f"{c.name}={health_word(c.health)}" for c in self.connections or ())
