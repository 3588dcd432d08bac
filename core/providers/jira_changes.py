"""Two-way sync, reading: the issues changed since a time, who made each one's latest status
change (changelogs), and their new comments."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import JsonValue

from anomaly_desk.core.providers.base import TicketChange, TicketComment, TicketRef
from anomaly_desk.core.providers.errors import NotFoundError, ValidationError
from anomaly_desk.core.providers.jira_base import API, status_category
from anomaly_desk.core.providers.jira_comments import JiraComments
from anomaly_desk.core.providers.jira_jql import iso_utc, jql_string, parse_time, since_time
from anomaly_desk.core.providers.jira_people import JiraPeople
from anomaly_desk.core.providers.payloads import (
    JiraBulkChangelogPage,
    JiraChangeHistory,
    JiraChangelogPage,
    JiraIssue,
    JiraSearchPage,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Two-way sync: changes are re-read this far back (the search index lags behind writes, and
# JQL dates have minutes only); the caller recognises what it has seen by comment id and state.
OVERLAP = timedelta(minutes=2)
UNKNOWN_ZONE_MARGIN = timedelta(hours=12)  # UTC-12 is the earliest zone
CHANGE_FIELDS = "summary,status,updated"
CHANGES_BATCH = 100  # issue keys per JQL query
CHANGELOG_BATCH = 1000  # issues per changelog bulk fetch (Jira's limit)
CHANGELOG_PAGE = 100  # entries per page of one issue's changelog
READ_CONCURRENCY = 4  # per-issue reads (comments, changelogs) in flight at once
# "An issue with key 'DQ-9' does not exist for field 'key'." / "The issue key 'X' … is invalid."
_GONE_KEY = re.compile(r"[Ii]ssue (?:with )?key '([^']+)'")


async def bounded(calls: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the calls with at most ``limit`` in flight; the answers in the calls' order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


def _status_change(history: JiraChangeHistory) -> bool:
    return any(
        "status" in (item.get("fieldId"), item.get("field")) for item in history.get("items") or []
    )


def _author_id(history: JiraChangeHistory) -> str | None:
    author = history.get("author")
    return str(author["accountId"]) if author and author.get("accountId") else None


class JiraChanges(JiraComments, JiraPeople):
    """``changes``: one JQL search per batch of keys, then changelogs and comments."""

    async def changes(self, tickets: list[TicketRef], since: str | None) -> list[TicketChange]:
        """Issues among ``tickets`` updated since ``since`` (re-read ``OVERLAP`` further back),
        each with who made its latest status change and the comments created since ``since``."""
        keys = list(dict.fromkeys(t.key or t.id for t in tickets if t.key or t.id))
        after = since_time(since, self.name)
        if not keys:
            return []
        bound = await self._jql_bound(after) if after else None
        issues: list[JiraIssue] = []
        for start in range(0, len(keys), CHANGES_BATCH):
            issues.extend(await self._changed(keys[start : start + CHANGES_BATCH], bound))
        unique = list({str(issue.get("id") or issue["key"]): issue for issue in issues}.items())
        if not unique:
            return []
        authors = await self._status_authors([issue_id for issue_id, _ in unique])
        comments = await bounded(
            (partial(self._comments_since, str(issue["key"]), after) for _, issue in unique),
            READ_CONCURRENCY,
        )
        return [
            self._change(issue, authors.get(issue_id), found)
            for (issue_id, issue), found in zip(unique, comments, strict=True)
        ]

    async def _jql_bound(self, after: datetime) -> str:
        """``updated >= "<this>"``: ``after`` less ``OVERLAP``, to the minute (floored).

        Jira reads a JQL date in the searching user's profile time zone (``/myself``). Without
        one to go by, the UTC wall clock less 12 hours: read in any zone (UTC-12 to UTC+14) that
        is no later than asked, and a wider window only re-reads a few issues.
        """
        bound = after - OVERLAP
        zone = (await self._myself()).get("timeZone")
        try:
            wall = bound.astimezone(ZoneInfo(zone)) if zone else None
        except (ZoneInfoNotFoundError, ValueError):
            wall = None
        if wall is None:
            log.debug("%s: no usable time zone (%r); JQL bound widened", self.name, zone)
            wall = bound.astimezone(UTC) - UNKNOWN_ZONE_MARGIN
        return wall.strftime("%Y-%m-%d %H:%M")

    async def _changed(self, keys: list[str], bound: str | None) -> list[JiraIssue]:
        """One batch of keys; a key Jira no longer knows (deleted, no permission: JQL naming it
        is a 400) is dropped from the query and the rest asked again."""
        while keys:
            jql = f"key in ({', '.join(jql_string(key) for key in keys)})"
            if bound:
                jql += f" AND updated >= {jql_string(bound)}"
            try:
                return await self._search_issues(f"{jql} ORDER BY updated ASC", CHANGE_FIELDS)
            except ValidationError as exc:
                gone = {key.upper() for key in _GONE_KEY.findall(exc.message)}
                left = [key for key in keys if key.upper() not in gone]
                if len(left) == len(keys):
                    raise
                log.info("%s: %s left out of the poll: %s", self.name, ", ".join(gone), exc)
                keys = left
        return []

    async def _search_issues(self, jql: str, fields: str) -> list[JiraIssue]:
        """Every issue the enhanced search finds (a read: GET, so transient failures retry)."""
        issues: list[JiraIssue] = []
        token: str | None = None
        while True:
            params: dict[str, str | int] = {"jql": jql, "fields": fields, "maxResults": 100}
            if token:
                params["nextPageToken"] = token
            page = await self._answer(JiraSearchPage, "GET", f"{API}/search/jql", params=params)
            issues.extend(page.get("issues") or [])
            token = page.get("nextPageToken")
            if page.get("isLast", not token) or not token:
                return issues

    async def _status_authors(self, issue_ids: list[str]) -> dict[str, str]:
        """Issue id → the accountId of whoever made its latest status change."""
        if self._bulkfetch:
            try:
                return await self._bulk_status_authors(issue_ids)
            except NotFoundError:
                self._bulkfetch = False
                log.info(
                    "%s: no changelog bulk fetch here; reading changelogs one by one", self.name
                )
        authors = await bounded(
            (partial(self._issue_status_author, issue_id) for issue_id in issue_ids),
            READ_CONCURRENCY,
        )
        return {
            issue_id: author
            for issue_id, author in zip(issue_ids, authors, strict=True)
            if author is not None
        }

    async def _bulk_status_authors(self, issue_ids: list[str]) -> dict[str, str]:
        latest: dict[str, tuple[datetime, str]] = {}
        for start in range(0, len(issue_ids), CHANGELOG_BATCH):
            token: str | None = None
            while True:
                body: dict[str, JsonValue] = {
                    "issueIdsOrKeys": list(issue_ids[start : start + CHANGELOG_BATCH]),
                    "fieldIds": ["status"],
                    "maxResults": 1000,
                }
                if token:
                    body["nextPageToken"] = token
                page = await self._answer(
                    JiraBulkChangelogPage, "POST", f"{API}/changelog/bulkfetch", json=body
                )
                for changelog in page.get("issueChangeLogs") or []:
                    issue_id = str(changelog.get("issueId") or "")
                    for history in changelog.get("changeHistories") or []:
                        author = _author_id(history)
                        if not author or not _status_change(history):
                            continue
                        when = parse_time(history.get("created")) or datetime.min.replace(
                            tzinfo=UTC
                        )
                        if issue_id not in latest or when >= latest[issue_id][0]:
                            latest[issue_id] = (when, author)
                token = page.get("nextPageToken")
                if not token:
                    break
        return {issue_id: author for issue_id, (_, author) in latest.items()}

    async def _issue_status_author(self, issue: str) -> str | None:
        """One issue's changelog (oldest first), read from its newest page backwards."""
        path = f"{API}/issue/{quote(issue, safe='')}/changelog"

        async def read(start: int) -> JiraChangelogPage:
            params = {"startAt": start, "maxResults": CHANGELOG_PAGE}
            return await self._answer(JiraChangelogPage, "GET", path, params=params)

        def latest(page: JiraChangelogPage) -> str | None:
            found = [_author_id(h) for h in page.get("values") or [] if _status_change(h)]
            return next((author for author in reversed(found) if author), None)

        first = await read(0)
        size = int(first.get("maxResults") or CHANGELOG_PAGE) or CHANGELOG_PAGE
        start = int(first.get("total") or 0) - size
        while start > 0:
            author = latest(await read(start))
            if author:
                return author
            start -= size
        return latest(first)

    def _change(
        self, issue: JiraIssue, state_by: str | None, comments: list[TicketComment]
    ) -> TicketChange:
        ticket = self.to_ticket(issue)
        updated = parse_time(ticket.updated)
        if updated is not None:
            ticket = replace(ticket, updated=iso_utc(updated))
        status = (issue.get("fields") or {}).get("status")
        return TicketChange(
            ticket=ticket,
            done=status_category(status) == "done",
            state_by=state_by,
            comments=tuple(comments),
        )
