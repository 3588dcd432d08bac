"""Webhook emitters for the Jira and ServiceNow emulators: opt-in, signed, unreliable on demand.

Nothing is sent until a test or the demo configures a target through the control route::

    POST /_sandbox/webhooks
    {"jira": {"url": "http://127.0.0.1:8765/hooks/jira", "secret": "s3cret",
              "events": ["jira:issue_updated", "comment_created"], "jql": "project = DQ"},
     "servicenow": {"url": "http://127.0.0.1:8765/hooks/servicenow", "secret": "s3cret"},
     "duplicate": false, "shuffle": false, "retry_on_failure": 2}

``GET`` reads the settings, what is still pending and every delivery attempt made so far
(``deliveries``: service, event, identifier, attempt, status, body, headers); ``DELETE`` turns
the emitters off and forgets the log. ``null`` for a service removes its target. In process,
``app.state.webhooks`` is the ``WebhookHub``: ``sent`` lists the attempts, ``pending`` counts
deliveries not yet finished.

What goes out:

* **Jira** admin webhooks (``jira_events`` builds the bodies): ``jira:issue_created``,
  ``jira:issue_updated`` and ``comment_created``. Headers: ``X-Hub-Signature: sha256=<hex
  HMAC-SHA256 of the raw body with the secret>`` (when a secret is set),
  ``X-Atlassian-Webhook-Identifier`` (one per event, the same on every retry and duplicate),
  ``X-Atlassian-Webhook-Flow`` (``Primary`` or ``Retry``) and, on retries only,
  ``X-Atlassian-Webhook-Retry: <n>``.
* **ServiceNow**, a Business Rule calling RESTMessageV2 on ``incident`` insert and update:
  ``{"sys_id", "table", "operation"}`` with ``X-Snow-Signature: sha256=<hex HMAC-SHA256 of the
  raw body>``. Events are ``incident.insert`` and ``incident.update``.

Delivery runs in a background task on the server's event loop, in the order the events happened.
A non-2xx answer or a connection error is retried up to ``retry_on_failure`` times,
``retry_delay_ms`` apart, while later events go on (so a retried one arrives late). ``duplicate``
sends every delivery twice; ``shuffle`` collects the events of ``shuffle_window_ms`` and sends
them out of order (never in the original order when there are two or more; ``seed`` makes the
order reproducible).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

CONTROL_PATH = "/_sandbox/webhooks"
SERVICES = ("jira", "servicenow")
JIRA_EVENTS = frozenset({"jira:issue_created", "jira:issue_updated", "comment_created"})
SNOW_EVENTS = frozenset({"incident.insert", "incident.update"})
DEFAULT_EVENTS = {
    "jira": frozenset({"jira:issue_updated", "comment_created"}),
    "servicenow": SNOW_EVENTS,
}
KNOWN_EVENTS = {"jira": JIRA_EVENTS, "servicenow": SNOW_EVENTS}
SIGNATURE_HEADER = {"jira": "X-Hub-Signature", "servicenow": "X-Snow-Signature"}
USER_AGENT = {"jira": "Atlassian Webhook HTTP Client", "servicenow": "ServiceNow/1.0"}
TIMEOUT = 10.0

Json = dict[str, Any]


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of the raw body, keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Target:
    """Where one service's webhooks go."""

    url: str
    secret: str | None = None
    events: frozenset[str] = frozenset()
    jql: str | None = None  # Jira's filter: only issues matching it
    verify: bool | str = True  # TLS verification for an https url (a CA bundle path, or False)

    def json(self) -> Json:
        return {
            "url": self.url,
            "secret": self.secret,
            "events": sorted(self.events),
            "jql": self.jql,
            "verify": self.verify,
        }


@dataclass
class Behaviour:
    """How unreliable the delivery is."""

    duplicate: bool = False
    shuffle: bool = False
    retry_on_failure: int = 0
    retry_delay_ms: float = 100.0
    shuffle_window_ms: float = 200.0
    seed: int | None = None


@dataclass
class Outgoing:
    """One event to deliver: the raw body is fixed once, so every attempt signs the same bytes."""

    service: str
    event: str
    identifier: str
    body: bytes
    target: Target
    generation: int


@dataclass
class Delivery:
    """One attempt to deliver an event (``attempt`` 0 is the first, then the retries)."""

    service: str
    event: str
    identifier: str
    url: str
    attempt: int
    copy: int  # 1 for the second copy of a duplicated delivery
    status: int | None  # the receiver's answer; None when it could not be reached
    error: str | None
    at: datetime
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def payload(self) -> Any:
        return json.loads(self.body)

    def json(self) -> Json:
        return {
            "service": self.service,
            "event": self.event,
            "identifier": self.identifier,
            "url": self.url,
            "attempt": self.attempt,
            "copy": self.copy,
            "status": self.status,
            "error": self.error,
            "at": self.at.isoformat(),
            "body": self.payload(),
            "headers": self.headers,
        }


class WebhookHub:
    """The emitters' settings, the delivery queue and the log of attempts (``sent``)."""

    def __init__(self) -> None:
        self.generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[list[Outgoing]] | None = None
        self.reset()

    def reset(self) -> None:
        """Emitters off, default behaviour, log cleared; pending deliveries are dropped."""
        self.generation += 1
        self.targets: dict[str, Target] = {}
        self.behaviour = Behaviour()
        self.sent: list[Delivery] = []
        self.pending = 0
        self._random = random.Random()
        self._batch: list[Outgoing] = []

    # -- settings ------------------------------------------------------------------------

    def settings(self) -> Json:
        values: Json = {s: (t.json() if (t := self.targets.get(s)) else None) for s in SERVICES}
        values.update({f.name: getattr(self.behaviour, f.name) for f in fields(Behaviour)})
        return values

    def configure(self, values: Json) -> None:
        """Apply a ``POST /_sandbox/webhooks`` body; ValueError (nothing changed) if invalid."""
        behaviour_names = {f.name for f in fields(Behaviour)}
        unknown = sorted(set(values) - behaviour_names - set(SERVICES))
        if unknown:
            raise ValueError(f"unknown webhook setting(s): {', '.join(unknown)}")
        targets = dict(self.targets)
        for service in SERVICES:
            if service in values:
                raw = values[service]
                if raw is None:
                    targets.pop(service, None)
                else:
                    targets[service] = _target(service, raw)
        behaviour = Behaviour(
            **{f.name: getattr(self.behaviour, f.name) for f in fields(Behaviour)}
        )
        for name in behaviour_names & set(values):
            setattr(behaviour, name, _behaviour_value(name, values[name]))
        self.targets, self.behaviour = targets, behaviour
        if "seed" in values:
            self._random.seed(behaviour.seed)

    def wants(self, service: str, event: str) -> bool:
        target = self.targets.get(service)
        return target is not None and event in target.events

    # -- sending -------------------------------------------------------------------------

    def emit(self, service: str, event: str, payload: Json) -> None:
        """Queue ``payload`` for ``service``'s target if it takes ``event``; call from the loop."""
        target = self.targets.get(service)
        if target is None or event not in target.events:
            return
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        item = Outgoing(service, event, str(uuid.uuid4()), body, target, self.generation)
        copies = 2 if self.behaviour.duplicate else 1
        self.pending += copies
        batch = [item] * copies
        loop = asyncio.get_running_loop()
        if self.behaviour.shuffle:
            if not self._batch:
                loop.call_later(self.behaviour.shuffle_window_ms / 1000, self._flush_batch)
            self._batch.extend(batch)
        else:
            self._queue_for(loop).put_nowait(batch)

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        shuffled = list(batch)
        self._random.shuffle(shuffled)
        if len({id(i) for i in batch}) > 1 and [id(i) for i in shuffled] == [id(i) for i in batch]:
            shuffled = shuffled[1:] + shuffled[:1]  # out of order, always
        self._queue_for(asyncio.get_running_loop()).put_nowait(shuffled)

    def _queue_for(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[list[Outgoing]]:
        """The delivery queue on ``loop``, with its worker (one per loop: a server has one)."""
        if self._queue is None or self._loop is not loop:
            self._loop, self._queue = loop, asyncio.Queue()
            self._spawn(self._worker(self._queue))
        return self._queue

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _worker(self, queue: asyncio.Queue[list[Outgoing]]) -> None:
        while True:
            batch = await queue.get()
            copies: dict[int, int] = {}
            for item in batch:
                copy = copies.get(id(item), 0)
                copies[id(item)] = copy + 1
                await self._attempt(item, 0, copy)

    async def _attempt(self, item: Outgoing, attempt: int, copy: int) -> None:
        if item.generation != self.generation:
            return  # the sandbox was reset since: the event belongs to a forgotten past
        headers = self._headers(item, attempt)
        status: int | None = None
        problem: str | None = None
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, verify=item.target.verify) as http:
                response = await http.post(item.target.url, content=item.body, headers=headers)
            status = response.status_code
        except Exception as exc:  # unreachable, refused, a bad URL or CA path: recorded, retried
            problem = f"{type(exc).__name__}: {exc}"
        if item.generation != self.generation:
            return
        delivery = Delivery(
            item.service,
            item.event,
            item.identifier,
            item.target.url,
            attempt,
            copy,
            status,
            problem,
            datetime.now(UTC),
            item.body,
            headers,
        )
        self.sent.append(delivery)
        if not delivery.ok and attempt < self.behaviour.retry_on_failure:
            self._spawn(self._retry(item, attempt + 1, copy))
            return
        self.pending = max(0, self.pending - 1)

    async def _retry(self, item: Outgoing, attempt: int, copy: int) -> None:
        await asyncio.sleep(self.behaviour.retry_delay_ms / 1000)
        await self._attempt(item, attempt, copy)

    @staticmethod
    def _headers(item: Outgoing, attempt: int) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT[item.service],
        }
        if item.service == "jira":
            headers["X-Atlassian-Webhook-Identifier"] = item.identifier
            headers["X-Atlassian-Webhook-Flow"] = "Retry" if attempt else "Primary"
            if attempt:
                headers["X-Atlassian-Webhook-Retry"] = str(attempt)
        if item.target.secret:
            headers[SIGNATURE_HEADER[item.service]] = signature(item.target.secret, item.body)
        return headers

    # -- the control route ---------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [Route(CONTROL_PATH, self._control, methods=["GET", "POST", "DELETE"])]

    def state(self) -> Json:
        return {
            **self.settings(),
            "pending": self.pending,
            "deliveries": [d.json() for d in self.sent],
        }

    async def _control(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.reset()
        elif request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object")
                self.configure(body)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, 400)
        return JSONResponse(self.state())


def _target(service: str, raw: object) -> Target:
    if not isinstance(raw, dict):
        raise ValueError(f"{service}: expected an object with a url, or null")
    unknown = sorted(set(raw) - {"url", "secret", "events", "jql", "verify"})
    if unknown:
        raise ValueError(f"{service}: unknown setting(s): {', '.join(unknown)}")
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"{service}: url must be an http(s) URL")
    secret = raw.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise ValueError(f"{service}: secret must be a string")
    events = raw.get("events")
    if events is None:
        chosen = DEFAULT_EVENTS[service]
    elif isinstance(events, list) and all(isinstance(e, str) for e in events):
        chosen = frozenset(events)
        if bad := sorted(chosen - KNOWN_EVENTS[service]):
            known = ", ".join(sorted(KNOWN_EVENTS[service]))
            raise ValueError(f"{service}: unknown event(s) {', '.join(bad)} (known: {known})")
    else:
        raise ValueError(f"{service}: events must be a list of event names")
    jql = raw.get("jql")
    if jql is not None and (service != "jira" or not isinstance(jql, str)):
        raise ValueError(f"{service}: jql is a string, for jira only")
    verify = raw.get("verify", True)
    if not isinstance(verify, bool | str):
        raise ValueError(f"{service}: verify is true, false or a CA bundle path")
    return Target(url, secret or None, chosen, jql or None, verify)


def _behaviour_value(name: str, value: object) -> object:
    if name in ("duplicate", "shuffle"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if name == "seed":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError("seed must be an integer or null")
        return value
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")
    return int(value) if name == "retry_on_failure" else float(value)
