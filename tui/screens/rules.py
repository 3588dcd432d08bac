"""The rules: every ``[[rules]]`` entry with what it has done, and pause / resume.

A rule raises tickets by itself, so the operator must see at a glance which ones are at work,
which paused (and why: the operator, or repeated refusals by the ticketing system), and how
much each has done. ``p`` pauses or resumes the highlighted rule after a confirmation; the list
follows ``rule.changed`` events while it is open (its own event stream), ``r`` reads it again.

It fits an 80-column terminal: the State column says only ``active`` or ``paused``, the line
under the table tells the highlighted rule's why and the rest; when every column does not fit,
Throttled, Skipped and Last fired live in that line only.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import httpx
from rich.cells import cell_len
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from anomaly_desk.core.views import RuleView
from anomaly_desk.tui.client import ApiError, DeskClient
from anomaly_desk.tui.screens.choose_link import ConfirmScreen
from anomaly_desk.tui.screens.dialog import dialog_css
from anomaly_desk.tui.widgets.detail import when

COLUMNS = (
    "Rule",
    "Connection",
    "State",
    "Created",
    "Linked",
    "Throttled",
    "Skipped",
    "Failures",
    "Last fired",
)
COMPACT = (0, 1, 2, 3, 4, 7)  # the columns kept when all of them do not fit
DIALOG_WIDTH = 120
CHROME = 6  # the dialog's margin, border and padding, both sides
EMPTY = "No rules: add [[rules]] to the configuration to raise tickets automatically."
RECONNECT_S = 2.0


def state_text(rule: RuleView) -> Text:
    """``active`` in green, ``paused`` in red; who paused it and why is in the line below."""
    if not rule.paused:
        return Text("active", style="green")
    return Text("paused", style="bold red")


def why_paused(rule: RuleView) -> str:
    if rule.paused_reason:
        return rule.paused_reason
    return "by the operator" if rule.paused_by == "operator" else ""


def rule_line(rule: RuleView) -> Text:
    """The highlighted rule in full, under the table: its state and why, what it held back,
    when it last fired."""
    text = Text(rule.name, style="bold")
    if rule.paused:
        why = why_paused(rule)
        text.append(" · paused" + (f" {why}" if why else ""), style="red")
    else:
        text.append(" · active", style="green")
    fired = when(rule.last_fired_at) if rule.last_fired_at else "never"
    text.append(
        f" · throttled {rule.throttled:,} · skipped {rule.skipped:,}"
        f" · failures {rule.failures}/{rule.pause_after} · last fired {fired}"
    )
    return text


def rule_row(rule: RuleView) -> tuple[Text, ...]:
    """One line of the table; every value is text as sent, never markup."""
    return (
        Text(rule.name, style="bold"),
        Text(rule.connection),
        state_text(rule),
        Text(f"{rule.created:,}", justify="right"),
        Text(f"{rule.linked:,}", justify="right"),
        Text(f"{rule.throttled:,}", justify="right"),
        Text(f"{rule.skipped:,}", justify="right"),
        # refusals in a row, of the number that pauses it
        Text(
            f"{rule.failures}/{rule.pause_after}",
            justify="right",
            style="red" if rule.failures else "",
        ),
        Text(when(rule.last_fired_at) if rule.last_fired_at else "never", style="dim"),
    )


def table_width(rows: list[tuple[Text, ...]], columns: tuple[int, ...]) -> int:
    """The cells a table of ``columns`` takes: each as wide as its widest cell, padded by 1."""
    return sum(
        max([cell_len(COLUMNS[i]), *(cell_len(row[i].plain) for row in rows)]) + 2 for i in columns
    )


class RulesScreen(ModalScreen[None]):
    """Lists the rules; ``p`` pauses or resumes the highlighted one, ``r`` reloads."""

    DEFAULT_CSS = dialog_css(
        "RulesScreen",
        """
        RulesScreen > #dialog { width: 120; height: auto; margin: 0 1; }
        RulesScreen #why { height: auto; padding: 0 1; }
        RulesScreen #rules { height: auto; max-height: 70vh; margin-top: 1; }
        RulesScreen #status { color: $text-muted; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, client: DeskClient) -> None:
        super().__init__()
        self.client = client
        self.rules: dict[str, RuleView] = {}  # by name, in the receiver's order
        self.loads = 0  # answers shown so far (tests wait on it)
        self.events = 0  # rule.changed events applied
        self.columns: tuple[int, ...] = ()  # indexes into COLUMNS, as shown

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Rules"
            yield DataTable(id="rules", cursor_type="row", zebra_stripes=True)
            yield Static("", id="why")
            yield Static(Text("Loading…"), id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#rules", DataTable).focus()
        self.load()
        self.follow()

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#rules", DataTable)

    def gone(self) -> bool:
        return not self.app.is_running or not self.is_attached

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True, group="rules")
    async def load(self) -> None:
        try:
            rules = await self.client.rules()
        except ApiError as exc:
            if not self.gone():
                self.set_status(f"Cannot read the rules: {exc.detail}", error=True)
            return
        if not self.gone():
            self.rules = {rule.name: rule for rule in rules}
            self.loads += 1
            self.show()

    @work(exclusive=True, group="events")
    async def follow(self) -> None:
        """``rule.changed`` events while the screen is open; after a cut, read all again."""
        while not self.gone():
            try:
                async for _, data in self.client.events():
                    if self.gone():
                        return
                    if isinstance(data, RuleView):
                        self.events += 1
                        self.rules[data.name] = data
                        self.show()
            except (httpx.HTTPError, ApiError):
                pass
            await asyncio.sleep(RECONNECT_S)
            if not self.gone():
                self.load()

    def show(self) -> None:
        """The table as ``self.rules`` says, the cursor kept on the same rule."""
        table = self.table
        current = self.current
        rows = [rule_row(rule) for rule in self.rules.values()]
        room = min(DIALOG_WIDTH, self.app.size.width) - CHROME
        every = tuple(range(len(COLUMNS)))
        columns = every if table_width(rows, every) <= room else COMPACT
        if columns != self.columns:
            self.columns = columns
            table.clear(columns=True)
            table.add_columns(*(COLUMNS[i] for i in columns))
        else:
            table.clear()
        for rule, row in zip(self.rules.values(), rows, strict=True):
            table.add_row(*(row[i] for i in columns), key=rule.name)
        if current is not None and current.name in self.rules:
            table.move_cursor(row=list(self.rules).index(current.name))
        paused = sum(rule.paused for rule in self.rules.values())
        count = len(self.rules)
        self.query_one("#dialog").border_title = (
            f"Rules · {count} · {paused} paused" if count else "Rules"
        )
        self.set_status(EMPTY if not count else "p pauses or resumes the highlighted rule")
        self.show_why()

    def show_why(self) -> None:
        rule = self.current
        self.query_one("#why", Static).update(rule_line(rule) if rule is not None else "")

    @on(DataTable.RowHighlighted, "#rules")
    def _highlighted(self) -> None:
        self.show_why()

    def on_resize(self, event: events.Resize) -> None:
        """Another terminal width may fit every column, or no longer."""
        if self.rules:
            self.show()

    def set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(Text(text, style="red" if error else ""))

    @property
    def current(self) -> RuleView | None:
        table = self.table
        if not self.rules or table.row_count == 0:
            return None
        names = list(self.rules)
        row = table.cursor_row
        return self.rules[names[row]] if 0 <= row < len(names) else None

    def action_toggle_pause(self) -> None:
        rule = self.current
        if rule is None:
            return
        verb = "Resume" if rule.paused else "Pause"
        what = (
            "it raises tickets again for what it matches"
            if rule.paused
            else "it raises no tickets until resumed"
        )
        question = f"{verb} rule {rule.name!r} on {rule.connection}? ({what})"

        def answer(yes: bool | None) -> None:
            if yes:
                self.toggle(rule.name, not rule.paused)

        self.app.push_screen(ConfirmScreen(question, yes=verb), answer)

    @work(exclusive=False, group="toggle")
    async def toggle(self, name: str, pause: bool) -> None:
        try:
            rule = await self.client.pause_rule(name, pause)
        except ApiError as exc:
            if not self.gone():
                self.app.notify(
                    exc.detail,
                    title=f"Cannot {'pause' if pause else 'resume'} {name}",
                    severity="error",
                    markup=False,
                )
            return
        if self.gone():
            return
        self.rules[rule.name] = rule
        self.show()
        self.app.notify(f"Rule {rule.name} {'paused' if rule.paused else 'resumed'}", markup=False)
