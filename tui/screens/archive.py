"""Archive an anomaly: one of the four archive statuses and an optional comment.

The screen only asks; the caller sends ``(status, comment)`` to the receiver, which turns it into
the same notes a platform status change produces.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, RadioButton, RadioSet, Static

from anomaly_desk.core.views import AnomalyDetail
from anomaly_desk.tui.screens.dialog import anomaly_line, dialog_css

ARCHIVE_STATUSES = ("Resolved", "Duplicate", "Invalid", "Discarded")


class ArchiveScreen(ModalScreen[tuple[str, str | None] | None]):
    """Dismisses with ``(status, comment or None)``, or None when cancelled."""

    DEFAULT_CSS = dialog_css(
        "ArchiveScreen",
        """
        ArchiveScreen > #dialog { width: 72; height: auto; }
        ArchiveScreen RadioSet { width: 100%; margin: 1 0 0 0; }
        ArchiveScreen Label { padding: 0 1; margin-top: 1; color: $text-muted; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Archive", priority=True),
    ]

    def __init__(self, anomaly: AnomalyDetail, status: str | None = None) -> None:
        super().__init__()
        self.anomaly = anomaly
        # an anomaly archived already starts from its own status (changing Duplicate to Invalid
        # is one key away, and Enter alone keeps it); an open one from Resolved
        wanted = status or anomaly.status
        self.initial = wanted if wanted in ARCHIVE_STATUSES else "Resolved"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = f"Archive anomaly {self.anomaly.id}"
            yield Static(Text(anomaly_line(self.anomaly)), id="anomaly")
            with RadioSet(id="status-choice"):
                for status in ARCHIVE_STATUSES:
                    yield RadioButton(status, value=status == self.initial, id=status.lower())
            yield Label("Comment (optional; sent to the linked tickets)")
            yield Input(placeholder="Why it is archived", id="comment")
            yield Static("", id="status")
            with Horizontal(id="buttons"):
                yield Button("Archive", variant="primary", id="submit")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        choice = self.query_one(RadioSet)
        choice.focus()
        for _ in range(ARCHIVE_STATUSES.index(self.initial)):  # the cursor on the chosen one
            choice.action_next_button()

    @property
    def status(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return str(pressed.label) if pressed is not None else self.initial

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted, "#comment")
    def action_submit(self) -> None:
        comment = self.query_one("#comment", Input).value.strip()
        self.dismiss((self.status, comment or None))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
