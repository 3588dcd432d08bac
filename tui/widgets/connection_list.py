"""Choosing a connection: each with its provider, its last health check and what it syncs
each way (two-way sync)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from anomaly_desk.core.views import ConnectionHealth, ConnectionView, TwoWayView

PROVIDER_NAMES = {"jira": "Jira Cloud", "servicenow": "ServiceNow"}
# a direction as an arrow, from the desk's side: to the ticket, from it, both, neither
ARROWS = {"to_ticket": "→", "from_ticket": "←", "both": "⇄", "off": "–"}
TAKES_BACK = ("from_ticket", "both")
SENDS = ("to_ticket", "both")


def health_message(name: str, message: str) -> str:
    """A connection check's message without the connection's name in front. The receiver no
    longer puts it there; an older one's failures read ``jira: Service Unavailable (HTTP 503)``,
    and every place that shows one already says which connection it is about."""
    prefix = f"{name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def health_line(name: str, message: str) -> str:
    """``jira: Service Unavailable (HTTP 503)``: the name once, whatever the message holds."""
    return f"{name}: {health_message(name, message)}"


def connection_prompt(connection: ConnectionView) -> Text:
    """``jira  Jira Cloud · DQ / Task  ✓ authenticated as …`` for the connection chooser, and
    under it what the connection syncs which way (``sync_lines``)."""
    kind = connection.provider
    text = Text()  # no base style: only the name is bold
    text.append(connection.name, style="bold")
    text.append(f"  {PROVIDER_NAMES.get(kind, kind)}")
    if kind == "jira" and connection.project:
        text.append(f" · {connection.project} / {connection.issue_type or 'Task'}")
    health = connection.health
    if health is None:
        text.append("  · not checked yet", style="dim")
    elif health.ok:
        text.append(f"  ✓ {health.message or 'ok'}", style="green")
    else:
        text.append(
            f"  ✗ {health_message(connection.name, health.message) or 'failing'}", style="red"
        )
    if connection.sync is not None:  # an older receiver does not say
        for line in sync_lines(connection.sync):
            text.append(f"\n  {line}")
    return text


def seconds(value: float) -> str:
    """``60 s``, ``0.2 s``, ``5 min``: a poll interval as a person would say it."""
    if value >= 120 and value % 60 == 0:
        return f"{value / 60:g} min"
    return f"{value:g} s"


def sync_lines(sync: TwoWayView) -> list[str]:
    """``status ⇄ · comments → · polls 60 s`` (→ to the ticket, ← from it, ⇄ both, – neither;
    how often tickets are read back), then, when any is set, what a ticket or the anomaly sets
    off: ``done archives: Resolved · archive → ticket done · recurrence reopens``. Two short
    lines rather than one that wraps in a dialog 80 columns wide."""
    comments = f"comments {ARROWS.get(sync.comments, sync.comments)}"
    if sync.fan_out_ticket_comments and sync.comments in TAKES_BACK:
        comments += " fanned out"
    poll = f"polls {seconds(sync.poll_s)}" if sync.poll_s > 0 else "not polled"
    lines = [f"status {ARROWS.get(sync.status, sync.status)} · {comments} · {poll}"]
    effects = []
    if sync.status in TAKES_BACK and sync.on_ticket_done:
        action, _, status = sync.on_ticket_done.partition(":")
        word = "archives" if action == "archive" else action
        effects.append(f"done {word}: {status}" if status else f"done {word}")
    if sync.status in SENDS and sync.on_anomaly_archived == "transition":
        effects.append("archive → ticket done")
    if sync.on_recurrence == "reopen":
        effects.append("recurrence reopens")
    elif sync.on_recurrence == "new_ticket":
        effects.append("recurrence: new ticket")
    elif sync.on_recurrence != "comment":
        effects.append(f"recurrence: {sync.on_recurrence}")
    if effects:
        lines.append(" · ".join(effects))
    return lines


def newer_health(known: ConnectionHealth | None, told: ConnectionHealth | None) -> bool:
    """Whether ``told`` is at least as recent as ``known``: an answer that was on its way while
    an event said something newer must not put the older state back."""
    if told is None:
        return known is None
    if known is None:
        return True
    return (told.checked_at or "") >= (known.checked_at or "")


class ConnectionList(OptionList):
    """Step one of the ticket dialogs: which configured connection to use. Its health marks
    follow ``connection.health`` events while it is open (``set_health``)."""

    DEFAULT_CSS = """
    ConnectionList { height: auto; max-height: 12; margin: 1 0; }
    """

    def __init__(self, connections: list[ConnectionView], **kwargs: Any) -> None:
        super().__init__(*(Option(connection_prompt(c), id=c.name) for c in connections), **kwargs)
        self.connections = {c.name: c for c in connections}

    def set_health(self, name: str, health: ConnectionHealth | None) -> None:
        """The connection ``name`` is now in this state: its line says so."""
        connection = self.connections.get(name)
        if connection is None or connection.health == health:
            return
        if not newer_health(connection.health, health):
            return
        connection = connection.model_copy(update={"health": health})
        self.connections[name] = connection
        self.replace_option_prompt(name, connection_prompt(connection))


# -- form fields ----------------------------------------------------------------------------------
