"""The Jira emulator's HTTP face: REST v3 routes over a ``JiraSite``, answering as Jira Cloud does.

The ``{"errorMessages", "errors"}`` envelope with Jira's own wording, ADF-only rich text (a plain
string description is a 400) measured by Jira's rules (``jira_text``), the enhanced search with
``nextPageToken`` pagination, and 410 Gone for the removed ``/search`` endpoints. Every route is
served on the site's base and again under the API gateway's ``/ex/jira/{cloudId}``; who may call
which is ``jira_auth``'s business.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from anomaly_desk.sandbox.adf import adf_errors
from anomaly_desk.sandbox.jira_auth import GATEWAY, UNAUTHENTICATED, JiraAuth
from anomaly_desk.sandbox.jira_beans import (
    API,
    SYSTEM_FIELDS,
    all_issuetypes_json,
    all_priorities_json,
    comment_json,
    create_fields_json,
    issue_json,
    jira_time,
    project_json,
    status_json,
    user_json,
)
from anomaly_desk.sandbox.jira_data import (
    DEFAULT_PRIORITY,
    ISSUE_TYPES,
    PRIORITIES,
    JiraSite,
    Json,
    User,
)
from anomaly_desk.sandbox.jira_events import JiraEvents
from anomaly_desk.sandbox.jira_screens import NOT_ON_SCREEN, judge, screen_of
from anomaly_desk.sandbox.jira_text import (
    SUMMARY_LIMIT,
    TEXT_LIMIT,
    java_length,
    plain_text,
    stored_size,
)
from anomaly_desk.sandbox.jira_workflows import find_project
from anomaly_desk.sandbox.jql import JqlError, search

NOT_ADF = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
NO_ISSUE = "Issue does not exist or you do not have permission to see it."
SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
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
CREATE_FIELDS = frozenset(
    {"project", "issuetype", "summary", "description", "priority", "labels", "assignee"}
)

Endpoint = Callable[[Request], Awaitable[Response]]
JsonValue = object  # a parsed JSON body or value, checked with isinstance before use


def error(
    status: int, messages: Iterable[str] = (), errors: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"errorMessages": list(messages), "errors": dict(errors or {})}, status_code=status
    )


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class JiraApi:
    """The REST v3 endpoints of one ``JiraSite``."""

    def __init__(self, site: JiraSite) -> None:
        self.site = site
        self.events = JiraEvents(site)
        self.auth = JiraAuth(site)

    def routes(self) -> list[BaseRoute]:
        """The REST API on the site's base and again under the API gateway's ``/ex/jira/{cloudId}``
        (same handlers, the gateway's authentication), and the OAuth endpoints."""

        def api() -> list[BaseRoute]:
            return [Route(p, self._guard(e), methods=m) for p, e, m in self.endpoints()]

        return [*api(), Mount(GATEWAY, routes=api()), *self.auth.routes()]

    def endpoints(self) -> list[tuple[str, Endpoint, list[str]]]:
        """(path, handler, methods) of every REST endpoint, relative to the API's base."""
        return [
            (f"{API}/serverInfo", self.server_info, ["GET"]),
            ("/rest/api/2/serverInfo", self.server_info, ["GET"]),
            (f"{API}/search", self.search_gone, ["GET", "POST"]),
            ("/rest/api/2/search", self.search_gone, ["GET", "POST"]),
            (f"{API}/myself", self.myself, ["GET"]),
            (f"{API}/field", self.fields, ["GET"]),
            (f"{API}/priority", self.priorities, ["GET"]),
            (f"{API}/issuetype", self.issue_types, ["GET"]),
            (f"{API}/project/{{key}}", self.project, ["GET"]),
            (f"{API}/project/{{key}}/statuses", self.project_statuses, ["GET"]),
            (f"{API}/user", self.user, ["GET"]),
            (f"{API}/user/search", self.user_search, ["GET"]),
            (f"{API}/user/assignable/search", self.assignable, ["GET"]),
            (f"{API}/issue/createmeta/{{project}}/issuetypes", self.createmeta_types, ["GET"]),
            (
                f"{API}/issue/createmeta/{{project}}/issuetypes/{{type_id}}",
                self.createmeta_fields,
                ["GET"],
            ),
            (f"{API}/issue", self.create_issue, ["POST"]),
            (f"{API}/issue/{{key}}", self.get_issue, ["GET"]),
            (f"{API}/issue/{{key}}/comment", self.add_comment, ["POST"]),
            (f"{API}/issue/{{key}}/comment", self.list_comments, ["GET"]),
            (f"{API}/issue/{{key}}/comment/{{cid}}", self.get_comment, ["GET"]),
            (f"{API}/issue/{{key}}/watchers", self.watchers, ["GET"]),
            (f"{API}/issue/{{key}}/watchers", self.add_watcher, ["POST"]),
            (f"{API}/issue/{{key}}/watchers", self.remove_watcher, ["DELETE"]),
            (f"{API}/search/jql", self.search, ["GET", "POST"]),
        ]

    def _guard(self, endpoint: Endpoint) -> Endpoint:
        """Authentication (``jira_auth``) on everything; the site serves serverInfo (and the
        removed search's 410) anonymously too."""

        async def guarded(request: Request) -> Response:
            caller = self.auth.caller(request)
            if isinstance(caller, Response):
                return caller
            request.state.jira_user = caller
            if caller is None and endpoint not in (self.server_info, self.search_gone):
                return error(401, [UNAUTHENTICATED])
            return await endpoint(request)

        return guarded

    # -- the site, its project and users -------------------------------------------------

    async def server_info(self, request: Request) -> Response:
        return JSONResponse(
            {
                "baseUrl": base_url(request),
                "displayUrl": base_url(request),
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0],
                "deploymentType": "Cloud",
                "buildNumber": 100300,
                "buildDate": "2026-01-01T00:00:00.000+0000",
                "serverTime": jira_time(datetime.now(UTC)),
                "scmInfo": "0000000000000000000000000000000000000000",
                "serverTitle": "Jira",
                "defaultLocale": {"locale": "en_US"},
                "serverTimeZone": "Etc/UTC",
            }
        )

    async def search_gone(self, request: Request) -> Response:
        return error(410, [SEARCH_GONE])

    async def myself(self, request: Request) -> Response:
        body = user_json(request.state.jira_user, base_url(request))
        body["groups"] = {"size": 1, "items": []}
        body["applicationRoles"] = {"size": 1, "items": []}
        return JSONResponse(body)

    async def fields(self, request: Request) -> Response:
        return JSONResponse(SYSTEM_FIELDS)

    async def priorities(self, request: Request) -> Response:
        return JSONResponse(all_priorities_json(base_url(request)))

    async def issue_types(self, request: Request) -> Response:
        return JSONResponse(all_issuetypes_json(base_url(request)))

    async def project(self, request: Request) -> Response:
        key = request.path_params["key"]
        project = find_project(key)
        if project is None:
            return error(404, [f"No project could be found with key '{key}'."])
        base = base_url(request)
        body = project_json(project, base)
        body["issueTypes"] = all_issuetypes_json(base)
        return JSONResponse(body)

    async def project_statuses(self, request: Request) -> Response:
        """``GET /project/{key}/statuses``: each issue type with the statuses its workflow has."""
        key = request.path_params["key"]
        project = find_project(key)
        if project is None:
            return error(404, [f"No project could be found with key '{key}'."])
        base = base_url(request)
        statuses = [status_json(s, base) for s in project.statuses]
        return JSONResponse(
            [
                {
                    "self": f"{base}{API}/issuetype/{t['id']}",
                    "id": t["id"],
                    "name": t["name"],
                    "subtask": False,
                    "statuses": statuses,
                }
                for t in ISSUE_TYPES
            ]
        )

    async def user(self, request: Request) -> Response:
        user = self.site.find_user(request.query_params.get("accountId", ""))
        if user is None:
            return error(
                404, ["Specified user does not exist or you do not have required permissions"]
            )
        return JSONResponse(user_json(user, base_url(request)))

    async def user_search(self, request: Request) -> Response:
        params = request.query_params
        query = params.get("query", "")
        if not query and not params.get("accountId"):
            return error(400, ["The query parameter 'query' is required."])
        # a query finds active accounts only (Cloud's user search); an accountId finds any
        users = [u for u in self.site.matching_users(query) if u.active or not query]
        if params.get("accountId"):
            users = [u for u in users if u.account_id == params["accountId"]]
        limit = _int(params.get("maxResults"), 50)
        return JSONResponse([user_json(u, base_url(request)) for u in users[:limit]])

    async def assignable(self, request: Request) -> Response:
        params = request.query_params
        project = params.get("project") or params.get("projectKeys") or ""
        issue_key = params.get("issueKey")
        if not project and not issue_key:
            return error(
                400, ["One of the following parameters must be provided: project, issueKey."]
            )
        if project and find_project(project) is None:
            return error(404, [f"No project could be found with key '{project}'."])
        if issue_key and self.site.find(issue_key) is None:
            return error(404, [NO_ISSUE])
        users = [u for u in self.site.matching_users(params.get("query", "")) if u.active]
        limit = _int(params.get("maxResults"), 50)
        return JSONResponse([user_json(u, base_url(request)) for u in users[:limit]])

    async def createmeta_types(self, request: Request) -> Response:
        """``{"startAt", "maxResults", "total", "issueTypes"}``, paged by ``startAt``."""
        project = request.path_params["project"]
        if find_project(project) is None:
            return error(404, [f"No project could be found with key '{project}'."])
        types = all_issuetypes_json(base_url(request))
        return JSONResponse(_page(request, types, "issueTypes"))

    async def createmeta_fields(self, request: Request) -> Response:
        key, type_id = request.path_params["project"], request.path_params["type_id"]
        project = find_project(key)
        if project is None:
            return error(404, [f"No project could be found with key '{key}'."])
        issuetype = next((t for t in ISSUE_TYPES if t["id"] == type_id), None)
        if issuetype is None:
            return error(404, [f"Issue type with id '{type_id}' does not exist."])
        fields = create_fields_json(project, issuetype, base_url(request))
        return JSONResponse(_page(request, fields, "fields"))

    # -- issues ----------------------------------------------------------------------------

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
        project = (
            find_project(str(project_ref.get("key") or project_ref.get("id") or ""))
            if isinstance(project_ref, dict)
            else None
        )
        if project is None:
            errors["project"] = "Specify a valid project ID or key"
        elif not user.may_write(project.key):
            return error(403, ["You do not have permission to create issues in this project."])
        issuetype = _issuetype(fields.get("issuetype"), errors)
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        elif java_length(summary) > SUMMARY_LIMIT:
            errors["summary"] = "Summary must be less than 255 characters."
        description = fields.get("description")
        if description is not None and (problem := _adf_problem(description)):
            errors["description"] = problem
        priority = _priority(fields.get("priority"), errors)
        labels = _labels(fields.get("labels"), errors)
        assignee = self._assignee(fields.get("assignee"), errors)
        screen = screen_of(project.key if project else "")
        on_screen = CREATE_FIELDS | {f.id for f in screen.custom}
        if screen.reporter:
            on_screen |= {"reporter"}
        for name in fields:
            if name not in on_screen:
                errors[name] = NOT_ON_SCREEN.format(name=name)
        reporter = user
        if screen.reporter and fields.get("reporter") is not None:
            reporter = self._user_field("reporter", fields["reporter"], errors) or user
        custom = judge(screen, fields, errors, self.site.find_user, _adf_problem)
        if errors or not isinstance(summary, str) or project is None:
            return error(400, [], errors)
        issue = self.site.create_issue(
            project=project.key,
            reporter=reporter,
            creator=user,
            custom=custom,
            issuetype=issuetype or "Task",
            summary=summary,
            description=description if isinstance(description, dict) else None,
            priority=priority,
            labels=labels,
            assignee=assignee,
        )
        base = base_url(request)
        self.events.issue_created(issue, user, base)
        return JSONResponse(
            {"id": issue.id, "key": issue.key, "self": f"{base}{API}/issue/{issue.id}"},
            status_code=201,
        )

    def _assignee(self, ref: JsonValue, errors: dict[str, str]) -> User | None:
        if ref is None:
            return None
        if isinstance(ref, dict) and ref.get("accountId") in (None, "-1"):
            return None
        return self._user_field("assignee", ref, errors)

    def _user_field(self, name: str, ref: JsonValue, errors: dict[str, str]) -> User | None:
        """The active user ``{"accountId"}`` names; else Jira's complaint under ``name``."""
        if not isinstance(ref, dict) or not ref.get("accountId"):
            errors[name] = "Specify the user by accountId"
            return None
        user = self.site.find_user(str(ref["accountId"]))
        if user is None or not user.active:
            errors[name] = f"Specify a valid value for {name}"
            return None
        return user

    async def get_issue(self, request: Request) -> Response:
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        wanted = _field_list(request.query_params.getlist("fields"))
        return JSONResponse(issue_json(issue, base_url(request), wanted, _expand(request)))

    # -- comments --------------------------------------------------------------------------

    async def add_comment(self, request: Request) -> Response:
        user: User = request.state.jira_user
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        content = body.get("body") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or content is None
            or content == ""
            or (isinstance(content, dict) and not plain_text(content).strip())
        ):
            return error(400, [], {"comment": "Comment body can not be empty!"})
        problem = _adf_problem(content)
        if problem or not isinstance(content, dict):
            return error(400, [], {"comment": problem or NOT_ADF})
        properties = _comment_properties(body.get("properties"))
        if isinstance(properties, str):
            return error(400, [properties])
        if not user.may_write(issue.project):
            return error(403, ["You do not have the permission to comment on this issue."])
        comment = self.site.add_comment(issue, user, content, properties)
        base = base_url(request)
        self.events.issue_updated(issue, user, base, "issue_commented", comment=comment)
        self.events.comment_created(issue, comment, base)
        bean = comment_json(issue, comment, base, _expand(request))
        return JSONResponse(bean, status_code=201)

    async def list_comments(self, request: Request) -> Response:
        issue = self.site.find(request.path_params["key"])
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
                "comments": [comment_json(issue, c, base, _expand(request)) for c in page],
            }
        )

    async def get_comment(self, request: Request) -> Response:
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        comment = next((c for c in issue.comments if c.id == request.path_params["cid"]), None)
        if comment is None:
            return error(404, ["Can not find a comment for the id: " + request.path_params["cid"]])
        return JSONResponse(comment_json(issue, comment, base_url(request), _expand(request)))

    # -- watchers --------------------------------------------------------------------------

    async def watchers(self, request: Request) -> Response:
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        base = base_url(request)
        caller: User = request.state.jira_user
        return JSONResponse(
            {
                "self": f"{base}{API}/issue/{issue.key}/watchers",
                "isWatching": any(w.account_id == caller.account_id for w in issue.watchers),
                "watchCount": len(issue.watchers),
                "watchers": [user_json(w, base) for w in issue.watchers],
            }
        )

    async def add_watcher(self, request: Request) -> Response:
        """The body is the account id as a JSON string; no body: the caller watches."""
        caller: User = request.state.jira_user
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        raw = await request.body()
        account: JsonValue = caller.account_id
        if raw.strip():
            body = await _json_body(request)
            if isinstance(body, Response):
                return body
            if not isinstance(body, str):
                return error(
                    400, ["The request body must be the account ID of a user, as a string."]
                )
            account = body
        watcher = self.site.find_user(str(account))
        if watcher is None or not watcher.active:
            return error(404, [f"The user with account ID '{account}' does not exist."])
        if watcher is not caller and not caller.may_write(issue.project):
            return error(403, ["You do not have the permission to manage the watcher list."])
        if all(w.account_id != watcher.account_id for w in issue.watchers):
            issue.watchers.append(watcher)
        return Response(status_code=204)

    async def remove_watcher(self, request: Request) -> Response:
        caller: User = request.state.jira_user
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        account = request.query_params.get("accountId") or caller.account_id
        if account != caller.account_id and not caller.may_write(issue.project):
            return error(403, ["You do not have the permission to manage the watcher list."])
        issue.watchers = [w for w in issue.watchers if w.account_id != account]
        return Response(status_code=204)

    # -- search ----------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        token: JsonValue
        limit_raw: JsonValue
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
            saved = self.site.page_tokens.get(str(token))
            if saved is None or saved[0] != jql:
                return error(400, ["The provided next page token is invalid or expired."])
            offset = saved[1]
        try:
            matches = search(self.site, jql, request.state.jira_user.time_zone)
        except JqlError as exc:
            return error(400, [str(exc)])
        page = matches[offset : offset + limit]
        base = base_url(request)
        is_last = offset + limit >= len(matches)
        result: Json = {
            # Like the enhanced search: ids only unless the client asks for fields.
            "issues": [
                {"id": i.id} if wanted == ["id"] else issue_json(i, base, wanted) for i in page
            ],
            "isLast": is_last,
        }
        if not is_last:
            next_token = secrets.token_urlsafe(24)
            self.site.page_tokens[next_token] = (jql, offset + limit)
            result["nextPageToken"] = next_token
        return JSONResponse(result)


# -- checks of what a client sends ---------------------------------------------------------


def _issuetype(ref: JsonValue, errors: dict[str, str]) -> str | None:
    if not isinstance(ref, dict) or not (ref.get("name") or ref.get("id")):
        errors["issuetype"] = "Specify an issue type"
        return None
    for candidate in ISSUE_TYPES:
        if ref.get("id") == candidate["id"] or ref.get("name") == candidate["name"]:
            return candidate["name"]
    errors["issuetype"] = "Specify a valid issue type"
    return None


def _priority(ref: JsonValue, errors: dict[str, str]) -> str:
    if ref is None:
        return DEFAULT_PRIORITY
    if isinstance(ref, dict):
        for pid, name, _, _ in PRIORITIES:
            if ref.get("id") == pid or ref.get("name") == name:
                return pid
        wanted = ref.get("name") or ref.get("id")
        errors["priority"] = f"Priority name '{wanted}' is not valid"
    else:
        errors["priority"] = "Specify the Priority (id or name) in the object format"
    return DEFAULT_PRIORITY


def _labels(value: JsonValue, errors: dict[str, str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors["labels"] = "Specify the labels as an array of strings"
        return []
    labels = [str(v) for v in value]
    for label in labels:
        if not label or any(ch.isspace() for ch in label):
            errors["labels"] = f"The label '{label}' contains spaces which is invalid."
        elif len(label) > 255:
            errors["labels"] = "The label must not exceed 255 characters."
    return list(dict.fromkeys(labels))


def _adf_problem(value: JsonValue) -> str | None:
    """Jira's complaint about a rich-text value, or None when it would accept it."""
    if not isinstance(value, dict) or adf_errors(value):
        return NOT_ADF
    if stored_size(value) > TEXT_LIMIT:
        return TOO_LONG
    return None


def _comment_properties(raw: JsonValue) -> dict[str, Json] | str:
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


# -- request plumbing ----------------------------------------------------------------------


def _expand(request: Request) -> frozenset[str]:
    """``expand=renderedBody,properties`` (also given as repeated parameters)."""
    raw = request.query_params.getlist("expand")
    return frozenset(part.strip() for item in raw for part in item.split(",") if part.strip())


def _field_list(raw: list[str]) -> list[str] | None:
    """``fields=a,b&fields=c`` → ``[a, b, c]``; None means every field (``*all``)."""
    names = [part.strip() for item in raw for part in str(item).split(",") if part.strip()]
    if not names or "*all" in names or "*navigable" in names:
        return None if names else []
    return names


def _page(request: Request, items: list[Json], key: str) -> Json:
    """Offset paging as createmeta does it: ``startAt``, ``maxResults`` (default 50)."""
    start = max(0, _int(request.query_params.get("startAt"), 0))
    size = max(1, min(_int(request.query_params.get("maxResults"), 50), 200))
    return {
        "startAt": start,
        "maxResults": size,
        "total": len(items),
        key: items[start : start + size],
    }


def _int(value: JsonValue, default: int) -> int:
    if isinstance(value, str | int | float):
        with contextlib.suppress(ValueError):
            return int(value)
    return default


async def _json_body(request: Request) -> JsonValue | Response:
    raw = await request.body()
    try:
        parsed: JsonValue = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error(400, [f"Unexpected character in request body: {exc}"])
    return parsed
