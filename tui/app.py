"""The dashboard application: one main screen over a ``DeskClient``, and ``run_dashboard``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from anomaly_desk.tui.client import DeskClient
from anomaly_desk.tui.screens.main import ACTIONS, MainScreen


class DashboardApp(App[int]):
    """Anomaly Desk's terminal dashboard; a client of the receiver's operator API."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "Anomaly Desk"
    ENABLE_COMMAND_PALETTE = True
    # priority: a modal screen (a form, a dialog) cuts the app's ordinary bindings off
    BINDINGS = [Binding("f12", "save_screen", "Screenshot", show=False, priority=True)]

    def __init__(
        self,
        client: DeskClient,
        address: str | None = None,
        confirm_notes: bool = True,
        demo_info: str | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.address = address or client.url
        self.confirm_notes = confirm_notes  # ask before a key sends notes to linked tickets
        self.demo_info = demo_info  # the demo's banner: `i` shows it (demo only)

    def on_mount(self) -> None:
        self.push_screen(
            MainScreen(
                self.client,
                self.address,
                confirm_notes=self.confirm_notes,
                demo_info=self.demo_info,
            )
        )

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def action_save_screen(self) -> None:
        """An SVG of the screen, into $ANOMALY_DESK_SCREENSHOT_DIR (default: the current dir)."""
        path = self.save_screenshot(path=os.environ.get("ANOMALY_DESK_SCREENSHOT_DIR") or ".")
        self.notify(f"Saved {path}", title="Screenshot", markup=False)  # a path, not markup

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every dashboard action, then Textual's own (theme, keys, screenshot, quit)."""
        if isinstance(screen, MainScreen):
            for action, title, help_text in ACTIONS:
                yield SystemCommand(title, help_text, partial(screen.run_action, action))
            if screen.demo_info is not None:
                yield SystemCommand(
                    "Demo info",
                    "Sandbox credentials, webhook secret, logs, the replay command (i)",
                    partial(screen.run_action, "demo_info"),
                )
        yield from super().get_system_commands(screen)


def run_dashboard(
    url: str,
    token: str | None = None,
    *,
    confirm_notes: bool = True,
    demo_info: str | None = None,
    raised_for: str | None = None,
) -> int:
    """Run the dashboard against the receiver at ``url`` until the user quits; the exit status.
    ``confirm_notes``: ask before a key sends notes to the linked tickets. ``demo_info``: the
    demo's banner, which ``i`` then shows. ``raised_for`` (``--as``): who the tickets created
    here are for, sent with each create."""
    client = DeskClient(url, token, raised_for=raised_for)
    app = DashboardApp(client, address=url, confirm_notes=confirm_notes, demo_info=demo_info)
    result = app.run()
    return int(result or app.return_code or 0)
