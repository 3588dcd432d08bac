"""Small modals the main screen needs: pick one of several links or values, confirm an unlink.

Every label here holds ticket text (keys, states, summaries a provider sent): it goes in as
``Text``, never as markup, so ``[To Do]`` or ``[@click=app.quit]`` is shown as written.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList
from textual.widgets.option_list import Option

from anomaly_desk.core.views import AnomalyDetail, TicketLinkView


def link_label(link: TicketLinkView) -> Text:
    """``DQ-7  jira  [To Do]  summary``: plain text (a summary may contain ``[...]``)."""
    text = Text(link.ticket_key, style="bold")
    text.append(f"  {link.connection}  ")
    text.append(f"[{link.state or '?'}]", style="dim")
    if link.summary:
        text.append(f"  {link.summary}")
    return text


def platform_label(anomaly: AnomalyDetail) -> Text:
    """``⇄ anomaly 10231  in the platform  https://…``: the anomaly itself, beside its tickets."""
    text = Text()  # no base style: each part keeps its own
    text.append(f"⇄ anomaly {anomaly.id}", style="bold cyan")
    text.append("  in the platform")
    if anomaly.url:
        text.append(f"  {anomaly.url}", style="dim")
    return text


class ChooseLinkScreen(ModalScreen[TicketLinkView | None]):
    """Which linked ticket? Dismisses with the link, or None on escape."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, links: list[TicketLinkView]) -> None:
        super().__init__()
        self.title_text = title
        self.links = links

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.title_text), classes="dialog-title")
            yield OptionList(
                *(Option(link_label(link), id=link.id) for link in self.links), id="links"
            )
            yield Label("enter choose · esc cancel", classes="dialog-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        chosen = next(link for link in self.links if link.id == event.option.id)
        self.dismiss(chosen)


class ChooseValueScreen(ModalScreen[str | None]):
    """Which value? ``choices`` are ``(label, value)``; dismisses with the value, or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, choices: Sequence[tuple[Text | str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.title_text), classes="dialog-title")
            yield OptionList(
                *(
                    Option(label if isinstance(label, Text) else Text(label), id=str(i))
                    for i, (label, _) in enumerate(self.choices)
                ),
                id="values",
            )
            yield Label("enter choose · esc cancel", classes="dialog-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id or 0)][1])


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
