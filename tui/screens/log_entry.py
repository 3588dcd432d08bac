"""One sync-log line in full: the whole message, the note, and every attempt of its job.

Opened with Enter on the sync log; Escape closes it. Provider and user text is ``Text``, never
markup, like everywhere else on the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterator

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from anomaly_desk.core.views import SyncJobView, SyncLogEntryView
from anomaly_desk.core.vocabulary import PLATFORM, JobKind

OUTCOME_STYLES = {
    "done": "green",
    "retry": "yellow",
    "dead": "bold red",
    "cancelled": "dim",
}


PLATFORM_MARK = "⇄"  # a job on the platform's own queue, not a ticket's
PLATFORM_STYLE = "bold cyan"


def is_platform(job: SyncLogEntryView | SyncJobView) -> bool:
    """Whether ``job`` is on the anomaly's platform queue (write-back or enrichment), not a
    ticket's: its ``ticket_key`` is then the anomaly's id, which says nothing under "ticket"."""
    return job.link_id == PLATFORM


def target(job: SyncLogEntryView | SyncJobView) -> Text:
    """Where a job goes: the ticket's key, or ``⇄ platform`` for the platform's queue."""
    if is_platform(job):
        return Text(f"{PLATFORM_MARK} platform", style=PLATFORM_STYLE)
    return Text(job.ticket_key, style="magenta")


def target_word(job: SyncLogEntryView | SyncJobView) -> str:
    """The same in a sentence: ``DQ-7``, or ``the platform``."""
    return "the platform" if is_platform(job) else job.ticket_key


def platform_purpose(job: SyncLogEntryView | SyncJobView) -> str:
    """What a platform job is for, in words."""
    if job.kind == JobKind.ENRICH:
        return "enrichment: the anomaly completed from the platform (a webhook sent it thin)"
    return "write-back: this desk's acknowledge, archive or comment, made on the platform too"


def when(value: str | None) -> str:
    """An ISO timestamp as ``2026-11-20 08:15:42.123 UTC`` (attempts can be milliseconds apart)."""
    text = value or ""
    if len(text) < 19:
        return text or "—"
    fraction = text[19:23] if len(text) >= 23 and text[19] == "." else ""
    return f"{text[:10]} {text[11:19]}{fraction} UTC"


def attempt_line(entry: SyncLogEntryView, current: bool) -> Text:
    """One attempt of the job: its number, time, outcome and duration (the message goes below)."""
    line = Text("› " if current else "  ", style="bold" if current else "")
    line.append(f"try {entry.attempt:<3}", style="bold" if current else "")
    line.append(f"{when(entry.at)}  ")
    line.append(f"{entry.outcome:<9}", style=OUTCOME_STYLES.get(entry.outcome, ""))
    line.append(f"{entry.duration_ms:>7.0f} ms")
    return line


class LogEntryScreen(ModalScreen[None]):
    """A sync-log entry with all its facts; Escape closes."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    DEFAULT_CSS = """
    LogEntryScreen {
        align: center middle;
        background: $background 60%;
    }
    LogEntryScreen > #dialog {
        width: 110;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        margin: 0 2;
        border: thick $primary 80%;
        border-title-align: left;
        background: $surface;
        padding: 0 1;
    }
    LogEntryScreen #facts {
        grid-size: 2;
        grid-columns: 10 1fr;
        grid-rows: auto;
        grid-gutter: 0 1;
        height: auto;
    }
    LogEntryScreen .fact-name { text-style: bold; color: $text-muted; }
    LogEntryScreen #attempts-title { text-style: bold; margin-top: 1; }
    LogEntryScreen #attempts { height: auto; }
    LogEntryScreen .attempt-message { padding-left: 4; color: $text-muted; }
    LogEntryScreen .attempt-requeued { color: $text-warning; }
    LogEntryScreen #hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(
        self,
        entry: SyncLogEntryView,
        attempts: list[SyncLogEntryView],
        job: SyncJobView | None = None,
        job_state: str | None = None,
    ) -> None:
        super().__init__()
        self.entry = entry
        self.attempts = sorted(attempts or [entry], key=lambda e: e.id)
        self.job = job
        self.job_state = job.state if job is not None else job_state

    def facts(self) -> list[tuple[str, Text]]:
        """(label, value) of each line of the dialog's top part."""
        entry = self.entry
        job = Text(f"{entry.job_id}")
        state = self.job_state
        if state and state != "?":
            job.append(f" · now {state}", style=OUTCOME_STYLES.get(state, ""))
        if self.job is not None:
            job.append(f" · {self.job.attempts} attempt(s) since it was (re)queued")
        if is_platform(entry):
            where = ("platform", self.platform_fact())
        else:
            where = (
                "ticket",
                Text.assemble((entry.ticket_key, "magenta"), f"  ({entry.connection})"),
            )
        return [
            ("time", Text(when(entry.at))),
            where,
            ("anomaly", Text(str(entry.anomaly_id))),
            ("kind", Text(entry.kind)),
            ("attempt", Text(f"try {entry.attempt}")),
            ("outcome", Text(entry.outcome, style=OUTCOME_STYLES.get(entry.outcome, ""))),
            ("duration", Text(f"{entry.duration_ms:.1f} ms")),
            ("job", job),
            ("message", Text(entry.message or "—")),
            self.note_fact(),
        ]

    def note_fact(self) -> tuple[str, Text]:
        """The note a ticket got; on the platform, the change made there."""
        entry = self.entry
        if not is_platform(entry):
            return ("note", Text(entry.text or "—"))
        if entry.kind == JobKind.STATUS and entry.text:
            return ("change", Text(f"status → {entry.text}"))
        if entry.kind == JobKind.COMMENT and entry.text:
            return ("change", Text.assemble("comment: ", entry.text))
        return ("change", Text(entry.text or "—"))

    def platform_fact(self) -> Text:
        """``⇄ anomaly 10260 on the platform`` and, below, what the job is for."""
        entry = self.entry
        text = Text()  # no base style: each part keeps its own
        text.append(f"{PLATFORM_MARK} ", style=PLATFORM_STYLE)
        text.append(f"anomaly {entry.anomaly_id} on the platform", style="bold")
        text.append(f"\n{platform_purpose(entry)}", style="dim")
        return text

    def dialog_title(self) -> str:
        entry = self.entry
        if not is_platform(entry):
            return f"Sync log entry {entry.id}"
        what = "enrichment" if entry.kind == JobKind.ENRICH else "write-back"
        return f"Sync log entry {entry.id} · platform {what}"

    def attempt_widgets(self) -> Iterator[Static]:
        """Each attempt of the job, oldest first, with its whole message indented below. Only a
        person starts a dead job again (and the receiver then counts from 1 again): say so."""
        previous: SyncLogEntryView | None = None
        for entry in self.attempts:
            if previous is not None and previous.outcome == "dead":
                yield Static("  ↻ retried by hand", classes="attempt-requeued", markup=False)
            yield Static(attempt_line(entry, entry.id == self.entry.id), classes="attempt")
            if entry.message:
                yield Static(Text(entry.message), classes="attempt-message")
            previous = entry

    def compose(self) -> ComposeResult:
        entry = self.entry
        with VerticalScroll(id="dialog") as dialog:
            dialog.border_title = self.dialog_title()
            with Grid(id="facts"):
                for label, value in self.facts():
                    yield Static(label, classes="fact-name", markup=False)
                    yield Static(value, id=f"fact-{label}")
            yield Static(
                f"Attempts of job {entry.job_id} in the log", id="attempts-title", markup=False
            )
            with Vertical(id="attempts"):
                yield from self.attempt_widgets()
            yield Static("esc close · ↑↓ scroll", id="hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#dialog").focus()
