"""The platform's anomaly and every webhook body we accept.

Tolerant of the platform's published variants (``field`` string or ``fields`` list, nested or flat
failed checks, tag objects or names, status in any case), strict about what we rely on: an
anomaly is keyed by an integer ``id``. Unknown keys are kept, so nothing the platform sends is
thrown away.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)


class Status(StrEnum):
    ACTIVE = "Active"
    ACKNOWLEDGED = "Acknowledged"
    RESOLVED = "Resolved"
    DUPLICATE = "Duplicate"
    INVALID = "Invalid"
    DISCARDED = "Discarded"


OPEN = frozenset({Status.ACTIVE, Status.ACKNOWLEDGED})
ARCHIVED = frozenset({Status.RESOLVED, Status.DUPLICATE, Status.INVALID, Status.DISCARDED})


_STATUS_BY_NAME = {status.value.lower(): status for status in Status}


def _status(value: Any) -> Any:
    """Accept any spelling case the platform uses (``active``, ``ACKNOWLEDGED``)."""
    if isinstance(value, str):
        return _STATUS_BY_NAME.get(value.strip().lower(), value)
    return value


class Ref(BaseModel):
    """A datastore or container reference: ``{"id": 7, "name": "orders"}``."""

    model_config = ConfigDict(extra="allow")

    id: int | str | None = None
    name: str | None = None


def _ref(value: Any) -> Any:
    """A bare name or id is a reference too."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"id": value}
    return value


RefField = Annotated[Ref | None, BeforeValidator(_ref)]


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

    check_id: int | str | None = None
    rule_type: str | None = None
    fields: list[str] = Field(default_factory=list)
    message: str | None = None


class Anomaly(BaseModel):
    """An anomaly as the platform describes it (``GET /api/anomalies/{id}`` or a Flow context).

    All of the platform's variants are folded in one pass before validation: one Python call per
    anomaly instead of one per field keeps a webhook cheap (this runs on every delivery).
    """

    model_config = ConfigDict(extra="allow")

    id: StrictInt
    uuid: str | None = None
    type: Literal["record", "shape"] = "record"
    status: Status = Status.ACTIVE
    weight: int | None = None
    datastore: Ref | None = None
    container: Ref | None = None
    fields: list[str] = Field(default_factory=list)
    message: str | None = None
    description: str | None = None
    failed_checks: list[FailedCheck] = Field(default_factory=list)
    global_tags: list[str] = Field(default_factory=list)
    anomalous_records_count: int | None = None
    fingerprint: int | str | None = None
    created: datetime | None = None
    url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _variants(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "fields" not in data and "field" in data:
            data["fields"] = data.pop("field")
        if "fields" in data:
            data["fields"] = _names(data["fields"])
        if "global_tags" in data:
            data["global_tags"] = _names(data["global_tags"])
        if isinstance(data.get("status"), str):
            data["status"] = _status(data["status"])
        if isinstance(data.get("type"), str):
            data["type"] = data["type"].strip().lower()
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

    @field_validator("created")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Stored as UTC so ISO strings sort as times; a naive time is taken as UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

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


class Trigger(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str | None = None


class FlowContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    anomalies: list[dict[str, Any]] = Field(default_factory=list)
    containers: list[dict[str, Any]] = Field(default_factory=list)
    quality_checks: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("containers", "quality_checks", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class FlowEnvelope(BaseModel):
    """The platform's Flow webhook: ``{"event": "qualytics.flow.triggered", "context": {...}}``."""

    model_config = ConfigDict(extra="allow")

    event: str
    flow: dict[str, Any] | None = None
    trigger: Trigger | None = None
    datastore: RefField = None
    context: FlowContext
    operation: dict[str, Any] | None = None
    target_link: str | None = None

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


def anomalies_from_envelope(envelope: FlowEnvelope) -> list[dict[str, Any]]:
    """The envelope's anomalies, completed from its context (container names, datastore, link)."""
    containers = {c.get("id"): c for c in envelope.context.containers if isinstance(c, dict)}
    checks = {q.get("id"): q for q in envelope.context.quality_checks if isinstance(q, dict)}
    datastore = envelope.datastore.model_dump(exclude_none=True) if envelope.datastore else None
    out = []
    for raw in envelope.context.anomalies:
        item = dict(raw)
        cid = item.get("container_id")
        if item.get("container") is None and cid in containers:
            item["container"] = {"id": cid, "name": containers[cid].get("name")}
        if item.get("datastore") is None and item.get("datastore_id") is None and datastore:
            item["datastore"] = datastore
        if not item.get("failed_checks") and item.get("quality_check_ids"):
            item["failed_checks"] = [
                {"quality_check": checks[qid]} if qid in checks else {"check_id": qid}
                for qid in item["quality_check_ids"]
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
