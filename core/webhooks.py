"""Turning a webhook body into anomalies: JSON, then shape, with precise error paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pydantic

from core.models import Anomaly, FlowEnvelope, anomalies_from_envelope, error_path


class PayloadError(Exception):
    """The body is not acceptable. ``status`` is 400 (not JSON) or 422 (wrong shape)."""

    def __init__(self, status: int, title: str, errors: list[dict[str, str]]):
        super().__init__(title)
        self.status = status
        self.title = title
        self.errors = errors

    @property
    def detail(self) -> str:
        return "; ".join(f"{e['path']}: {e['message']}" for e in self.errors)


@dataclass(slots=True)
class Delivery:
    """What one webhook carried."""

    kind: str  # "flow" | "anomaly" | "list"
    anomalies: list[Anomaly]
    trigger: str | None = None  # "anomaly" | "status" | other, for flow deliveries
    meta: dict[str, Any] = field(default_factory=dict)


def parse_delivery(body: bytes) -> Delivery:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(
            400, "Body is not valid JSON", [{"path": "(body)", "message": str(exc)}]
        ) from None
    if isinstance(data, dict) and ("event" in data or "context" in data):
        try:
            envelope = FlowEnvelope.model_validate(data)
        except pydantic.ValidationError as exc:
            raise _schema_error(exc, ()) from None
        items = anomalies_from_envelope(envelope)
        anomalies = _validate(items, ("context", "anomalies"))
        meta = {"flow": (envelope.flow or {}).get("name"), "target_link": envelope.target_link}
        return Delivery("flow", anomalies, envelope.trigger_type, meta)
    if isinstance(data, dict):
        return Delivery("anomaly", _validate([data], None))
    if isinstance(data, list):
        return Delivery("list", _validate(data, ()))
    raise PayloadError(
        422,
        "Body has the wrong shape",
        [{"path": "(body)", "message": "expected a Flow envelope, an anomaly object or a list"}],
    )


def _validate(items: list[Any], prefix: tuple[str, ...] | None) -> list[Anomaly]:
    """Validate every item; report every error, each with its full path."""
    anomalies: list[Anomaly] = []
    errors: list[dict[str, str]] = []
    for index, item in enumerate(items):
        base: tuple[str | int, ...] = () if prefix is None else (*prefix, index)
        try:
            anomalies.append(Anomaly.model_validate(item))
        except pydantic.ValidationError as exc:
            errors.extend(_errors(exc, base))
    if errors:
        raise PayloadError(422, "Anomaly failed validation", errors)
    return anomalies


def _errors(exc: pydantic.ValidationError, base: tuple[str | int, ...]) -> list[dict[str, str]]:
    return [{"path": error_path((*base, *e["loc"])), "message": e["msg"]} for e in exc.errors()]


def _schema_error(exc: pydantic.ValidationError, base: tuple[str | int, ...]) -> PayloadError:
    return PayloadError(422, "Webhook envelope failed validation", _errors(exc, base))
