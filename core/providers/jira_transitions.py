"""Two-way sync, writing: an issue moved to done or reopened through its workflow's
transitions, the note written first as the job's own comment."""

from __future__ import annotations

import logging
from urllib.parse import quote

from pydantic import JsonValue

from anomaly_desk.core.providers.base import NoteTag, TicketRef
from anomaly_desk.core.providers.errors import ValidationError
from anomaly_desk.core.providers.jira_base import API, status_category
from anomaly_desk.core.providers.jira_comments import JiraComments
from anomaly_desk.core.providers.payloads import (
    JiraIssue,
    JiraStatus,
    JiraTransition,
    JiraTransitionField,
    JiraTransitionsPage,
)

log = logging.getLogger(__name__)

HISTORY_TYPE = "anomaly-desk"  # historyMetadata.type of the transitions this client makes


def _target_category(transition: JiraTransition) -> str | None:
    target = transition.get("to") or {}
    category = target.get("statusCategory") or {}
    return category.get("key")


def _names(transitions: list[JiraTransition]) -> str:
    return ", ".join(str(t.get("name") or t["id"]) for t in transitions) or "none"


class JiraTransitions(JiraComments):
    """``move_to_done`` and ``reopen``."""

    async def move_to_done(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """The transition into the done category; the one named by ``done_transition`` when set,
        else the only one (several: a ValidationError, the operator chooses)."""
        key = ticket.key or ticket.id
        status = await self._status(key)
        if status_category(status) == "done":
            return f"{key} is already {status.get('name') or 'done'}: left alone"
        transitions = await self._transitions(key)
        chosen = self._done_transition(key, status, transitions)
        await self._transition(key, chosen, note, tag, resolution=True)
        return None

    async def reopen(self, ticket: TicketRef, note: str, tag: NoteTag) -> str | None:
        """The first transition into a ``new`` status, else into an ``indeterminate`` one."""
        key = ticket.key or ticket.id
        status = await self._status(key)
        if status_category(status) != "done":
            return f"{key} is not done ({status.get('name') or 'no status'}): left alone"
        transitions = await self._transitions(key)
        chosen = next(
            (t for t in transitions if _target_category(t) == "new"),
            next((t for t in transitions if _target_category(t) == "indeterminate"), None),
        )
        if chosen is None:
            problem = (
                f"{key}: no transition leads out of {status.get('name') or 'done'} "
                f"(available: {_names(transitions)})"
            )
            raise ValidationError(problem, connection=self.name)
        await self._transition(key, chosen, note, tag, resolution=False)
        return None

    async def _status(self, key: str) -> JiraStatus:
        issue = await self._answer(
            JiraIssue, "GET", f"{API}/issue/{quote(key, safe='')}", params={"fields": "status"}
        )
        return (issue.get("fields") or {}).get("status") or {}

    async def _transitions(self, key: str) -> list[JiraTransition]:
        page = await self._answer(
            JiraTransitionsPage,
            "GET",
            f"{API}/issue/{quote(key, safe='')}/transitions",
            params={"expand": "transitions.fields"},
        )
        return [t for t in page.get("transitions") or [] if t.get("isAvailable", True)]

    def _done_transition(
        self, key: str, status: JiraStatus, transitions: list[JiraTransition]
    ) -> JiraTransition:
        done = [t for t in transitions if _target_category(t) == "done"]
        wanted = (self.conn.done_transition or "").strip()
        if wanted:
            exact = [t for t in done if t.get("name") == wanted or t["id"] == wanted]
            loose = [t for t in done if str(t.get("name") or "").casefold() == wanted.casefold()]
            if exact or loose:
                return (exact or loose)[0]
            problem = (
                f"{key}: no transition named {wanted!r} leads to done from "
                f"{status.get('name') or 'its status'}; those that do: {_names(done)}"
            )
            raise ValidationError(
                problem, field_errors={"done_transition": problem}, connection=self.name
            )
        if len(done) == 1:
            return done[0]
        if not done:
            problem = (
                f"{key}: no transition leads to done from {status.get('name') or 'its status'} "
                f"(available: {_names(transitions)})"
            )
            raise ValidationError(problem, connection=self.name)
        problem = f"several transitions lead to done: {_names(done)}; set done_transition"
        raise ValidationError(
            problem, field_errors={"done_transition": problem}, connection=self.name
        )

    async def _transition(
        self, key: str, transition: JiraTransition, note: str, tag: NoteTag, *, resolution: bool
    ) -> None:
        """The note as this job's own comment, then the transition tagged with ``historyMetadata``.

        Not the transition's ``update.comment``: Jira drops that comment without a word when the
        transition has no screen (team-managed workflows have none), and a comment written there
        cannot carry the property that marks it ours. The comment goes first and is looked for on
        a retry (``has_note``), so a transition that failed after it does not write it twice.
        """
        ref = TicketRef(key, "")
        if note.strip() and not await self.has_note(ref, note, tag):
            await self.add_note(ref, note, tag)
        body: dict[str, JsonValue] = {
            "transition": {"id": str(transition["id"])},
            "historyMetadata": {"type": HISTORY_TYPE, "activityDescription": tag.nonce},
        }
        screen = transition.get("fields") or {}
        if resolution and "resolution" in screen:
            body["fields"] = {"resolution": {"name": self._resolution(screen["resolution"])}}
        await self._request(
            "POST",
            f"{API}/issue/{quote(key, safe='')}/transitions",
            json=body,
            expect=(200, 204),
        )

    def _resolution(self, field: JiraTransitionField) -> str:
        """The configured resolution when the screen allows it, else the screen's first."""
        wanted = self.conn.resolution
        allowed = [str(v["name"]) for v in field.get("allowedValues") or [] if v.get("name")]
        if not allowed:
            return wanted
        exact = next((name for name in allowed if name.casefold() == wanted.casefold()), None)
        if exact is None:
            log.info("%s: resolution %r not allowed; using %r", self.name, wanted, allowed[0])
        return exact or allowed[0]
