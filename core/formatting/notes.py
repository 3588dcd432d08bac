"""Sync notes, exactly as they appear on tickets (Jira comments, ServiceNow work notes)."""

from __future__ import annotations

from datetime import UTC, datetime


def _stamp(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _by(author: str | None) -> str:
    return f" ({author})" if author else ""


def status_note(
    status: str, at: datetime, platform: str = "Qualytics", author: str | None = None
) -> str:
    """``[2024-01-15 10:30:00 UTC] Qualytics Anomaly Status: Acknowledged``, and `` (ana)``
    when a named person did it."""
    return f"[{_stamp(at)}] {platform} Anomaly Status: {status}{_by(author)}"


def comment_note(text: str, platform: str = "Qualytics", author: str | None = None) -> str:
    """``Comment from Qualytics: <text>``, or ``Comment from Qualytics (ana): <text>``."""
    return f"Comment from {platform}{_by(author)}: {text}"


def link_note(anomaly_id: int, url: str | None, platform: str = "Qualytics") -> str:
    """Written on a ServiceNow incident when it is linked to an existing anomaly."""
    where = f": {url}" if url else ""
    return f"Linked to {platform} anomaly {anomaly_id}{where}"
