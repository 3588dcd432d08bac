"""The data-quality platform's JSON, as far as ``PlatformClient`` reads it: one ``TypedDict`` per
answer, a ``cast`` at one point (``PlatformClient._answer``), not a validation (see ``payloads``).

An anomaly is handed on as the platform sent it, every key kept: ``Anomaly.model_validate`` folds
its variants. Only the keys the desk relies on are listed; the platform sends many more.
"""

from __future__ import annotations

from typing import Literal, Required, TypeAlias, TypedDict

from pydantic import JsonValue

# ``archived=`` of the list: archived anomalies are left out unless asked for.
ArchivedFilter: TypeAlias = Literal["only", "include"]
# The statuses ``DELETE /api/anomalies/{id}?archive=true&status=`` takes.
ArchiveStatus: TypeAlias = Literal["Resolved", "Duplicate", "Invalid", "Discarded"]


class PlatformRef(TypedDict, total=False):
    """An anomaly's ``datastore`` / ``container``."""

    id: int
    name: str


class PlatformAnomaly(TypedDict, total=False):
    """``GET /api/anomalies/{id}``, an item of a list page, the answer to ``PUT`` (acknowledge)
    and ``DELETE`` (archive)."""

    id: Required[int]
    uuid: str
    type: str  # "record" / "shape"
    status: str  # "Active", "Acknowledged", or an archived status
    is_archived: bool
    weight: int | float | None
    datastore: PlatformRef | None
    container: PlatformRef | None
    fields: list[JsonValue]  # field objects or names
    message: str | None
    description: str | None
    global_tags: list[JsonValue]  # tag objects or names
    failed_checks: list[JsonValue]
    anomalous_records_count: int | None
    fingerprint: int | None
    created: str  # ISO 8601


class AnomalyPagePayload(TypedDict):
    """``GET /api/anomalies``: one page (from 1) and how many match in all."""

    items: list[PlatformAnomaly]
    total: int
    page: int
    size: int


class PlatformComment(TypedDict, total=False):
    """``POST /api/comments``; an entry of ``GET /api/anomalies/{id}/comments``."""

    id: Required[int]
    message: Required[str]
    anomaly_id: int
    created: str
    user: JsonValue  # who wrote it, as the platform describes a user
