"""The Jira emulator's records as Jira Cloud's JSON ("beans"), with ``self`` links on ``base``.

``base`` is the request's base URL (``jira_routes.base_url``), so links point back at whichever
address the client used.
"""

from __future__ import annotations

from datetime import UTC, datetime

from anomaly_desk.sandbox.jira_data import (
    ISSUE_TYPES,
    PRIORITIES,
    ChangeItem,
    Comment,
    History,
    Issue,
    Json,
    User,
    issue_type,
)
from anomaly_desk.sandbox.jira_screens import custom_meta_json, custom_values_json, screen_of
from anomaly_desk.sandbox.jira_text import plain_text
from anomaly_desk.sandbox.jira_workflows import (
    RESOLUTIONS,
    STATUS_CATEGORIES,
    Project,
    Status,
    Transition,
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
        "accountType": user.account_type,
        "emailAddress": user.email,
        "avatarUrls": {size: f"{avatar}&size={size}" for size in ("48x48", "24x24", "16x16")},
        "displayName": user.display_name,
        "active": user.active,
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


def project_json(project: Project, base: str) -> Json:
    return {
        "self": f"{base}{API}/project/{project.id}",
        "id": project.id,
        "key": project.key,
        "name": project.name,
        "projectTypeKey": "software",
        "simplified": project.team_managed,
        "style": "next-gen" if project.team_managed else "classic",
        "avatarUrls": {"48x48": f"{base}/secure/projectavatar?pid={project.id}"},
    }


def status_category_json(key: str, base: str) -> Json:
    cat_id, name, color = STATUS_CATEGORIES[key]
    return {
        "self": f"{base}{API}/statuscategory/{cat_id}",
        "id": cat_id,
        "key": key,
        "colorName": color,
        "name": name,
    }


def status_json(status: Status, base: str) -> Json:
    bean: Json = {
        "self": f"{base}{API}/status/{status.id}",
        "description": "",
        "iconUrl": f"{base}/images/icons/statuses/generic.png",
        "name": status.name,
        "untranslatedName": status.name,
        "id": status.id,
        "statusCategory": status_category_json(status.category, base),
    }
    if status.project_id:
        bean["scope"] = {"type": "PROJECT", "project": {"id": status.project_id}}
    return bean


def resolution_json(rid: str, base: str) -> Json:
    _, name, description = next(r for r in RESOLUTIONS if r[0] == rid)
    return {
        "self": f"{base}{API}/resolution/{rid}",
        "id": rid,
        "description": description,
        "name": name,
    }


def all_resolutions_json(base: str) -> list[Json]:
    return [resolution_json(r[0], base) for r in RESOLUTIONS]


def transition_json(project: Project, transition: Transition, base: str, with_fields: bool) -> Json:
    """One entry of ``GET …/transitions``; its screen's fields with ``expand=transitions.fields``."""
    bean: Json = {
        "id": transition.id,
        "name": transition.name,
        "to": status_json(project.status(transition.to), base),
        "hasScreen": transition.screen is not None,
        "isGlobal": transition.is_global,
        "isInitial": False,
        "isAvailable": True,
        "isConditional": False,
        "isLooped": False,
    }
    if with_fields:
        bean["fields"] = {
            fid: screen_field_json(fid, fid in transition.required, base)
            for fid in transition.screen or ()
        }
    return bean


def screen_field_json(fid: str, required: bool, base: str) -> Json:
    if fid == "resolution":
        return {
            "required": required,
            "schema": {"type": "resolution", "system": "resolution"},
            "name": "Resolution",
            "key": "resolution",
            "hasDefaultValue": False,
            "operations": ["set"],
            "allowedValues": all_resolutions_json(base),
        }
    raise KeyError(fid)


def change_item_json(item: ChangeItem) -> Json:
    return {
        "field": item.field,
        "fieldtype": "jira",
        "fieldId": item.field_id,
        "from": item.from_id,
        "fromString": item.from_string,
        "to": item.to_id,
        "toString": item.to_string,
    }


def history_json(history: History, base: str, field_ids: frozenset[str] | None = None) -> Json:
    """A changelog entry; ``field_ids`` keeps only the items of those fields."""
    items = [
        change_item_json(i)
        for i in history.items
        if field_ids is None or i.field_id in field_ids or i.field in field_ids
    ]
    bean: Json = {
        "id": history.id,
        "author": user_json(history.author, base),
        "created": jira_time(history.created),
        "items": items,
    }
    if history.metadata is not None:
        bean["historyMetadata"] = history.metadata
    return bean


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
    project = issue.workflow
    return {
        "summary": issue.summary,
        "description": issue.description,
        "issuetype": issuetype_json(issue_type(issue.issuetype), base),
        "project": project_json(project, base),
        "priority": priority_json(issue.priority, base),
        "labels": list(issue.labels),
        "assignee": user_json(issue.assignee, base) if issue.assignee else None,
        "reporter": user_json(issue.reporter, base),
        "creator": user_json(issue.reporter, base),
        "status": status_json(project.status(issue.status), base),
        "statuscategorychangedate": jira_time(issue.category_changed or issue.created),
        "created": jira_time(issue.created),
        "updated": jira_time(issue.updated),
        "resolution": resolution_json(issue.resolution, base) if issue.resolution else None,
        "resolutiondate": jira_time(issue.resolution_date) if issue.resolution_date else None,
        "comment": comments_page(issue, base),
        "watches": {
            "self": f"{base}{API}/issue/{issue.key}/watchers",
            "watchCount": len(issue.watchers),
            "isWatching": False,
        },
        **custom_values_json(project.key, issue.custom, base, user_json, jira_time),
    }


def issue_json(
    issue: Issue, base: str, wanted: list[str] | None = None, expand: frozenset[str] = frozenset()
) -> Json:
    """An issue bean; ``wanted`` follows the ``fields`` parameter (None: all fields)."""
    fields = issue_fields(issue, base)
    if wanted is not None:
        fields = select_fields(fields, wanted)
    bean: Json = {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog",
        "id": issue.id,
        "self": f"{base}{API}/issue/{issue.id}",
        "key": issue.key,
        "fields": fields,
    }
    if "changelog" in expand:
        histories = [history_json(h, base) for h in issue.histories]
        bean["changelog"] = {
            "startAt": 0,
            "maxResults": len(histories),
            "total": len(histories),
            "histories": histories,
        }
    return bean


def webhook_issue_json(issue: Issue, base: str) -> Json:
    """The issue as an admin webhook sends it: v2-shaped, rich text as plain (wiki) strings."""
    bean = issue_json(issue, base)
    fields = bean["fields"]
    fields["description"] = plain_text(issue.description).strip() if issue.description else None
    for comment in fields["comment"]["comments"]:
        comment["body"] = plain_text(comment["body"]).strip()
    return bean


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
    system_field("resolution", "Resolution", "resolution", ["resolution"]),
    system_field("resolutiondate", "Resolved", "datetime", ["resolutiondate", "resolved"]),
    system_field("created", "Created", "datetime", ["created", "createdDate"]),
    system_field("updated", "Updated", "datetime", ["updated", "updatedDate"]),
    system_field("comment", "Comment", "comments-page", ["comment"]),
    system_field("issuekey", "Key", "string", ["id", "issue", "issuekey", "key"]),
]


def create_fields_json(project: Project, issuetype: Json, base: str) -> list[Json]:
    """The fields of the create screen (``createmeta``) for one issue type: the system fields
    (``reporter`` where the project's screen has it), then its custom fields."""
    screen = screen_of(project.key)
    return [
        *system_create_fields_json(project, issuetype, base, screen.reporter),
        *(custom_meta_json(f, f.id in screen.required, base) for f in screen.custom),
    ]


def system_create_fields_json(
    project: Project, issuetype: Json, base: str, reporter: bool
) -> list[Json]:

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
            allowedValues=[project_json(project, base)],
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
            autoCompleteUrl=f"{base}{API}/user/assignable/search?project={project.key}&query=",
        ),
        *(
            [
                meta(
                    "reporter",
                    "Reporter",
                    {"type": "user"},
                    True,
                    autoCompleteUrl=f"{base}{API}/user/search?query=",
                )
            ]
            if reporter
            else []
        ),
    ]
