"""What both provider clients share: one configured HTTP client and one request loop.

The loop sends a request, turns the answer into a value or into one of the typed errors of
``errors`` (in the provider's own words, which its ``Dialect`` reads), and applies one rule:

* Reads (GET) are retried on a transient failure (429, 5xx, a timeout, a failed connection, an
  answer that is not the API's) up to ``ReadRetry.attempts`` tries in all, with exponential
  backoff (stamina). A ``Retry-After`` is honoured when it asks for at most
  ``ReadRetry.max_retry_after`` seconds; a longer wait is the caller's to honour: the error
  carries it (``retry_after``).
* Writes are sent exactly once: the durable outbox owns their retries. A write whose answer was
  lost (a timeout or a dropped connection after the request went out, a gateway's 502/504, an
  answer that is not the API's) is reported ``ambiguous``: the caller looks for its effect before
  repeating it. A write that never left (no connection) is not.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeAlias

import httpx
import stamina
from pydantic import JsonValue

from anomaly_desk.core.connections import JiraConnection, ServiceNowConnection
from anomaly_desk.core.providers.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)

log = logging.getLogger(__name__)

READS = frozenset({"GET", "HEAD"})  # everything else is a write: sent once
GATEWAY_GAVE_UP = frozenset({502, 504})  # the write may have been passed on before it did
# Raised before the request left: nothing can have reached the provider.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class ReadRetry:
    """How a read is retried (see the module doc); waits are in seconds."""

    attempts: int = 3  # tries in all: one and two retries
    wait_initial: float = 0.2  # backoff before the first retry…
    wait_exp_base: float = 3.0  # …times this for each further one (0.2, 0.6, …)
    wait_max: float = 2.0
    wait_jitter: float = 0.1
    max_retry_after: float = 2.0  # a Retry-After longer than this is not waited out in a read


READ_RETRY = ReadRetry()

# Query parameters as httpx takes them.
Params: TypeAlias = Mapping[str, str | int]
# A request body: any JSON value, or a mapping of JSON values (``dict[str, str]`` is one).
JsonBody: TypeAlias = JsonValue | Mapping[str, JsonValue]


@dataclass(frozen=True, slots=True)
class ErrorText:
    """A provider's own words for a failed request."""

    message: str
    field_errors: dict[str, str] = field(default_factory=dict)
    refused_fields: bool = False  # the fields broke a rule, whatever the status says


class BadAnswer(Exception):
    """A success status whose body is not what the API sends (a login page, an HTML error)."""


class Dialect(Protocol):
    """How one provider spells its answers and its errors."""

    @property
    def name(self) -> str:
        """``Jira`` / ``ServiceNow``, for messages of our own."""
        ...

    def error_text(self, response: httpx.Response) -> ErrorText:
        """The provider's words for a response with an error status."""
        ...

    def decode(self, response: httpx.Response) -> JsonValue:
        """The value of a successful answer; ``BadAnswer`` when it is not the API's."""
        ...


def tls_verify(value: bool | str) -> bool | ssl.SSLContext:
    """httpx wants an SSL context for a CA bundle path (the sandbox's --tls certificate)."""
    return ssl.create_default_context(cafile=value) if isinstance(value, str) else value


def public_url(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages and links."""
    return re.sub(r"^(https?://)[^/@]*@", r"\1", url)


def basic_auth_client(
    conn: JiraConnection | ServiceNowConnection,
    base_url: str,
    username: str,
    secret: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One client per connection: basic auth in a header only, explicit timeouts, no redirects."""
    return httpx.AsyncClient(
        base_url=base_url,
        auth=httpx.BasicAuth(username, secret),
        timeout=httpx.Timeout(conn.timeout, connect=min(conn.timeout, 10.0)),
        verify=tls_verify(conn.verify_tls),
        transport=transport,
        headers={"Accept": "application/json", "User-Agent": "anomaly-desk"},
        follow_redirects=False,
    )


class RequestLoop:
    """Requests to one connection: send, classify, retry reads (see the module doc)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        dialect: Dialect,
        *,
        connection: str,
        url: str,
        timeout: float,
        secret: str = "",
        retry: ReadRetry = READ_RETRY,
    ) -> None:
        self.http = http
        self.dialect = dialect
        self.connection = connection
        self.url = public_url(url)
        self.timeout = timeout
        self.retry = retry
        self._secret = secret

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: JsonBody = None,
        expect: Collection[int] | None = None,
    ) -> JsonValue:
        """The decoded answer; ``expect`` lists the statuses that are one (default: < 400).

        Any JSON value: each client reads it as the shape its endpoint answers with (``payloads``).
        """
        method = method.upper()
        if method not in READS:
            return await self._once(method, path, params, json, expect)
        retry = self.retry
        async for attempt in stamina.retry_context(
            on=self._retry_wait,
            attempts=retry.attempts,
            timeout=None,  # bounded by the attempts and each request's own timeout
            wait_initial=retry.wait_initial,
            wait_max=retry.wait_max,
            wait_jitter=retry.wait_jitter,
            wait_exp_base=retry.wait_exp_base,
        ):
            with attempt:
                return await self._once(method, path, params, json, expect)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_wait(self, exc: Exception) -> bool | float:
        """Whether a failed read is tried again, and after how long when the provider said."""
        if not isinstance(exc, RateLimitedError | UnavailableError):
            return False
        if exc.retry_after is None:
            return True  # the exponential backoff
        if exc.retry_after > self.retry.max_retry_after:
            return False  # too long to hold a read: the caller sees the error and its wait
        return exc.retry_after

    async def _once(
        self,
        method: str,
        path: str,
        params: Params | None,
        json: JsonBody,
        expect: Collection[int] | None,
    ) -> JsonValue:
        write = method not in READS
        started = time.monotonic()
        try:
            response = await self.http.request(method, path, params=params, json=json)
        except httpx.TransportError as exc:
            error: ProviderError = self.transport_error(exc, write)
        else:
            status = response.status_code
            elapsed = (time.monotonic() - started) * 1000
            log.debug("%s: %s %s → %s in %.0f ms", self.connection, method, path, status, elapsed)
            answered = status in expect if expect is not None else status < 400
            if not answered:
                error = self.http_error(response, write)
            else:
                try:
                    return self.dialect.decode(response)
                except BadAnswer as exc:
                    error = UnavailableError(
                        self._scrub(str(exc)),
                        status=status,
                        ambiguous=write,  # a write may have been done before this answer
                        connection=self.connection,
                    )
        log.info("%s: %s %s failed: %s", self.connection, method, path, error)
        raise error

    def transport_error(self, exc: httpx.TransportError, write: bool) -> UnavailableError:
        """No answer: a write that may have been sent is ambiguous."""
        name = type(exc).__name__
        if isinstance(exc, NOT_SENT):
            reason = name
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                reason = "TLS certificate not trusted (point verify_tls at the CA bundle)"
            message = f"cannot connect to {self.url}: {reason}"
        elif isinstance(exc, httpx.TimeoutException):
            message = f"no answer from {self.dialect.name} within {self.timeout:g}s ({name})"
        else:
            message = f"connection to {self.dialect.name} failed: {name}"
        return UnavailableError(
            self._scrub(message),
            ambiguous=write and not isinstance(exc, NOT_SENT),
            connection=self.connection,
        )

    def http_error(self, response: httpx.Response, write: bool) -> ProviderError:
        """An error status as its typed error, in the provider's words."""
        status = response.status_code
        text = self.dialect.error_text(response)
        message = self._scrub(text.message)
        connection = self.connection
        if status == 400 or text.refused_fields:
            return ValidationError(
                message, field_errors=text.field_errors, status=status, connection=connection
            )
        if status in (401, 403):
            return AuthError(message, status=status, connection=connection)
        if status == 404:
            return NotFoundError(message, status=status, connection=connection)
        if status == 429:
            return RateLimitedError(
                message, retry_after=retry_after(response), status=status, connection=connection
            )
        if status >= 500:
            return UnavailableError(
                message,
                ambiguous=write and status in GATEWAY_GAVE_UP,
                retry_after=retry_after(response) if "retry-after" in response.headers else None,
                status=status,
                connection=connection,
            )
        return ProviderError(message, status=status, connection=connection)

    def _scrub(self, text: str) -> str:
        """Belt and braces: a provider echoing the credential must not put it in an error."""
        return text.replace(self._secret, "***") if self._secret else text


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or an HTTP date), else ``X-RateLimit-Reset``
    (an ISO time, as Jira sends it, or epoch seconds, as ServiceNow does)."""
    raw = response.headers.get("retry-after")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            return _until(parsedate_to_datetime(raw))
        except (TypeError, ValueError):
            pass
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        try:
            return _until(datetime.fromtimestamp(float(reset), UTC))
        except ValueError:
            pass
        try:
            return _until(datetime.fromisoformat(reset.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _until(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
