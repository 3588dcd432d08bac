"""The header: which receiver, whether the live stream is up, connection health, counts."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

ORDER = ("Active", "Acknowledged", "Resolved", "Duplicate", "Invalid", "Discarded")
COUNT_STYLES = {"Active": "bold yellow", "Acknowledged": "cyan", "Resolved": "green"}


class DeskHeader(Static):
    """Two lines; no clock, so screenshots of the same data are the same."""

    DEFAULT_CSS = """
    DeskHeader {
        dock: top;
        height: 2;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(self, address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address
        self.live = "connecting"
        self.connections: list[dict[str, Any]] | None = None
        self.counts: dict[str, int] | None = None
        self.total: int | None = None

    def on_mount(self) -> None:
        self._draw()

    def set_live(self, state: str) -> None:
        self.live = state
        self._draw()

    def set_connections(self, connections: list[dict[str, Any]]) -> None:
        self.connections = connections
        self._draw()

    def set_counts(self, health: dict[str, Any]) -> None:
        self.counts = health.get("by_status") or {}
        self.total = health.get("anomalies")
        self._draw()

    def _draw(self) -> None:
        top = Text()
        top.append("Anomaly Desk", style="bold")
        top.append("  receiver ", style="dim")
        top.append(self.address, style="bold cyan")
        live = {"live": ("● live", "green"), "connecting": ("○ connecting", "yellow")}
        label, style = live.get(self.live, (f"○ {self.live}", "red"))
        top.append(f"  {label}", style=style)
        top.append("   connections ", style="dim")
        if self.connections is None:
            top.append("…", style="dim")
        elif not self.connections:
            top.append("none configured", style="yellow")
        for conn in self.connections or ():
            health = conn.get("health")
            if health is None:
                mark, style = "…", "dim"
            elif health.get("ok"):
                mark, style = "ok", "green"
            else:
                mark, style = "err", "bold red"
            top.append(f"{conn['name']} ", style="bold")
            top.append(f"{mark}  ", style=style)
        bottom = Text()
        if self.counts is None:
            bottom.append("counts …", style="dim")
        else:
            for status in ORDER:
                bottom.append(f"{status} ", style="dim")
                bottom.append(f"{self.counts.get(status, 0):,}", style=COUNT_STYLES.get(status, ""))
                bottom.append("  ")
            bottom.append(f"total {self.total or 0:,}", style="bold")
        self.update(Text("\n").join([top, bottom]))

    def health_text(self) -> str:
        """Plain words for the connections, for tooltips and tests."""
        return " ".join(
            f"{c['name']}={'?' if c.get('health') is None else ('ok' if c['health'].get('ok') else 'err')}"
            for c in self.connections or ()
        )
