"""Work notes: written with the record's PATCH; a note carries no marker, so whether one
landed is told by counting identical notes before and after."""

from __future__ import annotations

from anomaly_desk.core.formatting.plain import servicenow_text
from anomaly_desk.core.providers.base import NoteTag, TicketRef
from anomaly_desk.core.providers.servicenow_base import ServiceNowBase

NOTE_LOOKBACK = 1000  # newest work notes counted by note_baseline and has_note


class ServiceNowNotes(ServiceNowBase):
    """``add_note``, ``note_baseline`` and ``has_note``."""

    async def add_note(self, ticket: TicketRef, text: str, tag: NoteTag | None = None) -> None:
        """A work note; it cannot carry ``tag`` (journal entries have no metadata we can set)."""
        table, sys_id = await self._address(ticket)
        params = {"sysparm_fields": "sys_id"}
        await self._request(
            "PATCH", self._path(sys_id, table), params=params, json={"work_notes": text}
        )

    async def note_baseline(self, ticket: TicketRef, text: str) -> int:
        return await self._identical_notes(ticket, text)

    async def has_note(self, ticket: TicketRef, text: str, tag: NoteTag) -> bool:
        """Landed iff the ticket now has more work notes with this text than before the send.

        ``tag.baseline`` was counted before this job's first send when an earlier job on this
        ticket had the same text (else 0: any identical note is this one). What remains: a person
        typing exactly this text on the incident between the count and the check makes a lost
        note look landed.
        """
        return await self._identical_notes(ticket, text) > tag.baseline

    async def _identical_notes(self, ticket: TicketRef, text: str) -> int:
        """Work notes on the record whose text is ``text`` (among the newest NOTE_LOOKBACK).

        The comparison is ours, exact: the instance's ``value=`` is case-insensitive on most
        databases and ``^`` in the text cannot be put in an encoded query. The text is compared
        as it was sent (``servicenow_text``), not as the job holds it.
        """
        _, sys_id = await self._address(ticket)
        query = f"element_id={sys_id}^element=work_notes^ORDERBYDESCsys_created_on"
        rows = await self._rows("sys_journal_field", query, "value", limit=NOTE_LOOKBACK)
        wanted = servicenow_text(text).strip()
        return sum(str(row.get("value", "")).strip() == wanted for row in rows)
