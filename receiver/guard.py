"""Only the operator drives the desk: no web page, by DNS rebinding or by a forged form post.

A browser will send a page's requests to 127.0.0.1 if asked, so loopback alone protects nothing:

* **DNS rebinding**: a page at ``evil.example`` re-resolves its own name to 127.0.0.1 and reads
  the API as same-origin. Its requests still say ``Host: evil.example``, so every route checks
  ``Host`` against an allow-list: loopback names, the bound address, and ``allowed_hosts`` (a
  reverse proxy's name). An IP literal cannot be rebound, so a wildcard bind accepts those.
* **CSRF**: any page can POST (no body, or ``text/plain``) cross-origin without a preflight.
  Unsafe methods refuse a foreign ``Origin`` and ``Sec-Fetch-Site: cross-site|same-site``; the
  CLI and the dashboard send neither, and the platform's webhooks come from a server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from anomaly_desk.receiver.problems import Problem, problem_response

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(netloc: str) -> str:
    """``Host`` without its port, lower-cased, without a trailing dot; IPv6 without brackets."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")] if "]" in netloc else netloc
    if netloc.count(":") == 1:
        netloc = netloc.split(":", 1)[0]
    return netloc.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` names this receiver answers to, and which origins may write."""

    def __init__(self, bound_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        configured = [host_name(h) if h != "*" else h for h in allowed_hosts]
        self.any = "*" in configured
        self.wildcard_bind = bound_host in WILDCARDS
        self.configured = {h for h in configured if h != "*" and not h.startswith("*.")}
        self.suffixes = tuple(h[1:] for h in configured if h.startswith("*."))
        self.exact = {*LOOPBACK_NAMES, host_name(bound_host), *self.configured}

    def _configured(self, name: str) -> bool:
        return name in self.configured or any(name.endswith(s) for s in self.suffixes)

    def host_allowed(self, name: str) -> bool:
        if self.any or name in self.exact or self._configured(name):
            return True
        return self.wildcard_bind and _is_ip(name)

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Same origin as the request's own ``Host``, or a host the operator configured."""
        if origin == "null":
            return False
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        if parts.netloc.lower() == host.strip().lower():
            return True
        return self._configured(host_name(parts.netloc))


class HostGuard:
    """Pure ASGI (no body buffering): refuses before any route runs."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        problem = self._refusal(scope["method"], host, headers)
        if problem is not None:
            await problem_response(problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, method: str, host: str, headers: dict[bytes, bytes]) -> Problem | None:
        if not self.policy.host_allowed(host_name(host)):
            return Problem(
                400,
                "Host not allowed",
                f"this receiver does not answer to Host {host[:100]!r}; if it is reached through "
                "a reverse proxy by that name, add it to [receiver] allowed_hosts",
                kind="host-not-allowed",
            )
        if method in SAFE_METHODS:
            return None
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        if site in ("cross-site", "same-site"):
            return Problem(
                403,
                "Cross-site request refused",
                f"Sec-Fetch-Site: {site}; the desk is driven by its own dashboard and CLI only",
                kind="cross-site",
            )
        origin = headers.get(b"origin")
        if origin is not None and not self.policy.origin_allowed(origin.decode("latin-1"), host):
            return Problem(
                403,
                "Cross-origin request refused",
                f"Origin {origin.decode('latin-1')[:100]!r} is not this receiver "
                f"({host[:100]!r}); the desk is driven by its own dashboard and CLI only",
                kind="cross-origin",
            )
        return None
