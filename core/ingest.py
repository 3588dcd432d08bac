"""Storing a delivery: new anomalies are added, known ones updated, status changes recorded.

One delivery is one store transaction, so a webhook is stored whole or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime

import orjson

from anomaly_desk.core.archive import ArchiveDamaged
from anomaly_desk.core.documents import (
    LOCAL_KEYS,
    AnomalyDocument,
    DeliveryRecord,
    Imported,
    QuarantinedDelivery,
    Stale,
    StatusChanged,
    new_document,
    new_row,
    with_stale,
)
from anomaly_desk.core.jsontypes import JsonMap, JsonObject
from anomaly_desk.core.models import Anomaly, Ref, is_thin
from anomaly_desk.core.store import Op, Put, Store
from anomaly_desk.core.views import IngestResultView, QuarantineNote
from anomaly_desk.core.vocabulary import PLATFORM, IngestOutcome
from anomaly_desk.core.webhooks import Delivery

log = logging.getLogger(__name__)


def _cold(store: Store, anomaly_id: int) -> AnomalyDocument | None:
    """The cold record a delivery merges onto. One the archive cannot read (damage, a month
    deleted meanwhile) must not refuse the whole delivery, which the platform would retry
    forever: the delivery starts the anomaly afresh, and the archive keeps the old record (it
    is append-only) for a person to recover."""
    try:
        return store.cold_doc(anomaly_id)
    except (ArchiveDamaged, OSError, ValueError) as exc:
        log.error(
            "anomaly %d: its cold archive record cannot be read (%s); stored afresh",
            anomaly_id,
            exc,
        )
        return None


def stored_doc(store: Store, anomaly_id: int) -> AnomalyDocument | None:
    """The anomaly as stored: hot, else in the cold archive (issue #16)."""
    return store.anomaly_doc(anomaly_id) or _cold(store, anomaly_id)


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


_PLATFORM_SKIPS = frozenset((*LOCAL_KEYS, "id", "status", "odd"))  # compared apart, or never


def _changes(existing: AnomalyDocument, anomaly: Anomaly) -> dict[str, object]:
    """The values the platform sent that differ from the stored ones, as validated.

    Only keys the platform sent count, so an update never blanks a field; ``id`` is the key,
    ``status`` and ``odd`` have their own rules, and the desk's own keys are never taken from a
    delivery."""
    changed: dict[str, object] = {}  # validated values of any field type, for model_copy
    values, current = anomaly.__dict__, existing.__dict__
    for key in anomaly.model_fields_set:  # declared fields (and extras, compared below)
        if key in values and key not in _PLATFORM_SKIPS and current.get(key) != values[key]:
            value = values[key]
            if isinstance(value, Ref) and isinstance(mine := current.get(key), Ref):
                value = value.named_from(mine) or value  # its known name stays
                if value == mine:
                    continue  # the same container by id alone: its known name stays
            changed[key] = value
    extra = anomaly.__pydantic_extra__
    if extra:
        stored = existing.__pydantic_extra__ or {}
        for key, value in extra.items():
            if key not in _PLATFORM_SKIPS and stored.get(key) != value:
                changed[key] = value
    return changed


# What an older delivery may add to an anomaly stored thin: what a status event lacks and no
# platform clears. Never its texts, tags or fields: a newer delivery may have emptied those.
STALE_FILLS = frozenset(
    {
        "failed_checks",
        "weight",
        "datastore",
        "container",
        "created",
        "url",
        "uuid",
        "fingerprint",
        "anomalous_records_count",
    }
)


def _fills(existing: AnomalyDocument, anomaly: Anomaly) -> dict[str, object]:
    """What an older delivery may still add to an anomaly stored thin (its checks, weight, a
    container's name when the status event came first): values it lacks, never one it holds."""
    if not is_thin(existing):
        return {}
    fills: dict[str, object] = {}
    for key, value in _changes(existing, anomaly).items():
        if key not in STALE_FILLS:
            continue
        mine = getattr(existing, key, None)
        if mine in (None, [], "", ()):
            fills[key] = value
        elif isinstance(mine, Ref) and isinstance(value, Ref) and (ref := mine.named_from(value)):
            fills[key] = ref
    return fills


def _odd(existing: AnomalyDocument, anomaly: Anomaly) -> JsonMap:
    """Odd values as sent: this delivery's, and the stored ones of keys it did not send again."""
    odd = anomaly.odd or {}
    sent = {key for key in anomaly.model_fields_set if key not in LOCAL_KEYS and key != "status"}
    sent |= {key for key in anomaly.__pydantic_extra__ or () if key not in LOCAL_KEYS}
    sent |= {"id", *odd}
    kept = {key: value for key, value in (existing.odd or {}).items() if key not in sent}
    return {**kept, **odd}


def merge(
    existing: AnomalyDocument | None, anomaly: Anomaly, at: str, sent_at: str | None = None
) -> tuple[AnomalyDocument | None, IngestOutcome]:
    """The anomaly's new document (None when nothing changes) and what happened:
    ``created``, ``updated``, ``status``, ``stale`` or ``unchanged``.

    Order: a delivery the sender stamped earlier than the newest state applied is *stale*: it
    is recorded in history and changes nothing else. Status: the platform's status is compared
    with the last status *the platform* reported (``platform_status``), not with ours, so a
    redelivered "Active" never undoes an acknowledgement made here.
    """
    if existing is None:
        return new_document(anomaly, at, sent_at), IngestOutcome.CREATED
    last = existing.platform_at
    if sent_at and last and sent_at < last:
        status = anomaly.status
        seen = any(
            isinstance(entry, Stale) and entry.sent_at == sent_at and entry.status == status
            for entry in existing.history[-20:]
        )
        fills = _fills(existing, anomaly)  # what it lacks, never a change (a thin one first)
        filled = existing.model_copy(update={**fills, "updated_at": at}) if fills else existing
        if seen:
            return (filled if fills else None), IngestOutcome.STALE
        return with_stale(filled, status, sent_at, at), IngestOutcome.STALE
    changed = _changes(existing, anomaly)
    reported = existing.reported_status
    new_status = anomaly.status if "status" in anomaly.model_fields_set else reported
    odd = _odd(existing, anomaly)
    if odd != (existing.odd or {}):
        changed["odd"] = odd
    newer = sent_at is not None and (last is None or sent_at > last)
    if not changed and new_status == reported and not newer:
        return None, IngestOutcome.UNCHANGED
    outcome = IngestOutcome.UPDATED if changed else IngestOutcome.UNCHANGED
    if newer:
        changed["platform_at"] = sent_at
    if new_status != reported:
        changed["platform_status"] = new_status
        if new_status != existing.status:
            entry = StatusChanged(at=at, from_=existing.status, to=new_status, by=PLATFORM)
            changed["status"] = new_status
            changed["history"] = (*existing.history, entry)
            outcome = IngestOutcome.STATUS
    if outcome != IngestOutcome.UNCHANGED:
        changed["updated_at"] = at
    return existing.model_copy(update=changed), outcome


IMPORT = "import"  # Delivery.kind of a page read from the platform's API


def imported(doc: AnomalyDocument, at: str, status: str, created: bool) -> AnomalyDocument:
    """A created or changed anomaly, its history saying the import did it (an anomaly the import
    created has that one line instead of ``received``)."""
    history = () if created else doc.history
    return doc.model_copy(update={"history": (*history, Imported(at=at, status=status))})


def quarantine_ops(store: Store, delivery: Delivery, key: str, at: str) -> list[Op]:
    """Items without a usable id, kept with their raw JSON and reason (once per distinct item)."""
    ops: list[Op] = []
    for item in delivery.quarantined:
        raw = orjson.dumps(item.raw, option=orjson.OPT_SORT_KEYS)
        qkey = hashlib.sha256(raw).hexdigest()[:20]
        if not store.has("quarantine", qkey) and all(op.key != qkey for op in ops):
            record = QuarantinedDelivery(
                key=qkey, at=at, delivery=key, path=item.path, reason=item.reason, raw=item.raw
            )
            ops.append(Put("quarantine", qkey, record))
    return ops


def plan_delivery(
    store: Store, delivery: Delivery, key: str, at: str
) -> tuple[list[Op], IngestResultView, list[AnomalyDocument]]:
    """The ops that store a delivery, what it did, and the anomalies whose status changed."""
    result = IngestResultView(delivery=key)
    result.quarantined = [
        QuarantineNote(path=q.path, reason=q.reason) for q in delivery.quarantined
    ]
    sent_at = iso(delivery.sent_at) if delivery.sent_at else None
    ops: list[Op] = quarantine_ops(store, delivery, key, at)
    changed: list[AnomalyDocument] = []
    written: dict[int, AnomalyDocument] = {}  # the same anomaly twice in one delivery
    created: dict[int, JsonObject] = {}
    importing = delivery.kind == IMPORT
    for anomaly in delivery.anomalies:
        existing = written.get(anomaly.id)
        if existing is None:
            # not hot: maybe cold (issue #16), then merged onto and hot again with this put
            existing = stored_doc(store, anomaly.id)
        if existing is None and importing:
            first = imported(new_document(anomaly, at, sent_at), at, anomaly.status, created=True)
            written[anomaly.id] = first
            result.created.append(anomaly.id)
            ops.append(Put("anomalies", str(anomaly.id), first))
            continue
        if existing is None and anomaly.id not in created:
            # The hot path: a new anomaly is written as its stored JSON, built directly.
            created[anomaly.id] = row = new_row(anomaly, at, sent_at)
            result.created.append(anomaly.id)
            ops.append(Put("anomalies", str(anomaly.id), row))
            continue
        if existing is None:  # created earlier in this very delivery
            existing = AnomalyDocument.model_validate(created[anomaly.id])
        doc, outcome = merge(existing, anomaly, at, sent_at)
        if outcome == IngestOutcome.CREATED:
            result.created.append(anomaly.id)
        elif outcome == IngestOutcome.STALE:
            result.stale.append(anomaly.id)
        elif outcome == IngestOutcome.UNCHANGED:
            result.unchanged.append(anomaly.id)
        else:
            result.updated.append(anomaly.id)
            if outcome == IngestOutcome.STATUS:
                result.status_changed.append(anomaly.id)
                assert doc is not None
                changed.append(doc)
        if doc is not None:
            if importing:
                doc = imported(doc, at, doc.platform_status or doc.status, created=False)
            written[anomaly.id] = doc
            ops.append(Put("anomalies", str(anomaly.id), doc))
    if ops and is_redelivery_key(key):
        record = DeliveryRecord(at=time.time(), anomalies=tuple(a.id for a in delivery.anomalies))
        ops.append(Put("deliveries", key, record))
    return ops, result, changed
