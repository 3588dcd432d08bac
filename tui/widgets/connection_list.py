"""Choosing a connection: each with its provider and its last health check."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from anomaly_desk.core.views import ConnectionHealth, ConnectionView

PROVIDER_NAMES = {"jira": "Jira Cloud", "servicenow": "ServiceNow"}


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
    """``jira  Jira Cloud · DQ / Task  ✓ authenticated as …`` for the connection chooser."""
    kind = connection.provider
    text = Text(connection.name, style="bold")
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
    return text


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
