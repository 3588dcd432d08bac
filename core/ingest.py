"""Storing a delivery: new anomalies are added, known ones updated, status changes recorded.

One delivery is one store transaction, so a webhook is stored whole or not at all.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.models import Anomaly
from core.store import Op, Put, Store
from core.webhooks import Delivery

LOCAL_KEYS = ("received_at", "updated_at", "history", "comments", "links")


def delivery_key(webhook_id: str | None, body: bytes) -> str:
    """Redeliveries are recognised by the sender's ``webhook-id``, else by the exact body."""
    if webhook_id:
        return f"id:{webhook_id}"
    return "sha256:" + hashlib.sha256(body).hexdigest()


def iso(at: datetime) -> str:
    """UTC, millisecond precision, ``Z``: the one timestamp format stored documents use."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


@dataclass(slots=True)
class IngestResult:
    delivery: str
    duplicate: bool = False
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    status_changed: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery,
            "duplicate": self.duplicate,
            "created": self.created,
            "updated": self.updated,
            "status_changed": self.status_changed,
            "unchanged": self.unchanged,
        }


def platform_fields(anomaly: Anomaly) -> dict[str, Any]:
    """The keys the platform actually sent, JSON-ready (so an update never blanks a field)."""
    full = anomaly.model_dump(mode="json")
    sent = anomaly.model_fields_set | set(anomaly.model_extra or ())
    sent.add("id")
    return {key: full[key] for key in sent if key in full and key not in LOCAL_KEYS}


def merge(existing: dict[str, Any] | None, anomaly: Anomaly, at: str) -> dict[str, Any] | None:
    """The anomaly's new document, or None when the delivery changes nothing."""
    if existing is None:
        doc = {key: value for key, value in anomaly.model_dump(mode="json").items()}
        doc.update(received_at=at, updated_at=at, comments=[], links=[])
        doc["history"] = [{"at": at, "kind": "received", "status": doc["status"], "by": "platform"}]
        return doc
    incoming = platform_fields(anomaly)
    if all(existing.get(key) == value for key, value in incoming.items()):
        return None
    doc = {**existing, **incoming, "updated_at": at}
    if incoming.get("status", existing["status"]) != existing["status"]:
        change = {
            "at": at,
            "kind": "status",
            "from": existing["status"],
            "to": doc["status"],
            "by": "platform",
        }
        doc["history"] = [*existing.get("history", []), change]
    return doc


def plan_delivery(
    store: Store, delivery: Delivery, key: str, at: str
) -> tuple[list[Op], IngestResult, list[dict[str, Any]]]:
    """The ops that store a delivery, what it did, and the anomalies whose status changed."""
    result = IngestResult(delivery=key)
    ops: list[Op] = []
    changed: list[dict[str, Any]] = []
    staged: dict[int, dict[str, Any]] = {}  # the same anomaly twice in one delivery
    for anomaly in delivery.anomalies:
        existing = staged.get(anomaly.id) or store.anomaly(anomaly.id)
        doc = merge(existing, anomaly, at)
        if doc is None:
            result.unchanged.append(anomaly.id)
            continue
        staged[anomaly.id] = doc
        if existing is None:
            result.created.append(anomaly.id)
        else:
            result.updated.append(anomaly.id)
            if doc["status"] != existing["status"]:
                result.status_changed.append(anomaly.id)
                changed.append(doc)
        ops.append(Put("anomalies", str(anomaly.id), doc))
    if ops:
        record = {"at": time.time(), "anomalies": [a.id for a in delivery.anomalies]}
        ops.append(Put("deliveries", key, record))
    return ops, result, changed
