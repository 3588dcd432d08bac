"""The Jira emulator's data: the seeded site (one project, its users) and the issues made on it.

No HTTP here: ``jira_routes`` answers requests about these records, ``jql`` searches them and
``jira_beans`` renders them as Jira's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from anomaly_desk.sandbox.jira_text import plain_text

Json = dict[str, Any]  # a JSON object as Jira sends and takes it


@dataclass
class User:
    account_id: str
    email: str
    display_name: str
    token: str | None = None  # API token; None: cannot log in
    can_write: bool = True
    time_zone: str = "Europe/Berlin"


@dataclass
class Comment:
    id: str
    author: User
    body: Json
    created: datetime
    properties: dict[str, Json] = field(default_factory=dict)  # key → value, as set at create


@dataclass
class Issue:
    id: str
    key: str
    project: str
    issuetype: str
    summary: str
    description: Json | None
    priority: str  # a PRIORITIES id
    labels: list[str]
    assignee: User | None
    reporter: User
    status: str  # a STATUSES name
    created: datetime
    updated: datetime
    comments: list[Comment] = field(default_factory=list)


PROJECT = {"id": "10000", "key": "DQ", "name": "Data Quality"}
ISSUE_TYPES = [
    {"id": "10001", "name": "Task", "description": "A small, distinct piece of work."},
    {"id": "10002", "name": "Bug", "description": "A problem or error."},
    {"id": "10003", "name": "Story", "description": "A feature expressed as a user goal."},
]
PRIORITIES = [  # id, name, colour, description
    ("1", "Highest", "#d04437", "This problem will block progress."),
    ("2", "High", "#f15C75", "Serious problem that could block progress."),
    ("3", "Medium", "#f79232", "Has the potential to affect progress."),
    ("4", "Low", "#707070", "Minor problem or easily worked around."),
    ("5", "Lowest", "#999999", "Trivial problem with little or no impact on progress."),
]
DEFAULT_PRIORITY = "3"
STATUSES = {  # name → (id, category id, category key, colour)
    "To Do": ("10000", 2, "new", "blue-gray"),
    "In Progress": ("3", 4, "indeterminate", "yellow"),
    "Done": ("10001", 3, "done", "green"),
}
STATUS_CATEGORY_NAMES = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}


def seed_users() -> list[User]:
    return [
        User("5b10ac8d82e05b22cc7d4ef5", "demo@example.com", "Demo User", token="demo-token"),
        User("5b10a2844c20165700ede21f", "alice@example.com", "Alice Émond"),
        User("712020:2f6d4a7e-0b4c-4e8b-9d1f-3c5a7b9e1f20", "bob@example.com", "Bob Okafor"),
        User("5d5f8ab1c2e3f40c8a1b2c3d", "carol@example.com", "Carol Nguyen"),
        User(
            "5e0b7c6d5a4f3e2d1c0b9a88",
            "readonly@example.com",
            "Read Only",
            token="readonly-token",
            can_write=False,
        ),
    ]


def issue_type(name: str) -> Json:
    return next(t for t in ISSUE_TYPES if t["name"] == name)


def priority_name(pid: str) -> str:
    return next(p[1] for p in PRIORITIES if p[0] == pid)


def project_matches(key_or_id: str) -> bool:
    return key_or_id.upper() == PROJECT["key"] or key_or_id == PROJECT["id"]


class JiraSite:
    """In-memory Jira Cloud site with one project (DQ) and a few users."""

    users: list[User]
    issues: dict[str, Issue]  # by id
    page_tokens: dict[str, tuple[str, int]]  # the search's nextPageToken → (jql, offset)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the seed: no issues, the seeded users (``POST /_sandbox/reset`` calls this)."""
        self.users = seed_users()
        self.issues = {}
        self.next_issue_id = 10000
        self.next_number = 1
        self.next_comment_id = 10000
        self.page_tokens = {}

    # -- lookups -------------------------------------------------------------------------

    def find(self, key_or_id: str) -> Issue | None:
        wanted = key_or_id.upper()
        return self.issues.get(key_or_id) or next(
            (i for i in self.issues.values() if i.key == wanted), None
        )

    def find_user(self, account_id: str) -> User | None:
        return next((u for u in self.users if u.account_id == account_id), None)

    def matching_users(self, query: str) -> list[User]:
        """Users whose e-mail, name or a word of it starts with ``query`` (all for "")."""
        query = query.strip().lower()
        return [
            u
            for u in self.users
            if not query
            or u.email.lower().startswith(query)
            or any(word.startswith(query) for word in u.display_name.lower().split())
            or u.display_name.lower().startswith(query)
        ]

    def text_of(self, issue: Issue, name: str) -> str:
        """The text a JQL ``~`` clause on field ``name`` searches (``text``: all of it)."""
        description = plain_text(issue.description) if issue.description else ""
        comments = " ".join(plain_text(c.body) for c in issue.comments)
        return {
            "summary": issue.summary,
            "description": description,
            "comment": comments,
            "environment": "",
        }.get(name, f"{issue.summary} {description} {comments}")

    def values_of(self, issue: Issue, name: str) -> set[str]:
        """The lower-cased values a JQL ``=``/``in`` clause on field ``name`` compares against."""
        if name == "key":
            return {issue.key.lower(), issue.id}
        if name == "project":
            return {v.lower() for v in (PROJECT["key"], PROJECT["name"], PROJECT["id"])}
        if name == "labels":
            return {label.lower() for label in issue.labels}
        if name == "status":
            return {issue.status.lower(), STATUSES[issue.status][0]}
        if name == "statuscategory":
            category = STATUSES[issue.status][2]
            return {category, STATUS_CATEGORY_NAMES[category].lower()}
        if name == "priority":
            return {priority_name(issue.priority).lower(), issue.priority}
        if name == "issuetype":
            issuetype = issue_type(issue.issuetype)
            return {issuetype["name"].lower(), issuetype["id"]}
        if name in {"assignee", "reporter"}:
            user = issue.assignee if name == "assignee" else issue.reporter
            return {user.account_id.lower(), user.email.lower()} if user else set()
        return set()

    # -- changes -------------------------------------------------------------------------

    def create_issue(
        self,
        *,
        reporter: User,
        issuetype: str,
        summary: str,
        description: Json | None,
        priority: str,
        labels: list[str],
        assignee: User | None,
    ) -> Issue:
        """A new issue in the project, status To Do, with the next id and key."""
        now = datetime.now(UTC)
        issue = Issue(
            id=str(self.next_issue_id),
            key=f"{PROJECT['key']}-{self.next_number}",
            project=PROJECT["key"],
            issuetype=issuetype,
            summary=summary,
            description=description,
            priority=priority,
            labels=labels,
            assignee=assignee,
            reporter=reporter,
            status="To Do",
            created=now,
            updated=now,
        )
        self.next_issue_id += 1
        self.next_number += 1
        self.issues[issue.id] = issue
        return issue

    def add_comment(
        self, issue: Issue, author: User, body: Json, properties: dict[str, Json]
    ) -> Comment:
        """A new comment at the end of ``issue``, which counts as an update of the issue."""
        comment = Comment(str(self.next_comment_id), author, body, datetime.now(UTC), properties)
        self.next_comment_id += 1
        issue.comments.append(comment)
        issue.updated = comment.created
        return comment
