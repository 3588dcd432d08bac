"""Fault injection for the sandbox: latency, 503s and rate limiting, as the real services answer.

``FaultMiddleware`` is pure ASGI (streaming-safe, no BaseHTTPMiddleware) and reads one mutable
``Faults`` on every request, so tests and ``/_sandbox/faults`` can change it while serving.
``path_prefix`` narrows the faults to some paths (``PLATFORM_PATHS``, ``JIRA_PATHS``,
``JIRA_GATEWAY_PATHS``, ``SERVICENOW_PATHS``, the token endpoints' ``JIRA_AUTH_PATHS`` and
``SERVICENOW_AUTH_PATHS``, or any comma-separated prefixes); unset, they apply to every path.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_sandbox"
# ``path_prefix`` values that break one service only (prefixes are comma-separated)
PLATFORM_PATHS = "/api/anomalies,/api/comments"
JIRA_PATHS = "/rest/api"  # the site's base
JIRA_GATEWAY_PATHS = "/ex/jira"  # the same API through the gateway (OAuth, scoped tokens)
SERVICENOW_PATHS = "/api/now"
# the token endpoints, apart: a fault meant for API calls does not hit a token request
JIRA_AUTH_PATHS = "/oauth/token,/_edge/tenant_info"
SERVICENOW_AUTH_PATHS = "/oauth_token.do"
# the app.state names ``/_sandbox/reset`` reseeds
EMULATORS = ("jira", "servicenow", "platform", "auth")


@dataclass
class Faults:
    """What the sandbox does wrong. Mutable on purpose: change it while the server runs."""

    latency_ms: float = 0.0
    fail_rate: float = 0.0  # fraction of requests answered 503
    rate_limit: float = 0.0  # requests per second before 429; 0 = unlimited
    force_status: int | None = None  # answer this status (503, 429, 500…) to the next requests
    force_count: int = 0  # how many requests get ``force_status``; 0 = none
    seed: int | None = None  # for a reproducible fail_rate
    # only paths starting with one of these comma-separated prefixes; None: every path
    path_prefix: str | None = None
    _bucket: TokenBucket | None = field(default=None, repr=False, compare=False)
    # writes (POST, PUT, PATCH) that began waiting out ``latency_ms``: a test that must kill a
    # client while one of its writes is surely on its way waits for this to grow
    writes_held: int = field(default=0, repr=False, compare=False, metadata={"counter": True})
    # bumped by ``/_sandbox/reset``: a request still waiting out its latency from before the
    # reset is answered 503 and never applied to the reseeded emulators (a write held when one
    # test ended must not land on the next test's DQ-1)
    resets: int = field(default=0, repr=False, compare=False, metadata={"counter": True})
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def settings(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if not f.name.startswith("_") and "counter" not in f.metadata
        }

    def update(self, values: dict[str, Any]) -> None:
        known = set(self.settings())
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        if "path_prefix" in values:
            values = {**values, "path_prefix": _prefixes(values["path_prefix"])}
        for name, value in values.items():
            setattr(self, name, value)
        if "seed" in values:
            self._random.seed(self.seed)
        self._bucket = None  # a new limit starts with a full bucket

    def reset(self) -> None:
        self.update(Faults().settings())

    def applies(self, path: str) -> bool:
        """Whether the faults touch a request for ``path`` (``path_prefix`` unset: all do)."""
        if self.path_prefix is None:
            return True
        return any(path.startswith(p) for p in self.path_prefix.split(",") if p)

    def take_forced(self) -> int | None:
        if self.force_status is None or self.force_count <= 0:
            return None
        self.force_count -= 1
        return self.force_status

    def should_fail(self) -> bool:
        return self.fail_rate > 0 and self._random.random() < self.fail_rate

    def bucket(self) -> TokenBucket | None:
        if self.rate_limit <= 0:
            return None
        if self._bucket is None or self._bucket.rate != self.rate_limit:
            self._bucket = TokenBucket(self.rate_limit)
        return self._bucket

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{CONTROL_PREFIX}/faults", self._faults, methods=["GET", "POST"]),
            Route(f"{CONTROL_PREFIX}/reset", self._reset, methods=["POST"]),
        ]

    async def _faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object")
                self.update(body)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, 400)
        return JSONResponse(self.settings())

    async def _reset(self, request: Request) -> Response:
        """Clear faults and, when the emulators are mounted, reseed them."""
        self.reset()
        self.resets += 1
        for name in EMULATORS:
            emulator = getattr(request.app.state, name, None)
            if emulator is not None and hasattr(emulator, "reset"):
                emulator.reset()
        return JSONResponse(self.settings())


def _prefixes(value: Any) -> str | None:
    """A ``path_prefix`` as given (one prefix, comma-separated ones, or a list), checked."""
    if value is None:
        return None
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise ValueError("path_prefix must be a string of comma-separated path prefixes or null")
    parts = [part.strip() for part in value.split(",") if part.strip()]
    bad = [part for part in parts if not part.startswith("/")]
    if bad:
        raise ValueError(f"path_prefix: {', '.join(bad)} must start with /")
    return ",".join(parts) or None


class TokenBucket:
    """``rate`` tokens a second, bursts up to ``max(1, rate)``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> tuple[bool, float]:
        """(allowed, seconds until the next token)."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True, 0.0
            return False, (1 - self.tokens) / self.rate

    @property
    def remaining(self) -> int:
        return int(self.tokens)


def _service(path: str) -> str:
    if path.startswith(("/api/now", "/oauth_token.do")):
        return "servicenow"
    if path.startswith(("/rest", "/ex/jira")):
        return "jira"
    if path.startswith(("/api/", "/anomalies/")) or path == "/api":
        return "platform"
    return "other"


def error_body(path: str, status: int, message: str, detail: str | None = None) -> bytes:
    """The error envelope of whichever service owns the path."""
    if _service(path) == "servicenow":
        body: dict[str, Any] = {
            "error": {"message": message, "detail": detail},
            "status": "failure",
        }
    elif _service(path) == "jira":
        body = {"errorMessages": [message], "errors": {}}
    elif _service(path) == "platform":  # FastAPI's HTTPException body
        body = {"detail": message}
    else:
        body = {"error": message}
    return json.dumps(body).encode()


def rate_limit_headers(path: str, limit: float, remaining: int, wait: float) -> dict[str, str]:
    retry_after = str(max(1, math.ceil(wait)))
    reset_at = datetime.now(UTC) + timedelta(seconds=max(wait, 1.0))
    headers = {"Retry-After": retry_after, "X-RateLimit-Limit": str(max(1, math.ceil(limit)))}
    if _service(path) == "jira":
        headers["X-RateLimit-Remaining"] = str(remaining)
        headers["X-RateLimit-Reset"] = reset_at.strftime("%Y-%m-%dT%H:%MZ")
        headers["RateLimit-Reason"] = "jira-burst-based"
    else:  # ServiceNow and the platform: reset as epoch seconds
        headers["X-RateLimit-Remaining"] = str(remaining)
        headers["X-RateLimit-Reset"] = str(int(reset_at.timestamp()))
    return headers


async def buffered(receive: Receive) -> Receive:
    """Read the request body now; replay it later, never reporting a disconnect."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replayed() -> Message:
        if replay:
            return replay.pop()
        await asyncio.Event().wait()  # the app asked for more: there is none, ever
        raise AssertionError("unreachable")

    return replayed


class FaultMiddleware:
    """Applies ``Faults`` to every request except the ``/_sandbox`` controls."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path.startswith(CONTROL_PREFIX)
            or not self.faults.applies(path)
        ):
            await self.app(scope, receive, send)
            return
        faults = self.faults
        if faults.latency_ms > 0:
            # Like a real service, take the whole request in before the delay: a client that
            # gives up waiting must not stop the write from happening (that is the ambiguous
            # case clients have to handle).
            receive = await buffered(receive)
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                faults.writes_held += 1
            resets = faults.resets
            await asyncio.sleep(faults.latency_ms / 1000)
            if faults.resets != resets:
                body = error_body(path, 503, "The sandbox was reset while this request waited")
                await self._answer(send, 503, body, {})
                return
        forced = faults.take_forced()
        if forced == 429:
            await self._too_many(path, send, faults.rate_limit or 1.0, 1.0)
            return
        if forced is not None:
            await self._answer(send, forced, error_body(path, forced, _reason(forced)), {})
            return
        bucket = faults.bucket()
        if bucket is not None:
            allowed, wait = bucket.take()
            if not allowed:
                await self._too_many(path, send, bucket.rate, wait)
                return
        if faults.should_fail():
            await self._answer(send, 503, error_body(path, 503, _reason(503)), {})
            return
        await self.app(scope, receive, send)

    async def _too_many(self, path: str, send: Send, limit: float, wait: float) -> None:
        body = error_body(
            path, 429, "Rate limit exceeded", "Too many requests; retry after the given delay"
        )
        if _service(path) == "jira":
            body = error_body(path, 429, "Rate limit exceeded.")
        await self._answer(send, 429, body, rate_limit_headers(path, limit, 0, wait))

    @staticmethod
    async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
        raw = [(b"content-type", b"application/json;charset=UTF-8")]
        raw += [(b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _reason(status: int) -> str:
    return {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
    }.get(status, f"HTTP {status}")
