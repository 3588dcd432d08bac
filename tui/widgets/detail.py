"""The detail pane: every fact about the highlighted anomaly, its tickets, comments and history.

Everything the platform or a ticket system sent is shown as ``Text``, never parsed as markup: a
message like ``[@click=app.quit]x[/]`` is shown as written, not obeyed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from anomaly_desk.core.views import AnomalyDetail, NoteCounts
from anomaly_desk.core.vocabulary import PLATFORM
from anomaly_desk.tui.widgets.anomaly_rows import place
from anomaly_desk.tui.widgets.anomaly_table import STATUS_STYLES, weight_style

STATE_STYLES = {"new": "blue", "indeterminate": "yellow", "done": "green"}
# what became of a ticket's notes, in this order; what waits for a person stands out
NOTE_STYLES = {
    "delivered": "green",
    "pending": "",
    "held": "bold yellow",
    "dead": "bold white on red",
    "cancelled": "dim",
}
ODD_MAX_CHARS = 2000  # one kept value; the pane scrolls, but a whole payload would drown the rest
RELATIVE_WITHIN_S = 7 * 86400  # older than a week, "12 days ago" says less than the date does
FRESH_EVERY_S = 30.0  # how often the pane redraws its "3 min ago"s


def when(value: str | None) -> str:
    """An ISO timestamp as ``2026-11-20 08:15:42 UTC``: absolute, so screens stay comparable."""
    text = value or ""
    if len(text) < 19:
        return text or "—"
    return f"{text[:10]} {text[11:19]} UTC"


def ago(value: str | None, now: datetime) -> str:
    """How long before ``now`` an ISO timestamp was: ``just now``, ``3 min ago``, ``5 h ago``,
    ``2 days ago``; "" when it is older than a week, in the future or not a timestamp."""
    try:
        at = datetime.fromisoformat(value or "")
    except ValueError:
        return ""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # the receiver's times are UTC
    seconds = (now - at).total_seconds()
    if seconds < -60 or seconds > RELATIVE_WITHIN_S:
        return ""  # a clock ahead of ours by more than a minute: no "in 3 min" guesses
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return "1 day ago" if days == 1 else f"{days} days ago"


def when_ago(value: str | None, now: datetime) -> str:
    """``2026-11-20 08:15:42 UTC (3 min ago)``: the absolute time, and the relative one when
    it is recent."""
    relative = ago(value, now)
    return f"{when(value)} ({relative})" if relative else when(value)


def _or_dash(value: object) -> str:
    return "—" if value is None or value == "" else str(value)


def _facts(doc: AnomalyDetail, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold dim", no_wrap=True)
    grid.add_column(overflow="fold")
    # plain strings in a rich Table are parsed as markup: every value goes in as Text
    rows: list[tuple[str, RenderableType]] = [
        ("status", _status(doc.status)),
        ("type", Text(doc.type or "—")),
        ("weight", Text(_or_dash(doc.weight), style=weight_style(doc.weight))),
        ("where", Text(place(doc.summary()))),
        ("fields", Text(", ".join(doc.fields) or "—")),
        ("message", Text(doc.message or "—")),
    ]
    if doc.description:
        rows.append(("description", Text(doc.description)))
    rows += [
        ("records", Text(_or_dash(doc.anomalous_records_count))),
        ("fingerprint", Text(_or_dash(doc.fingerprint))),
        ("uuid", Text(doc.uuid or "—")),
        ("tags", Text(", ".join(doc.global_tags) or "—")),
        ("detected", Text(when_ago(doc.created, now))),
        ("received", Text(when_ago(doc.received_at, now))),
        ("updated", Text(when_ago(doc.updated_at, now))),
    ]
    platform = platform_state(doc.platform_notes)
    if platform is not None:
        rows.append(("platform", platform))
    url = doc.url
    # a Style, not a style string: a URL with a space or brackets in it is not style syntax
    rows.append(("link", Text(url, style=Style(underline=True, link=url)) if url else Text("—")))
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _status(status: str) -> Text:
    """The status as the platform named it; one this version does not know is said to be so."""
    if status in STATUS_STYLES:
        return Text(status, style=STATUS_STYLES[status])
    text = Text(status, style="bold magenta")
    text.append("  (unknown; listed as open)", style="dim")
    return text


def compact_json(value: object) -> str:
    """``value`` as one line of JSON (``"heavy"``, ``{"en":"x"}``), cut at ODD_MAX_CHARS."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # not JSON after all (e.g. an integer beyond 64 bits): say what it is
        text = repr(value)
    if len(text) > ODD_MAX_CHARS:
        text = f"{text[:ODD_MAX_CHARS]}… ({len(text) - ODD_MAX_CHARS:,} more characters)"
    return text


def _odd(doc: AnomalyDetail) -> RenderableType | None:
    """Values the platform sent that fit no field, kept as sent: ``field = JSON``."""
    if not doc.odd:
        return None
    lines = []
    for name, value in doc.odd.items():
        line = Text(name, style="bold dim")
        line.append(" = ", style="dim")
        line.append(compact_json(value))
        line.overflow = "fold"
        lines.append(line)
    return Group(*lines)


def _checks(doc: AnomalyDetail) -> RenderableType:
    if not doc.failed_checks:
        return Text("none reported", style="dim")
    lines = []
    for check in doc.failed_checks:
        head = Text()
        if check.check_id is not None:
            head.append(f"#{check.check_id} ", style="bold")
        head.append(check.rule_type or "check", style="magenta")
        if check.fields:
            head.append(f" on {', '.join(check.fields)}", style="dim")
        lines.append(head)
        if check.message:
            lines.append(Text(f"  {check.message}"))
    return Group(*lines)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def note_lines(notes: NoteCounts | None) -> list[Text]:
    """``notes: 3 delivered · 1 pending · 1 held · 1 dead`` (the counts that are not 0), and
    with held notes what holds them: a dead note ahead of them on that ticket, until retried."""
    if notes is None:
        return []  # an answer without the counts: say nothing rather than "none"
    parts = [(name, getattr(notes, name)) for name in NOTE_STYLES if getattr(notes, name)]
    if not parts:
        return []
    line = Text("  notes: ", style="dim")
    for i, (name, count) in enumerate(parts):
        if i:
            line.append(" · ", style="dim")
        style = NOTE_STYLES[name]
        line.append(f" {count} {name} " if name == "dead" else f"{count} {name}", style=style)
    lines = [line]
    if notes.held:
        dead = "the dead note" if notes.dead == 1 else "the dead notes"
        it = "it" if notes.dead == 1 else "them"
        lines.append(Text(f"  ⚠ held: waiting behind {dead}; r retries {it}", style="yellow"))
    return lines


def platform_state(notes: NoteCounts | None) -> Text | None:
    """What became of this anomaly's changes on the platform (write-back): ``in sync``,
    ``pending (2)``, or ``dead (1) · held (1) — r retries`` in red. None without platform
    jobs: write-back is off, or nothing was sent yet (the answer does not tell which)."""
    if notes is None:
        return None
    text = Text()  # no base style: the delivered count stays dim
    if notes.dead or notes.held:
        counts = [f"{name} ({n})" for name, n in (("dead", notes.dead), ("held", notes.held)) if n]
        text.append(" · ".join(counts), style="bold red")
        text.append(" — r retries", style="red")
    elif notes.pending:
        text.append(f"pending ({notes.pending})", style="yellow")
    else:
        text.append("in sync", style="green")
    if notes.delivered:
        text.append(f"  {notes.delivered} delivered", style="dim")
    return text


def stuck_line(doc: AnomalyDetail) -> Text | None:
    """Under the title, when notes wait for a person (dead, or held behind a dead one): ``⚠ 2
    notes stuck — DQ-7: 1 dead, 1 held · r retries`` (the Tickets section has every count;
    the platform's write-back is named ``platform``)."""
    stuck = [
        (link.ticket_key, link.notes)
        for link in doc.links
        if link.notes is not None and (link.notes.dead or link.notes.held)
    ]
    notes = doc.platform_notes
    if notes is not None and (notes.dead or notes.held):
        stuck.append((PLATFORM, notes))
    if not stuck:
        return None
    total = sum(notes.dead + notes.held for _, notes in stuck)
    line = Text(f"⚠ {_plural(total, 'note', 'notes')} stuck", style="bold yellow")
    for i, (key, notes) in enumerate(stuck):
        line.append(" — " if i == 0 else "; ", style="dim")
        line.append(key, style="bold magenta")
        counts = [f"{n} {name}" for name, n in (("dead", notes.dead), ("held", notes.held)) if n]
        line.append(f": {', '.join(counts)}")
    line.append(" · r retries", style="dim")
    return line


def _tickets(doc: AnomalyDetail, now: datetime) -> RenderableType:
    if not doc.links:
        return Text("no linked tickets — c create, l link", style="dim")
    parts: list[RenderableType] = []
    for link in doc.links:
        line = Text()
        line.append(
            link.ticket_key or "?",
            style=Style(bold=True, color="magenta", link=link.url or None),
        )
        state = link.state or "state unknown"
        line.append(f"  {state}", style=STATE_STYLES.get(link.state_category or "", ""))
        line.append(f"  {link.connection} · {link.origin}", style="dim")
        parts.append(line)
        if link.summary:
            parts.append(Text(f"  {link.summary}", overflow="ellipsis", no_wrap=True))
        parts.append(Text(f"  state read {when_ago(link.state_read_at, now)}", style="dim"))
        parts.extend(note_lines(link.notes))
    return Group(*parts)


def _comments(doc: AnomalyDetail, now: datetime) -> RenderableType:
    if not doc.comments:
        return Text("none — m to comment", style="dim")
    parts = []
    for comment in doc.comments:
        parts.append(Text(f"{when_ago(comment.at, now)} · {comment.by or ''}", style="dim"))
        parts.append(Text(f"  {comment.text}"))
    return Group(*parts)


def _history(doc: AnomalyDetail) -> RenderableType:
    lines = []
    for item in doc.history:
        line = Text(f"{when(item.at)}  ", style="dim")
        if item.kind == "status":
            line.append(f"{item.from_ or '?'} → {item.to or '?'}")
        elif item.kind == "received":
            line.append(f"received as {item.status or '?'}")
        elif item.ticket:
            line.append(f"{item.kind} {item.ticket} ({item.connection or ''})")
        else:
            line.append(item.kind)
        if item.by:
            line.append(f"  by {item.by}", style="dim")
        lines.append(line)
    return Group(*lines) if lines else Text("—", style="dim")


def render_detail(doc: AnomalyDetail, now: datetime | None = None) -> RenderableType:
    """The whole pane; times within a week also say how long ago they were, from ``now``."""
    now = now or datetime.now(UTC)
    title = Text()
    title.append(f"Anomaly {doc.id}", style="bold")
    title.append(f"  {doc.type or ''} · {doc.status}", style="dim")

    def section(name: str) -> Text:
        return Text(f"\n{name}", style="bold underline")

    alert = stuck_line(doc)
    head: list[RenderableType] = [title] if alert is None else [title, alert]
    odd = _odd(doc)
    kept: list[RenderableType] = []
    if odd is not None:
        note = Text("values the platform sent that fit no field", style="dim italic")
        kept = [section("Kept as sent"), note, odd]
    return Group(
        *head,
        _facts(doc, now),
        *kept,
        section("Failed checks"),
        _checks(doc),
        section("Tickets"),
        _tickets(doc, now),
        section("Comments"),
        _comments(doc, now),
        section("History"),
        _history(doc),
    )


class DetailPane(VerticalScroll):
    """Shows one anomaly document as fetched from ``GET /api/anomalies/{id}``."""

    DEFAULT_CSS = """
    DetailPane { padding: 0 1; }
    DetailPane > #detail-body { width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.doc: AnomalyDetail | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("No anomaly selected", style="dim"), id="detail-body")

    def on_mount(self) -> None:
        self.set_interval(FRESH_EVERY_S, self.refresh_times)

    def refresh_times(self) -> None:
        """Draw the shown anomaly again, so its "3 min ago"s stay true."""
        if self.doc is not None:
            self.query_one("#detail-body", Static).update(render_detail(self.doc))

    def show(self, doc: AnomalyDetail | None, note: str | None = None) -> None:
        self.doc = doc
        body = self.query_one("#detail-body", Static)
        if doc is None:
            body.update(Text(note or "No anomaly selected", style="dim"))
        else:
            body.update(render_detail(doc))
