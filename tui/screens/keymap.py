"""The key map (``?``): every key of the dashboard, grouped by purpose, and the connections
(health, and what each syncs which way).

Made from the live bindings, not from a copy of them: a key bound anywhere shows up here as the
footer shows it, and one that is removed disappears.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.actions import parse
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Static

from anomaly_desk.core.views import ConnectionView
from anomaly_desk.tui.screens.dialog import dialog_css
from anomaly_desk.tui.widgets.connection_list import connection_prompt

KEY_WIDTH = 12
COMPACT_KEY_WIDTH = 10  # "^c super+c"
NAME_WIDTH = 18
COMPACT_BELOW = 100  # columns of the dialog under which name and help share one column


@dataclass
class KeyRow:
    """One action and every key that runs it."""

    keys: list[str]
    name: str
    help: str = ""


@dataclass
class Section:
    title: str
    rows: list[KeyRow] = field(default_factory=list)


def key_sections(
    screen: Screen[Any],
    group_of: Mapping[str, str],
    widgets: Sequence[tuple[str, Widget]],
    order: Sequence[str],
) -> list[Section]:
    """The screen's keys (sectioned by ``group_of``, by action), each widget's own keys under
    its name, the app's under "App"; sections in ``order``, any other after them.

    ``_bindings`` and not ``BINDINGS``: the merged map also holds what the classes inherit."""
    app = screen.app
    entries: list[tuple[str, Binding]] = [
        (group_of.get(binding.action, "App"), binding)
        for _, binding in screen._bindings
        if _available(screen, binding)
    ]
    for name, widget in widgets:
        entries += [(name, binding) for binding in Binding.make_bindings(type(widget).BINDINGS)]
    entries += [("App", binding) for _, binding in app._bindings]
    return _sections(app, entries, order)


def _available(screen: Screen[Any], binding: Binding) -> bool:
    """False for a key the screen switched off (``check_action``), e.g. one for the demo only."""
    namespace, name, parameters = parse(binding.action)
    return bool(namespace) or screen.check_action(name, parameters) is not False


def _sections(
    app: App[Any], entries: Iterable[tuple[str, Binding]], order: Sequence[str]
) -> list[Section]:
    sections: dict[str, Section] = {title: Section(title) for title in order}
    rows: dict[tuple[str, str, str], KeyRow] = {}
    for title, binding in entries:
        if not binding.description or binding.system:
            continue
        key = app.get_key_display(binding)
        row = rows.get((title, binding.action, binding.description))
        if row is None:
            row = KeyRow([], binding.description, binding.tooltip)
            rows[(title, binding.action, binding.description)] = row
            sections.setdefault(title, Section(title)).rows.append(row)
        if key not in row.keys:
            row.keys.append(key)
    return [section for section in sections.values() if section.rows]


def render_section(section: Section, compact: bool = False) -> Group:
    """A title over three columns: keys, name, what it does (wrapped in its own column).
    ``compact`` (a narrow terminal): the name and what it does share the second column, so the
    help is not squeezed into a third of the width."""
    grid = Table.grid(padding=(0, 2))
    width = COMPACT_KEY_WIDTH if compact else KEY_WIDTH  # fixed: sections line up
    grid.add_column(style="bold", no_wrap=True, width=width)
    if compact:
        grid.add_column(overflow="fold")
        for row in section.rows:  # Text, not str: a plain string in a Table is parsed as markup
            what = Text(f"{row.name}: " if row.help else row.name)
            what.append(row.help, style="dim")
            grid.add_row(Text(" ".join(row.keys)), what)
        return Group(Text(section.title, style="bold underline"), grid)
    grid.add_column(no_wrap=True, width=NAME_WIDTH)
    grid.add_column(style="dim", overflow="fold")
    for row in section.rows:
        grid.add_row(Text(" ".join(row.keys)), Text(row.name), Text(row.help))
    return Group(Text(section.title, style="bold underline"), grid)


def render_connections(connections: Sequence[ConnectionView]) -> Group:
    """Each connection as the ticket dialogs' picker shows it: provider, health, and what goes
    which way (``status ⇄ · comments → · … · polls 60 s``)."""
    lines: list[Text] = [Text("Connections", style="bold underline")]
    lines += [connection_prompt(connection) for connection in connections]
    if not connections:
        lines.append(Text("none configured", style="dim"))
    else:
        lines.append(Text("→ to the ticket · ← from it · ⇄ both ways · – off", style="dim"))
    return Group(*lines)


class KeyMapScreen(ModalScreen[None]):
    """Read-only; escape, q or ? closes it."""

    DEFAULT_CSS = dialog_css(
        "KeyMapScreen",
        """
        KeyMapScreen > #dialog { width: 110; height: auto; max-height: 90%; }
        KeyMapScreen .section { margin: 1 1 0 1; }
        KeyMapScreen #hint { color: $text-muted; padding: 1 1 0 1; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def __init__(
        self, sections: list[Section], connections: Sequence[ConnectionView] | None = None
    ) -> None:
        super().__init__()
        self.sections = sections
        self.connections = connections  # None: not known yet (not listed)
        self.compact: bool | None = None  # how the sections are drawn (None: not yet)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog") as dialog:
            dialog.border_title = "Keys"
            dialog.can_focus = True
            for _ in self.sections:
                yield Static(classes="section")
            if self.connections is not None:
                yield Static(render_connections(self.connections), classes="section")
            yield Static("esc, q or ? closes · ctrl+p finds any command by name", id="hint")

    def on_mount(self) -> None:
        self._draw(self.app.size.width)
        self.query_one("#dialog").focus()

    def on_resize(self) -> None:
        self._draw(self.size.width)

    def _draw(self, width: int) -> None:
        compact = width < COMPACT_BELOW
        if compact == self.compact:
            return
        self.compact = compact
        statics = list(self.query(".section").results(Static))[: len(self.sections)]
        for section, static in zip(self.sections, statics, strict=True):
            static.update(render_section(section, compact))

    def action_close(self) -> None:
        self.dismiss(None)
