"""The platform's anomaly and every webhook body we accept.

Tolerant of the platform's published variants (``field`` string or ``fields`` list, nested or flat
failed checks, tag objects or names, status in any case), strict about what we rely on: an
anomaly is keyed by an integer ``id``. Unknown keys are kept, so nothing the platform sends is
thrown away.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from anomaly_desk.core.jsontypes import JsonMap
from anomaly_desk.core.vocabulary import ARCHIVED as ARCHIVED
from anomaly_desk.core.vocabulary import OPEN as OPEN
from anomaly_desk.core.vocabulary import Status as Status

_STATUS_BY_NAME = {status.value.lower(): status for status in Status}


def _status(value: Any) -> Any:
    """Accept any spelling case the platform uses (``active``, ``ACKNOWLEDGED``)."""
    if isinstance(value, str):
        return _STATUS_BY_NAME.get(value.strip().lower(), value)
    return value


# An integer the store can write (orjson: 64 bits). A longer one (``"1" + "0"*400`` as text,
# which lax validation would make an int) fits no field: kept as sent in ``odd``.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]


class Ref(BaseModel):
    """A datastore or container reference: ``{"id": 7, "name": "orders"}``."""

    model_config = ConfigDict(extra="allow")

    id: Int64 | str | None = None
    name: str | None = None

    def named_from(self, other: Ref) -> Ref | None:
        """This reference, given by id alone (a Flow's ``container_id``), with the name
        ``other`` has for the same id; None when it has a name or ``other`` names no such id."""
        if self.name or not other.name or self.id is None or self.id != other.id:
            return None
        return self.model_copy(update={"name": other.name})


def _ref(value: Any) -> Any:
    """A bare name or id is a reference too."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"id": value}
    return value


def _envelope_ref(value: Any) -> Any:
    """The envelope's datastore: a reference if it looks like one, else nothing."""
    value = _ref(value)
    if not isinstance(value, dict):
        return None
    ident, name = value.get("id"), value.get("name")
    return {
        **value,
        "id": ident if isinstance(ident, int | str) and not isinstance(ident, bool) else None,
        "name": name if isinstance(name, str) else None,
    }


def _names(value: Any) -> Any:
    """Fields and tags arrive as names, ``{"name": ...}`` objects or one comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [item.get("name") if isinstance(item, dict) else item for item in value]
    return value


def _check(data: Any) -> Any:
    """A failed check, flattened from the nested ``quality_check`` form or the flat one."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    nested = data.pop("quality_check", None)
    if isinstance(nested, dict):
        data.setdefault("check_id", nested.get("id"))
        data.setdefault("rule_type", nested.get("rule_type"))
        data.setdefault("fields", nested.get("fields") or nested.get("field_names") or [])
        if not data.get("message"):
            data["message"] = nested.get("description")
    for alias in ("quality_check_id", "id"):
        if alias in data and data.get("check_id") is None:
            data["check_id"] = data.pop(alias)
    if "rule" in data and data.get("rule_type") is None:
        data["rule_type"] = data.pop("rule")
    if "fields" in data:
        data["fields"] = _names(data["fields"])
    return data


class FailedCheck(BaseModel):
    """One failed quality check (normalised by ``Anomaly`` before validation)."""

    model_config = ConfigDict(extra="allow")

    check_id: Int64 | str | None = None
    rule_type: str | None = None
    fields: list[str] = Field(default_factory=list)
    message: str | None = None


MAX_ID = 2**63 - 1
# Printable, yet shows nothing: fillers and blanks a status made of would look empty in a note.
_INVISIBLE = dict.fromkeys(map(ord, "\u115f\u1160\u3164\uffa0\u2800\u200b\u200c\u200d\u2060\ufeff"))
STATUS_MAX = 64  # characters: a longer "status" is not one
TYPE_CATEGORIES = ("record", "shape")


class NoUsableId(ValueError):
    """An anomaly without an integer id we can key it by: it is quarantined, not stored."""


def usable_id(value: Any) -> int:
    """The one rule for anomaly ids, here and in every URL: a whole number from 1 to 2**63-1.

    The platform's ids are positive integers; a digit string or an integral float is the same
    id written another way. Anything else cannot key a document.
    """
    if isinstance(value, bool):
        raise NoUsableId(f"id: {value!r} is not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        shown = "missing" if value is None else f"{str(value)[:40]!r} is not an integer"
        raise NoUsableId(f"id: {shown}")
    if not 1 <= value <= MAX_ID:
        raise NoUsableId(f"id: {value} is outside 1..{MAX_ID}")
    return value


def type_category(value: Any) -> str | None:
    """``record`` or ``shape`` when the platform's spelling maps to one (``Record``,
    ``record_anomaly``, ``ShapeAnomaly``), else None."""
    if not isinstance(value, str):
        return None
    letters = "".join(ch for ch in value.lower() if ch.isalpha())
    return next((c for c in TYPE_CATEGORIES if letters.startswith(c)), None)


# Where the platform may send a field under another name (the first one wins).
ALIASES: dict[str, tuple[str, ...]] = {
    "fields": ("fields", "field"),
    "created": ("created", "detected_at", "created_at"),
    "url": ("url", "link"),
    "datastore": ("datastore", "datastore_id", "datastore_name"),
    "container": ("container", "container_id", "container_name"),
}


class Anomaly(BaseModel):
    """An anomaly as the platform describes it (``GET /api/anomalies/{id}`` or a Flow context).

    All of the platform's variants are folded in one pass before validation: one Python call per
    anomaly instead of one per field keeps a webhook cheap (this runs on every delivery). Values
    that fit no field are not a reason to lose the anomaly: :func:`tolerant` keeps them, as sent,
    in ``odd``.
    """

    model_config = ConfigDict(extra="allow")

    id: int
    uuid: str | None = None
    type: str = "record"  # the platform's spelling when it maps to no category
    status: Status | str = Field(Status.ACTIVE, union_mode="left_to_right")
    weight: Int64 | float | None = None
    datastore: Ref | None = None
    container: Ref | None = None
    fields: list[str] = Field(default_factory=list)
    message: str | None = None
    description: str | None = None
    failed_checks: list[FailedCheck] = Field(default_factory=list)
    global_tags: list[str] = Field(default_factory=list)
    anomalous_records_count: Int64 | None = None
    fingerprint: Int64 | str | None = None
    created: datetime | None = None
    url: str | None = None
    odd: JsonMap | None = None  # values that fit no field, as the platform sent them

    @model_validator(mode="before")
    @classmethod
    def _variants(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        ident = data.get("id")
        if type(ident) is not int or not 1 <= ident <= MAX_ID:  # the common case, checked fast
            data["id"] = usable_id(ident)
        if "fields" not in data and "field" in data:
            data["fields"] = data.pop("field")
        if "fields" in data:
            data["fields"] = _names(data["fields"])
        if "global_tags" in data:
            data["global_tags"] = _names(data["global_tags"])
        if isinstance(data.get("status"), str):
            data["status"] = _status(data["status"])
        if isinstance(data.get("type"), str) and data["type"] not in TYPE_CATEGORIES:
            given = data["type"].strip()
            category = type_category(given)
            if category and category != given.lower():  # RecordAnomaly: record, spelling kept
                data["odd"] = {**(data.get("odd") or {}), "type": data["type"]}
            data["type"] = category or given
        for key in ("datastore", "container"):
            if data.get(key) is None and data.get(f"{key}_id") is not None:
                data[key] = {"id": data[f"{key}_id"], "name": data.get(f"{key}_name")}
            elif key in data:
                data[key] = _ref(data[key])
        if isinstance(data.get("failed_checks"), list):
            data["failed_checks"] = [_check(item) for item in data["failed_checks"]]
        if "created" not in data:
            for alias in ("detected_at", "created_at"):
                if alias in data:
                    data["created"] = data[alias]
                    break
        if "url" not in data and "link" in data:
            data["url"] = data["link"]
        return data

    @field_validator("status")
    @classmethod
    def _usable_status(cls, value: Status | str) -> Status | str:
        """A status this version does not know is kept as sent, but one that names nothing (blank,
        control characters, a paragraph) is not a status: kept aside in ``odd`` instead."""
        if isinstance(value, Status):
            return value
        visible = value.translate(_INVISIBLE).strip()
        if not visible or not value.isprintable() or len(value) > STATUS_MAX:
            raise ValueError("not a usable status")
        return value

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: int | float | None) -> int | float | None:
        """``1e999`` or ``NaN`` would be stored as null and still compared: kept in ``odd``."""
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("not a finite number")
        return value

    @field_validator("created")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Stored as UTC so ISO strings sort as times; a naive time is taken as UTC."""
        if value is None:
            return None
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC instant
            raise ValueError("a moment no UTC clock holds") from None

    @property
    def location(self) -> str:
        """``datastore › container`` as people say it."""
        parts = [ref.name or str(ref.id) for ref in (self.datastore, self.container) if ref]
        return " › ".join(part for part in parts if part and part != "None")

    def link(self, platform_url: str | None = None) -> str | None:
        """The deep link back to the platform; built from the platform URL when absent."""
        if self.url:
            return self.url
        if platform_url:
            return f"{platform_url.rstrip('/')}/anomalies/{self.id}"
        return None


def _text_or_none(value: Any) -> Any:
    """Envelope metadata we only display: a scalar of another type is shown as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None


LenientText = Annotated[str | None, BeforeValidator(_text_or_none)]


def _object_or_none(value: Any) -> Any:
    return value if isinstance(value, dict) else None


LenientObject = Annotated[JsonMap | None, BeforeValidator(_object_or_none)]


def _list_or_empty(value: Any) -> Any:
    return value if isinstance(value, list) else []


class Trigger(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: LenientText = None


class FlowContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Items are checked one by one later (a bad one is quarantined, not the whole envelope).
    anomalies: list[Any] = Field(default_factory=list)
    containers: list[Any] = Field(default_factory=list)
    quality_checks: list[Any] = Field(default_factory=list)

    @field_validator("containers", "quality_checks", mode="before")
    @classmethod
    def _only_lists(cls, value: Any) -> Any:
        """Lookup tables only: a missing or malformed one just completes nothing."""
        return _list_or_empty(value)


class FlowEnvelope(BaseModel):
    """The platform's Flow webhook: ``{"event": "qualytics.flow.triggered", "context": {...}}``."""

    model_config = ConfigDict(extra="allow")

    event: str
    flow: LenientObject = None
    trigger: Annotated[Trigger | None, BeforeValidator(_object_or_none)] = None
    datastore: Annotated[Ref | None, BeforeValidator(_envelope_ref)] = None
    context: FlowContext
    operation: LenientObject = None
    target_link: LenientText = None

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str) -> str:
        if not value.startswith("qualytics.flow"):
            raise ValueError(f"unsupported event {value!r}; expected 'qualytics.flow.triggered'")
        return value

    @property
    def trigger_type(self) -> str:
        """Normalised trigger: ``anomaly`` for detections, ``status`` for status changes."""
        raw = (self.trigger.type if self.trigger else None) or "anomaly"
        raw = raw.strip().lower()
        return "status" if "status" in raw else "anomaly" if "anomal" in raw else raw


def _by_id(items: list[Any]) -> dict[int | str, JsonMap]:
    """A context lookup table; entries without a scalar id cannot be referred to anyway."""
    return {
        item["id"]: item
        for item in items
        if isinstance(item, dict) and isinstance(item.get("id"), int | str)
    }


def _ref_key(value: Any) -> int | str | None:
    return value if isinstance(value, int | str) else None


def anomalies_from_envelope(envelope: FlowEnvelope) -> list[Any]:
    """The envelope's anomalies, completed from its context (container names, datastore, link)."""
    containers = _by_id(envelope.context.containers)
    checks = _by_id(envelope.context.quality_checks)
    datastore = envelope.datastore.model_dump(exclude_none=True) if envelope.datastore else None
    out = []
    for raw in envelope.context.anomalies:
        if not isinstance(raw, dict):
            out.append(raw)  # quarantined by the caller, with its path
            continue
        item = dict(raw)
        cid = _ref_key(item.get("container_id"))
        if item.get("container") is None and cid in containers:
            item["container"] = {"id": cid, "name": containers[cid].get("name")}
        if item.get("datastore") is None and item.get("datastore_id") is None and datastore:
            item["datastore"] = datastore
        qids = item.get("quality_check_ids")
        if not item.get("failed_checks") and isinstance(qids, list) and qids:
            item["failed_checks"] = [
                {"quality_check": checks[key]}
                if (key := _ref_key(qid)) is not None and key in checks
                else {"check_id": qid}
                for qid in qids
            ]
        out.append(item)
    return out


def error_path(loc: tuple[int | str, ...]) -> str:
    """``("context", "anomalies", 2, "id")`` → ``context.anomalies[2].id``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(body)"


def is_thin(anomaly: Anomaly) -> bool:
    """Whether a ticket for this anomaly would lack what it needs (its failed checks, weight, the
    container's name): a Flow's status event, say. Enrichment and later deliveries complete it;
    rules wait for that or judge it again (core.writeback, ``Desk._completed``)."""
    container = anomaly.container
    return not anomaly.failed_checks or anomaly.weight is None or not (container and container.name)
