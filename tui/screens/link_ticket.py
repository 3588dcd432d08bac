"""Link an existing ticket: choose a connection, search by key or summary, Enter links.

Searching asks the provider on every pause in typing, so it is debounced and each search replaces
the previous one (an exclusive worker): a slow answer to an old query never overwrites a newer one.
"""

from __future__ import annotations

import re
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Input, Label, OptionList, Static

from anomaly_desk.core.views import AnomalyDetail, ConnectionView, TicketLinkView, TicketView
from anomaly_desk.tui.client import ApiError, DeskClient
from anomaly_desk.tui.screens.dialog import anomaly_line, dialog_css
from anomaly_desk.tui.widgets.connection_list import ConnectionList

DEBOUNCE_S = 0.3
SEARCH_LIMIT = 20
# DQ-12, INC0010001, or a 32-hex ServiceNow sys_id: typed whole, Enter links it directly.
KEY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*-\d+|[A-Za-z]{2,}\d{4,}|[0-9a-f]{32})$")
SUMMARY_WIDTH = 56


def looks_like_key(text: str) -> bool:
    return bool(KEY.match(text.strip()))


class LinkTicketScreen(ModalScreen[TicketLinkView | None]):
    """Find a ticket on a connection and link it to the anomaly; dismisses with the link."""

    DEFAULT_CSS = dialog_css(
        "LinkTicketScreen",
        """
        LinkTicketScreen > #dialog { height: auto; max-height: 100%; }
        LinkTicketScreen #search { height: auto; }
        LinkTicketScreen #search.-hidden { display: none; }
        LinkTicketScreen #results { height: auto; max-height: 22; margin-top: 1; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "link", "Link", priority=True),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
    ]

    def __init__(
        self, client: DeskClient, anomaly: AnomalyDetail, connections: list[ConnectionView]
    ) -> None:
        super().__init__()
        self.client = client
        self.anomaly = anomaly
        self.connections = [c for c in connections if c.provider in ("jira", "servicenow")]
        self.connection: ConnectionView | None = None
        self.results: list[TicketView] = []
        self.linking = False
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Link an existing ticket"
            yield Static(Text(anomaly_line(self.anomaly)), id="anomaly")
            if len(self.connections) > 1:
                yield Label("Choose a connection:", id="choose")
                yield ConnectionList(self.connections, id="connections")
            with Vertical(id="search", classes="-hidden"):
                yield Input(
                    placeholder="A key (DQ-12, INC0010001) or words from the summary", id="query"
                )
                yield DataTable(id="results", cursor_type="row", zebra_stripes=True)
            yield Static("", id="status")
            with Horizontal(id="buttons"):
                yield Button("Link", variant="primary", id="link", disabled=True)
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#results", DataTable)
        table.add_column("Key", key="key", width=12)
        table.add_column("State", key="state", width=14)
        table.add_column("Summary", key="summary", width=SUMMARY_WIDTH)
        if not self.connections:
            self.set_status("No Jira or ServiceNow connection is configured.", "error")
        elif len(self.connections) == 1:
            self.use_connection(self.connections[0])
        else:
            self.query_one("#connections").focus()

    @on(OptionList.OptionSelected, "#connections")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.use_connection(next(c for c in self.connections if c.name == event.option.id))

    def use_connection(self, connection: ConnectionView) -> None:
        """Step two: the search box, showing the most recent tickets until the user types."""
        self.connection = connection
        self.query("#choose, #connections").remove()
        title = Text(f"Link an existing ticket · {connection.name}")  # a name, not markup
        self.query_one("#dialog").border_title = title
        self.query_one("#search").remove_class("-hidden")
        self.query_one("#link", Button).disabled = False
        self.query_one("#query", Input).focus()
        self.refresh_bindings()
        self.search("")

    # -- searching ------------------------------------------------------------------------------

    @on(Input.Changed, "#query")
    def _typed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        query = event.value
        self._debounce = self.set_timer(DEBOUNCE_S, lambda: self.search(query))

    @work(exclusive=True, group="search")
    async def search(self, query: str) -> None:
        if self.connection is None:
            return
        name = self.connection.name
        self.set_status(f"Searching {name}…", "busy")
        try:
            found = await self.client.search(name, query.strip(), SEARCH_LIMIT)
        except ApiError as exc:
            self.set_status(exc.detail, "error")
            return
        if query != self.query_one("#query", Input).value:
            return  # typed on meanwhile: the search for the newer text is on its way
        self.show_results(found)
        if found:
            noun = "ticket" if len(found) == 1 else "tickets"
            self.set_status(f"{len(found)} {noun}; Enter links the highlighted one.")
        elif query.strip():
            self.set_status(f"Nothing on {name} matches; type a whole key to link it directly.")
        else:
            self.set_status(f"No tickets on {name} yet.")

    def show_results(self, tickets: list[TicketView]) -> None:
        self.results = tickets
        table = self.query_one("#results", DataTable)
        table.clear()
        for ticket in tickets:
            summary = " ".join(ticket.summary.split())
            if len(summary) > SUMMARY_WIDTH:
                summary = summary[: SUMMARY_WIDTH - 1] + "…"
            table.add_row(
                Text(ticket.key, style="bold"),
                Text(ticket.state),
                Text(summary),
                key=ticket.key,
            )
        if tickets:
            table.move_cursor(row=0)

    def action_move(self, step: int) -> None:
        table = self.query_one("#results", DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))

    def highlighted_key(self) -> str | None:
        table = self.query_one("#results", DataTable)
        if not self.results or not 0 <= table.cursor_row < len(self.results):
            return None
        return self.results[table.cursor_row].key

    # -- linking --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("link", "move"):
            focused = self.focused
            if self.connection is None or focused is None:
                return False
            if focused.id not in ("query", "results"):
                return False  # Enter belongs to the buttons and the connection list
            return None if self.linking else True
        return True

    def action_link(self) -> None:
        """A whole key typed links that key; otherwise the highlighted result."""
        if self.connection is None or self.linking:
            return
        typed = self.query_one("#query", Input).value.strip()
        if self.focused is not self.query_one("#results") and looks_like_key(typed):
            key: str | None = typed
        else:
            key = self.highlighted_key()
        if key is None:
            self.set_status("No ticket to link: search for one or type its key.", "error")
            return
        # A search still pending for the typed text would overwrite the link's outcome.
        if self._debounce is not None:
            self._debounce.stop()
        self.workers.cancel_group(self, "search")
        self.link(self.connection.name, key)

    @on(Button.Pressed, "#link")
    def _link_pressed(self) -> None:
        self.action_link()

    @work(exclusive=True, group="link")
    async def link(self, connection: str, key: str) -> None:
        self.set_linking(True)
        self.set_status(f"Linking {key}…", "busy")
        try:
            link = await self.client.link_ticket(self.anomaly.id, connection, key)
        except ApiError as exc:
            self.set_linking(False)
            self.set_status(exc.detail, "error")
            return
        self.set_status(f"Linked {link.ticket_key}.")
        self.dismiss(link)

    def set_linking(self, linking: bool) -> None:
        self.linking = linking
        self.query_one("#link", Button).disabled = linking
        self.refresh_bindings()

    def set_status(self, text: str, kind: str = "") -> None:
        status = self.query_one("#status", Static)
        status.update(Text(text))
        status.set_class(kind == "error", "-error")
        status.set_class(kind == "busy", "-busy")

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)
