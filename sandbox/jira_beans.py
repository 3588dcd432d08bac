"""The Jira emulator's records as Jira Cloud's JSON ("beans"), with ``self`` links on ``base``.

``base`` is the request's base URL (``jira_routes.base_url``), so links point back at whichever
address the client used.
"""

from __future__ import annotations

from datetime import UTC, datetime

from anomaly_desk.sandbox.jira_data import (
    ISSUE_TYPES,
    PRIORITIES,
    PROJECT,
    STATUS_CATEGORY_NAMES,
    STATUSES,
    Comment,
    Issue,
    Json,
    User,
    issue_type,
)

API = "/rest/api/3"


def jira_time(at: datetime) -> str:
    """Jira's timestamp format: ``2024-01-15T10:30:00.000+0000``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def user_json(user: User, base: str) -> Json:
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


def priority_json(pid: str, base: str) -> Json:
    _, name, color, description = next(p for p in PRIORITIES if p[0] == pid)
    return {
        "self": f"{base}{API}/priority/{pid}",
        "statusColor": color,
        "description": description,
        "iconUrl": f"{base}/images/icons/priorities/{name.lower()}.svg",
        "name": name,
        "id": pid,
    }


def all_priorities_json(base: str) -> list[Json]:
    return [priority_json(p[0], base) for p in PRIORITIES]


def issuetype_json(issuetype: Json, base: str) -> Json:
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


def all_issuetypes_json(base: str) -> list[Json]:
    return [issuetype_json(t, base) for t in ISSUE_TYPES]


def project_json(base: str) -> Json:
    return {
        "self": f"{base}{API}/project/{PROJECT['id']}",
        "id": PROJECT["id"],
        "key": PROJECT["key"],
        "name": PROJECT["name"],
        "projectTypeKey": "software",
        "simplified": False,
        "avatarUrls": {"48x48": f"{base}/secure/projectavatar?pid={PROJECT['id']}"},
    }


def status_json(name: str, base: str) -> Json:
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
    issue: Issue, comment: Comment, base: str, expand: frozenset[str] = frozenset()
) -> Json:
    """A comment bean; its ``properties`` only with ``expand=properties``, as Jira does."""
    author = user_json(comment.author, base)
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


def comments_page(issue: Issue, base: str) -> Json:
    comments = [comment_json(issue, c, base) for c in issue.comments]
    return {
        "comments": comments,
        "self": f"{base}{API}/issue/{issue.id}/comment",
        "maxResults": len(comments),
        "total": len(comments),
        "startAt": 0,
    }


def issue_fields(issue: Issue, base: str) -> Json:
    return {
        "summary": issue.summary,
        "description": issue.description,
        "issuetype": issuetype_json(issue_type(issue.issuetype), base),
        "project": project_json(base),
        "priority": priority_json(issue.priority, base),
        "labels": list(issue.labels),
        "assignee": user_json(issue.assignee, base) if issue.assignee else None,
        "reporter": user_json(issue.reporter, base),
        "creator": user_json(issue.reporter, base),
        "status": status_json(issue.status, base),
        "statuscategorychangedate": jira_time(issue.created),
        "created": jira_time(issue.created),
        "updated": jira_time(issue.updated),
        "resolution": None,
        "comment": comments_page(issue, base),
    }


def issue_json(issue: Issue, base: str, wanted: list[str] | None = None) -> Json:
    """An issue bean; ``wanted`` follows the ``fields`` parameter (None: all fields)."""
    fields = issue_fields(issue, base)
    if wanted is not None:
        fields = select_fields(fields, wanted)
    return {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog",
        "id": issue.id,
        "self": f"{base}{API}/issue/{issue.id}",
        "key": issue.key,
        "fields": fields,
    }


def select_fields(fields: Json, wanted: list[str]) -> Json:
    """``fields=summary,-labels``: the named fields only, or all but the ``-`` excluded ones."""
    excluded = {name[1:] for name in wanted if name.startswith("-")}
    included = [name for name in wanted if not name.startswith("-")]
    if not included:
        return {k: v for k, v in fields.items() if k not in excluded}
    return {k: fields[k] for k in included if k in fields and k not in excluded}


def system_field(fid: str, name: str, kind: str, clauses: list[str]) -> Json:
    """One entry of ``GET /field``."""
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


SYSTEM_FIELDS = [
    system_field("summary", "Summary", "string", ["summary"]),
    system_field("description", "Description", "string", ["description"]),
    system_field("issuetype", "Issue Type", "issuetype", ["issuetype", "type"]),
    system_field("project", "Project", "project", ["project"]),
    system_field("priority", "Priority", "priority", ["priority"]),
    system_field("labels", "Labels", "array", ["labels"]),
    system_field("assignee", "Assignee", "user", ["assignee"]),
    system_field("reporter", "Reporter", "user", ["reporter"]),
    system_field("status", "Status", "status", ["status"]),
    system_field("created", "Created", "datetime", ["created", "createdDate"]),
    system_field("updated", "Updated", "datetime", ["updated", "updatedDate"]),
    system_field("comment", "Comment", "comments-page", ["comment"]),
    system_field("issuekey", "Key", "string", ["id", "issue", "issuekey", "key"]),
]


def create_fields_json(issuetype: Json, base: str) -> list[Json]:
    """The fields of the create screen (``createmeta``) for one issue type."""

    def meta(fid: str, name: str, schema: Json, required: bool, **extra: object) -> Json:
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

    return [
        meta("summary", "Summary", {"type": "string"}, True),
        meta(
            "issuetype",
            "Issue Type",
            {"type": "issuetype"},
            True,
            allowedValues=[issuetype_json(issuetype, base)],
        ),
        meta(
            "project",
            "Project",
            {"type": "project"},
            True,
            allowedValues=[project_json(base)],
        ),
        meta("description", "Description", {"type": "string"}, False),
        meta(
            "priority",
            "Priority",
            {"type": "priority"},
            False,
            allowedValues=all_priorities_json(base),
            defaultValue=priority_json("3", base),
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
