"""An emulator of the data-quality platform's API (modelled on Qualytics): anomalies and comments.

It answers as the platform's FastAPI service answers: Bearer tokens (``DEFAULT_TOKEN``; a
read-only one gets 403 on writes), ``{"detail": "..."}`` errors, 422 with FastAPI's list of
validation errors, the paged list ``{"items", "total", "page", "size"}`` (pages from 1, at most
100 a page), archived anomalies left out of lists unless asked for, and the status rules of
acknowledging (``PUT``), archiving (``DELETE ?archive=true&status=...``) and commenting. State is
in memory and seeded deterministically; every write is logged (``calls``) so tests can assert
exactly-once delivery.

Routes:

* ``GET    /api/anomalies``                 the list, filtered, sorted and paged;
* ``GET    /api/anomalies/{id}``            one anomaly;
* ``PUT    /api/anomalies/{id}``            ``{"status": "Acknowledged"}``;
* ``DELETE /api/anomalies/{id}``            ``?archive=true&status=Resolved|Duplicate|...``;
* ``POST   /api/comments``                  ``{"message", "anomaly_id"}``;
* ``GET    /api/anomalies/{id}/comments``   the anomaly's comments, oldest first;
* ``GET    /anomalies/{id}``                the HTML page an anomaly link opens.

Where things are:

* ``platform_data``   the records, the seed, the read and write rules;
* ``platform_routes`` the HTTP endpoints: authentication, validation, rendering, error bodies.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from anomaly_desk.sandbox.platform_data import (
    ARCHIVE_STATUSES,
    DEFAULT_SEED_COUNT,
    DEFAULT_TOKEN,
    READ_ONLY_TOKEN,
    SEED_START_ID,
    STATUSES,
    Anomaly,
    Comment,
    PlatformSite,
    PlatformUser,
    WriteCall,
    seed_anomalies,
)
from anomaly_desk.sandbox.platform_routes import PlatformApi

__all__ = [
    "ARCHIVE_STATUSES",
    "DEFAULT_SEED_COUNT",
    "DEFAULT_TOKEN",
    "READ_ONLY_TOKEN",
    "SEED_START_ID",
    "STATUSES",
    "Anomaly",
    "Comment",
    "PlatformEmulator",
    "PlatformUser",
    "WriteCall",
    "seed_anomalies",
]


class PlatformEmulator(PlatformSite):
    """The platform's state (``PlatformSite``) with its API (``routes``, ``fallback_routes``)."""

    def routes(self) -> list[BaseRoute]:
        return PlatformApi(self).routes()

    def fallback_routes(self) -> list[BaseRoute]:
        """``{"detail": "Not Found"}`` for other ``/api`` paths; mount after all other routes."""
        return PlatformApi(self).fallback_routes()
