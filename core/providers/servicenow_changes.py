"""Two-way sync, reading: the records changed since a time (one query per table) and their
work notes and comments from ``sys_journal_field``."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from anomaly_desk.core.providers.base import TicketChange, TicketComment, TicketRef
from anomaly_desk.core.providers.errors import NotFoundError, ValidationError
from anomaly_desk.core.providers.payloads import Incident, ServiceNowRow
from anomaly_desk.core.providers.servicenow_base import SYS_ID, ServiceNowBase, stored_value
from anomaly_desk.core.providers.servicenow_tables import spec_for

log = logging.getLogger(__name__)

# Two-way sync: rows are re-read this far back (a write's sys_updated_on is when it began, and
# clocks drift); the caller recognises what it has seen by journal sys_id and state.
OVERLAP = timedelta(minutes=2)
CHANGE_FIELDS = "sys_id,number,state,short_description,sys_updated_on,sys_updated_by,sys_class_name"
JOURNAL_FIELDS = "sys_id,element_id,element,value,sys_created_on,sys_created_by"
CHANGES_BATCH = 100  # sys_ids per query (they go in the URL)
JOURNAL_PAGE = 1000


class ServiceNowChanges(ServiceNowBase):
    """``changes``."""

    async def changes(self, tickets: list[TicketRef], since: str | None) -> list[TicketChange]:
        """Records among ``tickets`` updated since ``since`` (re-read ``OVERLAP`` further
        back), with their work notes and comments created since ``since``; one query per table."""
        after = _since(since, self.name)
        by_table: dict[str, list[str]] = {}
        for ref in tickets:
            table = self._ref_table(ref)
            if SYS_ID.match(ref.id):
                by_table.setdefault(table, []).append(ref.id)
            elif ref.key:
                try:
                    by_table.setdefault(table, []).append((await self._address(ref))[1])
                except NotFoundError:
                    log.info("%s: %s no longer exists; left out of the poll", self.name, ref.key)
        rows: list[tuple[str, Incident]] = []
        for table, table_ids in by_table.items():
            found = await self._changed_rows(table, list(dict.fromkeys(table_ids)), after)
            rows.extend((table, row) for row in found)
        if not rows:
            return []
        notes = await self._journal_since(
            [stored_value(row.get("sys_id")) for _, row in rows], after
        )
        return [
            self._change(row, notes.get(stored_value(row.get("sys_id")), []), table)
            for table, row in rows
        ]

    async def _changed_rows(
        self, table: str, ids: list[str], after: datetime | None
    ) -> list[Incident]:
        rows: list[Incident] = []
        for start in range(0, len(ids), CHANGES_BATCH):
            chunk = ids[start : start + CHANGES_BATCH]
            query = f"sys_idIN{','.join(chunk)}"
            if after is not None:
                query += f"^sys_updated_on>={_stamp(after - OVERLAP)}"
            params = {
                "sysparm_query": query + "^ORDERBYsys_updated_on",
                "sysparm_fields": CHANGE_FIELDS,
                "sysparm_display_value": "all",
                "sysparm_exclude_reference_link": "true",
                "sysparm_limit": str(len(chunk)),
            }
            rows.extend(
                await self._answer(list[Incident], "GET", self._path(table=table), params=params)
            )
        return rows

    async def _journal_since(
        self, ids: list[str], after: datetime | None
    ) -> dict[str, list[TicketComment]]:
        """Work notes and additional comments of the records, created since ``after``, oldest
        first, by record sys_id."""
        out: dict[str, list[TicketComment]] = {}
        seen: set[str] = set()
        mine = self.username.casefold()
        for start in range(0, len(ids), CHANGES_BATCH):
            query = f"element_idIN{','.join(ids[start : start + CHANGES_BATCH])}"
            query += "^elementINwork_notes,comments"
            if after is not None:
                query += f"^sys_created_on>={_stamp(after)}"
            offset = 0
            while True:
                params = {
                    "sysparm_query": query + "^ORDERBYsys_created_on",
                    "sysparm_fields": JOURNAL_FIELDS,
                    "sysparm_display_value": "false",
                    "sysparm_exclude_reference_link": "true",
                    "sysparm_limit": str(JOURNAL_PAGE),
                    "sysparm_offset": str(offset),
                }
                page = await self._answer(
                    list[ServiceNowRow],
                    "GET",
                    self._path(table="sys_journal_field"),
                    params=params,
                )
                for row in page:
                    sys_id, who = row.get("sys_id", ""), row.get("sys_created_by", "")
                    if sys_id in seen:
                        continue  # a page boundary moved under a new entry
                    seen.add(sys_id)
                    stamp = row.get("sys_created_on", "")
                    out.setdefault(row.get("element_id", ""), []).append(
                        TicketComment(
                            id=sys_id,
                            author_id=who,
                            author=who,
                            text=row.get("value", ""),
                            created=_iso_z(stamp) or stamp,
                            ours=who.casefold() == mine,
                        )
                    )
                offset += len(page)
                if len(page) < JOURNAL_PAGE:
                    break
        return out

    def _change(self, row: Incident, comments: list[TicketComment], table: str) -> TicketChange:
        ticket = self._ticket(row, table)
        stamp = stored_value(row.get("sys_updated_on"))
        ticket = replace(
            ticket,
            updated=_iso_z(stamp) or ticket.updated,
            extra={k: v for k, v in ticket.extra.items() if v not in ("", None)},
        )
        state = stored_value(row.get("state"))
        return TicketChange(
            ticket=ticket,
            done=state in spec_for(ticket.table or table).done,
            state_by=stored_value(row.get("sys_updated_by")) or None,
            comments=tuple(comments),
        )


def _since(since: str | None, connection: str) -> datetime | None:
    """The cursor of ``changes``: None, or an ISO time (a time without an offset is UTC)."""
    if since is None:
        return None
    try:
        when = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"not an ISO time: {since!r}", connection=connection) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _stamp(when: datetime) -> str:
    """An encoded query's date-time: UTC ``YYYY-MM-DD HH:MM:SS`` (floored to the second)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso_z(stamp: str) -> str | None:
    """An instance time (UTC ``YYYY-MM-DD HH:MM:SS``) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
