"""The detail pane: every fact about the highlighted anomaly, its tickets, comments and history.

Everything the platform or a ticket system sent is shown as ``Text``, never parsed as markup: a
message like ``[@click=app.quit]x[/]`` is shown as written, not obeyed.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from anomaly_desk.tui.widgets.anomaly_rows import place
from anomaly_desk.tui.widgets.anomaly_table import STATUS_STYLES, weight_style

STATE_STYLES = {"new": "blue", "indeterminate": "yellow", "done": "green"}
ODD_MAX_CHARS = 2000  # one kept value; the pane scrolls, but a whole payload would drown the rest


def when(value: Any) -> str:
    """An ISO timestamp as ``2026-11-20 08:15:42 UTC``: absolute, so screens stay comparable."""
    text = str(value or "")
    if len(text) < 19:
        return text or "—"
    return f"{text[:10]} {text[11:19]} UTC"


def _or_dash(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _facts(doc: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold dim", no_wrap=True)
    grid.add_column(overflow="fold")
    tags = [
        t.get("name", "") if isinstance(t, dict) else str(t) for t in doc.get("global_tags") or ()
    ]
    # plain strings in a rich Table are parsed as markup: every value goes in as Text
    rows: list[tuple[str, RenderableType]] = [
        ("status", _status(doc.get("status"))),
        ("type", Text(str(doc.get("type") or "—"))),
        ("weight", Text(_or_dash(doc.get("weight")), style=weight_style(doc.get("weight")))),
        ("where", Text(place(doc))),
        ("fields", Text(", ".join(doc.get("fields") or ()) or "—")),
        ("message", Text(str(doc.get("message") or "—"))),
    ]
    if doc.get("description"):
        rows.append(("description", Text(str(doc["description"]))))
    rows += [
        ("records", Text(_or_dash(doc.get("anomalous_records_count")))),
        ("fingerprint", Text(_or_dash(doc.get("fingerprint")))),
        ("uuid", Text(str(doc.get("uuid") or "—"))),
        ("tags", Text(", ".join(tags) or "—")),
        ("detected", Text(when(doc.get("created")))),
        ("received", Text(when(doc.get("received_at")))),
        ("updated", Text(when(doc.get("updated_at")))),
    ]
    url = doc.get("url")
    rows.append(("link", Text(url, style=f"underline link {url}") if url else Text("—")))
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _status(value: Any) -> Text:
    """The status as the platform named it; one this version does not know is said to be so."""
    status = str(value)
    if status in STATUS_STYLES:
        return Text(status, style=STATUS_STYLES[status])
    text = Text(status, style="bold magenta")
    text.append("  (unknown; listed as open)", style="dim")
    return text


def compact_json(value: Any) -> str:
    """``value`` as one line of JSON (``"heavy"``, ``{"en":"x"}``), cut at ODD_MAX_CHARS."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # not JSON after all (e.g. an integer beyond 64 bits): say what it is
        text = repr(value)
    if len(text) > ODD_MAX_CHARS:
        text = f"{text[:ODD_MAX_CHARS]}… ({len(text) - ODD_MAX_CHARS:,} more characters)"
    return text


def _odd(doc: dict[str, Any]) -> RenderableType | None:
    """Values the platform sent that fit no field, kept as sent: ``field = JSON``."""
    odd = doc.get("odd")
    if not odd:
        return None
    if not isinstance(odd, dict):
        return Text(compact_json(odd), overflow="fold")
    lines = []
    for name, value in odd.items():
        line = Text(str(name), style="bold dim")
        line.append(" = ", style="dim")
        line.append(compact_json(value))
        line.overflow = "fold"
        lines.append(line)
    return Group(*lines)


def _checks(doc: dict[str, Any]) -> RenderableType:
    checks = doc.get("failed_checks") or []
    if not checks:
        return Text("none reported", style="dim")
    lines = []
    for check in checks:
        qc = check.get("quality_check") or check
        head = Text()
        check_id = check.get("check_id") or qc.get("id")
        if check_id is not None:
            head.append(f"#{check_id} ", style="bold")
        head.append(str(qc.get("rule_type") or "check"), style="magenta")
        fields = qc.get("fields") or []
        if fields:
            head.append(f" on {', '.join(fields)}", style="dim")
        lines.append(head)
        message = check.get("message") or qc.get("description")
        if message:
            lines.append(Text(f"  {message}"))
    return Group(*lines)


def _tickets(doc: dict[str, Any]) -> RenderableType:
    links = doc.get("links") or []
    if not links:
        return Text("no linked tickets — c create, l link", style="dim")
    parts: list[RenderableType] = []
    for link in links:
        line = Text()
        key = str(link.get("ticket_key") or "?")
        line.append(
            key, style=f"bold magenta link {link['url']}" if link.get("url") else "bold magenta"
        )
        state = str(link.get("state") or "state unknown")
        line.append(f"  {state}", style=STATE_STYLES.get(str(link.get("state_category") or ""), ""))
        line.append(f"  {link.get('connection')} · {link.get('origin')}", style="dim")
        parts.append(line)
        if link.get("summary"):
            parts.append(Text(f"  {link['summary']}", overflow="ellipsis", no_wrap=True))
        parts.append(Text(f"  state read {when(link.get('state_read_at'))}", style="dim"))
    return Group(*parts)


def _comments(doc: dict[str, Any]) -> RenderableType:
    comments = doc.get("comments") or []
    if not comments:
        return Text("none — m to comment", style="dim")
    parts = []
    for comment in comments:
        parts.append(Text(f"{when(comment.get('at'))} · {comment.get('by', '')}", style="dim"))
        parts.append(Text(f"  {comment.get('text', '')}"))
    return Group(*parts)


def _history(doc: dict[str, Any]) -> RenderableType:
    lines = []
    for item in doc.get("history") or []:
        line = Text(f"{when(item.get('at'))}  ", style="dim")
        kind = str(item.get("kind", ""))
        if kind == "status":
            line.append(f"{item.get('from', '?')} → {item.get('to', '?')}")
        elif kind == "received":
            line.append(f"received as {item.get('status', '?')}")
        elif item.get("ticket"):
            line.append(f"{kind} {item['ticket']} ({item.get('connection', '')})")
        else:
            line.append(kind)
        if item.get("by"):
            line.append(f"  by {item['by']}", style="dim")
        lines.append(line)
    return Group(*lines) if lines else Text("—", style="dim")


def render_detail(doc: dict[str, Any]) -> RenderableType:
    title = Text()
    title.append(f"Anomaly {doc.get('id')}", style="bold")
    title.append(f"  {doc.get('type') or ''} · {doc.get('status')}", style="dim")

    def section(name: str) -> Text:
        return Text(f"\n{name}", style="bold underline")

    odd = _odd(doc)
    kept: list[RenderableType] = []
    if odd is not None:
        note = Text("values the platform sent that fit no field", style="dim italic")
        kept = [section("Kept as sent"), note, odd]
    return Group(
        title,
        _facts(doc),
        *kept,
        section("Failed checks"),
        _checks(doc),
        section("Tickets"),
        _tickets(doc),
        section("Comments"),
        _comments(doc),
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
        self.doc: dict[str, Any] | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(Text("No anomaly selected", style="dim"), id="detail-body")

    def show(self, doc: dict[str, Any] | None, note: str | None = None) -> None:
        self.doc = doc
        body = self.query_one("#detail-body", Static)
        if doc is None:
            body.update(Text(note or "No anomaly selected", style="dim"))
        else:
            body.update(render_detail(doc))
