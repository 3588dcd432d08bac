"""Every shape the store holds, as pydantic models, and the pure functions that change them.

The store keeps plain JSON dicts (cheap to journal, to index and to list); core works on these
models. A document is read at the store's boundary (:meth:`Store.anomaly_doc`,
:meth:`Store.job`, :meth:`Store.jobs`) and written back through ``Put``, which dumps it to the
JSON stored before these models existed: the same keys with the same values (only a new
anomaly's unknown platform keys now come after the desk's own keys in the object). An update is
dumped from the row it was made from (:func:`dump_from`): what it did not change keeps its JSON.

* **Tolerant reading.** Whatever an earlier version stored loads: keys added since
  (``platform_status``, ``platform_at``, ``odd``; a job's ``nonce`` and ``baseline``) have
  defaults, unknown keys are kept (``extra="allow"``) and written back, and a history line of a
  kind this version does not know is kept as an :class:`OtherEntry`.
* **Absent stays absent.** What today's code leaves out rather than writing ``null`` (``odd``
  when there is none, ``platform_status`` of a document stored before it existed, a job's
  ``baseline`` before its first send and ``nonce`` of a job stored before nonces) is left out
  again when dumped.
* **Never changed in place.** Documents are frozen; ``with_*`` and ``job_*`` return a new one and
  leave their input as it was, so one document can be shared by the store, a staged delivery and
  an event.
* Times are the stored strings (:func:`anomaly_desk.core.ingest.iso`: UTC, milliseconds, ``Z``),
  passed in by the caller: nothing here reads a clock. The exception is the platform's own
  ``created``, a datetime as :class:`~anomaly_desk.core.models.Anomaly` validates it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeAlias, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anomaly_desk.core.jsontypes import JsonMap, JsonObject
from anomaly_desk.core.models import Anomaly, Status
from anomaly_desk.core.vocabulary import (
    PLATFORM,
    HistoryKind,
    JobKind,
    JobState,
    LinkOrigin,
    SyncOutcome,
)

if TYPE_CHECKING:
    from anomaly_desk.core.providers.base import Ticket

__all__ = [
    "LOCAL_KEYS",
    "AnomalyDocument",
    "Comment",
    "Commented",
    "DeliveryRecord",
    "Document",
    "DocumentCache",
    "Enriched",
    "HistoryEntry",
    "ImportState",
    "Imported",
    "KnownEntry",
    "OtherEntry",
    "QuarantinedDelivery",
    "Received",
    "RuleState",
    "RuleTicket",
    "Stale",
    "StatusChanged",
    "StatusName",
    "StoredDocument",
    "SyncJob",
    "SyncLogEntry",
    "TicketAdded",
    "TicketLink",
    "TicketRemoved",
    "dump_from",
    "job_after",
    "job_cancelled",
    "job_in_flight",
    "job_reset",
    "job_started",
    "log_entry",
    "new_document",
    "new_job",
    "new_link",
    "new_platform_job",
    "new_row",
    "new_ticket_job",
    "with_comment",
    "with_link",
    "with_stale",
    "with_status",
    "with_ticket_change",
    "with_ticket_states",
    "without_link",
]


def _is_none(value: Any) -> bool:
    return value is None


def _is_empty(value: Any) -> bool:
    return not value


StatusName = Annotated[Status | str, Field(union_mode="left_to_right")]
"""A status: a known one as :class:`Status`, one the platform added later as the str it sent."""


class Document(BaseModel):
    """A stored shape: frozen, unknown keys kept, ``from`` and other aliases on the wire."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        serialize_by_alias=True,
        validate_by_name=True,
        validate_by_alias=True,
    )


# -- an anomaly's parts ----------------------------------------------------------------------


class Comment(Document):
    at: str
    text: str
    by: str
    origin: str | None = Field(None, exclude_if=_is_none)  # the link it came from (two-way)


class TicketLink(Document):
    """A ticket linked to an anomaly, with its state as last read from the provider."""

    id: str
    connection: str
    provider: str  # jira | servicenow
    ticket_key: str
    ticket_id: str
    # ServiceNow: the ticket's table; absent on links made before #15 (the connection's table)
    table: str | None = Field(None, exclude_if=_is_none)
    url: str = ""
    summary: str = ""
    origin: LinkOrigin | str = Field(LinkOrigin.LINKED, union_mode="left_to_right")
    state: str = ""
    state_category: str | None = None
    state_read_at: str | None = None
    linked_at: str | None = None
    # two-way: the ticket's ``updated`` when last read back, the comments already taken (their
    # provider ids, the newest few hundred: a poll's overlap window sees some again)
    inbound_at: str | None = Field(None, exclude_if=_is_none)
    seen_comments: tuple[str, ...] = Field((), exclude_if=_is_empty)
    # what the create could not do as asked (caller, reporter): told once in the create's
    # answer, never stored
    warnings: tuple[str, ...] = Field((), exclude=True)
    # the new-ticket job (a rule's, a recurrence's) that created it: after a crash, that job
    # recognises its own ticket, never another job's on the same connection
    job_id: int | None = Field(None, exclude_if=_is_none)


class _Entry(Document):
    at: str


class Received(_Entry):
    """The anomaly arrived."""

    kind: Literal[HistoryKind.RECEIVED] = HistoryKind.RECEIVED
    status: StatusName
    by: str = PLATFORM


class StatusChanged(_Entry):
    kind: Literal[HistoryKind.STATUS] = HistoryKind.STATUS
    from_: StatusName = Field(alias="from")
    to: StatusName
    by: str


class Commented(_Entry):
    """A comment was added (its text is in ``comments``)."""

    kind: Literal[HistoryKind.COMMENT] = HistoryKind.COMMENT
    by: str


class TicketAdded(_Entry):
    """A ticket was created for the anomaly, or an existing one linked."""

    kind: Literal[HistoryKind.TICKET_CREATED, HistoryKind.TICKET_LINKED]
    ticket: str
    connection: str


class TicketRemoved(_Entry):
    kind: Literal[HistoryKind.TICKET_UNLINKED] = HistoryKind.TICKET_UNLINKED
    ticket: str
    connection: str


class Stale(_Entry):
    """A delivery the sender stamped before the newest state applied: recorded, nothing changed."""

    kind: Literal[HistoryKind.STALE] = HistoryKind.STALE
    status: StatusName
    sent_at: str
    by: str = PLATFORM


class Imported(_Entry):
    """The anomaly arrived, or changed, through an import from the platform's API."""

    kind: Literal[HistoryKind.IMPORTED] = HistoryKind.IMPORTED
    status: StatusName
    by: str = PLATFORM


class Enriched(_Entry):
    """Fields a thin webhook lacked, completed from the platform's API."""

    kind: Literal[HistoryKind.ENRICHED] = HistoryKind.ENRICHED
    fields: list[str]
    source: str = "enriched"
    by: str = PLATFORM


class OtherEntry(_Entry):
    """A history line of a kind this version does not know: kept as it is."""

    kind: str


KnownEntry: TypeAlias = Annotated[
    Received
    | StatusChanged
    | Commented
    | TicketAdded
    | TicketRemoved
    | Stale
    | Imported
    | Enriched,
    Field(discriminator="kind"),
]

HistoryEntry: TypeAlias = Annotated[KnownEntry | OtherEntry, Field(union_mode="left_to_right")]
"""One line of an anomaly's history, chosen by its ``kind``; a line this version cannot read
(another kind, or a known one missing a key) is kept as it is, as an :class:`OtherEntry`."""


# -- the anomaly -----------------------------------------------------------------------------

LOCAL_KEYS = (
    "received_at",
    "updated_at",
    "history",
    "comments",
    "links",
    "platform_status",
    "platform_at",
)
"""What the desk keeps on an anomaly beyond what the platform sent; never taken from a delivery."""


class AnomalyDocument(Anomaly):
    """A stored anomaly: the platform's fields (:class:`Anomaly`, unknown keys kept) and what
    happened to it here."""

    model_config = ConfigDict(frozen=True)

    odd: JsonMap | None = Field(None, exclude_if=_is_none)  # as in Anomaly; absent if none
    received_at: str = ""
    updated_at: str = ""
    comments: tuple[Comment, ...] = ()
    links: tuple[TicketLink, ...] = ()
    # The last status *the platform* reported (ours may differ); absent: stored before it was
    # kept, then it is ``status`` (see ``reported_status``).
    platform_status: StatusName | None = Field(None, exclude_if=_is_none)
    platform_at: str | None = None  # the sender's time of the newest state applied
    history: tuple[HistoryEntry, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _variants(cls, data: Any) -> Any:
        """Replaces :meth:`Anomaly._variants`: a stored document holds the platform's fields as
        that pass left them, and is read as it is (folding again is not always a no-op: a
        ``container_id`` kept beside a null ``container`` would become a container)."""
        return data

    @field_validator("status")
    @classmethod
    def _usable_status(cls, value: Status | str) -> Status | str:
        """Replaces Anomaly's check: what an earlier version stored loads as it is."""
        return value

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: int | float | None) -> int | float | None:
        """Replaces Anomaly's check (a stored document is read as it is)."""
        return value

    @property
    def reported_status(self) -> Status | str:
        """The last status the platform reported."""
        return self.status if self.platform_status is None else self.platform_status

    def link_by_id(self, link_id: str) -> TicketLink | None:
        return next((link for link in self.links if link.id == link_id), None)


M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


def _assembled(cls: type[M], values: JsonObject, extra: JsonObject) -> M:
    """A model from values already valid for it, as ``model_construct`` makes one, without its
    Python-level per-field work. ``values`` must hold every field."""
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", extra)
    _set(model, "__pydantic_private__", None)
    return model


_DOCUMENT_FIELDS = frozenset(AnomalyDocument.model_fields)


def new_document(anomaly: Anomaly, at: str, sent_at: str | None) -> AnomalyDocument:
    """A first delivery's document.

    Assembled from the validated anomaly's values, not validated again: this runs for every new
    anomaly of every webhook, where validating (or ``model_construct``) would cost more than the
    whole merge did."""
    status = anomaly.status
    received = {"at": at, "kind": HistoryKind.RECEIVED, "status": status, "by": PLATFORM}
    values = {
        **anomaly.__dict__,
        "received_at": at,
        "updated_at": at,
        "comments": (),
        "links": (),
        "platform_status": status,
        "platform_at": sent_at,
        "history": (_assembled(Received, received, {}),),
    }
    extra = anomaly.__pydantic_extra__ or {}
    if not _DOCUMENT_FIELDS.isdisjoint(extra):  # the platform sent a key of ours: ours wins
        extra = {key: value for key, value in extra.items() if key not in _DOCUMENT_FIELDS}
    return _assembled(AnomalyDocument, values, dict(extra))


def new_row(anomaly: Anomaly, at: str, sent_at: str | None) -> JsonObject:
    """The stored JSON of :func:`new_document`, built straight from the anomaly.

    Every new anomaly of every webhook takes this path; assembling the document only to dump it
    at once costs twice as much (its objects feed nothing but the garbage collector). A test
    holds the two to the same JSON."""
    row = anomaly.model_dump(mode="json")
    if row.get("odd") is None:
        row.pop("odd", None)
    status = row["status"]
    row.update(
        received_at=at,
        updated_at=at,
        comments=[],
        links=[],
        platform_status=status,
        platform_at=sent_at,
        history=[{"at": at, "kind": HistoryKind.RECEIVED.value, "status": status, "by": PLATFORM}],
    )
    return row


def with_status(doc: AnomalyDocument, status: Status | str, at: str, by: str) -> AnomalyDocument:
    """``status`` set here (by a person, or by the platform), recorded in history."""
    entry = StatusChanged(at=at, from_=doc.status, to=status, by=by)
    return doc.model_copy(
        update={"status": status, "updated_at": at, "history": (*doc.history, entry)}
    )


def with_comment(
    doc: AnomalyDocument, text: str, at: str, by: str, origin: str | None = None
) -> AnomalyDocument:
    return doc.model_copy(
        update={
            "updated_at": at,
            "comments": (*doc.comments, Comment(at=at, text=text, by=by, origin=origin)),
            "history": (*doc.history, Commented(at=at, by=by)),
        }
    )


def new_link(
    link_id: str,
    connection: str,
    provider: str,
    ticket: Ticket,
    origin: LinkOrigin,
    at: str,
    job_id: int | None = None,
) -> TicketLink:
    return TicketLink(
        id=link_id,
        connection=connection,
        provider=provider,
        ticket_key=ticket.key,
        ticket_id=ticket.id,
        table=ticket.table,
        url=ticket.url,
        summary=ticket.summary,
        origin=origin,
        state=ticket.state,
        state_category=ticket.state_category,
        state_read_at=at,
        linked_at=at,
        warnings=ticket.warnings,
        job_id=job_id,
    )


def with_link(doc: AnomalyDocument, link: TicketLink, at: str) -> AnomalyDocument:
    kind: Literal[HistoryKind.TICKET_CREATED, HistoryKind.TICKET_LINKED] = (
        HistoryKind.TICKET_CREATED
        if link.origin == LinkOrigin.CREATED
        else HistoryKind.TICKET_LINKED
    )
    entry = TicketAdded(at=at, kind=kind, ticket=link.ticket_key, connection=link.connection)
    return doc.model_copy(
        update={
            "updated_at": at,
            "links": (*doc.links, link),
            "history": (*doc.history, entry),
        }
    )


def without_link(doc: AnomalyDocument, link_id: str, at: str) -> AnomalyDocument:
    """The link forgotten (the ticket is not touched); KeyError if there is no such link."""
    link = doc.link_by_id(link_id)
    if link is None:
        raise KeyError(link_id)
    entry = TicketRemoved(at=at, ticket=link.ticket_key, connection=link.connection)
    return doc.model_copy(
        update={
            "updated_at": at,
            "links": tuple(item for item in doc.links if item.id != link_id),
            "history": (*doc.history, entry),
        }
    )


SEEN_COMMENTS_KEPT = 300


def with_ticket_change(
    doc: AnomalyDocument, link_id: str, ticket: Ticket, seen: tuple[str, ...], at: str
) -> AnomalyDocument:
    """The link as just read back by a poll: state, its cursor and the comments seen."""
    links = []
    for link in doc.links:
        if link.id == link_id:
            known = (*link.seen_comments, *(c for c in seen if c not in link.seen_comments))
            link = link.model_copy(
                update={
                    "state": ticket.state,
                    "state_category": ticket.state_category,
                    "summary": ticket.summary or link.summary,
                    "state_read_at": at,
                    "inbound_at": ticket.updated or link.inbound_at,
                    "seen_comments": known[-SEEN_COMMENTS_KEPT:],
                }
            )
        links.append(link)
    return doc.model_copy(update={"links": tuple(links)})


def with_ticket_states(
    doc: AnomalyDocument, tickets: Mapping[str, Ticket], at: str
) -> AnomalyDocument:
    """Each link's ticket state as just read (``tickets`` by link id). Not a change of the
    anomaly: ``updated_at`` and history stay. ``doc`` itself when no link was read."""
    links = []
    for link in doc.links:
        ticket = tickets.get(link.id)
        if ticket is not None:
            link = link.model_copy(
                update={
                    "state": ticket.state,
                    "state_category": ticket.state_category,
                    "summary": ticket.summary or link.summary,
                    "state_read_at": at,
                }
            )
        links.append(link)
    if all(new is old for new, old in zip(links, doc.links, strict=True)):
        return doc
    return doc.model_copy(update={"links": tuple(links)})


def with_stale(
    doc: AnomalyDocument, status: Status | str, sent_at: str, at: str
) -> AnomalyDocument:
    """A stale delivery recorded; nothing else changes (not even ``updated_at``)."""
    entry = Stale(at=at, status=status, sent_at=sent_at)
    return doc.model_copy(update={"history": (*doc.history, entry)})


# -- sync jobs and their log -----------------------------------------------------------------


class SyncJob(Document):
    """One note to deliver to one ticket (an outbox job)."""

    id: int
    anomaly_id: int
    link_id: str
    connection: str
    provider: str = ""
    ticket_key: str
    ticket_id: str = ""  # empty: the queue and the provider go by ``ticket_key``
    ticket_table: str | None = Field(None, exclude_if=_is_none)  # ServiceNow: the link's table
    kind: JobKind
    text: str
    nonce: str | None = Field(None, exclude_if=_is_none)  # absent: stored before jobs had one
    created_at: str = ""
    state: JobState = JobState.PENDING
    attempts: int = 0
    next_at: float = 0.0  # Unix time of the next attempt
    in_flight: bool = False  # durably marked before a send: its outcome may be unknown
    verify: bool = False  # ask the ticket before sending again (an earlier attempt may have landed)
    last_error: str | None = None
    done_at: str | None = None
    # ServiceNow: identical notes on the ticket before the first send; set on that attempt
    baseline: int | None = Field(None, exclude_if=_is_none)
    # attempts made before a person last retried it: backoff starts again from there, while
    # attempt numbers go on (the log shows try 4 after tries 1-3, not try 1 again)
    retried_after: int | None = Field(None, exclude_if=_is_none)
    # a ``[[rules]]`` ticket (kind new_ticket): the rule's name and the anomaly's dedup key
    rule: str | None = Field(None, exclude_if=_is_none)
    dedup_key: str | None = Field(None, exclude_if=_is_none)


def new_job(
    job_id: int,
    anomaly_id: int,
    link: TicketLink,
    kind: JobKind,
    text: str,
    nonce: str,
    at: str,
) -> SyncJob:
    return SyncJob(
        id=job_id,
        anomaly_id=anomaly_id,
        link_id=link.id,
        connection=link.connection,
        provider=link.provider,
        ticket_key=link.ticket_key,
        ticket_id=link.ticket_id,
        ticket_table=link.table,
        kind=kind,
        text=text,
        nonce=nonce,
        created_at=at,
    )


def new_platform_job(
    job_id: int, anomaly_id: int, kind: JobKind, text: str, nonce: str, at: str
) -> SyncJob:
    """A job on the platform's own queue for this anomaly (write-back or enrichment): ordered
    per anomaly, delivered by the same worker as ticket notes. ``text``: the status to set, the
    comment to add, or nothing (enrichment)."""
    return SyncJob(
        id=job_id,
        anomaly_id=anomaly_id,
        link_id=PLATFORM,
        connection=PLATFORM,
        provider=PLATFORM,
        ticket_key=str(anomaly_id),
        ticket_id=str(anomaly_id),
        kind=kind,
        text=text,
        nonce=nonce,
        created_at=at,
    )


def new_ticket_job(
    job_id: int, anomaly_id: int, connection: str, provider: str, text: str, nonce: str, at: str
) -> SyncJob:
    """A job that creates a ticket on ``connection`` for the anomaly (a recurrence whose ticket
    is done): on its own queue, as the ticket does not exist yet."""
    return SyncJob(
        id=job_id,
        anomaly_id=anomaly_id,
        link_id=f"new:{connection}",
        connection=connection,
        provider=provider,
        ticket_key=f"new-{anomaly_id}",
        kind=JobKind.NEW_TICKET,
        text=text,
        nonce=nonce,
        created_at=at,
    )


def job_cancelled(job: SyncJob) -> SyncJob:
    """Its link is gone: never sent."""
    return job.model_copy(update={"state": JobState.CANCELLED})


def job_reset(job: SyncJob) -> SyncJob:
    """A dead job given another go by a person: pending, due now, its backoff from the start;
    its attempts go on counting."""
    update = {"state": JobState.PENDING, "next_at": 0.0, "retried_after": job.attempts}
    return job.model_copy(update=update)


def job_started(job: SyncJob, attempt: int, verify: bool) -> SyncJob:
    """Attempt number ``attempt`` begins (not stored yet); ``verify``: look before sending."""
    return job.model_copy(update={"attempts": attempt, "verify": verify})


def job_in_flight(
    job: SyncJob, baseline: int | None = None, settled_at: float | None = None
) -> SyncJob:
    """Stored before anything leaves, so a crash mid-send is a known unknown; with the
    ``baseline`` counted before a first send (None: the one counted before, if any).

    ``settled_at``: when the request, if it is cut by a crash, can no longer land (now + the
    connection's timeout); stored as ``next_at``, so a restart verifies it only then: a write
    the provider was still working on when the process died is on the ticket by the time we
    look, never sent a second time."""
    update: dict[str, object] = {"in_flight": True}
    if baseline is not None:
        update["baseline"] = baseline
    if settled_at is not None:
        update["next_at"] = settled_at
    return job.model_copy(update=update)


def job_after(
    job: SyncJob,
    outcome: SyncOutcome,
    at: str,
    verify: bool,
    message: str | None = None,
    next_at: float | None = None,
) -> SyncJob:
    """The job once an attempt ended with ``outcome`` (``next_at`` for a retry)."""
    update: dict[str, object]
    if outcome == SyncOutcome.CANCELLED:
        update = {"state": JobState.CANCELLED, "in_flight": False, "verify": verify}
    elif outcome == SyncOutcome.DONE:
        update = {"state": JobState.DONE, "in_flight": False, "done_at": at, "last_error": None}
    elif outcome == SyncOutcome.RETRY:
        assert next_at is not None
        update = {"in_flight": False, "verify": verify, "last_error": message, "next_at": next_at}
    else:
        update = {
            "state": JobState.DEAD,
            "in_flight": False,
            "verify": verify,
            "last_error": message,
        }
    return job.model_copy(update=update)


class SyncLogEntry(Document):
    """One delivery attempt of a sync job."""

    id: int
    at: str
    job_id: int
    anomaly_id: int
    link_id: str
    connection: str
    ticket_key: str
    kind: JobKind
    attempt: int
    outcome: SyncOutcome
    duration_ms: float
    message: str | None = None
    text: str = ""


def log_entry(
    entry_id: int,
    job: SyncJob,
    at: str,
    attempt: int,
    outcome: SyncOutcome,
    duration_ms: float,
    message: str | None,
) -> SyncLogEntry:
    return SyncLogEntry(
        id=entry_id,
        at=at,
        job_id=job.id,
        anomaly_id=job.anomaly_id,
        link_id=job.link_id,
        connection=job.connection,
        ticket_key=job.ticket_key,
        kind=job.kind,
        attempt=attempt,
        outcome=outcome,
        duration_ms=duration_ms,
        message=message,
        text=job.text,
    )


# -- deliveries ------------------------------------------------------------------------------


class QuarantinedDelivery(Document):
    """An item of a delivery that could not be stored as an anomaly, with its raw JSON."""

    key: str  # a hash of the raw item: the same item is kept once
    at: str
    delivery: str  # the delivery's key (``id:…`` or ``sha256:…``)
    path: str  # where in the body: ``context.anomalies[2]``
    reason: str
    raw: Any  # the item as sent: any JSON value


class DeliveryRecord(Document):
    """A delivery seen, by its ``webhook-id``: a redelivery of it changes nothing."""

    at: float  # Unix time it was stored (kept for a week)
    anomalies: tuple[int, ...] = ()


class ImportState(Document):
    """Where an import from the platform's API stands, so an interrupted one resumes (the
    ``counters`` table, key ``import``). Written with each page's anomalies, in one transaction."""

    params: str  # which import: archived, since, datastore
    next_page: int  # the first page not yet stored
    pages: int
    total: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    done: bool = False


class RulesWaiting(Document):
    """A new anomaly a webhook delivered thin, whose rules wait for its enrichment (the
    ``rules_waiting`` table, keyed by its id): a rule on containers, check types or weight could
    not judge it yet. Deleted in the transaction that matches the rules, so they run once."""

    since: str  # when it arrived
    enrich_job: int  # the enrichment job that will match them


class RuleTicket(Document):
    """The newest ticket a rule made for one dedup key: a later match within the rule's window
    is linked to it instead of getting its own."""

    ticket_key: str
    ticket_id: str
    anomaly_id: int
    at: float  # Unix time it was made


class RuleState(Document):
    """What a ``[[rules]]`` entry has done and whether it is paused (the ``rules`` table, keyed
    by the rule's name). Changed in the transactions that make its jobs and its tickets."""

    name: str
    paused: bool = False
    paused_reason: str | None = None
    paused_by: str | None = None  # "operator" or "failures"
    paused_at: str | None = None
    created: int = 0
    linked: int = 0
    throttled: int = 0
    skipped: int = 0  # matched while paused
    failures: int = 0  # consecutive permanent failures
    failed_jobs: tuple[int, ...] = ()  # their jobs: a job counted once, even after a crash
    tokens: float | None = None  # the max_per_hour bucket; None: full
    tokens_at: float = 0.0  # Unix time ``tokens`` was counted
    last_fired_at: str | None = None
    tickets: dict[str, RuleTicket] = Field(default_factory=dict)  # by dedup key


StoredDocument: TypeAlias = (
    AnomalyDocument
    | SyncJob
    | SyncLogEntry
    | QuarantinedDelivery
    | DeliveryRecord
    | ImportState
    | RuleState
    | RuleTicket
    | RulesWaiting
)
"""What ``Put`` takes besides a plain dict."""


# -- reading stored rows ---------------------------------------------------------------------

D = TypeVar("D", bound=BaseModel)


class DocumentCache(Generic[D]):
    """Stored rows read as documents, remembered by the row's identity.

    The store never changes a stored row in place (a change replaces it), so the same row
    always reads as the same document: a hit costs a lookup, a replaced row is read again. A row
    is a dict, or the orjson bytes of one (an encoded table): then the dict it was dumped from
    is kept beside it, as the base of the next change. The newest ``size`` rows are kept (a row
    is newest when read or written)."""

    def __init__(self, model: type[D], size: int) -> None:
        self.model = model
        self.size = size
        # key → (the stored row, its document, its JSON when the row is bytes and it is at hand)
        self._rows: OrderedDict[str, tuple[JsonObject | bytes, D, JsonObject | None]] = (
            OrderedDict()
        )

    def read(self, key: str, raw: JsonObject | bytes, *, keep: bool = True) -> D:
        """``raw`` (the row stored under ``key``) as a document; ``keep=False`` for a scan that
        should not push the rows in use out."""
        hit = self._rows.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]
        if isinstance(raw, bytes):
            doc = self.model.model_validate(orjson.loads(raw))
        else:
            doc = self.model.model_validate(raw)
        if keep:
            self._keep(key, (raw, doc, None))
        return doc

    def dump(self, key: str, doc: D) -> JsonObject:
        """``doc``'s JSON, to be stored under ``key``, remembered as what it reads as.

        A change is mostly what it was made from (``model_copy`` shares every value it does not
        replace): when that is the row cached under ``key``, only what differs is dumped (see
        :func:`dump_from`), so an update does not dump the whole history again."""
        hit = self._rows.get(key)
        if hit is not None and type(hit[1]) is type(doc):
            stored, base, base_raw = hit
            if base_raw is None:
                base_raw = stored if isinstance(stored, dict) else orjson.loads(stored)
            raw = dump_from(base_raw, base, doc)
        else:
            raw = doc.model_dump(mode="json")
        self.remember(key, raw, doc)
        return raw

    def remember(self, key: str, raw: JsonObject, doc: D) -> None:
        """``doc`` is what ``raw`` reads as (it was dumped from it): no need to read it again."""
        self._keep(key, (raw, doc, None))

    def stored(self, key: str, raw: JsonObject, blob: bytes) -> None:
        """``raw`` is stored as ``blob`` (an encoded table): reading ``blob`` back is a hit."""
        hit = self._rows.get(key)
        if hit is not None and hit[0] is raw:
            self._rows[key] = (blob, hit[1], raw)

    def _keep(self, key: str, entry: tuple[JsonObject | bytes, D, JsonObject | None]) -> None:
        rows = self._rows
        rows[key] = entry
        rows.move_to_end(key)
        if len(rows) > self.size:
            rows.popitem(last=False)


_MISSING: Any = object()


def dump_from(base_raw: JsonObject, base: BaseModel, doc: BaseModel) -> JsonObject:
    """``doc``'s JSON, given ``base_raw``, the JSON of ``base``: what ``doc`` shares with ``base``
    (the very same object) keeps its JSON from ``base_raw``, as does the shared beginning of a
    tuple (history only grows); the rest is dumped. Keys keep their place; new ones come last.
    Same result as ``doc.model_dump(mode="json")`` whatever ``base`` is, only cheaper the more
    ``doc`` shares with it."""
    values, old_values = doc.__dict__, base.__dict__
    include: dict[str, bool | set[int]] = {}
    grown: dict[str, int] = {}
    for key, value in values.items():
        old = old_values.get(key, _MISSING)
        if value is old and key in base_raw:
            continue
        if type(value) is tuple and type(old) is tuple and key in base_raw:
            shared = len(old)
            if len(value) >= shared and all(a is b for a, b in zip(value, old, strict=False)):
                if len(value) > shared:
                    include[key] = set(range(shared, len(value)))
                    grown[key] = shared
                continue
        include[key] = True
    extra, old_extra = doc.__pydantic_extra__ or {}, base.__pydantic_extra__ or {}
    for key, value in extra.items():
        if old_extra.get(key, _MISSING) is not value or key not in base_raw:
            include[key] = True
    raw = dict(base_raw)
    for key in old_extra:
        if key not in extra:
            raw.pop(key, None)
    if include:
        part = doc.model_dump(mode="json", include=include)
        for key in include:
            if key not in part:  # left out (``exclude_if``): absent
                raw.pop(key, None)
            elif key in grown:
                raw[key] = [*base_raw[key], *part[key]]
            else:
                raw[key] = part[key]
    return raw
