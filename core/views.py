"""The operator API's wire shapes: one pydantic model per response body and per event payload.

Defined once, in core, so the receiver serialises every answer from them and the dashboard (which
may import core, never the receiver) parses every answer into them; ``GET /api/schema`` serves
their JSON schema. A view reads a stored dict or a typed document alike:
``View.model_validate(x, from_attributes=True)``.

What a view does not declare is left out of the answer (a job's nonce, a ticket's raw fields),
except on ``AnomalyDetail`` and its parts, which keep what the platform sent beyond our fields.
Absent stays absent: :func:`to_json` dumps with ``exclude_unset``, so a field its source did not
have is not invented as ``null`` (``reason`` only when degraded, ``project`` only for Jira).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal, Self, TypeAlias

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    RootModel,
    WithJsonSchema,
)
from pydantic.json_schema import models_json_schema

from anomaly_desk.core.jsontypes import JsonMap, JsonObject
from anomaly_desk.core.vocabulary import EventName, FieldKind


def _timestamp(value: Any) -> Any:
    """A stored ISO string as it is; a datetime (a typed document's) in the store's format."""
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


Timestamp = Annotated[
    str,
    BeforeValidator(_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class View(BaseModel):
    """A wire shape: reads dicts and objects (``from_attributes``), ignores what it does not
    declare."""

    model_config = ConfigDict(from_attributes=True)


def to_json(view: BaseModel) -> bytes:
    """The answer's bytes: declared fields only, absent ones left absent, aliases on the wire."""
    return orjson.dumps(view.model_dump(mode="json", by_alias=True, exclude_unset=True))


# -- anomalies ------------------------------------------------------------------------------


def _get(source: Any, key: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def _name(ref: Any) -> Any:
    """A datastore or container as its name: a reference's ``name``, a bare name as it is."""
    if ref is None or isinstance(ref, str):
        return ref
    return _get(ref, "name")


class AnomalySummary(View):
    """One row of the anomaly list (and of the live ``anomaly.created`` event)."""

    id: int
    status: str = Field(description="As the platform named it; one added later is kept as sent")
    type: str | None = None
    weight: int | float | None = None
    datastore: str | None = Field(None, description="The datastore's name")
    container: str | None = Field(None, description="The container's name")
    fields: list[str] = Field(default_factory=list)
    message: str | None = None
    created: Timestamp | None = None
    updated_at: Timestamp | None = None
    tickets: list[str] = Field(default_factory=list, description="Keys of the linked tickets")
    stuck_notes: int = Field(
        0, description="Notes that wait for a person: dead, or held behind a dead one"
    )
    cold: bool = Field(
        False, description="In the cold archive (found by a search that included it)"
    )

    @classmethod
    def of(cls, doc: object, **more: object) -> Self:
        """The row of an anomaly: a stored row, a typed document or an ``AnomalyDetail``."""
        get: Callable[[str], Any]
        if isinstance(doc, Mapping):
            get = doc.get
        else:

            def get(key: str) -> Any:
                return getattr(doc, key, None)

        links = get("links")
        tickets = get("tickets") if links is None else [_get(link, "ticket_key") for link in links]
        return cls.model_validate(
            {
                "id": get("id"),
                "status": get("status"),
                "type": get("type"),
                "weight": get("weight"),
                "datastore": _name(get("datastore")),
                "container": _name(get("container")),
                "fields": get("fields") or [],
                "message": get("message"),
                "created": get("created"),
                "updated_at": get("updated_at"),
                "tickets": tickets or [],
                "stuck_notes": 0,  # the store knows: it fills this in where it can
                "cold": False,  # a search that includes the cold archive marks its rows
                **more,
            }
        )


class AnomalyUpdated(AnomalySummary):
    """``anomaly.updated``: the anomaly's row as it is now, and what changed."""

    change: str | None = Field(None, description="status, comment, platform or notes")


class RefView(View):
    """A datastore or container: ``{"id": 7, "name": "orders"}``."""

    model_config = ConfigDict(extra="allow")

    id: int | str | None = None
    name: str | None = None


class FailedCheckView(View):
    model_config = ConfigDict(extra="allow")

    check_id: int | str | None = None
    rule_type: str | None = None
    fields: list[str] = Field(default_factory=list)
    message: str | None = None


class CommentView(View):
    at: Timestamp
    text: str
    by: str | None = None
    origin: str | None = Field(None, description="The link it came from (a ticket's comment)")


class HistoryEntry(View):
    """One line of an anomaly's history; which keys it has depends on ``kind``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    at: Timestamp
    kind: str = Field(
        description="received, status, comment, stale, imported, enriched, ticket created/…"
    )
    by: str | None = None
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    status: str | None = None
    ticket: str | None = None
    connection: str | None = None
    sent_at: Timestamp | None = None
    fields: list[str] | None = Field(None, description="enriched: the fields completed")


class NoteCounts(View):
    """What became of the notes for one linked ticket."""

    delivered: int = 0
    pending: int = 0
    held: int = Field(0, description="Pending behind a dead note on the same ticket")
    dead: int = 0
    cancelled: int = 0

    @classmethod
    def zero(cls) -> NoteCounts:
        """Every count present on the wire, as 0 (an unset field would be left out)."""
        return cls(delivered=0, pending=0, held=0, dead=0, cancelled=0)


class TicketLinkView(View):
    """A ticket linked to an anomaly, with its state as last read from the provider."""

    id: str
    connection: str
    provider: str
    ticket_key: str
    ticket_id: str
    table: str | None = Field(None, description="ServiceNow: the ticket's table (ticket type)")
    url: str | None = None
    summary: str | None = None
    origin: str | None = Field(None, description="created or linked")
    state: str | None = None
    state_category: str | None = None
    state_read_at: Timestamp | None = None
    linked_at: Timestamp | None = None
    notes: NoteCounts | None = Field(None, description="In the anomaly's detail only")
    warnings: list[str] | None = Field(
        None, description="What the create could not do as asked (caller, reporter)"
    )


class AnomalyDetail(View):
    """The whole anomaly: what the platform sent (unknown keys kept), values that fit no field
    (``odd``, as sent), and what happened here: links, comments, history."""

    model_config = ConfigDict(extra="allow")

    id: int
    uuid: str | None = None
    type: str | None = None
    status: str
    weight: int | float | None = None
    datastore: RefView | None = None
    container: RefView | None = None
    fields: list[str] = Field(default_factory=list)
    message: str | None = None
    description: str | None = None
    failed_checks: list[FailedCheckView] = Field(default_factory=list)
    global_tags: list[str] = Field(default_factory=list)
    anomalous_records_count: int | None = None
    fingerprint: int | str | None = None
    created: Timestamp | None = None
    url: str | None = None
    odd: JsonMap | None = Field(
        None, description="Values the platform sent that fit no field, as sent"
    )
    received_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    platform_status: str | None = None
    platform_at: Timestamp | None = None
    comments: list[CommentView] = Field(default_factory=list)
    links: list[TicketLinkView] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    platform_notes: NoteCounts | None = Field(
        None, description="Write-back to the platform: what became of this anomaly's changes"
    )
    cold: bool = Field(
        False,
        description="In the cold archive (archived long ago); a change or an action brings it "
        "back to the hot store",
    )

    def summary(self) -> AnomalySummary:
        """This anomaly's list row."""
        stuck = sum(link.notes.dead + link.notes.held for link in self.links if link.notes)
        if self.platform_notes is not None:
            stuck += self.platform_notes.dead + self.platform_notes.held
        return AnomalySummary.of(self, stuck_notes=stuck)


class AnomalyPage(View):
    items: list[AnomalySummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: done")


class CompactView(View):
    """What a compaction did: archived anomalies moved from the hot store to the cold archive
    (``POST /api/compact``, ``anomaly-desk compact``)."""

    moved: int = Field(description="Anomalies moved to the cold archive by this run")
    months: list[str] = Field(default_factory=list, description="The months they went to")
    skipped_waiting: int = Field(0, description="Old enough but with notes still waiting")
    skipped_changed: int = Field(0, description="Changed while the run was writing them")
    hot: int = Field(description="Anomalies in the hot store now")
    cold: int = Field(description="Anomalies in the cold archive now (not hot again)")
    deleted_months: list[str] = Field(
        default_factory=list, description="Archive months deleted (delete_after_days)"
    )
    deleted: int = Field(0, description="Anomalies in the deleted months")
    not_run: str | None = Field(None, description="Why nothing was moved (an open import)")
    seconds: float = 0.0


# -- quarantine and ingestion ---------------------------------------------------------------


class QuarantineNote(View):
    """Which item of a delivery was kept aside, and why."""

    path: str
    reason: str


class QuarantineItem(View):
    key: str
    at: Timestamp
    delivery: str
    path: str
    reason: str
    raw: Any = Field(description="The item as sent: any JSON value")


class QuarantinePage(View):
    items: list[QuarantineItem]


class _FullView(View):
    """A view whose every field is on the wire, defaults included (a progress report where a
    0 or a false is news, not an absence)."""

    def model_post_init(self, context: Any, /) -> None:
        self.__pydantic_fields_set__.update(type(self).model_fields)


class ImportProgressView(_FullView):
    """``import.progress`` events and the import endpoint's answer: where an import stands."""

    page: int = Field(description="Pages stored so far")
    pages: int = Field(description="Pages in all (known from the first page)")
    total: int = Field(description="Anomalies the platform listed")
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    done: bool = False
    running: bool = Field(
        False, description="An import is running now (false: it ended or was cut)"
    )
    resumed_from: int | None = Field(None, description="The page an interrupted import resumed at")
    error: str | None = Field(None, description="Why it stopped (it resumes from here)")


class HintView(View):
    """``POST /webhooks/jira`` / ``/webhooks/servicenow``: a verified hint, and what it did."""

    duplicate: bool = Field(description="A replay of a hint already acted on: ignored")
    connection: str
    poll: bool | None = Field(None, description="Whether a poll of the connection was asked for")


class ReloadView(_FullView):
    """``POST /api/reload`` (and ``SIGHUP``): the configuration file and the secrets read again,
    and what that changed. Secrets are named (``token``), never shown."""

    source: str | None = Field(None, description="The configuration file read")
    added: list[str] = Field(default_factory=list, description="New connections: clients built")
    removed: list[str] = Field(
        default_factory=list, description="Connections no longer configured: clients retired"
    )
    changed: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Connections whose settings or secrets changed, with the keys that did: "
        "clients rebuilt (notes in flight finish on the old ones)",
    )
    unchanged: list[str] = Field(default_factory=list)
    platform: list[str] = Field(
        default_factory=list, description="[platform] keys that changed: its client rebuilt"
    )
    receiver: list[str] = Field(
        default_factory=list, description="Receiver secrets that changed: in force at once"
    )
    restart_needed: list[str] = Field(
        default_factory=list,
        description="Keys that changed but take effect only at a restart (the running values stay)",
    )


class IngestResultView(View):
    """``POST /webhooks/qualytics``'s answer: the delivery is on disk; what it did."""

    delivery: str
    duplicate: bool = False
    created: list[int] = Field(default_factory=list)
    updated: list[int] = Field(default_factory=list)
    status_changed: list[int] = Field(default_factory=list)
    unchanged: list[int] = Field(default_factory=list)
    stale: list[int] = Field(default_factory=list)
    quarantined: list[QuarantineNote] = Field(default_factory=list)


# -- health and connections -----------------------------------------------------------------


class HealthView(View):
    """``/healthz``: ``ok`` (200) or ``degraded`` with the reason (503); the counts only for the
    operator (with the token on an exposed receiver)."""

    status: Literal["ok", "degraded"]
    reason: str | None = None
    anomalies: int | None = None
    by_status: dict[str, int] | None = None


class ConnectionHealth(View):
    """A connection's last known state: from a check, or learnt from a delivery."""

    ok: bool
    message: str
    checked_at: Timestamp | None = None
    ms: int | None = Field(None, description="How long the check took; null: from a delivery")
    source: str = Field("check", description="check or sync (a delivery told)")
    warnings: list[str] = Field(
        default_factory=list,
        description="Credential trouble ahead: basic auth restricted, an expired token, …",
    )


class ConnectionHealthChanged(View):
    """``connection.health``: a connection went down, came back, or fails differently."""

    name: str
    health: ConnectionHealth


class ConnectionView(View):
    name: str
    provider: str = Field(description="jira or servicenow")
    url: str
    health: ConnectionHealth | None = Field(description="null until first checked")
    project: str | None = Field(None, description="Jira only")
    issue_type: str | None = Field(None, description="Jira only")
    sync: TwoWayView | None = Field(None, description="What goes each way (two-way sync)")


class TwoWayView(View):
    """A connection's two-way settings, as the connection picker shows them."""

    status: str = Field(description="off, to_ticket, from_ticket or both")
    comments: str = Field(description="off, to_ticket, from_ticket or both")
    fan_out_ticket_comments: bool
    on_ticket_done: str | None
    on_anomaly_archived: str
    on_recurrence: str
    poll_s: float


class ConnectionPage(View):
    items: list[ConnectionView]


class ConnectionChecks(RootModel[dict[str, ConnectionHealth]]):
    """``POST /api/connections/check``: each connection's name and its fresh health."""


class TicketView(View):
    """A ticket found on a connection (search results)."""

    key: str
    id: str
    url: str = ""
    summary: str = ""
    state: str = ""
    state_category: str | None = None
    updated: str | None = None


class TicketPage(View):
    items: list[TicketView]


class OptionView(View):
    """One drop-down value: ``value`` is what the API takes, ``label`` what a person reads."""

    value: str
    label: str


class OptionsView(RootModel[dict[str, list[OptionView]]]):
    """A connection's drop-down values by field name (``subcategory:<category>`` for ServiceNow
    subcategories)."""


class FieldChoice(View):
    """One allowed value of an option field; a cascading select's parents carry ``children``."""

    value: str  # what the API takes (Jira option id, ServiceNow choice value)
    label: str  # what a person reads
    children: list[FieldChoice] = Field(default_factory=list)


class TicketFieldSpec(View):
    """One field of a ticket type's create form, read from the provider (Jira createmeta,
    ServiceNow ``sys_dictionary`` + ``sys_choice``), so the dashboard can build the form and
    refuse to submit until every required field is filled."""

    id: str  # the API's field id: "summary", "customfield_10050", "caller_id"
    name: str  # the label people read
    kind: FieldKind
    required: bool = False
    custom: bool = False  # a Jira custom field / a ServiceNow u_ field
    choices: list[FieldChoice] = Field(default_factory=list)
    default: JsonValue = None
    max_length: int | None = None


class TicketTypeView(View):
    """A kind of ticket a connection can create: a Jira issue type (``id`` its id) or a
    ServiceNow table (``id`` the table name)."""

    id: str
    name: str


class CreateFormView(View):
    """Everything the create form needs for one connection and ticket type."""

    connection: str
    ticket_type: TicketTypeView
    fields: list[TicketFieldSpec]
    reporter_settable: bool = False  # Jira: createmeta lists ``reporter``
    operator_email: str | None = None  # who the ticket is raised for (caller / reporter)


class TicketTypePage(View):
    items: list[TicketTypeView]


class UserView(View):
    """A person in the ticketing system (assignee search, caller lookup)."""

    id: str  # Jira accountId / ServiceNow sys_user sys_id
    name: str
    email: str | None = None


class UserPage(View):
    items: list[UserView]


class RuleView(View):
    """A ``[[rules]]`` entry with what it has done: the dashboard lists these and pauses or
    resumes one."""

    name: str
    connection: str
    paused: bool = False
    paused_reason: str | None = None  # set when it paused itself (N permanent failures)
    paused_by: str | None = None  # "operator" or "failures"
    created: int = 0  # tickets it created
    linked: int = 0  # inside the dedup window: linked the open ticket and noted it
    throttled: int = 0  # matched but over max_per_hour
    skipped: int = 0  # matched while paused (nothing done)
    failures: int = 0  # consecutive permanent failures
    pause_after: int = 3  # …that pause it
    max_per_hour: int | None = None  # tickets an hour; None: no limit
    paused_at: Timestamp | None = None
    last_fired_at: Timestamp | None = None


class RulePage(View):
    items: list[RuleView]


# -- sync -----------------------------------------------------------------------------------


class SyncJobView(View):
    """One note to deliver to one ticket."""

    id: int
    anomaly_id: int
    link_id: str
    connection: str
    ticket_key: str
    kind: str = Field(description="status or comment")
    text: str
    state: str = Field(description="pending, done, dead or cancelled")
    attempts: int
    next_at: float = Field(description="Unix time of the next attempt")
    last_error: str | None = None
    created_at: Timestamp | None = None
    done_at: Timestamp | None = None


class SyncJobPage(View):
    items: list[SyncJobView]


class SyncLogEntryView(View):
    """One delivery attempt of a sync job (also the ``sync.attempt`` event)."""

    id: int
    at: Timestamp
    job_id: int
    anomaly_id: int
    link_id: str
    connection: str
    ticket_key: str
    kind: str
    attempt: int
    outcome: str = Field(description="done, retry, dead or cancelled")
    duration_ms: float
    message: str | None = None
    text: str | None = None


class SyncLogPage(View):
    items: list[SyncLogEntryView]
    last_id: int | None = Field(description="The newest entry's id: pass as ?after= to go on")


# -- events ---------------------------------------------------------------------------------


class _LinkEvent(View):
    anomaly_id: int
    anomaly: AnomalySummary | None = Field(
        None, description="The anomaly's row after the change (absent if it is gone)"
    )


class LinkCreated(_LinkEvent):
    link: TicketLinkView


class LinkRemoved(_LinkEvent):
    link_id: str


class LinkStateChanged(_LinkEvent):
    links: list[TicketLinkView]


class DeliveryQuarantined(View):
    delivery: str
    items: list[QuarantineNote]


class StreamLagged(View):
    """This stream fell behind and missed ``dropped`` events here: refetch."""

    dropped: int


class AnomaliesCompacted(View):
    """``anomalies.compacted``: one compaction run moved these archived anomalies from the hot
    store to the cold archive (one event per run, only when it moved some). A dashboard drops
    them from a list without the archive and marks them cold in one with it; past 1,000
    (``EVENT_IDS_MAX`` in core.retention) the ids are left out and ``reload`` says to read the
    list again."""

    moved: int = Field(description="Anomalies this run moved to the cold archive")
    ids: list[int] = Field(
        default_factory=list, description="Their ids; empty when ``reload`` (too many to name)"
    )
    reload: bool = Field(False, description="Too many to name: read the list again")
    finished_at: Timestamp = Field(description="When the run finished")


EventView: TypeAlias = (
    AnomalySummary
    | LinkCreated
    | LinkRemoved
    | LinkStateChanged
    | SyncLogEntryView
    | SyncJobView
    | DeliveryQuarantined
    | ConnectionHealthChanged
    | ImportProgressView
    | RuleView
    | AnomaliesCompacted
    | StreamLagged
)

EVENT_VIEWS: dict[str, type[EventView]] = {
    "anomaly.created": AnomalySummary,
    "anomaly.updated": AnomalyUpdated,
    "link.created": LinkCreated,
    "link.removed": LinkRemoved,
    "link.state": LinkStateChanged,
    "sync.attempt": SyncLogEntryView,
    "sync.job": SyncJobView,
    "delivery.quarantined": DeliveryQuarantined,
    "connection.health": ConnectionHealthChanged,
    "import.progress": ImportProgressView,
    "rule.changed": RuleView,
    EventName.ANOMALIES_COMPACTED.value: AnomaliesCompacted,
    EventName.STREAM_LAGGED.value: StreamLagged,
}


# -- errors ---------------------------------------------------------------------------------


class FieldError(View):
    path: str = Field(description="Where: fields.summary, connection, [2].id, …")
    message: str


class ProblemView(View):
    """Every error: RFC 9457 problem details (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


# -- the schema -----------------------------------------------------------------------------

RESPONSES: dict[str, type[BaseModel]] = {
    "POST /webhooks/qualytics": IngestResultView,
    "POST /webhooks/jira": HintView,
    "POST /webhooks/servicenow": HintView,
    "GET /healthz": HealthView,
    "GET /api/anomalies": AnomalyPage,
    "GET /api/anomalies/{anomaly_id}": AnomalyDetail,
    "POST /api/anomalies/{anomaly_id}/acknowledge": AnomalyDetail,
    "POST /api/anomalies/{anomaly_id}/archive": AnomalyDetail,
    "POST /api/anomalies/{anomaly_id}/comments": AnomalyDetail,
    "POST /api/anomalies/{anomaly_id}/tickets": TicketLinkView,
    "POST /api/anomalies/{anomaly_id}/links": TicketLinkView,
    "DELETE /api/anomalies/{anomaly_id}/links/{link_id}": AnomalyDetail,
    "POST /api/anomalies/{anomaly_id}/refresh": AnomalyDetail,
    "GET /api/connections": ConnectionPage,
    "POST /api/connections/check": ConnectionChecks,
    "GET /api/connections/{name}/search": TicketPage,
    "GET /api/connections/{name}/options": OptionsView,
    "GET /api/connections/{name}/types": TicketTypePage,
    "GET /api/connections/{name}/form": CreateFormView,
    "GET /api/connections/{name}/users": UserPage,
    "GET /api/sync-log": SyncLogPage,
    "GET /api/sync-jobs": SyncJobPage,
    "POST /api/sync-jobs/{job_id}/retry": SyncJobView,
    "GET /api/quarantine": QuarantinePage,
    "POST /api/import": ImportProgressView,
    "POST /api/reload": ReloadView,
    "GET /api/import": ImportProgressView,
    "POST /api/compact": CompactView,
    "GET /api/rules": RulePage,
    "POST /api/rules/{name}/pause": RuleView,
    "POST /api/rules/{name}/resume": RuleView,
}

VIEWS: tuple[type[BaseModel], ...] = tuple(
    dict.fromkeys([*RESPONSES.values(), *EVENT_VIEWS.values(), ProblemView])
)


@cache
def api_schema() -> JsonObject:
    """Every view's JSON schema (``$defs``), which view each endpoint answers with and each
    event carries (``$ref``s into them). Errors are ``ProblemView``."""
    refs, top = models_json_schema(
        [(view, "serialization") for view in VIEWS],
        ref_template="#/$defs/{model}",
        title="Anomaly Desk operator API",
    )

    def ref(view: type[BaseModel]) -> JsonObject:
        return refs[(view, "serialization")]

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **top,
        "responses": {route: ref(view) for route, view in RESPONSES.items()},
        "events": {kind: ref(view) for kind, view in EVENT_VIEWS.items()},
        "errors": ref(ProblemView),
    }
