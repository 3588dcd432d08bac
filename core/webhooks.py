"""Turning a webhook body into anomalies: JSON, then shape, keeping whatever is usable.

Every anomaly with a usable id is kept (odd values as sent, see :mod:`core.salvage`); one without
is *quarantined* with its raw JSON and the reason while its siblings are stored. Only a body with
nothing usable at all is refused, with the paths of at most ``MAX_ERRORS`` problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic

from anomaly_desk.core.jsontypes import JsonMap, loads_any
from anomaly_desk.core.models import FlowEnvelope, NoUsableId, anomalies_from_envelope, error_path
from anomaly_desk.core.salvage import parse_date, tolerant

MAX_ERRORS = 20  # listed in a refusal; the rest are counted
MAX_MESSAGE = 300  # characters of one error message
MAX_DEPTH = 64  # nesting levels of a body; deeper is hostile, never a platform payload
MAX_ANOMALIES = 10_000  # per delivery: bounds the work (and the event-loop time) of one request
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")


class PayloadError(Exception):
    """The body is not acceptable: 400 not JSON, 413 too many anomalies, 422 nothing usable."""

    def __init__(self, status: int, title: str, errors: list[dict[str, str]], total: int = 0):
        super().__init__(title)
        self.status = status
        self.title = title
        self.total = max(total, len(errors))
        self.errors = [
            {"path": e["path"], "message": e["message"][:MAX_MESSAGE]} for e in errors[:MAX_ERRORS]
        ]

    @property
    def detail(self) -> str:
        text = "; ".join(f"{e['path']}: {e['message']}" for e in self.errors)
        more = self.total - len(self.errors)
        return f"{text}; and {more} more" if more > 0 else text


@dataclass(slots=True)
class Quarantined:
    """An item of a delivery that could not be stored as an anomaly, kept with the reason."""

    path: str
    reason: str
    raw: Any


@dataclass(slots=True)
class Delivery:
    """What one webhook carried."""

    kind: str  # "flow" | "anomaly" | "list"
    anomalies: list[Any]  # core.models.Anomaly
    trigger: str | None = None  # "anomaly" | "status" | other, for flow deliveries
    meta: JsonMap = field(default_factory=dict)
    sent_at: datetime | None = None  # the sender's own time for this state (trigger.timestamp)
    quarantined: list[Quarantined] = field(default_factory=list)


def load_json(body: bytes) -> Any:
    """JSON, decoded leniently: a UTF-8 BOM is skipped; invalid UTF-8 and lone surrogates
    become U+FFFD instead of costing the delivery. Raises PayloadError(400) for non-JSON."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:  # what orjson refuses on encoding grounds or for numbers: NaN, 1e999, 10**400
        data = loads_any(body)
    except (ValueError, RecursionError):
        raise PayloadError(
            400, "Body is not valid JSON", [{"path": "(body)", "message": str(error)}]
        ) from None
    _refuse_deep(data)
    return _scrub(data)


def _scrub(value: Any) -> Any:
    """Lone surrogates (valid JSON escapes, invalid Unicode) replaced, so the store can write it."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def _too_deep(data: Any) -> str | None:
    """The path of the first value nested deeper than MAX_DEPTH, iteratively (no recursion)."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(data, 0, ())]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            return error_path(path[:8]) + " …"
        if isinstance(value, dict):
            stack.extend((v, depth + 1, (*path, str(k))) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, (*path, i)) for i, v in enumerate(value))
    return None


def _refuse_deep(data: Any) -> None:
    where = _too_deep(data)
    if where is not None:
        raise PayloadError(
            422,
            "Body is nested too deeply",
            [{"path": where, "message": f"nested deeper than {MAX_DEPTH} levels"}],
        )


def parse_delivery(body: bytes) -> Delivery:
    data = load_json(body)
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:  # cheap test first: most bodies pass
        _refuse_deep(data)
    if isinstance(data, dict) and ("event" in data or "context" in data):
        try:
            envelope = FlowEnvelope.model_validate(data)
        except pydantic.ValidationError as exc:
            raise PayloadError(
                422, "Webhook envelope failed validation", _errors(exc), len(exc.errors())
            ) from None
        items = anomalies_from_envelope(envelope)
        delivery = Delivery("flow", [], envelope.trigger_type)
        delivery.meta = {
            "flow": (envelope.flow or {}).get("name"),
            "target_link": envelope.target_link,
        }
        delivery.sent_at = _sent_at(data)
        return _collect(delivery, items, ("context", "anomalies"))
    if isinstance(data, dict):
        return _collect(Delivery("anomaly", []), [data], None)
    if isinstance(data, list):
        return _collect(Delivery("list", []), data, ())
    raise PayloadError(
        422,
        "Body has the wrong shape",
        [{"path": "(body)", "message": "expected a Flow envelope, an anomaly object or a list"}],
    )


def _collect(delivery: Delivery, items: list[Any], prefix: tuple[str, ...] | None) -> Delivery:
    """Keep every usable anomaly; quarantine the rest, unless nothing at all is usable."""
    if len(items) > MAX_ANOMALIES:
        raise PayloadError(
            413,
            "Too many anomalies in one delivery",
            [
                {
                    "path": error_path(prefix or ()),
                    "message": f"{len(items)} anomalies; send at most {MAX_ANOMALIES} per delivery",
                }
            ],
        )
    for index, item in enumerate(items):
        try:
            delivery.anomalies.append(tolerant(item))
        except NoUsableId as exc:
            path = error_path(() if prefix is None else (*prefix, index))
            delivery.quarantined.append(Quarantined(path, str(exc), item))
    if delivery.quarantined and not delivery.anomalies:
        errors = [
            {"path": _join(q.path, q.reason), "message": q.reason} for q in delivery.quarantined
        ]
        raise PayloadError(422, "No usable anomaly in the delivery", errors, len(errors))
    return delivery


def _join(path: str, reason: str) -> str:
    """``context.anomalies[1]`` + ``id: missing`` → ``context.anomalies[1].id``."""
    if reason.startswith("id:"):
        return "id" if path == "(body)" else f"{path}.id"
    return path


def _sent_at(envelope: JsonMap) -> datetime | None:
    """The sender's time for this delivery: ``trigger.timestamp`` (or a close spelling)."""
    trigger = envelope.get("trigger")
    candidates = [envelope.get("timestamp")]
    if isinstance(trigger, dict):
        candidates = [trigger.get(k) for k in ("timestamp", "triggered_at", "time")] + candidates
    for value in candidates:
        if isinstance(value, str) and (at := parse_date(value)) is not None:
            try:
                return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
            except OverflowError:  # 9999-12-31T23:59-01:00: no UTC moment; not a time
                continue
    return None


def _errors(exc: pydantic.ValidationError) -> list[dict[str, str]]:
    return [{"path": error_path(e["loc"]), "message": e["msg"]} for e in exc.errors()[:MAX_ERRORS]]
