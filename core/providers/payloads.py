"""The providers' JSON, as far as the clients read it: one ``TypedDict`` per answer.

Each client turns an answer into one of these at a single point (its ``_answer``): a ``cast``, not
a validation. The provider is trusted to send that shape only as far as the code then checks it:
the clients keep their ``.get``, ``or {}`` and ``isinstance`` guards, so a missing key, a null or
an odd value degrades as it always did. Keys the code indexes directly (``issue["key"]``) are
``Required``; everything else may be absent (``total=False``).

Only the keys the clients read are listed: Jira and ServiceNow send many more.
"""

from __future__ import annotations

from typing import Literal, Required, TypeAlias, TypedDict

from pydantic import JsonValue

# -- Jira Cloud, REST v3 ------------------------------------------------------------------------


class JiraUser(TypedDict, total=False):
    """``/myself``, ``/user/search``, ``/user/assignable/search``, an issue's ``assignee``."""

    accountId: Required[str]
    accountType: str  # "atlassian" for people; "app", "customer" otherwise
    emailAddress: str  # absent when the user's privacy settings hide it
    displayName: str
    active: bool
    timeZone: str  # the user's profile time zone: JQL reads its dates in it


class JiraCreated(TypedDict, total=False):
    """The answer to ``POST /issue``."""

    id: Required[str]
    key: Required[str]
    self: str


class JiraProject(TypedDict, total=False):
    id: str
    key: str
    name: str


class JiraIssueType(TypedDict, total=False):
    """An issue's ``issuetype``; an entry of ``/issue/createmeta/{project}/issuetypes``."""

    id: Required[str]
    name: Required[str]
    subtask: bool


class JiraPriority(TypedDict, total=False):
    """An issue's ``priority``; an entry of ``/priority`` or of a field's ``allowedValues``."""

    id: str
    name: Required[str]


class JiraStatusCategory(TypedDict, total=False):
    key: str  # "new", "indeterminate", "done"
    name: str  # "To Do", "In Progress", "Done"


class JiraStatus(TypedDict, total=False):
    name: str
    statusCategory: JiraStatusCategory | None


class JiraIssueFields(TypedDict, total=False):
    """The ``fields`` of an issue read with ``fields=TICKET_FIELDS``; unset ones are null."""

    summary: str | None
    status: JiraStatus | None
    priority: JiraPriority | None
    assignee: JiraUser | None
    project: JiraProject | None
    issuetype: JiraIssueType | None
    labels: list[str] | None
    created: str | None
    updated: str | None


class JiraIssue(TypedDict, total=False):
    """``GET /issue/{key}``; an entry of a search page's ``issues``."""

    id: str
    key: Required[str]
    self: str
    fields: JiraIssueFields | None


class JiraSearchPage(TypedDict, total=False):
    """``GET /search/jql``: a page of issues and the token of the next one."""

    issues: list[JiraIssue] | None
    nextPageToken: str | None
    isLast: bool


class JiraProperty(TypedDict, total=False):
    """An entity property: a comment's ``properties`` (with ``expand=properties``)."""

    key: str
    value: JsonValue


class JiraComment(TypedDict, total=False):
    id: str
    body: JsonValue  # an ADF document in v3; ``adf_to_text`` reads whatever comes
    properties: list[JiraProperty] | None  # absent when the site did not expand them
    author: JiraUser | None
    created: str  # ``2024-01-15T10:30:00.000+0000``


class JiraCommentPage(TypedDict, total=False):
    """``GET /issue/{key}/comment``: offset paging (``startAt``, ``maxResults``, ``total``)."""

    comments: list[JiraComment] | None
    startAt: int
    maxResults: int
    total: int


class JiraAllowedValue(TypedDict, total=False):
    """An allowed value of a transition screen's field (a resolution: ``id`` and ``name``)."""

    id: str
    name: str
    value: str


class JiraTransitionField(TypedDict, total=False):
    """A field of a transition's screen (``expand=transitions.fields``), by field id."""

    required: bool
    name: str
    allowedValues: list[JiraAllowedValue] | None


class JiraTransitionTarget(TypedDict, total=False):
    """The status a transition leads to."""

    id: str
    name: str
    statusCategory: JiraStatusCategory | None


class JiraTransition(TypedDict, total=False):
    """An entry of ``GET /issue/{key}/transitions``."""

    id: Required[str]
    name: str
    to: JiraTransitionTarget | None
    isAvailable: bool
    hasScreen: bool
    fields: dict[str, JiraTransitionField] | None  # only with ``expand=transitions.fields``


class JiraTransitionsPage(TypedDict, total=False):
    """``GET /issue/{key}/transitions``: the transitions the caller may take now."""

    transitions: list[JiraTransition] | None


class JiraChangeItem(TypedDict, total=False):
    """One changed field of a changelog entry."""

    field: str
    fieldId: str
    fromString: str | None
    toString: str | None


class JiraChangeHistory(TypedDict, total=False):
    """A changelog entry: who changed what, when."""

    id: str
    author: JiraUser | None  # absent for anonymous / automation changes on some sites
    created: str
    items: list[JiraChangeItem] | None
    historyMetadata: JsonValue


class JiraIssueChangelog(TypedDict, total=False):
    """One issue's entries in a ``POST /changelog/bulkfetch`` page."""

    issueId: str
    changeHistories: list[JiraChangeHistory] | None


class JiraBulkChangelogPage(TypedDict, total=False):
    """``POST /changelog/bulkfetch``: changelogs oldest first, paged by ``nextPageToken``."""

    issueChangeLogs: list[JiraIssueChangelog] | None
    nextPageToken: str | None


class JiraChangelogPage(TypedDict, total=False):
    """``GET /issue/{key}/changelog``: one issue's changelog, oldest first, offset paging."""

    values: list[JiraChangeHistory] | None
    startAt: int
    maxResults: int
    total: int
    isLast: bool


class JiraIssueTypesPage(TypedDict, total=False):
    """``GET /issue/createmeta/{project}/issuetypes`` (``issueTypes``; older sites: ``values``),
    offset paging (``startAt``, ``maxResults``, ``total``)."""

    issueTypes: list[JiraIssueType] | None
    values: list[JiraIssueType] | None
    startAt: int
    maxResults: int
    total: int


class JiraAllowedOption(TypedDict, total=False):
    """An entry of a createmeta field's ``allowedValues``: a custom field option (``value``,
    a cascading parent's ``children``), a priority, version or component (``name``)."""

    id: str
    name: str
    value: str
    disabled: bool
    children: list[JiraAllowedOption] | None


class JiraFieldSchema(TypedDict, total=False):
    """A field's ``schema``: ``type`` (string, number, date, datetime, option, option-with-child,
    user, array…), ``items`` of an array, ``system`` or ``custom`` (the custom field type key)."""

    type: str
    items: str
    system: str
    custom: str
    customId: int


class JiraFieldMeta(TypedDict, total=False):
    """A field of an issue type's create screen."""

    fieldId: str
    key: str
    name: str
    required: bool
    schema: JiraFieldSchema | None
    allowedValues: list[JiraAllowedOption] | None
    hasDefaultValue: bool
    defaultValue: JsonValue
    operations: list[str] | None


class JiraFieldsPage(TypedDict, total=False):
    """``GET /issue/createmeta/{project}/issuetypes/{id}`` (``fields``; older: ``results``),
    offset paging."""

    fields: list[JiraFieldMeta] | None
    results: list[JiraFieldMeta] | None
    startAt: int
    maxResults: int
    total: int


# -- ServiceNow Table API -----------------------------------------------------------------------


class ServiceNowCell(TypedDict, total=False):
    """One field read with ``sysparm_display_value=all``: the stored value and what people see."""

    value: str
    display_value: str


# A field of a row: a cell with ``sysparm_display_value=all``, else the bare value.
ServiceNowField: TypeAlias = ServiceNowCell | str

# A row read with ``sysparm_display_value=false`` and reference links excluded: every field the
# request named, as a string (sys_choice, sys_user_group, sys_user, sys_journal_field).
ServiceNowRow: TypeAlias = dict[str, str]

ChoiceField = Literal["priority", "urgency", "impact", "category", "subcategory"]
ReferenceField = Literal["assignment_group", "assigned_to", "caller_id"]


class Incident(TypedDict, total=False):
    """A task row (incident, problem, change_request…) read with ``READ_FIELDS`` and
    ``sysparm_display_value=all``; the Change Management API answers in this shape too. A
    table without a field leaves it out."""

    sys_id: ServiceNowField
    number: ServiceNowField
    short_description: ServiceNowField
    description: ServiceNowField
    state: ServiceNowField
    priority: ServiceNowField
    urgency: ServiceNowField
    impact: ServiceNowField
    category: ServiceNowField
    subcategory: ServiceNowField
    assignment_group: ServiceNowField
    assigned_to: ServiceNowField
    caller_id: ServiceNowField
    correlation_id: ServiceNowField
    sys_updated_on: ServiceNowField
    sys_updated_by: ServiceNowField  # a user_name: who wrote the row last (``changes``)
    sys_class_name: ServiceNowField  # the record's table
