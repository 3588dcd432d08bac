"""The main screen's commands, written once.

Its key bindings (so the footer), the command palette and the key map (``?``) are all made from
this table: a key added here shows up in all three, with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

# the key map's sections, in this order; bindings of other widgets and of the app follow
GROUPS = ("Notes", "Tickets", "View", "App")

# Textual's key names that read badly in a sentence
SPOKEN_KEYS = {"slash": "/", "question_mark": "?"}


@dataclass(frozen=True)
class Command:
    """One thing the user can do on the main screen."""

    action: str
    key: str | None  # Textual's key name; None: the command palette only
    label: str  # the footer's word
    title: str  # the command palette's line
    help: str  # what it does: palette help, footer tooltip, key map
    group: str
    show: bool = True  # in the footer
    palette: bool = True

    def binding(self) -> Binding:
        assert self.key is not None
        return Binding(self.key, self.action, self.label, show=self.show, tooltip=self.help)

    @property
    def palette_help(self) -> str:
        return f"{self.help} ({SPOKEN_KEYS.get(self.key, self.key)})" if self.key else self.help


def _filter(key: str, name: str, label: str, title: str, help_text: str) -> Command:
    return Command(f"filter('{name}')", key, label, title, help_text, "View", show=False)


# in footer order (the footer shows the keys as bound)
MAIN_COMMANDS: tuple[Command, ...] = (
    Command("search", "slash", "Search", "Search", "Focus the search box", "View"),
    Command(
        "acknowledge",
        "a",
        "Ack",
        "Acknowledge anomaly",
        "Mark the highlighted anomaly Acknowledged; linked tickets get a note",
        "Notes",
    ),
    Command(
        "create",
        "c",
        "Create",
        "Create ticket",
        "Create a Jira or ServiceNow ticket for it",
        "Tickets",
    ),
    Command(
        "link",
        "l",
        "Link",
        "Link existing ticket",
        "Search a connection and link a ticket",
        "Tickets",
    ),
    Command(
        "unlink",
        "u",
        "Unlink",
        "Unlink ticket",
        "Forget a link; the ticket itself is not changed",
        "Tickets",
    ),
    Command(
        "archive",
        "x",
        "Archive",
        "Archive anomaly",
        "Resolved / Duplicate / Invalid / Discarded; linked tickets get a note",
        "Notes",
    ),
    Command(
        "comment",
        "m",
        "Comment",
        "Comment",
        "Add a comment; linked tickets get it as a note",
        "Notes",
    ),
    Command(
        "retry",
        "r",
        "Retry",
        "Retry dead sync job",
        "Retry the highlighted anomaly's dead notes (the held ones follow), or the sync "
        "log's selected one",
        "Tickets",
    ),
    Command(
        "open",
        "o",
        "Open",
        "Open in browser",
        "Open the linked ticket, or the anomaly itself",
        "Tickets",
    ),
    Command(
        "open_platform",
        "O",
        "Platform",
        "Open anomaly in the platform",
        "Open the highlighted anomaly itself in the platform (its link)",
        "Tickets",
        show=False,
    ),
    Command(
        "yank",
        "y",
        "Copy",
        "Copy ticket key or URL",
        "Copy the linked ticket's key (or pick a key or URL) to the clipboard",
        "Tickets",
        show=False,
    ),
    Command(
        "sort", "s", "Sort", "Change sort order", "Newest first, oldest first, by weight", "View"
    ),
    _filter("1", "open", "Open", "Show open", "Active and Acknowledged anomalies"),
    _filter("2", "active", "Active", "Show active", "Active anomalies only"),
    _filter("3", "acknowledged", "Ack'd", "Show acknowledged", "Acknowledged anomalies only"),
    _filter(
        "4", "archived", "Archived", "Show archived", "Resolved, Duplicate, Invalid, Discarded"
    ),
    _filter("5", "all", "All", "Show all", "Every anomaly"),
    Command(
        "toggle_archive",
        "6",
        "Cold",
        "Include the cold archive",
        "List and search the cold archive too (anomalies archived long ago): slower; its rows "
        "are marked ❄, and acting on one brings it back",
        "View",
        show=False,
    ),
    Command(
        "reload",
        "ctrl+r",
        "Reload",
        "Reload",
        "Fetch the list, counts and sync log again",
        "View",
        show=False,
    ),
    Command(
        "focus_table",
        "escape",
        "Table",
        "Focus anomaly table",
        "Back to the anomaly table",
        "View",
        show=False,
        palette=False,
    ),
    Command("app.quit", "q", "Quit", "Quit", "Leave the dashboard", "App", palette=False),
    Command("keys", "question_mark", "Help", "Show keys", "Every key, grouped by purpose", "App"),
    # after Quit: where the footer is too narrow, this label is the one cut, not "Quit"
    Command(
        "quarantine",
        "Q",
        "Quarantine",
        "Show quarantine",
        "Delivered items kept aside: no usable anomaly id",
        "View",
    ),
    Command(
        "rules",
        "R",
        "Rules",
        "Show rules",
        "The rules that raise tickets by themselves: what each did; pause or resume one",
        "Tickets",
        show=False,
    ),
    Command(
        "zoom",
        "z",
        "Zoom",
        "Maximise pane",
        "The focused pane fills the screen; again or escape restores",
        "View",
    ),
    Command(
        "toggle_detail",
        "d",
        "Detail",
        "Show or hide detail",
        "The detail pane, e.g. in a small terminal",
        "View",
    ),
    Command(
        "demo_info",
        "i",
        "Demo info",
        "Demo info",
        "Sandbox credentials, webhook secret, logs, the replay command (demo only)",
        "App",
        palette=False,  # listed by the app only when the demo started the dashboard
    ),
    Command(
        "import_platform",
        "I",
        "Import",
        "Import from platform",
        "Fetch the platform's anomalies into the desk: the open ones, archived too, since a day "
        "or of one datastore; shows the progress",
        "App",
        show=False,
    ),
    Command(
        "check_connections",
        None,
        "Check",
        "Check connections",
        "Test every connection now",
        "App",
    ),
    Command(
        "focus_log",
        None,
        "Log",
        "Focus sync log",
        "Move to the sync log to pick a dead job (tab)",
        "View",
    ),
)


def bindings(commands: tuple[Command, ...]) -> list[BindingType]:
    return [command.binding() for command in commands if command.key is not None]


def palette(commands: tuple[Command, ...]) -> list[tuple[str, str, str]]:
    """(action, title, help) in the order the command palette lists them."""
    return [(c.action, c.title, c.palette_help) for c in commands if c.palette]


def groups(commands: tuple[Command, ...]) -> dict[str, str]:
    """Action → the key map section it is listed in."""
    return {command.action: command.group for command in commands}
