"""The Jira emulator's data: the seeded site (its projects and users) and the issues made on it.

No HTTP here: ``jira_routes`` answers requests about these records, ``jql`` searches them and
``jira_beans`` renders them as Jira's JSON. The projects and their workflows are in
``jira_workflows``. Every change to an issue's fields (status and resolution included) is kept
as a changelog entry (``History``) with its author and the ``historyMetadata`` the request sent;
comments are not changes (Jira keeps them apart from the changelog).

Users: ``demo@example.com`` (the integration: classic API token ``demo-token``, scoped token
``demo-scoped-token`` for the API gateway), ``alice@example.com`` (a person, ``alice-token``),
two without tokens, ``readonly@example.com`` (reads only) and the service account
``desk-service@serviceaccount.atlassian.com`` (``accountType`` app, no API token: reached through
the OAuth client ``desk-client``; writes in DQ only). For the operator as reporter or watcher:
``dana@example.com`` (one active account, and a deactivated one with the same email) and
``sam@example.com`` (two active accounts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from anomaly_desk.sandbox.jira_text import plain_text
from anomaly_desk.sandbox.jira_workflows import (
    PROJECTS,
    STATUS_CATEGORIES,
    Project,
    Transition,
    find_project,
    project_of,
    resolution_name,
)

if TYPE_CHECKING:
    from anomaly_desk.sandbox.oauth import AuthState
    from anomaly_desk.sandbox.webhooks import WebhookHub

Json = dict[str, Any]  # a JSON object as Jira sends and takes it


@dataclass
class User:
    account_id: str
    email: str
    display_name: str
    token: str | None = None  # classic API token (the site's base only); None: cannot log in
    can_write: bool = True
    time_zone: str = "Europe/Berlin"
    scoped_token: str | None = None  # a scoped API token: only through /ex/jira/{cloudId}
    account_type: str = "atlassian"  # "app": a service account (OAuth 2.0 client credentials)
    write_projects: frozenset[str] | None = None  # the projects it may change; None: all
    active: bool = True  # a deactivated account: still found, never assignable

    def may_write(self, project: str) -> bool:
        """Whether the user may create, comment, edit and transition in ``project`` (a key)."""
        return self.can_write and (self.write_projects is None or project in self.write_projects)


@dataclass
class Comment:
    id: str
    author: User
    body: Json
    created: datetime
    properties: dict[str, Json] = field(default_factory=dict)  # key → value, as set at create


@dataclass(frozen=True, slots=True)
class ChangeItem:
    """One field's change: ids in ``from``/``to`` (when the field has ids), names in the strings."""

    field: str  # the name Jira shows: "status", "resolution", "summary", "labels"…
    field_id: str
    from_id: str | None
    from_string: str | None
    to_id: str | None
    to_string: str | None


@dataclass
class History:
    """A changelog entry: who changed which fields when, and the request's ``historyMetadata``."""

    id: str
    author: User
    created: datetime
    items: list[ChangeItem]
    metadata: Json | None = None


@dataclass
class Issue:
    id: str
    key: str
    project: str  # a project key
    issuetype: str
    summary: str
    description: Json | None
    priority: str  # a PRIORITIES id
    labels: list[str]
    assignee: User | None
    reporter: User
    status: str  # a status name of the issue's project
    created: datetime
    updated: datetime
    comments: list[Comment] = field(default_factory=list)
    resolution: str | None = None  # a RESOLUTIONS id
    resolution_date: datetime | None = None
    category_changed: datetime | None = None  # statuscategorychangedate; None: created
    histories: list[History] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)  # custom field id → stored value
    watchers: list[User] = field(default_factory=list)

    @property
    def workflow(self) -> Project:
        return project_of(self.project)


PROJECT = {"id": "10000", "key": "DQ", "name": "Data Quality"}  # the default project
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
INTEGRATION_ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"  # demo@example.com, the integration's user
HUMAN_ACCOUNT = "5b10a2844c20165700ede21f"  # alice@example.com, a person working the tickets
# The service account behind the OAuth 2.0 client ``desk-client`` (``oauth``): works in DQ only
SERVICE_ACCOUNT = "712020:5e1d7a9c-4b3f-4f0e-9c8a-1d2e3f4a5b6c"
SERVICE_ACCOUNT_EMAIL = "desk-service@serviceaccount.atlassian.com"
SCOPED_TOKEN = "demo-scoped-token"  # demo@example.com's scoped API token (api.atlassian.com only)
CLOUD_ID = "3f9c2b7e-8d41-4a6b-9e25-7c1d0a4f5b83"  # the site's cloudId (``/_edge/tenant_info``)


def seed_users() -> list[User]:
    return [
        User(
            INTEGRATION_ACCOUNT,
            "demo@example.com",
            "Demo User",
            token="demo-token",
            scoped_token=SCOPED_TOKEN,
        ),
        User(HUMAN_ACCOUNT, "alice@example.com", "Alice Émond", token="alice-token"),
        User("712020:2f6d4a7e-0b4c-4e8b-9d1f-3c5a7b9e1f20", "bob@example.com", "Bob Okafor"),
        User("5d5f8ab1c2e3f40c8a1b2c3d", "carol@example.com", "Carol Nguyen"),
        User(
            "5e0b7c6d5a4f3e2d1c0b9a88",
            "readonly@example.com",
            "Read Only",
            token="readonly-token",
            can_write=False,
        ),
        User(
            SERVICE_ACCOUNT,
            SERVICE_ACCOUNT_EMAIL,
            "Anomaly Desk (service account)",
            account_type="app",
            write_projects=frozenset({"DQ"}),
            time_zone="Etc/UTC",
        ),
        # People for the create form's reporter and watcher: Dana has one active account (and
        # an old, deactivated one with the same email); Sam has two active accounts.
        User("712020:8c1f4e2a-6b3d-4a5e-9f70-2d4c6b8a0e13", "dana@example.com", "Dana Whitfield"),
        User(
            "5c9e1a7b3d2f4e6a8b0c1d2e",
            "dana@example.com",
            "Dana Whitfield (old)",
            active=False,
        ),
        User("712020:3a5c7e9b-1d2f-4b6a-8c0e-5f7a9b1c3d24", "sam@example.com", "Sam Park"),
        User(
            "712020:9e7c5a3b-2d4f-4a6b-8e0c-1f3a5b7c9d35",
            "sam@example.com",
            "Sam Park (contractor)",
        ),
    ]


def issue_type(name: str) -> Json:
    return next(t for t in ISSUE_TYPES if t["name"] == name)


def priority_name(pid: str) -> str:
    return next(p[1] for p in PRIORITIES if p[0] == pid)


def project_matches(key_or_id: str) -> bool:
    return find_project(key_or_id) is not None


def labels_string(labels: list[str]) -> str:
    return " ".join(labels)


class JiraSite:
    """In-memory Jira Cloud site: the projects DQ and TM, a few users, the issues made on it."""

    users: list[User]
    issues: dict[str, Issue]  # by id
    page_tokens: dict[str, tuple[str, int]]  # the search's nextPageToken → (jql, offset)
    changelog_tokens: dict[str, tuple[str, int]]  # bulkfetch's nextPageToken → (request, offset)
    webhooks: WebhookHub | None = None  # where admin webhooks go (``jira_events``); None: off
    auth: AuthState  # OAuth clients and tokens, expired API tokens (shared with ServiceNow)
    cloud_id: str = CLOUD_ID  # the site under https://api.atlassian.com/ex/jira/{cloudId}

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the seed: no issues, the seeded users (``POST /_sandbox/reset`` calls this)."""
        self.users = seed_users()
        self.issues = {}
        self.next_issue_id = 10000
        self.next_numbers = {project.key: 1 for project in PROJECTS}
        self.next_comment_id = 10000
        self.next_history_id = 10000
        self.page_tokens = {}
        self.changelog_tokens = {}

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
            project = issue.workflow
            return {v.lower() for v in (project.key, project.name, project.id)}
        if name == "labels":
            return {label.lower() for label in issue.labels}
        status = issue.workflow.status(issue.status)
        if name == "status":
            return {status.name.lower(), status.id}
        if name == "statuscategory":
            cat_id, cat_name, _ = STATUS_CATEGORIES[status.category]
            return {status.category, cat_name.lower(), str(cat_id)}
        if name == "resolution":
            if issue.resolution is None:
                return set()
            return {resolution_name(issue.resolution).lower(), issue.resolution}
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
        project: str = PROJECT["key"],
        custom: dict[str, Any] | None = None,
        creator: User | None = None,
    ) -> Issue:
        """A new issue in ``project``, in its initial status, with the next id and key; its
        reporter and creator watch it (Jira's default "watch issues you create")."""
        now = datetime.now(UTC)
        workflow = project_of(project)
        issue = Issue(
            id=str(self.next_issue_id),
            key=f"{workflow.key}-{self.next_numbers[workflow.key]}",
            project=workflow.key,
            issuetype=issuetype,
            summary=summary,
            description=description,
            priority=priority,
            labels=labels,
            assignee=assignee,
            reporter=reporter,
            status=workflow.initial_status,
            created=now,
            updated=now,
            custom=dict(custom or {}),
            watchers=list({u.account_id: u for u in (reporter, creator or reporter)}.values()),
        )
        self.next_issue_id += 1
        self.next_numbers[workflow.key] += 1
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

    def transition(
        self,
        issue: Issue,
        author: User,
        transition: Transition,
        resolution: str | None = None,
        metadata: Json | None = None,
    ) -> History | None:
        """Move ``issue`` along ``transition``, setting (or clearing) its resolution.

        The changelog entry holds the status and resolution changes; None when nothing changed
        (a global transition to the status the issue is already in).
        """
        now = datetime.now(UTC)
        workflow = issue.workflow
        items: list[ChangeItem] = []
        before, after = workflow.status(issue.status), workflow.status(transition.to)
        if before != after:
            items.append(
                ChangeItem("status", "status", before.id, before.name, after.id, after.name)
            )
            issue.status = after.name
            if before.category != after.category:
                issue.category_changed = now
        new_resolution = issue.resolution
        if transition.clears_resolution:
            new_resolution = None
        if resolution is not None:
            new_resolution = resolution
        if new_resolution != issue.resolution:
            items.append(
                ChangeItem(
                    "resolution",
                    "resolution",
                    issue.resolution,
                    resolution_name(issue.resolution) if issue.resolution else None,
                    new_resolution,
                    resolution_name(new_resolution) if new_resolution else None,
                )
            )
            issue.resolution = new_resolution
            issue.resolution_date = now if new_resolution else None
        return self.record(issue, author, items, metadata, now)

    def edit(
        self, issue: Issue, author: User, values: Json, metadata: Json | None = None
    ) -> History | None:
        """Set the fields in ``values`` (already checked) and keep what changed in the changelog.

        ``values`` maps field ids to the stored form: summary (str), description (ADF or None),
        priority (an id), labels (list), assignee (a ``User`` or None).
        """
        items: list[ChangeItem] = []
        if "summary" in values and values["summary"] != issue.summary:
            items.append(
                ChangeItem("summary", "summary", None, issue.summary, None, values["summary"])
            )
            issue.summary = values["summary"]
        if "description" in values and values["description"] != issue.description:
            old = plain_text(issue.description).strip() if issue.description else None
            new = plain_text(values["description"]).strip() if values["description"] else None
            items.append(ChangeItem("description", "description", None, old, None, new))
            issue.description = values["description"]
        if "priority" in values and values["priority"] != issue.priority:
            items.append(
                ChangeItem(
                    "priority",
                    "priority",
                    issue.priority,
                    priority_name(issue.priority),
                    values["priority"],
                    priority_name(values["priority"]),
                )
            )
            issue.priority = values["priority"]
        if "labels" in values and values["labels"] != issue.labels:
            items.append(
                ChangeItem(
                    "labels",
                    "labels",
                    None,
                    labels_string(issue.labels),
                    None,
                    labels_string(values["labels"]),
                )
            )
            issue.labels = list(values["labels"])
        if "assignee" in values and values["assignee"] != issue.assignee:
            old_user: User | None = issue.assignee
            new_user: User | None = values["assignee"]
            items.append(
                ChangeItem(
                    "assignee",
                    "assignee",
                    old_user.account_id if old_user else None,
                    old_user.display_name if old_user else None,
                    new_user.account_id if new_user else None,
                    new_user.display_name if new_user else None,
                )
            )
            issue.assignee = new_user
        return self.record(issue, author, items, metadata, datetime.now(UTC))

    def record(
        self,
        issue: Issue,
        author: User,
        items: list[ChangeItem],
        metadata: Json | None,
        at: datetime,
    ) -> History | None:
        """A changelog entry for ``items`` (none: no entry), and the issue counts as updated."""
        if not items:
            return None
        history = History(str(self.next_history_id), author, at, items, metadata)
        self.next_history_id += 1
        issue.histories.append(history)
        issue.updated = at
        return history
