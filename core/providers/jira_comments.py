"""Comments: the desk's notes (each carrying its job's nonce as a comment property, so a retry
finds it) and the comments two-way sync reads."""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import quote

from pydantic import JsonValue

from anomaly_desk.core.formatting.adf import adf_json, adf_to_text, text_to_adf, truncate_doc
from anomaly_desk.core.providers.base import NoteTag, TicketComment, TicketRef
from anomaly_desk.core.providers.errors import ValidationError
from anomaly_desk.core.providers.jira_base import API, JiraBase
from anomaly_desk.core.providers.jira_jql import iso_utc, parse_time
from anomaly_desk.core.providers.payloads import JiraComment, JiraCommentPage

log = logging.getLogger(__name__)

NOTE_LOOKBACK = 100  # newest comments searched by has_note
NOTE_PROPERTY = "anomaly-desk"  # comment property naming the outbox job a comment came from
COMMENT_PAGE = 100


class JiraComments(JiraBase):
    """Writing and finding notes; reading comments since a time."""

    async def add_note(self, ticket: TicketRef, text: str, tag: NoteTag | None = None) -> None:
        if not text.strip():
            problem = "Comment body can not be empty!"
            raise ValidationError(problem, field_errors={"comment": problem}, connection=self.name)
        body: dict[str, JsonValue] = {"body": adf_json(truncate_doc(text_to_adf(text)))}
        if tag is not None:  # set with the comment, in the same request: never one without other
            body["properties"] = [{"key": NOTE_PROPERTY, "value": {"job": tag.nonce}}]
        await self._request(
            "POST",
            f"{API}/issue/{quote(ticket.key, safe='')}/comment",
            json=body,
            expect=(200, 201),
        )

    async def note_baseline(self, ticket: TicketRef, text: str) -> int:
        return 0  # comments carry the job's nonce: nothing to count

    async def has_note(self, ticket: TicketRef, text: str, tag: NoteTag) -> bool:
        """This job's comment is the one whose ``anomaly-desk`` property names its nonce."""
        page = await self._answer(
            JiraCommentPage,
            "GET",
            f"{API}/issue/{quote(ticket.key, safe='')}/comment",
            params={
                "orderBy": "-created",
                "maxResults": str(NOTE_LOOKBACK),
                "expand": "properties",
            },
        )
        wanted = " ".join(text.split())
        for comment in (page.get("comments") if page else None) or []:
            properties = comment.get("properties")
            ours = [
                prop.get("value")
                for prop in properties or []
                if isinstance(prop, dict) and prop.get("key") == NOTE_PROPERTY
            ]
            if any(isinstance(v, dict) and v.get("job") == tag.nonce for v in ours):
                return True
            if ours or (properties is not None and not tag.legacy):
                continue  # another job's comment, or a comment that is not ours
            # No marker to go by: a job stored before jobs had one (its earlier attempt wrote
            # none), or a site that did not expand the properties. Fall back to the text, which
            # may take an older identical note for this one (the lesser harm: never doubled).
            if " ".join(adf_to_text(comment.get("body")).split()) == wanted:
                if properties is None:
                    log.warning("%s: comments came back without properties", self.name)
                return True
        return False

    async def _comments_since(self, key: str, after: datetime | None) -> list[TicketComment]:
        """Comments created at or after ``after`` (all without), oldest first."""
        path = f"{API}/issue/{quote(key, safe='')}/comment"
        found: dict[str, TicketComment] = {}
        start = 0
        while True:
            params: dict[str, str | int] = {
                "orderBy": "-created",  # newest first: stop at the first older one
                "startAt": start,
                "maxResults": COMMENT_PAGE,
                "expand": "properties",
            }
            page = await self._answer(JiraCommentPage, "GET", path, params=params)
            batch = page.get("comments") or []
            for comment in batch:
                created = parse_time(comment.get("created"))
                if after and created and created < after:
                    return list(reversed(found.values()))
                note = self._comment(comment, created)
                found.setdefault(note.id, note)
            start += len(batch)
            if not batch or start >= int(page.get("total") or 0):
                return list(reversed(found.values()))

    def _comment(self, comment: JiraComment, created: datetime | None) -> TicketComment:
        author = comment.get("author")
        properties = comment.get("properties") or []
        return TicketComment(
            id=str(comment.get("id") or ""),
            author_id=str(author.get("accountId") or "") if author else "",
            author=str(
                (author.get("emailAddress") or author.get("displayName") or author.get("accountId"))
                if author
                else ""
            ),
            text=adf_to_text(comment.get("body")).strip(),
            created=iso_utc(created) if created else str(comment.get("created") or ""),
            ours=any(
                isinstance(prop, dict) and prop.get("key") == NOTE_PROPERTY for prop in properties
            ),
        )
