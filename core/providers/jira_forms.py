"""Create screens from createmeta: the issue types a project offers, each type's fields, and
the drop-down options; reused for ``FORM_TTL``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote

from anomaly_desk.core.providers.base import Option
from anomaly_desk.core.providers.errors import NotFoundError
from anomaly_desk.core.providers.jira_base import API, JiraBase
from anomaly_desk.core.providers.jira_fields import JiraForm, jira_form
from anomaly_desk.core.providers.payloads import (
    JiraFieldsPage,
    JiraIssueType,
    JiraIssueTypesPage,
    JiraPriority,
    JiraUser,
)
from anomaly_desk.core.views import CreateFormView, TicketTypeView

T = TypeVar("T")
Page = TypeVar("Page", JiraIssueTypesPage, JiraFieldsPage)

FORM_TTL = 300.0  # seconds a project's issue types and create screens are reused
CREATEMETA_PAGE = 50


def _more(batch: list[T], seen: int, total: int | None) -> bool:
    """Whether an offset-paged answer has another page (no ``total``: it had them all)."""
    return bool(batch) and total is not None and seen < int(total)


class JiraForms(JiraBase):
    """Reading createmeta; the caches live on the client (``_types_cache``, ``_form_cache``)."""

    async def ticket_types(self) -> list[TicketTypeView]:
        """The project's issue types that can be created on their own (no sub-tasks); read
        afresh (the desk caches the answer), and kept for the creates that follow."""
        types = await self._issue_types(self.conn.project, fresh=True)
        return [
            TicketTypeView(id=str(t["id"]), name=str(t["name"]))
            for t in types
            if not t.get("subtask")
        ]

    async def create_form(self, ticket_type: str | None = None) -> CreateFormView:
        """The create screen of an issue type (an id or a name; None: the connection's), read
        afresh like ``ticket_types``."""
        project = self.conn.project
        wanted = (ticket_type or self.conn.issue_type).strip()
        chosen = await self._issue_type(project, wanted, fresh=True)
        if chosen is None:
            names = ", ".join(t.name for t in await self.ticket_types()) or "none"
            raise NotFoundError(
                f"{project} has no issue type {wanted!r} (it has: {names})",
                status=404,
                connection=self.name,
            )
        form = await self._form(project, str(chosen["id"]), fresh=True)
        return CreateFormView(
            connection=self.name,
            ticket_type=TicketTypeView(id=str(chosen["id"]), name=str(chosen["name"])),
            fields=form.visible(),
            reporter_settable=form.reporter_settable,
        )

    async def _issue_type(
        self, project: str, wanted: str, *, fresh: bool = False
    ) -> JiraIssueType | None:
        types = await self._issue_types(project, fresh=fresh)
        exact = next((t for t in types if str(t["id"]) == wanted or t["name"] == wanted), None)
        folded = wanted.casefold()
        return exact or next((t for t in types if str(t["name"]).casefold() == folded), None)

    async def _issue_types(self, project: str, *, fresh: bool = False) -> list[JiraIssueType]:
        """``createmeta/{project}/issuetypes``, every page, reused for ``FORM_TTL``."""
        cached = self._types_cache.get(project)
        if cached and not fresh and time.monotonic() - cached[0] < FORM_TTL:
            return cached[1]
        path = f"{API}/issue/createmeta/{quote(project, safe='')}/issuetypes"
        found = await self._pages(
            path,
            JiraIssueTypesPage,
            lambda page: page.get("issueTypes") or page.get("values") or [],
        )
        self._types_cache[project] = (time.monotonic(), found)
        return found

    async def _form(self, project: str, type_id: str, *, fresh: bool = False) -> JiraForm:
        """``createmeta/{project}/issuetypes/{id}``, every page, reused for ``FORM_TTL``."""
        cached = self._form_cache.get((project, type_id))
        if cached and not fresh and time.monotonic() - cached[0] < FORM_TTL:
            return cached[1]
        path = (
            f"{API}/issue/createmeta/{quote(project, safe='')}/issuetypes/{quote(type_id, safe='')}"
        )
        metas = await self._pages(
            path, JiraFieldsPage, lambda page: page.get("fields") or page.get("results") or []
        )
        form = jira_form(metas)
        self._form_cache[(project, type_id)] = (time.monotonic(), form)
        return form

    async def _pages(
        self, path: str, shape: type[Page], items: Callable[[Page], list[T]]
    ) -> list[T]:
        """Every page of a createmeta list (offset paging, ``CREATEMETA_PAGE`` at a time)."""
        found: list[T] = []
        while True:
            params = {"startAt": len(found), "maxResults": CREATEMETA_PAGE}
            page = await self._answer(shape, "GET", path, params=params)
            batch = items(page)
            found.extend(batch)
            if not _more(batch, len(found), page.get("total")):
                return found

    async def options(self) -> dict[str, list[Option]]:
        project = quote(self.conn.project, safe="")
        types_page, users = await asyncio.gather(
            self._answer(JiraIssueTypesPage, "GET", f"{API}/issue/createmeta/{project}/issuetypes"),
            self._answer(
                list[JiraUser],
                "GET",
                f"{API}/user/assignable/search",
                params={"project": self.conn.project, "maxResults": 100},
            ),
        )
        types = types_page.get("issueTypes") or types_page.get("values") or []
        issue_types = [
            Option(str(t["name"]), str(t["name"])) for t in types if not t.get("subtask")
        ]
        return {
            "issuetype": issue_types,
            "priority": await self._priority_options(project, types),
            "assignee": [
                Option(
                    str(u["accountId"]),
                    f"{u['displayName']} <{u['emailAddress']}>"
                    if u.get("emailAddress")
                    else str(u.get("displayName", u["accountId"])),
                )
                for u in users or []
                if u.get("active", True)
            ],
        }

    async def _priority_options(self, project: str, types: list[JiraIssueType]) -> list[Option]:
        """Priorities the default issue type's create screen allows, else the site's list."""
        chosen = next((t for t in types if t.get("name") == self.conn.issue_type), None)
        if chosen is not None:
            page = await self._answer(
                JiraFieldsPage, "GET", f"{API}/issue/createmeta/{project}/issuetypes/{chosen['id']}"
            )
            for meta in page.get("fields") or page.get("results") or []:
                allowed = meta.get("allowedValues")
                if meta.get("fieldId") == "priority" and allowed:
                    return [Option(str(p["name"]), str(p["name"])) for p in allowed]
        priorities = await self._answer(list[JiraPriority], "GET", f"{API}/priority")
        return [Option(str(p["name"]), str(p["name"])) for p in priorities]
