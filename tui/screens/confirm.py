"""Ask before one key sends notes to several tickets: they cannot be taken back."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from anomaly_desk.core.views import AnomalyDetail
from anomaly_desk.tui.screens.dialog import anomaly_line, dialog_css


def notify_question(what: str, anomaly: AnomalyDetail) -> str:
    """``Acknowledge 10240 and notify DQ-2, INC0010002?`` for ``what`` = "Acknowledge 10240"."""
    keys = ", ".join(link.ticket_key for link in anomaly.links)
    return f"{what} and notify {keys}?"


class ConfirmNotesScreen(ModalScreen[bool]):
    """Dismisses with True (y, Enter) or False (n, Escape)."""

    DEFAULT_CSS = dialog_css(
        "ConfirmNotesScreen",
        """
        ConfirmNotesScreen > #dialog { width: 80; height: auto; }
        ConfirmNotesScreen #question { padding: 1 1 0 1; height: auto; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, anomaly: AnomalyDetail, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.anomaly = anomaly
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Notify linked tickets"
            yield Static(Text(anomaly_line(self.anomaly)), id="anomaly")
            yield Static(Text(self.question), id="question")  # ticket keys: text, not markup
            with Horizontal(id="buttons"):
                yield Button(f"{self.yes} (y)", variant="primary", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
