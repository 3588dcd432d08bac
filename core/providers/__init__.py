"""Provider clients for Jira Cloud and ServiceNow behind one protocol (see ``base``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from anomaly_desk.core.providers.base import (
    NoteTag,
    Option,
    Provider,
    ProviderKind,
    Ticket,
    TicketChange,
    TicketComment,
    TicketFields,
    TicketRef,
    TicketText,
)
from anomaly_desk.core.providers.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)

if TYPE_CHECKING:
    import httpx

    from anomaly_desk.core.connections import Connection, Platform

__all__ = [
    "AuthError",
    "NotFoundError",
    "NoteTag",
    "Option",
    "Provider",
    "ProviderError",
    "ProviderKind",
    "RateLimitedError",
    "Ticket",
    "TicketChange",
    "TicketComment",
    "TicketFields",
    "TicketRef",
    "TicketText",
    "UnavailableError",
    "ValidationError",
    "make_provider",
]


def make_provider(
    conn: Connection,
    platform: Platform | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Provider:
    """The client for one configured connection; callers never pick the class themselves.

    The clients are imported here, not at package import, so importing the protocol stays cheap.
    ``transport`` is for tests that drive a client over an in-process ASGI app.
    """
    from anomaly_desk.core.connections import JiraConnection, ServiceNowConnection

    if isinstance(conn, JiraConnection):
        from anomaly_desk.core.providers.jira import JiraClient

        return JiraClient(conn, platform, transport=transport)
    if isinstance(conn, ServiceNowConnection):
        from anomaly_desk.core.providers.servicenow import ServiceNowClient

        return ServiceNowClient(conn, platform, transport=transport)
    raise TypeError(f"no provider client for {type(conn).__name__}")
