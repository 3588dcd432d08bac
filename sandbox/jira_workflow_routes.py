"""The Jira emulator's routes for changing issues and reading their history (two-way sync).

On top of ``JiraApi`` (same authentication, same error envelope):

* ``GET  /rest/api/3/issue/{key}/transitions`` (``expand=transitions.fields``,
  ``transitionId``): the transitions the issue's status offers, each with its ``to`` status
  (``statusCategory.key`` new / indeterminate / done) and, expanded, its screen's fields
  (``required``, ``allowedValues``). A user without the permission to transition sees none.
* ``POST /rest/api/3/issue/{key}/transitions`` ``{"transition": {"id"}, "fields": {…},
  "update": {"comment": [{"add": {"body": ADF}}]}, "historyMetadata": {…}}`` → 204. A field not
  on the transition's screen is a 400 naming it; an unknown or unavailable transition a 400
  ("Transition id '…' is not valid for this issue."); a comment on a transition without a screen
  is silently dropped, as Jira Cloud does.
* ``PUT  /rest/api/3/issue/{key}``: edit summary, description, priority, labels, assignee
  (``fields`` or ``update`` operations, ``update.comment`` adds a comment) → 204
  (``returnIssue=true``: 200 with the issue).
* ``GET  /rest/api/3/issue/{key}/changelog`` (``startAt``, ``maxResults`` ≤ 100, oldest first)
  and ``POST /rest/api/3/changelog/bulkfetch`` ``{"issueIdsOrKeys", "fieldIds"?, "maxResults"?,
  "nextPageToken"?}`` → ``{"issueChangeLogs": [{"issueId", "changeHistories"}],
  "nextPageToken"?}``.
* ``GET  /rest/api/3/resolution`` and ``/rest/api/3/status``.

Each change becomes a changelog entry with its author and the request's ``historyMetadata``;
the admin webhooks (``jira_events``) are told about every one.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from anomaly_desk.sandbox.jira_beans import (
    API,
    all_resolutions_json,
    history_json,
    issue_json,
    status_json,
    transition_json,
)
from anomaly_desk.sandbox.jira_data import PRIORITIES, Issue, Json, User
from anomaly_desk.sandbox.jira_routes import (
    NO_ISSUE,
    NOT_ADF,
    Endpoint,
    JiraApi,
    JsonValue,
    _adf_problem,
    _expand,
    _int,
    _json_body,
    _labels,
    base_url,
    error,
)
from anomaly_desk.sandbox.jira_text import SUMMARY_LIMIT, java_length, plain_text
from anomaly_desk.sandbox.jira_workflows import all_statuses, find_resolution

NOT_ON_SCREEN = "Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
NOT_AN_INTEGER = "'transition' identifier must be an integer"
NOT_VALID = "Transition id '{tid}' is not valid for this issue."
NO_EDIT = "You do not have permission to edit issues in this project."
BAD_TOKEN = "The provided next page token is invalid or expired."
EDIT_FIELDS = frozenset({"summary", "description", "priority", "labels", "assignee"})
HISTORY_METADATA_KEYS = frozenset(
    {
        "type",
        "description",
        "descriptionKey",
        "activityDescription",
        "activityDescriptionKey",
        "emailDescription",
        "emailDescriptionKey",
        "actor",
        "generator",
        "cause",
        "extraData",
    }
)
CHANGELOG_PAGE = 100
BULK_ISSUES_MAX = 1000
BULK_FIELDS_MAX = 10
BULK_PAGE = 1000
BULK_PAGE_MAX = 10000


class Problem(Exception):
    """A request Jira refuses: the response to send."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


class JiraWorkflowApi(JiraApi):
    """``JiraApi`` plus transitions, edits and the changelog."""

    def endpoints(self) -> list[tuple[str, Endpoint, list[str]]]:
        return [
            *super().endpoints(),
            (f"{API}/issue/{{key}}", self.edit_issue, ["PUT"]),
            (f"{API}/issue/{{key}}/transitions", self.transitions, ["GET"]),
            (f"{API}/issue/{{key}}/transitions", self.do_transition, ["POST"]),
            (f"{API}/issue/{{key}}/changelog", self.changelog, ["GET"]),
            (f"{API}/changelog/bulkfetch", self.bulk_changelog, ["POST"]),
            (f"{API}/resolution", self.resolutions, ["GET"]),
            (f"{API}/status", self.statuses, ["GET"]),
        ]

    # -- reference data ------------------------------------------------------------------

    async def resolutions(self, request: Request) -> Response:
        return JSONResponse(all_resolutions_json(base_url(request)))

    async def statuses(self, request: Request) -> Response:
        base = base_url(request)
        return JSONResponse([status_json(s, base) for s in all_statuses()])

    # -- transitions ---------------------------------------------------------------------

    async def transitions(self, request: Request) -> Response:
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        user: User = request.state.jira_user
        project = issue.workflow
        offered = project.available(issue.status) if user.may_write(issue.project) else []
        wanted = request.query_params.get("transitionId")
        if wanted:
            offered = [t for t in offered if t.id == wanted]
        with_fields = "transitions.fields" in _expand(request)
        base = base_url(request)
        return JSONResponse(
            {
                "expand": "transitions",
                "transitions": [transition_json(project, t, base, with_fields) for t in offered],
            }
        )

    async def _write_request(
        self, request: Request
    ) -> tuple[Issue, User, dict[str, Any]] | Response:
        """The issue a write names, who writes, and the JSON object body; or Jira's error."""
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        user: User = request.state.jira_user
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return error(400, ["Request body must be a JSON object."])
        return issue, user, body

    async def do_transition(self, request: Request) -> Response:
        parsed = await self._write_request(request)
        if isinstance(parsed, Response):
            return parsed
        issue, user, body = parsed
        ref = body.get("transition")
        raw_id = ref.get("id") if isinstance(ref, dict) else None
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            return error(400, [NOT_AN_INTEGER])
        tid = str(raw_id).strip()
        if not tid.isdigit():
            return error(400, [NOT_AN_INTEGER])
        transition = issue.workflow.transition(str(int(tid)))
        if (
            transition is None
            or not transition.available_from(issue.status)
            or not user.may_write(issue.project)
        ):
            return error(400, [NOT_VALID.format(tid=tid)])
        try:
            fields, update, metadata = _change_parts(body)
            screen = set(transition.screen or ())
            errors: dict[str, str] = {}
            named = set(fields) | {name for name in update if name != "comment"}
            for name in sorted(named - screen):
                errors[name] = NOT_ON_SCREEN.format(name=name)
            resolution = None
            if "resolution" in screen:
                resolution = _resolution(fields, update, errors)
                if resolution is None and "resolution" in transition.required and not errors:
                    errors["resolution"] = "Resolution is required."
            comments = _comments(update, errors)
        except Problem as problem:
            return problem.response
        if errors:
            return error(400, [], errors)
        history = self.site.transition(issue, user, transition, resolution, metadata)
        added = None
        if transition.screen is not None:  # without a screen Jira drops the comment silently
            for content in comments:
                added = self.site.add_comment(issue, user, content, {})
        base = base_url(request)
        if history is not None or added is not None:
            self.events.issue_updated(issue, user, base, "issue_generic", history, added)
        if added is not None:
            self.events.comment_created(issue, added, base)
        return Response(status_code=204)

    # -- edits ---------------------------------------------------------------------------

    async def edit_issue(self, request: Request) -> Response:
        parsed = await self._write_request(request)
        if isinstance(parsed, Response):
            return parsed
        issue, user, body = parsed
        if not user.may_write(issue.project):
            return error(403, [NO_EDIT])
        try:
            fields, update, metadata = _change_parts(body)
            errors: dict[str, str] = {}
            for name in sorted((set(fields) | set(update)) - EDIT_FIELDS - {"comment"}):
                errors[name] = NOT_ON_SCREEN.format(name=name)
            values = self._edit_values(issue, fields, update, errors)
            comments = _comments(update, errors)
        except Problem as problem:
            return problem.response
        if errors:
            return error(400, [], errors)
        history = self.site.edit(issue, user, values, metadata)
        added = [self.site.add_comment(issue, user, content, {}) for content in comments]
        base = base_url(request)
        if history is not None or added:
            self.events.issue_updated(
                issue, user, base, "issue_updated", history, added[-1] if added else None
            )
        for comment in added:
            self.events.comment_created(issue, comment, base)
        if request.query_params.get("returnIssue", "").lower() == "true":
            return JSONResponse(issue_json(issue, base, None, _expand(request)))
        return Response(status_code=204)

    def _edit_values(
        self, issue: Issue, fields: Json, update: dict[str, list[Json]], errors: dict[str, str]
    ) -> Json:
        """The new values of the edited fields, in ``JiraSite.edit``'s form."""
        given: Json = {}
        for name in EDIT_FIELDS & set(fields):
            given[name] = fields[name]
        labels = list(issue.labels)
        for name, operations in update.items():
            if name not in EDIT_FIELDS:
                continue
            for operation in operations:
                verb, value = next(iter(operation.items()))
                if name == "labels" and verb in ("add", "remove"):
                    if not isinstance(value, str):
                        errors["labels"] = "Specify the labels as an array of strings"
                    elif verb == "add" and value not in labels:
                        labels.append(value)
                    elif verb == "remove" and value in labels:
                        labels.remove(value)
                    given["labels"] = labels
                elif verb == "set":
                    given[name] = value
                    if name == "labels" and isinstance(value, list):
                        labels = [str(v) for v in value]
                else:
                    errors[name] = f"Field '{name}' does not support operation '{verb}'"
        values: Json = {}
        if "summary" in given:
            summary = given["summary"]
            if not isinstance(summary, str) or not summary.strip():
                errors["summary"] = "You must specify a summary of the issue."
            elif "\n" in summary or "\r" in summary:
                errors["summary"] = "The summary is invalid because it contains newline characters."
            elif java_length(summary) > SUMMARY_LIMIT:
                errors["summary"] = "Summary must be less than 255 characters."
            else:
                values["summary"] = summary
        if "description" in given:
            description = given["description"]
            if description is not None and (problem := _adf_problem(description)):
                errors["description"] = problem
            else:
                values["description"] = description
        if "priority" in given:
            values["priority"] = _edit_priority(given["priority"], errors)
        if "labels" in given:
            values["labels"] = _labels(given["labels"], errors)
        if "assignee" in given:
            values["assignee"] = self._assignee(given["assignee"], errors)
        return values

    # -- the changelog -------------------------------------------------------------------

    async def changelog(self, request: Request) -> Response:
        issue = self.site.find(request.path_params["key"])
        if issue is None:
            return error(404, [NO_ISSUE])
        params = request.query_params
        start = max(0, _int(params.get("startAt"), 0))
        limit = max(1, min(_int(params.get("maxResults"), CHANGELOG_PAGE), CHANGELOG_PAGE))
        base = base_url(request)
        histories = issue.histories
        page = histories[start : start + limit]
        is_last = start + limit >= len(histories)
        here = f"{base}{API}/issue/{issue.key}/changelog"
        bean: Json = {
            "self": f"{here}?maxResults={limit}&startAt={start}",
            "maxResults": limit,
            "startAt": start,
            "total": len(histories),
            "isLast": is_last,
            "values": [history_json(h, base) for h in page],
        }
        if not is_last:
            bean["nextPage"] = f"{here}?maxResults={limit}&startAt={start + limit}"
        return JSONResponse(bean)

    async def bulk_changelog(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return error(400, ["Request body must be a JSON object."])
        wanted = body.get("issueIdsOrKeys")
        if (
            not isinstance(wanted, list)
            or not wanted
            or not all(isinstance(w, str | int) and not isinstance(w, bool) for w in wanted)
        ):
            return error(400, ["issueIdsOrKeys: the list of issue ids or keys must not be empty."])
        if len(wanted) > BULK_ISSUES_MAX:
            return error(
                400, [f"issueIdsOrKeys: you can request at most {BULK_ISSUES_MAX} issues."]
            )
        field_ids = body.get("fieldIds")
        if field_ids is not None and (
            not isinstance(field_ids, list) or not all(isinstance(f, str) for f in field_ids)
        ):
            return error(400, ["fieldIds: a list of field ids."])
        if field_ids is not None and len(field_ids) > BULK_FIELDS_MAX:
            return error(400, [f"fieldIds: you can filter by at most {BULK_FIELDS_MAX} fields."])
        limit = max(1, min(_int(body.get("maxResults"), BULK_PAGE), BULK_PAGE_MAX))
        signature = json.dumps([wanted, field_ids, limit])
        offset = 0
        token = body.get("nextPageToken")
        if token:
            saved = self.site.changelog_tokens.get(str(token))
            if saved is None or saved[0] != signature:
                return error(400, [BAD_TOKEN])
            offset = saved[1]
        found: dict[str, Issue] = {}
        for ref in wanted:
            issue = self.site.find(str(ref))
            if issue is not None:  # issues that do not exist (or are hidden) are left out
                found[issue.id] = issue
        only = frozenset(field_ids) if field_ids else None
        base = base_url(request)
        entries: list[tuple[Issue, Json]] = []
        for issue in sorted(found.values(), key=lambda i: int(i.id)):
            for history in issue.histories:
                bean = history_json(history, base, only)
                if bean["items"]:
                    entries.append((issue, bean))
        page = entries[offset : offset + limit]
        logs: list[Json] = []
        for issue, bean in page:
            if logs and logs[-1]["issueId"] == issue.id:
                logs[-1]["changeHistories"].append(bean)
            else:
                logs.append({"issueId": issue.id, "changeHistories": [bean]})
        result: Json = {"issueChangeLogs": logs}
        if offset + limit < len(entries):
            next_token = secrets.token_urlsafe(24)
            self.site.changelog_tokens[next_token] = (signature, offset + limit)
            result["nextPageToken"] = next_token
        return JSONResponse(result)


# -- checks of what a client sends ---------------------------------------------------------


def _change_parts(body: Json) -> tuple[Json, dict[str, list[Json]], Json | None]:
    """``fields``, ``update`` (each operation one ``{verb: value}``) and ``historyMetadata``."""
    fields = body.get("fields") or {}
    if not isinstance(fields, dict):
        raise Problem(error(400, ["'fields' must be an object of field values."]))
    raw_update = body.get("update") or {}
    if not isinstance(raw_update, dict):
        raise Problem(error(400, ["'update' must be an object of field operations."]))
    update: dict[str, list[Json]] = {}
    for name, operations in raw_update.items():
        if not isinstance(operations, list) or not all(
            isinstance(o, dict) and len(o) == 1 for o in operations
        ):
            raise Problem(
                error(400, [], {name: "Operations must be a list of single-verb objects."})
            )
        update[name] = operations
    both = sorted(set(fields) & set(update))
    if both:
        raise Problem(
            error(
                400,
                [],
                {n: f"Field '{n}' cannot be set in both 'fields' and 'update'." for n in both},
            )
        )
    metadata = body.get("historyMetadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise Problem(error(400, ["'historyMetadata' must be an object."]))
    if isinstance(metadata, dict):
        unknown = sorted(set(metadata) - HISTORY_METADATA_KEYS)
        if unknown:
            raise Problem(
                error(400, [f"Unrecognized field \"{unknown[0]}\" in 'historyMetadata'."])
            )
    return fields, update, metadata


def _resolution(fields: Json, update: dict[str, list[Json]], errors: dict[str, str]) -> str | None:
    """The resolution id a transition sets (``fields`` or an ``update`` set), or None."""
    ref: JsonValue = fields.get("resolution")
    for operation in update.get("resolution", []):
        verb, value = next(iter(operation.items()))
        if verb != "set":
            errors["resolution"] = f"Field 'resolution' does not support operation '{verb}'"
            return None
        ref = value
    if ref is None:
        return None
    if not isinstance(ref, dict) or not (ref.get("name") or ref.get("id")):
        errors["resolution"] = "Could not find valid 'id' or 'name' in resolution object."
        return None
    found = find_resolution(ref)
    if found is None:
        if ref.get("name"):
            errors["resolution"] = f"Resolution name '{ref['name']}' is not valid"
        else:
            errors["resolution"] = f"Resolution with id '{ref.get('id')}' does not exist"
    return found


def _comments(update: dict[str, list[Json]], errors: dict[str, str]) -> list[Json]:
    """The ADF bodies of ``update.comment``'s ``add`` operations."""
    bodies: list[Json] = []
    for operation in update.get("comment", []):
        verb, value = next(iter(operation.items()))
        content: Any = value.get("body") if isinstance(value, dict) else None
        if verb != "add":
            errors["comment"] = f"Field 'comment' does not support operation '{verb}'"
        elif content is None or (isinstance(content, dict) and not plain_text(content).strip()):
            errors["comment"] = "Comment body can not be empty!"
        elif (problem := _adf_problem(content)) or not isinstance(content, dict):
            errors["comment"] = problem or NOT_ADF
        else:
            bodies.append(content)
    return bodies


def _edit_priority(ref: JsonValue, errors: dict[str, str]) -> str:
    if isinstance(ref, dict):
        for pid, name, _, _ in PRIORITIES:
            if ref.get("id") == pid or ref.get("name") == name:
                return pid
        errors["priority"] = f"Priority name '{ref.get('name') or ref.get('id')}' is not valid"
    else:
        errors["priority"] = "Specify the Priority (id or name) in the object format"
    return ""
