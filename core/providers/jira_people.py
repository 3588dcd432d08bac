"""People in Jira: user search for the form's pickers, a user field's value from an email or
a name, the operator as reporter or watcher, and the integration's own account."""

from __future__ import annotations

import re
from urllib.parse import quote

from pydantic import JsonValue

from anomaly_desk.core.providers.base import TicketFields
from anomaly_desk.core.providers.errors import ProviderError, ValidationError
from anomaly_desk.core.providers.jira_base import API, JiraBase
from anomaly_desk.core.providers.payloads import JiraUser
from anomaly_desk.core.views import UserView

# Cloud account ids: 24 hex digits (legacy) or "<number>:<uuid>".
_ACCOUNT_ID = re.compile(r"^(?:[0-9a-f]{24}|\d+:[0-9a-f-]{36})$", re.IGNORECASE)


class JiraPeople(JiraBase):
    """Finding accounts: Jira takes people by ``accountId`` only."""

    async def find_users(self, query: str, limit: int = 20) -> list[UserView]:
        """Active people (not apps) whose name or email starts with ``query``."""
        wanted = query.strip()
        if not wanted:
            return []
        found = await self._answer(
            list[JiraUser],
            "GET",
            f"{API}/user/search",
            params={"query": wanted, "maxResults": max(1, min(limit, 1000))},
        )
        people = [
            UserView(
                id=str(u["accountId"]),
                name=str(u.get("displayName") or u["accountId"]),
                email=u.get("emailAddress") or None,
            )
            for u in found or []
            if u.get("active", True) and u.get("accountType", "atlassian") == "atlassian"
        ]
        return people[:limit]

    async def resolve_assignee(self, value: JsonValue) -> dict[str, JsonValue]:
        """``{"accountId": ...}`` from an account id, an email or a display name."""
        return await self.resolve_user(value, "assignee")

    async def resolve_user(self, value: JsonValue, field: str) -> dict[str, JsonValue]:
        """``{"accountId": ...}`` for a user field from an account id, an email or a name."""
        if isinstance(value, dict):
            return value
        wanted = str(value).strip()
        if _ACCOUNT_ID.match(wanted):
            return {"accountId": wanted}
        found = await self._answer(
            list[JiraUser], "GET", f"{API}/user/search", params={"query": wanted}
        )
        users = [
            u
            for u in found or []
            if u.get("accountType", "atlassian") == "atlassian" and u.get("active", True)
        ]
        exact = [
            u
            for u in users
            if wanted.lower()
            in {str(u.get("emailAddress", "")).lower(), str(u.get("displayName", "")).lower()}
        ]
        chosen = exact if exact else users
        if len(chosen) == 1:
            return {"accountId": chosen[0]["accountId"]}
        problem = (
            f"no Jira user matches '{wanted}'"
            if not chosen
            else f"'{wanted}' matches {len(chosen)} Jira users; choose one"
        )
        raise ValidationError(problem, field_errors={field: problem}, connection=self.name)

    async def _operator_account(self, email: str) -> tuple[str | None, str | None]:
        """The one active Jira account with this email, or why there is none to use."""
        try:
            found = await self._answer(
                list[JiraUser],
                "GET",
                f"{API}/user/search",
                params={"query": email, "maxResults": 50},
            )
        except ProviderError as exc:
            return None, f"reporter not set: cannot look up {email} in Jira ({exc.plain()})"
        wanted = email.casefold()
        matches = [
            u
            for u in found or []
            if u.get("active", True) and str(u.get("emailAddress") or "").casefold() == wanted
        ]
        if len(matches) == 1:
            return str(matches[0]["accountId"]), None
        if not matches:
            return None, f"reporter not set: no active Jira account has {email}"
        return None, f"reporter not set: {len(matches)} Jira accounts have {email}"

    async def _watch(self, key: str, account: str, email: str, payload: TicketFields) -> str:
        """The operator as a watcher; a failure is told, not raised (the issue exists)."""
        project = payload.get("project")
        where = (
            str(project.get("key") or project.get("id"))
            if isinstance(project, dict)
            else self.conn.project
        )
        try:
            await self._request(
                "POST",
                f"{API}/issue/{quote(key, safe='')}/watchers",
                json=account,
                expect=(200, 204),
            )
        except ProviderError as exc:
            return (
                f"reporter is not settable in {where}; {email} could not be added as a "
                f"watcher: {exc.plain()}"
            )
        return f"reporter is not settable in {where}; {email} added as a watcher"

    async def _myself(self) -> JiraUser:
        if self._me is not None:
            return self._me
        me = await self._answer(JiraUser, "GET", f"{API}/myself")
        self._me = me
        return me

    async def account(self) -> str:
        return str((await self._myself())["accountId"])
