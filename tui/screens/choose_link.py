"""Small modals the main screen needs: pick one of several links, and confirm an unlink."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList
from textual.widgets.option_list import Option

from anomaly_desk.core.views import TicketLinkView


def link_label(link: TicketLinkView) -> str:
    """Plain text (a ticket summary may contain ``[...]``): show it as ``Text``, not markup."""
    state = link.state or "?"
    return f"{link.ticket_key}  {link.connection}  [{state}]  {link.summary or ''}"


class ChooseLinkScreen(ModalScreen[TicketLinkView | None]):
    """Which linked ticket? Dismisses with the link, or None on escape."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, links: list[TicketLinkView]) -> None:
        super().__init__()
        self.title_text = title
        self.links = links

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield OptionList(
                *(Option(Text(link_label(link)), id=link.id) for link in self.links), id="links"
            )
            yield Label("enter choose · esc cancel", classes="dialog-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        chosen = next(link for link in self.links if link.id == event.option.id)
        self.dismiss(chosen)


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; ``y`` / ``n`` work as well as the buttons."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question), classes="dialog-title")  # ticket text: not markup
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
