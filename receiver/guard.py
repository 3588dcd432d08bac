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
import re
from collections.abc import Iterable
from typing import NamedTuple

from starlette.types import ASGIApp, Receive, Scope, Send

from anomaly_desk.receiver.problems import Problem, problem_response

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


#: A DNS name or an IPv4 literal: dot-separated labels of letters, digits, ``-`` and ``_``
#: (container names), an optional trailing dot. No ``@``, ``,``, ``%``, space or anything else.
_NAME = re.compile(
    r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?"
)
_PORT = re.compile(r"[0-9]{1,5}")
DEFAULT_PORTS = {"http": 80, "https": 443}


class Authority(NamedTuple):
    """A strictly parsed ``Host`` (or an origin's host and port): lower-case name, IPv6 without
    brackets, the port if one was given."""

    name: str
    port: int | None


def parse_authority(value: str) -> Authority | None:
    """``name``, ``IPv4`` or ``[IPv6]``, then optionally ``:`` and a port 1–65535; None for
    anything else (userinfo, a second host after a comma, a zone id, an empty or huge port).
    A lenient split let ``127.0.0.1:80@evil.com`` pass as 127.0.0.1."""
    if not value.isascii() or len(value) > 262:
        return None
    value = value.lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = value[1:end], value[end + 1 :]
        if end < 0 or "%" in name or not _is_ipv6(name):
            return None
    else:
        name, colon, port_text = value.partition(":")
        rest = colon + port_text
        if _NAME.fullmatch(name) is None or len(name.rstrip(".")) > 253:
            return None
    if not rest:
        return Authority(name, None)
    port_text = rest[1:]
    if not rest.startswith(":") or _PORT.fullmatch(port_text) is None:
        return None
    port = int(port_text)
    return Authority(name, port) if 1 <= port <= 65535 else None


def _is_ipv6(name: str) -> bool:
    try:
        ipaddress.IPv6Address(name)
    except ValueError:
        return False
    return True


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

    def origin_allowed(self, origin: str, host: Authority, scheme: str) -> bool:
        """Same origin as the request (scheme, ``Host`` name, port), or a host the operator
        configured (a reverse proxy's name, reached over http or https).

        The scheme is compared as browsers serialise it (RFC 6454: lower case), exactly: a
        page's browser never sends ``HTTP://``, so such an Origin is no same-origin page.
        """
        scheme_text, sep, netloc = origin.partition("://")
        if not sep or scheme_text not in DEFAULT_PORTS:
            return False
        theirs = parse_authority(netloc)
        if theirs is None:
            return False
        default = DEFAULT_PORTS[scheme_text]
        if (
            scheme_text == scheme
            and theirs.name == host.name
            and (theirs.port or default) == (host.port or default)
        ):
            return True
        return self._configured(theirs.name.rstrip("."))


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
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        host = b",".join(hosts).decode("latin-1")  # two Host headers: refused as one bad value
        origins = [value for name, value in scope["headers"] if name == b"origin"]
        if len(origins) > 1:  # likewise two Origins: never judged by whichever came last
            headers[b"origin"] = b", ".join(origins)
        problem = self._refusal(scope["method"], scope.get("scheme", "http"), host, headers)
        if problem is not None:
            await problem_response(problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(
        self, method: str, scheme: str, host: str, headers: dict[bytes, bytes]
    ) -> Problem | None:
        authority = parse_authority(host.strip())
        if authority is None or not self.policy.host_allowed(authority.name.rstrip(".")):
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
        if origin is not None and not self.policy.origin_allowed(
            origin.decode("latin-1"), authority, scheme
        ):
            return Problem(
                403,
                "Cross-origin request refused",
                f"Origin {origin.decode('latin-1')[:100]!r} is not this receiver "
                f"({host[:100]!r}); the desk is driven by its own dashboard and CLI only",
                kind="cross-origin",
            )
        return None
