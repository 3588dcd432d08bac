"""Jira Cloud client (REST v3) behind the ``Provider`` protocol.

Only documented Cloud endpoints: create and read issues, comments, the enhanced JQL search
(``/search/jql``; the old ``/search`` answers 410), createmeta and user search for drop-downs,
``/myself`` for the connection check and the integration's account, changelogs
(``/changelog/bulkfetch``) and transitions for two-way sync. Requests go through the shared loop of ``http`` (errors
become the typed errors of ``errors`` with Jira's own messages; reads retry a transient failure,
writes never do: the sync engine decides).

The client is assembled from parts named for what they hold: ``jira_base`` (HTTP, the cloud id,
an issue as a ticket), ``jira_people``, ``jira_forms`` (createmeta), ``jira_create``,
``jira_comments``, and for two-way sync ``jira_changes`` and ``jira_transitions``.
"""

from __future__ import annotations

import asyncio
import re

from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.base import ProviderKind, Ticket
from anomaly_desk.core.providers.errors import NotFoundError
from anomaly_desk.core.providers.http import public_url as public_url  # check.py's, too
from anomaly_desk.core.providers.jira_base import API, TICKET_FIELDS
from anomaly_desk.core.providers.jira_changes import JiraChanges
from anomaly_desk.core.providers.jira_comments import NOTE_PROPERTY as NOTE_PROPERTY
from anomaly_desk.core.providers.jira_create import JiraCreate
from anomaly_desk.core.providers.jira_jql import iso_utc as iso_utc
from anomaly_desk.core.providers.jira_jql import jql_string as jql_string
from anomaly_desk.core.providers.jira_jql import parse_time as parse_time
from anomaly_desk.core.providers.jira_jql import search_terms as search_terms
from anomaly_desk.core.providers.jira_jql import since_time as since_time
from anomaly_desk.core.providers.jira_transitions import HISTORY_TYPE as HISTORY_TYPE
from anomaly_desk.core.providers.jira_transitions import JiraTransitions
from anomaly_desk.core.providers.payloads import JiraSearchPage, JiraUser

_KEY = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*-\d+)\b")


class JiraClient(JiraCreate, JiraChanges, JiraTransitions):
    """One Jira Cloud site; one ``httpx.AsyncClient`` for the connection's lifetime."""

    kind: ProviderKind = "jira"

    async def check(self) -> str:
        me = await self._answer(JiraUser, "GET", f"{API}/myself")
        return str(me.get("emailAddress") or me.get("displayName") or me.get("accountId"))

    async def find_created(self, anomaly_id: int) -> list[Ticket]:
        jql = (
            f"labels = {jql_string(self.conn.label)} AND labels = "
            f"{jql_string(f'anomaly-{anomaly_id}')} ORDER BY created ASC"
        )
        return await self._search_jql(jql, 50)

    async def search(self, text: str, limit: int = 20) -> list[Ticket]:
        """Keys are looked up directly (JQL naming a missing key is a 400); words search summaries."""
        keys = list(dict.fromkeys(k.upper() for k in _KEY.findall(text)))
        words = search_terms(_KEY.sub(" ", text))
        found: list[Ticket] = []
        lookups = await asyncio.gather(*(self._maybe_get(key) for key in keys[:10]))
        found.extend(ticket for ticket in lookups if ticket)
        if words:
            clauses = " AND ".join(f"summary ~ {jql_string(word + '*')}" for word in words)
            found.extend(await self._search_jql(f"{clauses} ORDER BY updated DESC", limit))
        elif not keys:
            project = jql_string(self.conn.project)
            found.extend(
                await self._search_jql(f"project = {project} ORDER BY updated DESC", limit)
            )
        unique: dict[str, Ticket] = {}
        for ticket in found:
            unique.setdefault(ticket.key, ticket)
        return list(unique.values())[:limit]

    async def _maybe_get(self, key: str) -> Ticket | None:
        try:
            return await self.get_ticket(key)
        except NotFoundError:
            return None

    async def _search_jql(self, jql: str, limit: int) -> list[Ticket]:
        """The enhanced search, following ``nextPageToken`` until ``limit`` tickets."""
        tickets: list[Ticket] = []
        token: str | None = None
        while len(tickets) < limit:
            params: dict[str, str | int] = {
                "jql": jql,
                "fields": TICKET_FIELDS,
                "maxResults": min(100, limit - len(tickets)),
            }
            if token:
                params["nextPageToken"] = token
            page = await self._answer(JiraSearchPage, "GET", f"{API}/search/jql", params=params)
            tickets.extend(self.to_ticket(issue) for issue in page.get("issues") or [])
            token = page.get("nextPageToken")
            if page.get("isLast", not token) or not token:
                break
        return tickets[:limit]

    async def link(self, anomaly: Anomaly, key: str) -> Ticket:
        """Linking is local: Jira is only read, to prove the issue exists and get its state."""
        return await self.get_ticket(key)
