"""Typed provider errors: the sync engine decides what to retry from the type alone.

Messages carry the provider's own words and never a credential.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base class; ``status`` is the HTTP status when there was a response."""

    retryable = False

    def __init__(
        self, message: str, *, status: int | None = None, connection: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.connection = connection

    def __str__(self) -> str:
        prefix = f"{self.connection}: " if self.connection else ""
        return f"{prefix}{self.plain()}"

    def plain(self) -> str:
        """The message without the connection's name, where a screen shows that already."""
        code = f" (HTTP {self.status})" if self.status else ""
        return f"{self.message}{code}"


class AuthError(ProviderError):
    """401/403: the credential is wrong or lacks a permission. Retrying will not help."""


class ValidationError(ProviderError):
    """400: the provider refused the fields; ``field_errors`` maps field → provider message."""

    def __init__(
        self,
        message: str,
        *,
        field_errors: dict[str, str] | None = None,
        status: int | None = None,
        connection: str | None = None,
    ) -> None:
        super().__init__(message, status=status, connection=connection)
        self.field_errors = dict(field_errors or {})


class NotFoundError(ProviderError):
    """404: the ticket (or project, table…) does not exist."""


class RateLimitedError(ProviderError):
    """429: come back after ``retry_after`` seconds (None when the provider did not say)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        connection: str | None = None,
    ) -> None:
        super().__init__(message, status=status, connection=connection)
        self.retry_after = retry_after


class UnavailableError(ProviderError):
    """5xx, timeout, refused connection.

    ``ambiguous`` is True when a write may have reached the provider (the request was sent but
    no answer came back): the caller must look for the effect before repeating it.
    ``retry_after`` is the wait a 503 asked for with ``Retry-After`` (None when it did not say).
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        ambiguous: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        connection: str | None = None,
    ) -> None:
        super().__init__(message, status=status, connection=connection)
        self.ambiguous = ambiguous
        self.retry_after = retry_after
