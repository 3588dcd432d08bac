"""What the Jira emulator's admin webhooks send: Jira Cloud's event bodies, handed to the hub.

Admin webhooks deliver v2-shaped bodies: rich text (the description, a comment's body) as a plain
(wiki) string, not ADF. Jira fires, and so does the emulator:

* ``jira:issue_created`` on a create (``issue_event_type_name`` ``issue_created``);
* ``jira:issue_updated`` on an edit (``issue_updated``, with ``changelog``), a transition
  (``issue_generic``, with ``changelog``, and ``comment`` when one was added with it) and a
  comment (``issue_commented``, with ``comment``, no changelog);
* ``comment_created`` for every new comment (``comment`` and a slim ``issue``, no ``user``).

Every ``jira:*`` body carries ``user`` (who did it, by ``accountId``) and ``timestamp`` (epoch
milliseconds). A target's ``jql`` keeps only the events of issues that match it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from anomaly_desk.sandbox.jira_beans import (
    API,
    change_item_json,
    comment_json,
    issue_json,
    user_json,
    webhook_issue_json,
)
from anomaly_desk.sandbox.jira_data import Comment, History, Issue, JiraSite, Json, User
from anomaly_desk.sandbox.jira_text import plain_text
from anomaly_desk.sandbox.jql import JqlError, matches

if TYPE_CHECKING:
    from anomaly_desk.sandbox.webhooks import WebhookHub


def webhook_user_json(user: User, base: str) -> Json:
    bean = user_json(user, base)
    bean.pop("emailAddress", None)  # webhooks leave the address out
    return bean


def webhook_comment_json(issue: Issue, comment: Comment, base: str) -> Json:
    bean = comment_json(issue, comment, base)
    bean["author"] = webhook_user_json(comment.author, base)
    bean["updateAuthor"] = bean["author"]
    bean["body"] = plain_text(comment.body).strip()
    return bean


class JiraEvents:
    """Turns the site's changes into webhook deliveries (nothing when no target is set)."""

    def __init__(self, site: JiraSite) -> None:
        self.site = site

    @property
    def hub(self) -> WebhookHub | None:
        return self.site.webhooks

    def _wanted(self, event: str, issue: Issue) -> WebhookHub | None:
        hub = self.hub
        if hub is None or not hub.wants("jira", event):
            return None
        target = hub.targets["jira"]
        if target.jql:
            try:
                if not matches(self.site, target.jql, issue):
                    return None
            except JqlError:
                return None  # Jira sends nothing for a filter it cannot run
        return hub

    def issue_created(self, issue: Issue, user: User, base: str) -> None:
        if hub := self._wanted("jira:issue_created", issue):
            hub.emit(
                "jira",
                "jira:issue_created",
                self._issue_event("jira:issue_created", "issue_created", issue, user, base),
            )

    def issue_updated(
        self,
        issue: Issue,
        user: User,
        base: str,
        kind: str,
        history: History | None = None,
        comment: Comment | None = None,
    ) -> None:
        """``kind``: ``issue_updated`` (edit), ``issue_generic`` (transition), ``issue_commented``."""
        if hub := self._wanted("jira:issue_updated", issue):
            body = self._issue_event("jira:issue_updated", kind, issue, user, base)
            if history is not None:
                body["changelog"] = {
                    "id": history.id,
                    "items": [change_item_json(i) for i in history.items],
                }
            if comment is not None:
                body["comment"] = webhook_comment_json(issue, comment, base)
            hub.emit("jira", "jira:issue_updated", body)

    def comment_created(self, issue: Issue, comment: Comment, base: str) -> None:
        if hub := self._wanted("comment_created", issue):
            slim = issue_json(
                issue, base, ["summary", "status", "priority", "issuetype", "assignee"]
            )
            slim["self"] = f"{base}{API}/issue/{issue.id}"
            hub.emit(
                "jira",
                "comment_created",
                {
                    "timestamp": _now_ms(),
                    "webhookEvent": "comment_created",
                    "comment": webhook_comment_json(issue, comment, base),
                    "issue": {k: slim[k] for k in ("id", "self", "key", "fields")},
                },
            )

    def _issue_event(self, event: str, kind: str, issue: Issue, user: User, base: str) -> Json:
        return {
            "timestamp": _now_ms(),
            "webhookEvent": event,
            "issue_event_type_name": kind,
            "user": webhook_user_json(user, base),
            "issue": webhook_issue_json(issue, base),
        }


def _now_ms() -> int:
    return int(time.time() * 1000)
