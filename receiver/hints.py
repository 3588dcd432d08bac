"""``POST /webhooks/jira`` and ``POST /webhooks/servicenow``: a ticket changed, poll now.

For desks the ticketing system can reach. A delivery is only a hint: it is verified (an HMAC of
the raw body with the connection's ``webhook_secret_env``), deduplicated (Jira's
``X-Atlassian-Webhook-Identifier`` is stable across its retries; ServiceNow's body is hashed),
and then asks the poller to read that connection now. Its payload is never trusted as state: the
poll reads the ticket through the API, with the same loop safety as a scheduled poll.

- Jira admin webhooks sign with ``X-Hub-Signature: sha256=<hex>``.
- The ServiceNow Business Rule (``docs/servicenow-business-rule.js``) posts ``{"sys_id",
  "table"}`` with ``X-Snow-Signature: sha256=<hex>``.

A missing or wrong signature is 401 and nothing happens; a replay is 200 ``{"duplicate": true}``
and nothing happens.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict

from starlette.requests import Request
from starlette.responses import Response

from anomaly_desk.core.connections import Connection
from anomaly_desk.core.views import HintView
from anomaly_desk.receiver.api import view_response
from anomaly_desk.receiver.bodies import read_json_body
from anomaly_desk.receiver.problems import Problem

log = logging.getLogger(__name__)

MAX_HINT_BYTES = 256 * 1024
SEEN_KEPT = 10_000  # identifiers remembered for dedupe (a retry comes within ~30 minutes)
SEEN_FOR_S = 24 * 3600.0

_HEADERS = {"jira": "x-hub-signature", "servicenow": "x-snow-signature"}


class SeenHints:
    """Delivery identifiers already acted on, newest last, bounded in count and age."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str) -> bool:
        now = time.monotonic()
        while self._seen and (
            len(self._seen) >= SEEN_KEPT or next(iter(self._seen.values())) < now - SEEN_FOR_S
        ):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


def _signed_by(body: bytes, header: str | None, conns: list[Connection]) -> Connection | None:
    """The connection whose secret made ``header`` (``sha256=<hex>``) over ``body``."""
    scheme, _, digest = (header or "").partition("=")
    if scheme.strip().lower() != "sha256" or not digest:
        return None
    for conn in conns:
        if conn.webhook_secret is None:
            continue
        expected = hmac.new(
            conn.webhook_secret.get_secret_value().encode(), body, hashlib.sha256
        ).hexdigest()
        if hmac.compare_digest(expected, digest.strip().lower()):
            return conn
    return None


async def _hint(request: Request, provider: str) -> Response:
    state = request.app.state
    body = await read_json_body(request, MAX_HINT_BYTES)
    conns = [c for c in state.settings.connections if c.provider == provider]
    if not any(c.webhook_secret is not None for c in conns):
        raise Problem(
            404,
            "Not configured",
            f"no {provider} connection has webhook_secret_env: these webhooks are off",
            kind="not-found",
        )
    conn = _signed_by(body, request.headers.get(_HEADERS[provider]), conns)
    if conn is None:
        raise Problem(
            401,
            "Unauthorized",
            f"the {_HEADERS[provider]} signature is missing or does not match",
            kind="unauthorized",
        )
    identifier = (
        request.headers.get("x-atlassian-webhook-identifier") or hashlib.sha256(body).hexdigest()
    )
    if not state.hints_seen.first_time(f"{conn.name}:{identifier}"):
        log.info("hint %s from %s: a replay, ignored", identifier[:16], conn.name)
        return view_response(HintView(duplicate=True, connection=conn.name))
    polled = state.poller.hint(conn.name)
    log.info("hint %s from %s: poll %s", identifier[:16], conn.name, "now" if polled else "off")
    return view_response(HintView(duplicate=False, connection=conn.name, poll=polled))


async def jira_hint(request: Request) -> Response:
    return await _hint(request, "jira")


async def servicenow_hint(request: Request) -> Response:
    return await _hint(request, "servicenow")
