"""JQL literals and Jira's times: what a query may contain, and how times are read and
written (JQL dates have minutes only; answers carry offsets)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from anomaly_desk.core.providers.errors import ValidationError


def jql_string(value: str) -> str:
    """A JQL string literal: quotes and backslashes escaped, so text never becomes syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_terms(text: str) -> list[str]:
    """Words for a text search; Lucene's special characters (``+-&|!(){}[]^~*?:\\/``) dropped."""
    return re.findall(r"\w+", text)[:8]


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time (Jira's ``2024-01-15T10:30:00.000+0000``, ``…Z``) as an aware datetime;
    a time without an offset is UTC. None for nothing or something that is not a time."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def iso_utc(when: datetime) -> str:
    """``2024-01-15T10:30:00.123Z``: UTC, milliseconds when there are any."""
    spec = "milliseconds" if when.microsecond else "seconds"
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def since_time(since: str | None, connection: str) -> datetime | None:
    """The cursor of ``changes``: None, or an ISO time (anything else is the caller's bug)."""
    if since is None:
        return None
    when = parse_time(since)
    if when is None:
        raise ValidationError(f"not an ISO time: {since!r}", connection=connection)
    return when
