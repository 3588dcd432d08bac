"""What both provider clients need from HTTP: one configured client, and how long a 429 says to wait."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from anomaly_desk.core.connections import JiraConnection, ServiceNowConnection


def tls_verify(value: bool | str) -> bool | ssl.SSLContext:
    """httpx wants an SSL context for a CA bundle path (the sandbox's --tls certificate)."""
    return ssl.create_default_context(cafile=value) if isinstance(value, str) else value


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
