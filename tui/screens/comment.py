"""Write a comment on an anomaly; it also goes to every linked ticket as a note."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static, TextArea

from anomaly_desk.core.views import AnomalyDetail
from anomaly_desk.tui.screens.dialog import anomaly_line, dialog_css


class CommentScreen(ModalScreen[str | None]):
    """Dismisses with the comment text (never blank), or None when cancelled."""

    DEFAULT_CSS = dialog_css(
        "CommentScreen",
        """
        CommentScreen > #dialog { width: 80; height: auto; }
        CommentScreen TextArea { height: 8; margin-top: 1; }
        CommentScreen.-invalid TextArea { border: tall $error; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Add comment", priority=True),
    ]

    def __init__(self, anomaly: AnomalyDetail) -> None:
        super().__init__()
        self.anomaly = anomaly

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = f"Comment on anomaly {self.anomaly.id}"
            yield Static(Text(anomaly_line(self.anomaly)), id="anomaly")
            yield TextArea(
                id="text", placeholder="The comment; linked tickets receive it as a note"
            )
            yield Static("", id="status")
            with Horizontal(id="buttons"):
                yield Button("Add comment", variant="primary", id="submit")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    @on(TextArea.Changed)
    def _typed(self) -> None:
        if self.has_class("-invalid") and self.query_one(TextArea).text.strip():
            self.remove_class("-invalid")
            self.query_one("#status", Static).update("")

    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        text = self.query_one(TextArea).text.strip()
        if not text:
            self.add_class("-invalid")
            status = self.query_one("#status", Static)
            status.update("A comment needs some text.")
            status.add_class("-error")
            self.query_one(TextArea).focus()
            return
        self.dismiss(text)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
