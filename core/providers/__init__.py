"""Provider clients for Jira Cloud and ServiceNow behind one protocol (see ``base``)."""

from core.providers.base import Option, Provider, ProviderKind, Ticket, TicketRef
from core.providers.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)

__all__ = [
    "AuthError",
    "NotFoundError",
    "Option",
    "Provider",
    "ProviderError",
    "ProviderKind",
    "RateLimitedError",
    "Ticket",
    "TicketRef",
    "UnavailableError",
    "ValidationError",
]
