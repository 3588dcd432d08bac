"""``i`` in a dashboard the demo started: the demo's banner (sandbox URLs and credentials, the
webhook secret, where the data and logs are, the command that replays more anomalies).

The demo prints the same text before the dashboard starts, where the dashboard then hides it;
this is where it can be read while everything it describes is running.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from anomaly_desk.tui.screens.dialog import dialog_css


class DemoInfoScreen(ModalScreen[None]):
    """The demo's banner, as plain text (paths and secrets are never markup); Escape closes."""

    DEFAULT_CSS = dialog_css(
        "DemoInfoScreen",
        """
        DemoInfoScreen > #dialog { width: 130; }
        DemoInfoScreen #hint { color: $text-muted; padding: 0 1; }
        """,
    )

    BINDINGS = [
        Binding("escape,i", "dismiss(None)", "Close"),
        Binding("y", "copy_replay", "Copy replay command"),
    ]

    def __init__(self, info: str) -> None:
        super().__init__()
        self.info = info.strip("\n")

    def compose(self) -> ComposeResult:
        # the whole dialog scrolls: in a small terminal, a scroll inside it could be cut off
        # below the screen's edge, its last lines (the replay command) out of reach
        with VerticalScroll(id="dialog") as dialog:
            dialog.border_title = "Demo info"
            yield Static(Text(self.info), id="info")
            yield Static(
                Text("Everything here stops, and temporary files go, when you quit (q)."),
                id="hint",
            )
        yield Footer()

    def replay_command(self) -> str | None:
        """The banner's ``anomaly-desk replay …`` line, if it has one."""
        for line in self.info.splitlines():
            at = line.find("anomaly-desk replay ")
            if at >= 0:
                return line[at:].strip()
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "copy_replay":
            return self.replay_command() is not None
        return True

    def action_copy_replay(self) -> None:
        command = self.replay_command()
        if command is not None:
            self.app.copy_to_clipboard(command)
            self.notify(command, title="Copied the replay command", markup=False)
