"""Jira Cloud REST v3 emulator: the endpoints Anomaly Desk and the PyPI ``jira`` library use.

It answers the way Jira Cloud answers: the ``{"errorMessages", "errors"}`` envelope with Jira's
own wording, ADF-only rich text (a plain string description is a 400), Jira's timestamp format,
``self`` links built from the request's base URL, the enhanced search with ``nextPageToken``
pagination, and 410 Gone for the removed ``/search`` endpoints. State is in memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from anomaly_desk.core.formatting.adf import JIRA_TEXT_LIMIT, adf_size, adf_to_text, utf16_len
from anomaly_desk.sandbox.adf import adf_errors
from anomaly_desk.sandbox.jql import JqlError, JqlParser

API = "/rest/api/3"
NOT_ADF = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
NO_ISSUE = "Issue does not exist or you do not have permission to see it."
UNAUTHENTICATED = "Client must be authenticated to access this resource."
SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
UNBOUNDED = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)
# Entity properties (comment properties included): a key of at most 255 characters, a value that
# is a JSON object of at most 32768 characters. Jira parses each entry of a comment's
# ``properties`` as an object with a string ``key`` and an object ``value``, then validates it as
# an entity property; a failure is a 400 with the message in ``errorMessages``.
PROPERTY_KEY_MAX = 255
PROPERTY_VALUE_MAX = 32768
PROPERTY_NOT_OBJECTS = "Comment properties must be a JSON array of objects with a key and a value."
PROPERTY_NO_KEY = "The property key cannot be empty."
PROPERTY_KEY_TOO_LONG = f"The property key cannot be longer than {PROPERTY_KEY_MAX} characters."
PROPERTY_NOT_JSON_OBJECT = "The property value must be a valid JSON object."
PROPERTY_VALUE_TOO_LONG = (
    f"The property value cannot be longer than {PROPERTY_VALUE_MAX} characters."
)

Json = dict[str, Any]


# --------------------------------------------------------------------------- seed data


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
    priority: str
    labels: list[str]
    assignee: User | None
    reporter: User
    status: str
    created: datetime
    updated: datetime
    comments: list[Comment] = field(default_factory=list)


PROJECT = {"id": "10000", "key": "DQ", "name": "Data Quality"}
ISSUE_TYPES = [
    {"id": "10001", "name": "Task", "description": "A small, distinct piece of work."},
    {"id": "10002", "name": "Bug", "description": "A problem or error."},
    {"id": "10003", "name": "Story", "description": "A feature expressed as a user goal."},
]
PRIORITIES = [
    ("1", "Highest", "#d04437", "This problem will block progress."),
    ("2", "High", "#f15C75", "Serious problem that could block progress."),
    ("3", "Medium", "#f79232", "Has the potential to affect progress."),
    ("4", "Low", "#707070", "Minor problem or easily worked around."),
    ("5", "Lowest", "#999999", "Trivial problem with little or no impact on progress."),
]
STATUSES = {
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


# --------------------------------------------------------------------------- helpers


def jira_time(at: datetime) -> str:
    """Jira's timestamp format: ``2024-01-15T10:30:00.000+0000``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def error(
    status: int, messages: Iterable[str] = (), errors: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"errorMessages": list(messages), "errors": dict(errors or {})}, status_code=status
    )


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# --------------------------------------------------------------------------- the emulator


class JiraEmulator:
    """In-memory Jira Cloud site with one project (DQ) and a few users."""

    users: list[User]
    issues: dict[str, Issue]  # by id
    _page_tokens: dict[str, tuple[str, int]]  # nextPageToken → (jql, offset)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the seed: no issues, the seeded users (``/_sandbox/reset`` calls this)."""
        self.users = seed_users()
        self.issues = {}
        self.next_issue_id = 10000
        self.next_number = 1
        self.next_comment_id = 10000
        self._page_tokens = {}

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        def route(path: str, endpoint: Callable[[Request], Any], methods: list[str]) -> Route:
            return Route(path, self._guard(endpoint), methods=methods)

        v3 = [
            route(f"{API}/serverInfo", self.server_info, methods=["GET"]),
            route("/rest/api/2/serverInfo", self.server_info, methods=["GET"]),
            route(f"{API}/search", self.search_gone, methods=["GET", "POST"]),
            route("/rest/api/2/search", self.search_gone, methods=["GET", "POST"]),
            route(f"{API}/myself", self.myself, methods=["GET"]),
            route(f"{API}/field", self.fields, methods=["GET"]),
            route(f"{API}/priority", self.priorities, methods=["GET"]),
            route(f"{API}/issuetype", self.issue_types, methods=["GET"]),
            route(f"{API}/project/{{key}}", self.project, methods=["GET"]),
            route(f"{API}/user", self.user, methods=["GET"]),
            route(f"{API}/user/search", self.user_search, methods=["GET"]),
            route(f"{API}/user/assignable/search", self.assignable, methods=["GET"]),
            route(
                f"{API}/issue/createmeta/{{project}}/issuetypes",
                self.createmeta_types,
                methods=["GET"],
            ),
            route(
                f"{API}/issue/createmeta/{{project}}/issuetypes/{{type_id}}",
                self.createmeta_fields,
                methods=["GET"],
            ),
            route(f"{API}/issue", self.create_issue, methods=["POST"]),
            route(f"{API}/issue/{{key}}", self.get_issue, methods=["GET"]),
            route(f"{API}/issue/{{key}}/comment", self.add_comment, methods=["POST"]),
            route(f"{API}/issue/{{key}}/comment", self.list_comments, methods=["GET"]),
            route(f"{API}/issue/{{key}}/comment/{{cid}}", self.get_comment, methods=["GET"]),
            route(f"{API}/search/jql", self.search, methods=["GET", "POST"]),
        ]
        return v3

    def _guard(self, endpoint: Callable[..., Any]) -> Callable[[Request], Any]:
        """Basic auth on everything but serverInfo (which Jira serves anonymously)."""

        async def guarded(request: Request) -> Response:
            user = self.authenticate(request)
            request.state.jira_user = user
            if user is None and endpoint not in (self.server_info, self.search_gone):
                return error(401, [UNAUTHENTICATED])
            return await endpoint(request)

        return guarded

    def authenticate(self, request: Request) -> User | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            email, _, token = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        for user in self.users:
            if (
                user.token
                and user.email == email
                and secrets.compare_digest(user.token.encode(), token.encode())
            ):
                return user
        return None

    # ------------------------------------------------------------------ representations

    def user_json(self, user: User, base: str) -> Json:
        avatar = f"{base}/secure/useravatar?ownerId={user.account_id}"
        return {
            "self": f"{base}{API}/user?accountId={user.account_id}",
            "accountId": user.account_id,
            "accountType": "atlassian",
            "emailAddress": user.email,
            "avatarUrls": {size: f"{avatar}&size={size}" for size in ("48x48", "24x24", "16x16")},
            "displayName": user.display_name,
            "active": True,
            "timeZone": user.time_zone,
            "locale": "en_US",
        }

    def priority_json(self, pid: str, base: str) -> Json:
        _, name, color, description = next(p for p in PRIORITIES if p[0] == pid)
        return {
            "self": f"{base}{API}/priority/{pid}",
            "statusColor": color,
            "description": description,
            "iconUrl": f"{base}/images/icons/priorities/{name.lower()}.svg",
            "name": name,
            "id": pid,
        }

    def issuetype_json(self, issuetype: Json, base: str) -> Json:
        return {
            "self": f"{base}{API}/issuetype/{issuetype['id']}",
            "id": issuetype["id"],
            "description": issuetype["description"],
            "iconUrl": f"{base}/images/icons/issuetypes/{issuetype['name'].lower()}.svg",
            "name": issuetype["name"],
            "untranslatedName": issuetype["name"],
            "subtask": False,
            "hierarchyLevel": 0,
        }

    def project_json(self, base: str) -> Json:
        return {
            "self": f"{base}{API}/project/{PROJECT['id']}",
            "id": PROJECT["id"],
            "key": PROJECT["key"],
            "name": PROJECT["name"],
            "projectTypeKey": "software",
            "simplified": False,
            "avatarUrls": {"48x48": f"{base}/secure/projectavatar?pid={PROJECT['id']}"},
        }

    def status_json(self, name: str, base: str) -> Json:
        sid, cat_id, cat_key, color = STATUSES[name]
        return {
            "self": f"{base}{API}/status/{sid}",
            "description": "",
            "iconUrl": f"{base}/images/icons/statuses/generic.png",
            "name": name,
            "id": sid,
            "statusCategory": {
                "self": f"{base}{API}/statuscategory/{cat_id}",
                "id": cat_id,
                "key": cat_key,
                "colorName": color,
                "name": STATUS_CATEGORY_NAMES[cat_key],
            },
        }

    def comment_json(
        self, issue: Issue, comment: Comment, base: str, expand: frozenset[str] = frozenset()
    ) -> Json:
        """A comment bean; its ``properties`` only with ``expand=properties``, as Jira does."""
        author = self.user_json(comment.author, base)
        bean: Json = {
            "self": f"{base}{API}/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": author,
            "body": comment.body,
            "updateAuthor": author,
            "created": jira_time(comment.created),
            "updated": jira_time(comment.created),
            "jsdPublic": True,
        }
        if "properties" in expand:
            bean["properties"] = [
                {"key": key, "value": value} for key, value in comment.properties.items()
            ]
        return bean

    def comments_page(self, issue: Issue, base: str) -> Json:
        comments = [self.comment_json(issue, c, base) for c in issue.comments]
        return {
            "comments": comments,
            "self": f"{base}{API}/issue/{issue.id}/comment",
            "maxResults": len(comments),
            "total": len(comments),
            "startAt": 0,
        }

    def issue_fields(self, issue: Issue, base: str) -> Json:
        issuetype = next(t for t in ISSUE_TYPES if t["name"] == issue.issuetype)
        return {
            "summary": issue.summary,
            "description": issue.description,
            "issuetype": self.issuetype_json(issuetype, base),
            "project": self.project_json(base),
            "priority": self.priority_json(issue.priority, base),
            "labels": list(issue.labels),
            "assignee": self.user_json(issue.assignee, base) if issue.assignee else None,
            "reporter": self.user_json(issue.reporter, base),
            "creator": self.user_json(issue.reporter, base),
            "status": self.status_json(issue.status, base),
            "statuscategorychangedate": jira_time(issue.created),
            "created": jira_time(issue.created),
            "updated": jira_time(issue.updated),
            "resolution": None,
            "comment": self.comments_page(issue, base),
        }

    def issue_json(self, issue: Issue, base: str, wanted: list[str] | None = None) -> Json:
        """An issue bean; ``wanted`` follows the ``fields`` parameter (None: all fields)."""
        fields = self.issue_fields(issue, base)
        if wanted is not None:
            fields = select_fields(fields, wanted)
        return {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog",
            "id": issue.id,
            "self": f"{base}{API}/issue/{issue.id}",
            "key": issue.key,
            "fields": fields,
        }

    # ------------------------------------------------------------------ lookups used by JQL

    def find(self, key_or_id: str) -> Issue | None:
        wanted = key_or_id.upper()
        return self.issues.get(key_or_id) or next(
            (i for i in self.issues.values() if i.key == wanted), None
        )

    def text_of(self, issue: Issue, name: str) -> str:
        description = adf_to_text(issue.description) if issue.description else ""
        comments = " ".join(adf_to_text(c.body) for c in issue.comments)
        return {
            "summary": issue.summary,
            "description": description,
            "comment": comments,
            "environment": "",
        }.get(name, f"{issue.summary} {description} {comments}")

    def values_of(self, issue: Issue, name: str) -> set[str]:
        """The lower-cased values a ``=``/``in`` clause compares against."""
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
            name_ = next(p[1] for p in PRIORITIES if p[0] == issue.priority)
            return {name_.lower(), issue.priority}
        if name == "issuetype":
            issuetype = next(t for t in ISSUE_TYPES if t["name"] == issue.issuetype)
            return {issuetype["name"].lower(), issuetype["id"]}
        if name in {"assignee", "reporter"}:
            user = issue.assignee if name == "assignee" else issue.reporter
            return {user.account_id.lower(), user.email.lower()} if user else set()
        return set()

    def find_user(self, account_id: str) -> User | None:
        return next((u for u in self.users if u.account_id == account_id), None)

    # ------------------------------------------------------------------ endpoints

    async def server_info(self, request: Request) -> Response:
        now = datetime.now(UTC)
        return JSONResponse(
            {
                "baseUrl": base_url(request),
                "displayUrl": base_url(request),
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0],
                "deploymentType": "Cloud",
                "buildNumber": 100300,
                "buildDate": "2026-01-01T00:00:00.000+0000",
                "serverTime": jira_time(now),
                "scmInfo": "0000000000000000000000000000000000000000",
                "serverTitle": "Jira",
                "defaultLocale": {"locale": "en_US"},
                "serverTimeZone": "Etc/UTC",
            }
        )

    async def search_gone(self, request: Request) -> Response:
        return error(410, [SEARCH_GONE])

    async def myself(self, request: Request) -> Response:
        body = self.user_json(request.state.jira_user, base_url(request))
        body["groups"] = {"size": 1, "items": []}
        body["applicationRoles"] = {"size": 1, "items": []}
        return JSONResponse(body)

    async def fields(self, request: Request) -> Response:
        def system(fid: str, name: str, kind: str, clauses: list[str]) -> Json:
            return {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": clauses,
                "schema": {"type": kind, "system": fid},
            }

        return JSONResponse(
            [
                system("summary", "Summary", "string", ["summary"]),
                system("description", "Description", "string", ["description"]),
                system("issuetype", "Issue Type", "issuetype", ["issuetype", "type"]),
                system("project", "Project", "project", ["project"]),
                system("priority", "Priority", "priority", ["priority"]),
                system("labels", "Labels", "array", ["labels"]),
                system("assignee", "Assignee", "user", ["assignee"]),
                system("reporter", "Reporter", "user", ["reporter"]),
                system("status", "Status", "status", ["status"]),
                system("created", "Created", "datetime", ["created", "createdDate"]),
                system("updated", "Updated", "datetime", ["updated", "updatedDate"]),
                system("comment", "Comment", "comments-page", ["comment"]),
                system("issuekey", "Key", "string", ["id", "issue", "issuekey", "key"]),
            ]
        )

    async def priorities(self, request: Request) -> Response:
        base = base_url(request)
        return JSONResponse([self.priority_json(p[0], base) for p in PRIORITIES])

    async def issue_types(self, request: Request) -> Response:
        base = base_url(request)
        return JSONResponse([self.issuetype_json(t, base) for t in ISSUE_TYPES])

    def _project_matches(self, key: str) -> bool:
        return key.upper() == PROJECT["key"] or key == PROJECT["id"]

    async def project(self, request: Request) -> Response:
        key = request.path_params["key"]
        if not self._project_matches(key):
            return error(404, [f"No project could be found with key '{key}'."])
        base = base_url(request)
        body = self.project_json(base)
        body["issueTypes"] = [self.issuetype_json(t, base) for t in ISSUE_TYPES]
        return JSONResponse(body)

    async def user(self, request: Request) -> Response:
        user = self.find_user(request.query_params.get("accountId", ""))
        if user is None:
            return error(
                404, ["Specified user does not exist or you do not have required permissions"]
            )
        return JSONResponse(self.user_json(user, base_url(request)))

    def _matching_users(self, query: str) -> list[User]:
        query = query.strip().lower()
        return [
            u
            for u in self.users
            if not query
            or u.email.lower().startswith(query)
            or any(word.startswith(query) for word in u.display_name.lower().split())
            or u.display_name.lower().startswith(query)
        ]

    async def user_search(self, request: Request) -> Response:
        params = request.query_params
        query = params.get("query", "")
        if not query and not params.get("accountId"):
            return error(400, ["The query parameter 'query' is required."])
        users = self._matching_users(query)
        if params.get("accountId"):
            users = [u for u in users if u.account_id == params["accountId"]]
        limit = _int(params.get("maxResults"), 50)
        return JSONResponse([self.user_json(u, base_url(request)) for u in users[:limit]])

    async def assignable(self, request: Request) -> Response:
        params = request.query_params
        project = params.get("project") or params.get("projectKeys") or ""
        issue_key = params.get("issueKey")
        if not project and not issue_key:
            return error(
                400, ["One of the following parameters must be provided: project, issueKey."]
            )
        if project and not self._project_matches(project):
            return error(404, [f"No project could be found with key '{project}'."])
        if issue_key and self.find(issue_key) is None:
            return error(404, [NO_ISSUE])
        users = self._matching_users(params.get("query", ""))
        limit = _int(params.get("maxResults"), 50)
        return JSONResponse([self.user_json(u, base_url(request)) for u in users[:limit]])

    async def createmeta_types(self, request: Request) -> Response:
        project = request.path_params["project"]
        if not self._project_matches(project):
            return error(404, [f"No project could be found with key '{project}'."])
        base = base_url(request)
        types = [self.issuetype_json(t, base) for t in ISSUE_TYPES]
        return JSONResponse(
            {"startAt": 0, "maxResults": 50, "total": len(types), "issueTypes": types}
        )

    async def createmeta_fields(self, request: Request) -> Response:
        project, type_id = request.path_params["project"], request.path_params["type_id"]
        if not self._project_matches(project):
            return error(404, [f"No project could be found with key '{project}'."])
        issuetype = next((t for t in ISSUE_TYPES if t["id"] == type_id), None)
        if issuetype is None:
            return error(404, [f"Issue type with id '{type_id}' does not exist."])
        base = base_url(request)

        def meta(fid: str, name: str, schema: Json, required: bool, **extra: Any) -> Json:
            return {
                "required": required,
                "schema": {**schema, "system": fid},
                "name": name,
                "key": fid,
                "fieldId": fid,
                "hasDefaultValue": "defaultValue" in extra,
                "operations": ["set"] if fid != "labels" else ["add", "set", "remove"],
                **extra,
            }

        fields = [
            meta("summary", "Summary", {"type": "string"}, True),
            meta(
                "issuetype",
                "Issue Type",
                {"type": "issuetype"},
                True,
                allowedValues=[self.issuetype_json(issuetype, base)],
            ),
            meta(
                "project",
                "Project",
                {"type": "project"},
                True,
                allowedValues=[self.project_json(base)],
            ),
            meta("description", "Description", {"type": "string"}, False),
            meta(
                "priority",
                "Priority",
                {"type": "priority"},
                False,
                allowedValues=[self.priority_json(p[0], base) for p in PRIORITIES],
                defaultValue=self.priority_json("3", base),
            ),
            meta(
                "labels",
                "Labels",
                {"type": "array", "items": "string"},
                False,
                autoCompleteUrl=f"{base}/rest/api/1.0/labels/suggest?query=",
            ),
            meta(
                "assignee",
                "Assignee",
                {"type": "user"},
                False,
                autoCompleteUrl=f"{base}{API}/user/assignable/search?project={PROJECT['key']}&query=",
            ),
        ]
        return JSONResponse(
            {"startAt": 0, "maxResults": 50, "total": len(fields), "fields": fields}
        )

    async def create_issue(self, request: Request) -> Response:
        user: User = request.state.jira_user
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return error(400, ["Issue must have a 'fields' object."])
        errors: dict[str, str] = {}
        project_ref = fields.get("project")
        if not isinstance(project_ref, dict) or not self._project_matches(
            str(project_ref.get("key") or project_ref.get("id") or "")
        ):
            errors["project"] = "Specify a valid project ID or key"
        elif not user.can_write:
            return error(403, ["You do not have permission to create issues in this project."])
        issuetype = self._issuetype(fields.get("issuetype"), errors)
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        elif utf16_len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        description = fields.get("description")
        if description is not None and (problem := _adf_problem(description)):
            errors["description"] = problem
        priority = self._priority(fields.get("priority"), errors)
        labels = self._labels(fields.get("labels"), errors)
        assignee = self._assignee(fields.get("assignee"), errors)
        for name in fields:
            if name not in {
                "project",
                "issuetype",
                "summary",
                "description",
                "priority",
                "labels",
                "assignee",
            }:
                errors[name] = (
                    f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
                )
        if errors:
            return error(400, [], errors)
        now = datetime.now(UTC)
        issue = Issue(
            id=str(self.next_issue_id),
            key=f"{PROJECT['key']}-{self.next_number}",
            project=PROJECT["key"],
            issuetype=issuetype or "Task",
            summary=summary,
            description=description,
            priority=priority,
            labels=labels,
            assignee=assignee,
            reporter=user,
            status="To Do",
            created=now,
            updated=now,
        )
        self.next_issue_id += 1
        self.next_number += 1
        self.issues[issue.id] = issue
        base = base_url(request)
        return JSONResponse(
            {"id": issue.id, "key": issue.key, "self": f"{base}{API}/issue/{issue.id}"},
            status_code=201,
        )

    def _issuetype(self, ref: Any, errors: dict[str, str]) -> str | None:
        if not isinstance(ref, dict) or not (ref.get("name") or ref.get("id")):
            errors["issuetype"] = "Specify an issue type"
            return None
        for candidate in ISSUE_TYPES:
            if ref.get("id") == candidate["id"] or ref.get("name") == candidate["name"]:
                return candidate["name"]
        errors["issuetype"] = "Specify a valid issue type"
        return None

    def _priority(self, ref: Any, errors: dict[str, str]) -> str:
        if ref is None:
            return "3"
        if isinstance(ref, dict):
            for pid, name, _, _ in PRIORITIES:
                if ref.get("id") == pid or ref.get("name") == name:
                    return pid
            wanted = ref.get("name") or ref.get("id")
            errors["priority"] = f"Priority name '{wanted}' is not valid"
        else:
            errors["priority"] = "Specify the Priority (id or name) in the object format"
        return "3"

    def _labels(self, value: Any, errors: dict[str, str]) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors["labels"] = "Specify the labels as an array of strings"
            return []
        for label in value:
            if not label or any(ch.isspace() for ch in label):
                errors["labels"] = f"The label '{label}' contains spaces which is invalid."
            elif len(label) > 255:
                errors["labels"] = "The label must not exceed 255 characters."
        return list(dict.fromkeys(value))

    def _assignee(self, ref: Any, errors: dict[str, str]) -> User | None:
        if ref is None:
            return None
        if not isinstance(ref, dict) or "accountId" not in ref:
            errors["assignee"] = "Specify the user by accountId"
            return None
        if ref["accountId"] in (None, "-1"):
            return None
        user = self.find_user(str(ref["accountId"]))
        if user is None:
            errors["assignee"] = "Specify a valid value for assignee"
        return user

    async def get_issue(self, request: Request) -> Response:
        issue = self.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        wanted = _field_list(request.query_params.getlist("fields"))
        return JSONResponse(self.issue_json(issue, base_url(request), wanted))

    async def add_comment(self, request: Request) -> Response:
        user: User = request.state.jira_user
        issue = self.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        content = body.get("body") if isinstance(body, dict) else None
        if (
            content is None
            or content == ""
            or (isinstance(content, dict) and not adf_to_text(content).strip())
        ):
            return error(400, [], {"comment": "Comment body can not be empty!"})
        if problem := _adf_problem(content):
            return error(400, [], {"comment": problem})
        properties = _comment_properties(body.get("properties"))
        if isinstance(properties, str):
            return error(400, [properties])
        if not user.can_write:
            return error(403, ["You do not have the permission to comment on this issue."])
        comment = Comment(str(self.next_comment_id), user, content, datetime.now(UTC), properties)
        self.next_comment_id += 1
        issue.comments.append(comment)
        issue.updated = comment.created
        bean = self.comment_json(issue, comment, base_url(request), _expand(request))
        return JSONResponse(bean, status_code=201)

    async def list_comments(self, request: Request) -> Response:
        issue = self.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        params = request.query_params
        start = _int(params.get("startAt"), 0)
        limit = _int(params.get("maxResults"), 5000)
        ordered = list(issue.comments)
        if params.get("orderBy", "").startswith("-"):
            ordered.reverse()
        base = base_url(request)
        page = ordered[start : start + limit]
        return JSONResponse(
            {
                "startAt": start,
                "maxResults": limit,
                "total": len(ordered),
                "comments": [self.comment_json(issue, c, base, _expand(request)) for c in page],
            }
        )

    async def get_comment(self, request: Request) -> Response:
        issue = self.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        comment = next((c for c in issue.comments if c.id == request.path_params["cid"]), None)
        if comment is None:
            return error(404, ["Can not find a comment for the id: " + request.path_params["cid"]])
        return JSONResponse(self.comment_json(issue, comment, base_url(request), _expand(request)))

    async def search(self, request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            if isinstance(body, Response):
                return body
            if not isinstance(body, dict):
                return error(400, ["Request body must be a JSON object."])
            jql = str(body.get("jql") or "")
            token = body.get("nextPageToken")
            limit_raw = body.get("maxResults")
            fields_raw = body.get("fields")
            wanted = _field_list(fields_raw if isinstance(fields_raw, list) else [])
        else:
            params = request.query_params
            jql = params.get("jql", "")
            token = params.get("nextPageToken")
            limit_raw = params.get("maxResults")
            wanted = _field_list(params.getlist("fields"))
        if wanted == []:
            wanted = ["id"]  # the enhanced search returns ids only unless asked for fields
        limit = max(1, min(_int(limit_raw, 50), 5000 if wanted == ["id"] else 100))
        offset = 0
        if token:
            saved = self._page_tokens.get(str(token))
            if saved is None or saved[0] != jql:
                return error(400, ["The provided next page token is invalid or expired."])
            offset = saved[1]
        try:
            matches = self.run_jql(jql)
        except JqlError as exc:
            return error(400, [str(exc)])
        page = matches[offset : offset + limit]
        base = base_url(request)
        result: Json = {
            # Like the enhanced search: ids only unless the client asks for fields.
            "issues": [
                {"id": i.id} if wanted == ["id"] else self.issue_json(i, base, wanted) for i in page
            ],
            "isLast": offset + limit >= len(matches),
        }
        if not result["isLast"]:
            next_token = secrets.token_urlsafe(24)
            self._page_tokens[next_token] = (jql, offset + limit)
            result["nextPageToken"] = next_token
        return JSONResponse(result)

    def run_jql(self, jql: str) -> list[Issue]:
        query = JqlParser(jql, self, PROJECT["key"]).parse()
        if query.where is None:
            raise JqlError(UNBOUNDED)
        found = [issue for issue in self.issues.values() if query.where(issue)]
        order = query.order or [("created", True)]
        for name, descending in reversed(order):
            found.sort(key=lambda issue, n=name: _sort_key(issue, n), reverse=descending)
        return found


# --------------------------------------------------------------------------- small helpers


def _sort_key(issue: Issue, name: str) -> Any:
    if name == "key":
        return int(issue.key.split("-")[1])
    if name in {"created", "updated"}:
        return getattr(issue, name)
    if name == "priority":
        return -int(issue.priority)  # Highest sorts last ascending, like Jira
    if name == "summary":
        return issue.summary.lower()
    return issue.key


def _adf_problem(value: Any) -> str | None:
    """Jira's complaint about a rich-text value, or None when it would accept it."""
    if not isinstance(value, dict) or adf_errors(value):
        return NOT_ADF
    if adf_size(value) > JIRA_TEXT_LIMIT:
        return TOO_LONG
    return None


def _expand(request: Request) -> frozenset[str]:
    """``expand=renderedBody,properties`` (also given as repeated parameters)."""
    raw = request.query_params.getlist("expand")
    return frozenset(part.strip() for item in raw for part in item.split(",") if part.strip())


def _comment_properties(raw: Any) -> dict[str, Json] | str:
    """The ``properties`` of a comment create, or Jira's complaint about them."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        return PROPERTY_NOT_OBJECTS
    properties: dict[str, Json] = {}
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) - {"key", "value"}:
            return PROPERTY_NOT_OBJECTS
        key, value = entry.get("key"), entry.get("value")
        if not isinstance(key, str) or not key.strip():
            return PROPERTY_NO_KEY
        if len(key) > PROPERTY_KEY_MAX:
            return PROPERTY_KEY_TOO_LONG
        if not isinstance(value, dict):
            return PROPERTY_NOT_JSON_OBJECT
        if len(json.dumps(value, separators=(",", ":"), ensure_ascii=False)) > PROPERTY_VALUE_MAX:
            return PROPERTY_VALUE_TOO_LONG
        properties[key] = value
    return properties


def _field_list(raw: list[str]) -> list[str] | None:
    """``fields=a,b&fields=c`` → ``[a, b, c]``; None means every field (``*all``)."""
    names = [part.strip() for item in raw for part in str(item).split(",") if part.strip()]
    if not names or "*all" in names or "*navigable" in names:
        return None if names else []
    return names


def select_fields(fields: Json, wanted: list[str]) -> Json:
    excluded = {name[1:] for name in wanted if name.startswith("-")}
    included = [name for name in wanted if not name.startswith("-")]
    if not included:
        return {k: v for k, v in fields.items() if k not in excluded}
    return {k: fields[k] for k in included if k in fields and k not in excluded}


def _int(value: Any, default: int) -> int:
    with contextlib.suppress(TypeError, ValueError):
        return int(value)
    return default


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error(400, [f"Unexpected character in request body: {exc}"])
