"""Storing a delivery: new anomalies are added, known ones updated, status changes recorded.

One delivery is one store transaction, so a webhook is stored whole or not at all.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.store import Op, Put, Store
from anomaly_desk.core.webhooks import Delivery

LOCAL_KEYS = (
    "received_at",
    "updated_at",
    "history",
    "comments",
    "links",
    "platform_status",
    "platform_at",
)


def delivery_key(webhook_id: str | None, body: bytes) -> str:
    """A name for the delivery. Only the sender's ``webhook-id`` (``id:…``) identifies a
    redelivery; a body hash (``sha256:…``) just names it in logs, since the platform may
    genuinely send the same body twice (Active, Acknowledged, Active again)."""
    if webhook_id:
        return f"id:{webhook_id}"
    return "sha256:" + hashlib.sha256(body).hexdigest()


def is_redelivery_key(key: str) -> bool:
    return key.startswith("id:")


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
    stale: list[int] = field(default_factory=list)
    quarantined: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery,
            "duplicate": self.duplicate,
            "created": self.created,
            "updated": self.updated,
            "status_changed": self.status_changed,
            "unchanged": self.unchanged,
            "stale": self.stale,
            "quarantined": self.quarantined,
        }


def platform_fields(anomaly: Anomaly) -> dict[str, Any]:
    """The keys the platform actually sent, JSON-ready (so an update never blanks a field)."""
    full = anomaly.model_dump(mode="json")
    sent = anomaly.model_fields_set | set(anomaly.model_extra or ())
    sent.add("id")
    return {key: full[key] for key in sent if key in full and key not in LOCAL_KEYS}


def _new_document(anomaly: Anomaly, at: str, sent_at: str | None) -> dict[str, Any]:
    doc = anomaly.model_dump(mode="json")
    if doc.get("odd") is None:
        doc.pop("odd", None)
    doc.update(received_at=at, updated_at=at, comments=[], links=[])
    doc.update(platform_status=doc["status"], platform_at=sent_at)
    doc["history"] = [{"at": at, "kind": "received", "status": doc["status"], "by": "platform"}]
    return doc


def merge(
    existing: dict[str, Any] | None, anomaly: Anomaly, at: str, sent_at: str | None = None
) -> tuple[dict[str, Any] | None, str]:
    """The anomaly's new document (None when nothing changes) and what happened:
    ``created``, ``updated``, ``status``, ``stale`` or ``unchanged``.

    Order: a delivery the sender stamped earlier than the newest state applied is *stale*: it
    is recorded in history and changes nothing else. Status: the platform's status is compared
    with the last status *the platform* reported (``platform_status``), not with ours, so a
    redelivered "Active" never undoes an acknowledgement made here.
    """
    if existing is None:
        return _new_document(anomaly, at, sent_at), "created"
    last = existing.get("platform_at")
    status = str(anomaly.status)
    if sent_at and last and sent_at < last:
        history = existing.get("history") or []
        seen = any(
            h.get("kind") == "stale" and h.get("sent_at") == sent_at and h.get("status") == status
            for h in history[-20:]
        )
        if seen:
            return None, "stale"
        entry = {"at": at, "kind": "stale", "status": status, "sent_at": sent_at, "by": "platform"}
        return {**existing, "history": [*history, entry]}, "stale"
    incoming = platform_fields(anomaly)
    reported = existing.get("platform_status", existing["status"])
    new_status = incoming.pop("status", reported)
    sent = set(incoming) | set(anomaly.odd or ())
    kept_odd = {k: v for k, v in (existing.get("odd") or {}).items() if k not in sent}
    odd = {**kept_odd, **(anomaly.odd or {})}
    incoming.pop("odd", None)
    changed = {key: value for key, value in incoming.items() if existing.get(key) != value}
    if odd != (existing.get("odd") or {}):
        changed["odd"] = odd
    newer = sent_at is not None and (last is None or sent_at > last)
    if not changed and new_status == reported and not newer:
        return None, "unchanged"
    doc = {**existing, **changed}
    outcome = "updated" if changed else "unchanged"
    if newer:
        doc["platform_at"] = sent_at
    if new_status != reported:
        doc["platform_status"] = new_status
        if new_status != existing["status"]:
            doc["status"] = new_status
            change = {
                "at": at,
                "kind": "status",
                "from": existing["status"],
                "to": new_status,
                "by": "platform",
            }
            doc["history"] = [*existing.get("history", []), change]
            outcome = "status"
    if outcome != "unchanged":
        doc["updated_at"] = at
    return doc, outcome


def quarantine_ops(store: Store, delivery: Delivery, key: str, at: str) -> list[Op]:
    """Items without a usable id, kept with their raw JSON and reason (once per distinct item)."""
    ops: list[Op] = []
    for item in delivery.quarantined:
        raw = orjson.dumps(item.raw, option=orjson.OPT_SORT_KEYS)
        qkey = hashlib.sha256(raw).hexdigest()[:20]
        if store.get("quarantine", qkey) is None and all(op.key != qkey for op in ops):
            record = {
                "key": qkey,
                "at": at,
                "delivery": key,
                "path": item.path,
                "reason": item.reason,
                "raw": item.raw,
            }
            ops.append(Put("quarantine", qkey, record))
    return ops


def plan_delivery(
    store: Store, delivery: Delivery, key: str, at: str
) -> tuple[list[Op], IngestResult, list[dict[str, Any]]]:
    """The ops that store a delivery, what it did, and the anomalies whose status changed."""
    result = IngestResult(delivery=key)
    result.quarantined = [{"path": q.path, "reason": q.reason} for q in delivery.quarantined]
    sent_at = iso(delivery.sent_at) if delivery.sent_at else None
    ops: list[Op] = quarantine_ops(store, delivery, key, at)
    changed: list[dict[str, Any]] = []
    staged: dict[int, dict[str, Any]] = {}  # the same anomaly twice in one delivery
    for anomaly in delivery.anomalies:
        existing = staged.get(anomaly.id) or store.anomaly(anomaly.id)
        doc, outcome = merge(existing, anomaly, at, sent_at)
        if outcome == "created":
            result.created.append(anomaly.id)
        elif outcome == "stale":
            result.stale.append(anomaly.id)
        elif outcome == "unchanged":
            result.unchanged.append(anomaly.id)
        else:
            result.updated.append(anomaly.id)
            if outcome == "status":
                result.status_changed.append(anomaly.id)
                changed.append(doc)  # type: ignore[arg-type]
        if doc is not None:
            staged[anomaly.id] = doc
            ops.append(Put("anomalies", str(anomaly.id), doc))
    if ops and is_redelivery_key(key):
        record = {"at": time.time(), "anomalies": [a.id for a in delivery.anomalies]}
        ops.append(Put("deliveries", key, record))
    return ops, result, changed
