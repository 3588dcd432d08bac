"""Choosing a connection: each with its provider and its last health check."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from anomaly_desk.core.views import ConnectionView

PROVIDER_NAMES = {"jira": "Jira Cloud", "servicenow": "ServiceNow"}


def health_message(name: str, message: str) -> str:
    """A connection check's message without the connection's name in front: the receiver's
    failures read ``jira: Service Unavailable (HTTP 503)``, and every place that shows one
    already says which connection it is about (``jira: jira: …`` otherwise)."""
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


class ConnectionList(OptionList):
    """Step one of the ticket dialogs: which configured connection to use."""

    DEFAULT_CSS = """
    ConnectionList { height: auto; max-height: 12; margin: 1 0; }
    """

    def __init__(self, connections: list[ConnectionView], **kwargs: Any) -> None:
        super().__init__(*(Option(connection_prompt(c), id=c.name) for c in connections), **kwargs)


# -- form fields ----------------------------------------------------------------------------------
