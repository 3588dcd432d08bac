"""OAuth 2.0 bearer tokens for both providers: one small ``httpx.Auth``.

``OAuth`` serves the client credentials grant (ServiceNow ``/oauth_token.do``, Atlassian
``/oauth/token``) and ServiceNow's password grant with its refresh token:

* a token is fetched when first needed and cached until shortly before ``expires_in`` (60 s, or
  a quarter of the lifetime of a shorter-lived token); without ``expires_in``, until refused;
* one ``asyncio.Lock``: a burst of requests that find no valid token fetches one, once;
* a request answered 401 gets a new token (unless another request already got one since) and
  is sent once more; a second 401 is the caller's;
* the password grant renews with the refresh token and falls back to the password when the
  refresh token is refused;
* the token request goes out through the same client (its transport, TLS settings and the
  timeout of the request that needed it), in the provider's spelling (form or JSON body);
* a refused token request is a ``TokenError`` (an ``AuthError``) in the provider's words
  (``error_description``), never with a secret; a token endpoint that is down (5xx, 429) is an
  ``UnavailableError``, so a read retries and the outbox tries again later.

No secret, token or refresh token appears in a log line, an error or a ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Literal

import httpx

from anomaly_desk.core.providers.errors import AuthError, ProviderError, UnavailableError

log = logging.getLogger(__name__)

EARLY_S = 60.0  # a token is renewed this long before it expires…
EARLY_SHARE = 0.25  # …or this share of its lifetime, when that is shorter
Grant = Literal["client_credentials", "password"]
BodyStyle = Literal["form", "json"]


class TokenError(AuthError):
    """The token endpoint refused to issue a token: the client id or secret (or the password)
    is wrong, revoked or not allowed this grant. Retrying will not help. ``reason``: the
    endpoint's own words (``error_description``)."""

    reason = ""


class TokenUnavailableError(UnavailableError):
    """The token endpoint failed (5xx, 429): a transient trouble, tried again later."""

    reason = ""


class OAuth(httpx.Auth):
    """Bearer tokens from one token endpoint (see the module doc)."""

    def __init__(
        self,
        *,
        provider: str,
        connection: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        username: str | None = None,
        password: str | None = None,
        body: BodyStyle = "form",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider  # "ServiceNow" / "Atlassian", for messages
        self.connection = connection
        self.token_url = token_url
        self.client_id = client_id
        self.grant: Grant = "password" if username is not None else "client_credentials"
        self._client_secret = client_secret
        self._username = username
        self._password = password or ""
        self._body = body
        self._clock = clock
        self._lock = asyncio.Lock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._renew_at: float | None = None  # monotonic time; None: until refused
        self._asked: Literal["grant", "refresh"] = "grant"
        self.token_requests = 0  # token requests sent (diagnostics, tests)

    def __repr__(self) -> str:
        return (
            f"OAuth(provider={self.provider!r}, token_url={self.token_url!r}, "
            f"client_id={self.client_id!r}, grant={self.grant!r})"
        )

    # -- the flow ------------------------------------------------------------------------

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        refused: str | None = None  # the token a 401 answered
        for attempt in range(2):
            if attempt or not self._fresh():
                async with self._lock:  # one token request for all who wait here
                    if not self._fresh() or self._access == refused:
                        self._access = None
                        step: httpx.Request | None = self._token_request(request)
                        while step is not None:
                            answer = yield step
                            await answer.aread()
                            step = self._take(answer, request)
            sent = self._access
            request.headers["Authorization"] = f"Bearer {sent}"
            response = yield request
            if response.status_code != 401 or attempt:
                return
            log.info(
                "%s: %s answered 401 to a bearer token; getting a new one and trying once more",
                self.connection,
                self.provider,
            )
            refused = sent

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("OAuth works with httpx.AsyncClient only")

    def _fresh(self) -> bool:
        if self._access is None:
            return False
        return self._renew_at is None or self._clock() < self._renew_at

    # -- the token endpoint ----------------------------------------------------------------

    def _token_request(self, needed_by: httpx.Request) -> httpx.Request:
        """The next token request: the refresh token when there is one, else the grant."""
        data = {"client_id": self.client_id, "client_secret": self._client_secret}
        if self._refresh:
            self._asked = "refresh"
            data.update(grant_type="refresh_token", refresh_token=self._refresh)
        elif self.grant == "password":
            self._asked = "grant"
            data.update(grant_type="password", username=self._username or "")
            data["password"] = self._password
        else:
            self._asked = "grant"
            data["grant_type"] = "client_credentials"
        self.token_requests += 1
        headers = {"Accept": "application/json", "User-Agent": "anomaly-desk"}
        extensions = {k: v for k, v in needed_by.extensions.items() if k == "timeout"}
        if self._body == "json":
            return httpx.Request(
                "POST", self.token_url, json=data, headers=headers, extensions=extensions
            )
        return httpx.Request(
            "POST", self.token_url, data=data, headers=headers, extensions=extensions
        )

    def _take(self, answer: httpx.Response, needed_by: httpx.Request) -> httpx.Request | None:
        """Keep the token an answer carries; the next request to send (the password grant
        after a refused refresh token), or None."""
        status = answer.status_code
        body = _json_object(answer)
        if status == 200 and isinstance(body.get("access_token"), str) and body["access_token"]:
            self._keep(body)
            return None
        if self._asked == "refresh" and status in (400, 401, 403):
            log.info(
                "%s: %s refused the refresh token (%s); asking with the password again",
                self.connection,
                self.provider,
                self._scrub(_reason(answer, body)),
            )
            self._refresh = None
            return self._token_request(needed_by)
        raise self._failure(answer, body)

    def _keep(self, body: dict[str, object]) -> None:
        self._access = str(body["access_token"])
        refresh = body.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self._refresh = refresh  # rotated or not: the newest one is the one to use
        lifetime = _seconds(body.get("expires_in"))
        if lifetime is None:
            self._renew_at = None
        else:
            self._renew_at = self._clock() + lifetime - min(EARLY_S, lifetime * EARLY_SHARE)
        how = "refresh token" if self._asked == "refresh" else f"{self.grant} grant"
        expires = f"expires in {lifetime:g} s" if lifetime is not None else "no expiry given"
        log.info("%s: new %s token (%s; %s)", self.connection, self.provider, how, expires)

    def _failure(self, answer: httpx.Response, body: dict[str, object]) -> ProviderError:
        status = answer.status_code
        reason = self._scrub(_reason(answer, body))
        where = f"{self.provider} token request to {self.token_url}"
        if status >= 500 or status == 429:
            down = TokenUnavailableError(
                f"{where} failed: {reason}", status=status, connection=self.connection
            )
            down.reason = reason
            return down
        if status == 200:
            reason = "the answer has no access_token"
            message = f"{where}: {reason}"
        else:
            grant = "refresh token" if self._asked == "refresh" else f"{self.grant} grant"
            message = f"{where} refused ({grant}, client {self.client_id}): {reason}"
        refused = TokenError(message, status=status, connection=self.connection)
        refused.reason = reason
        return refused

    def _scrub(self, text: str) -> str:
        for secret in (self._client_secret, self._password, self._refresh, self._access):
            if secret:
                text = text.replace(secret, "***")
        return text


def _json_object(answer: httpx.Response) -> dict[str, object]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(answer: httpx.Response, body: dict[str, object]) -> str:
    """The endpoint's words: ``error_description`` (and ``error``), else the body's text."""
    error = body.get("error")
    description = body.get("error_description")
    if isinstance(error, dict):  # ServiceNow's REST error shape
        description = error.get("detail") or error.get("message")
        error = None
    parts = [str(p) for p in (description, error) if isinstance(p, str) and p]
    if len(parts) == 2 and parts[0] != parts[1]:
        return f"{parts[0]} ({parts[1]})"
    if parts:
        return parts[0]
    snippet = re.sub(r"<[^>]+>|\s+", " ", answer.text or "").strip()[:200]
    return snippet or answer.reason_phrase or f"HTTP {answer.status_code}"


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(float(value), 0.0)
    if isinstance(value, str):
        try:
            return max(float(value), 0.0)
        except ValueError:
            return None
    return None
