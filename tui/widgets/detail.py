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

from anomaly_desk.core.views import AnomalyDetail, CommentView, NoteCounts
from anomaly_desk.core.vocabulary import ARCHIVED, PLATFORM, HistoryKind
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
TICK_S = 1.0  # how often the pane looks whether one of its "12 s ago"s is out of date
FROM_TICKET = "⇠"  # marks what came from a ticket (two-way sync): a comment, a status change
TICKET_STYLE = "bold magenta"


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


def read_ago(value: str | None, now: datetime) -> str:
    """When a ticket's state was last read: ``read 12 s ago`` (to the second within a minute,
    as a poll is that often), ``read 3 min ago``, or ``read 2026-11-20 08:15:42 UTC`` when it
    is older than a week; ``not read yet`` without a time."""
    if not value:
        return "not read yet"
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return f"read {value}"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = (now - at).total_seconds()
    if -60 <= seconds < 60:
        return "read just now" if seconds < 1 else f"read {int(seconds)} s ago"
    relative = ago(value, now)
    return f"read {relative}" if relative else f"read {when(value)}"


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
    """``DQ-7  In Progress · read 12 s ago``: each ticket's state as the last poll (or refresh)
    read it, and how long ago that was, so its age is plain to see; under it the summary, the
    connection and how it was linked, and its notes."""
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
        line.append(f" · {read_ago(link.state_read_at, now)}", style="dim")
        parts.append(line)
        if link.summary:
            parts.append(Text(f"  {link.summary}", overflow="ellipsis", no_wrap=True))
        origin = f" · {link.origin}" if link.origin else ""
        parts.append(Text(f"  {link.connection}{origin}", style="dim"))
        parts.extend(note_lines(link.notes))
    return Group(*parts)


def ticket_keys(doc: AnomalyDetail) -> list[str]:
    """Every ticket key this anomaly has had (linked now, or named in its history: a ticket
    unlinked since still made what it made), longest first so ``DQ-12`` wins over ``DQ-1``."""
    keys = {link.ticket_key for link in doc.links if link.ticket_key}
    keys |= {item.ticket for item in doc.history if item.ticket}
    return sorted(keys, key=len, reverse=True)


def ticket_author(by: str | None, keys: list[str]) -> tuple[str, str] | None:
    """``(DQ-3, alice@example.com)`` from what a ticket's change is recorded as made by:
    ``from DQ-3 (alice@example.com)`` (its comment) or ``DQ-3 (accountId)`` / ``DQ-3`` (a
    done state); None when ``by`` names no ticket of ``keys`` (a person here, the platform)."""
    if not by:
        return None
    said = by.removeprefix("from ")
    for key in keys:
        if said == key:
            return key, ""
        if said.startswith(f"{key} (") and said.endswith(")"):
            return key, said[len(key) + 2 : -1]
    return None


def from_ticket(key: str, who: str = "") -> Text:
    """``⇠ DQ-3 alice@example.com``: made on ticket DQ-3, by who is named there. Plain text:
    a name a ticket system sent is never markup."""
    text = Text()
    text.append(f"{FROM_TICKET} ", style="magenta")
    text.append(key, style=TICKET_STYLE)
    if who:
        text.append(f" {who}")
    return text


def _comment_head(doc: AnomalyDetail, keys: list[str], comment: CommentView, now: datetime) -> Text:
    head = Text()  # no base style: the ticket and its person stand out from the time
    head.append(f"{when_ago(comment.at, now)} · ", style="dim")
    if comment.origin is None:
        head.append(comment.by or "", style="dim")
        return head
    link = next((link for link in doc.links if link.id == comment.origin), None)
    found = ticket_author(comment.by, [link.ticket_key] if link else keys)
    if found is not None:
        head.append_text(from_ticket(*found))
    else:  # its link is gone and its words are not ours: say where it came from, as recorded
        head.append_text(from_ticket(link.ticket_key if link else "a ticket", comment.by or ""))
    return head


def _comments(doc: AnomalyDetail, now: datetime) -> RenderableType:
    """Each comment under who made it; one that came from a ticket is marked ``⇠ DQ-3 …``."""
    if not doc.comments:
        return Text("none — m to comment", style="dim")
    keys = ticket_keys(doc)
    parts = []
    for comment in doc.comments:
        parts.append(_comment_head(doc, keys, comment, now))
        parts.append(Text(f"  {comment.text}"))
    return Group(*parts)


def _history(doc: AnomalyDetail) -> RenderableType:
    """One line per entry; what a ticket made reads ``comment  ⇠ DQ-3 alice@example.com`` or
    ``Active → Resolved  ⇠ DQ-3 done by bob.martin``."""
    keys = ticket_keys(doc)
    lines = []
    for item in doc.history:
        line = Text(f"{when(item.at)}  ", style="dim")
        if item.kind == HistoryKind.STATUS:
            line.append(f"{item.from_ or '?'} → {item.to or '?'}")
        elif item.kind == HistoryKind.RECEIVED:
            line.append(f"received as {item.status or '?'}")
        elif item.ticket:
            line.append(f"{item.kind} {item.ticket} ({item.connection or ''})")
        else:
            line.append(item.kind)
        ticket = ticket_author(item.by, keys)
        if ticket is not None:
            key, who = ticket
            line.append("  ")
            done = item.kind == HistoryKind.STATUS and item.to in ARCHIVED
            line.append_text(from_ticket(key, f"done by {who}" if done and who else who))
            if done and not who:
                line.append(" done")
        elif item.by:
            line.append(f"  by {item.by}", style="dim")
        lines.append(line)
    return Group(*lines) if lines else Text("—", style="dim")


def relative_times(doc: AnomalyDetail, now: datetime) -> tuple[str, ...]:
    """Every "… ago" ``render_detail`` draws for ``doc`` at ``now``: when this changes, the
    pane is out of date."""
    times = [ago(value, now) for value in (doc.created, doc.received_at, doc.updated_at)]
    times += [ago(comment.at, now) for comment in doc.comments]
    times += [read_ago(link.state_read_at, now) for link in doc.links]
    return tuple(times)


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
    if doc.cold:
        head.append(
            Text(
                "❄ in the cold archive (archived long ago); an action here, a change on the "
                "platform or on its ticket brings it back",
                style="bold cyan",
            )
        )
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
        self._times: tuple[str, ...] = ()  # the relative times drawn, to redraw when they age

    def compose(self) -> ComposeResult:
        yield Static(Text("No anomaly selected", style="dim"), id="detail-body")

    def on_mount(self) -> None:
        self.set_interval(TICK_S, self.refresh_times)

    def refresh_times(self) -> None:
        """Draw the shown anomaly again when one of its "12 s ago"s would now read otherwise
        (every second while a ticket's state was read within the minute, seldom after)."""
        if self.doc is not None and relative_times(self.doc, datetime.now(UTC)) != self._times:
            self._draw(self.doc)

    def show(self, doc: AnomalyDetail | None, note: str | None = None) -> None:
        self.doc = doc
        if doc is None:
            self._times = ()
            self.query_one("#detail-body", Static).update(
                Text(note or "No anomaly selected", style="dim")
            )
        else:
            self._draw(doc)

    def _draw(self, doc: AnomalyDetail) -> None:
        now = datetime.now(UTC)
        self._times = relative_times(doc, now)
        self.query_one("#detail-body", Static).update(render_detail(doc, now))
