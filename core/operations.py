"""Everything a person (or the platform) can do to an anomaly, as one ``Desk``.

Each change is one store transaction that carries its outbox jobs, so a status change made in the
dashboard and one that arrives by webhook produce exactly the same notes. Ticket creation and
linking talk to the provider while the caller waits: they return the ticket or the provider's
own field errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from anomaly_desk.core.connections import Connection, Platform
from anomaly_desk.core.documents import (
    AnomalyDocument,
    RulesWaiting,
    StatusChanged,
    SyncJob,
    TicketLink,
    job_reset,
    new_link,
    with_comment,
    with_link,
    with_status,
    with_ticket_change,
    with_ticket_states,
    without_link,
)
from anomaly_desk.core.events import EventBus
from anomaly_desk.core.formatting.notes import comment_note, status_note
from anomaly_desk.core.health import ConnectionCheck, HealthMonitor
from anomaly_desk.core.importer import ImportRequest, run_import
from anomaly_desk.core.ingest import (
    IMPORT,
    is_redelivery_key,
    iso,
    now_iso,
    plan_delivery,
    stored_doc,
)
from anomaly_desk.core.models import ARCHIVED, Status, is_thin
from anomaly_desk.core.outbox import Outbox
from anomaly_desk.core.providers import (
    NotFoundError,
    Option,
    Provider,
    ProviderError,
    RateLimitedError,
    Ticket,
    TicketChange,
    TicketFields,
    TicketText,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.platform import PlatformClient
from anomaly_desk.core.store import Delete, Op, Put, Store
from anomaly_desk.core.sync import SyncWorker
from anomaly_desk.core.templates import (
    NoteVars,
    TemplateContext,
    TemplateField,
    render_note,
    render_ticket_text,
)
from anomaly_desk.core.views import (
    AnomalyDetail,
    AnomalySummary,
    AnomalyUpdated,
    CreateFormView,
    DeliveryQuarantined,
    ImportProgressView,
    IngestResultView,
    LinkCreated,
    LinkRemoved,
    LinkStateChanged,
    NoteCounts,
    SyncJobView,
    TicketLinkView,
    TicketTypeView,
    UserView,
)
from anomaly_desk.core.vocabulary import OPERATOR, EventName, JobKind, JobState, LinkOrigin
from anomaly_desk.core.webhooks import Delivery

if TYPE_CHECKING:
    from anomaly_desk.core.rule_runner import RuleRunner

log = logging.getLogger(__name__)

OPTIONS_TTL_S = 300.0
REQUIRED_FIELDS = {"jira": "summary", "servicenow": "short_description"}


class OperationError(Exception):
    """A refused operation. Each kind of refusal is its own class; how an interface shows it
    (an HTTP status, a dialog) is the interface's business."""

    def __init__(
        self,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after  # seconds until trying again makes sense, when known


class NotFound(OperationError):
    """No such anomaly, link or job."""


class Conflict(OperationError):
    """The operation does not fit the current state (already archived, already linked, ...)."""


class Invalid(OperationError):
    """The request itself is wrong: ``errors`` names each field and what is wrong with it."""


class Upstream(OperationError):
    """The ticketing system refused or failed; the message is the provider's own."""


class UpstreamUnavailable(Upstream):
    """The ticketing system cannot be reached or is down for now: trying later may work."""


class RateLimited(UpstreamUnavailable):
    """The ticketing system asks us to slow down; ``retry_after`` says for how long, if it did."""


def upstream_error(exc: ProviderError, action: str) -> OperationError:
    detail = f"{action}: {exc}"
    if isinstance(exc, ValidationError):
        errors = [{"path": f"fields.{k}", "message": v} for k, v in exc.field_errors.items()]
        return Invalid(detail, errors)
    if isinstance(exc, NotFoundError):
        return Invalid(detail, [{"path": "ticket", "message": exc.message}])
    if isinstance(exc, RateLimitedError):
        return RateLimited(detail, retry_after=exc.retry_after)
    if isinstance(exc, UnavailableError):
        return UpstreamUnavailable(detail)
    return Upstream(detail)  # auth and anything else: the provider's words


def default_operator() -> str:
    """The OS user running the receiver (the operator of a desk on their own machine)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        return OPERATOR


def _was_archived(doc: AnomalyDocument) -> bool:
    """Whether the status change just recorded took the anomaly out of an archived status."""
    for entry in reversed(doc.history):
        if isinstance(entry, StatusChanged):
            return entry.from_ in ARCHIVED
    return False


def _ticket_done(link: TicketLink) -> bool:
    """Jira: status category done; ServiceNow: Resolved or Closed (as last read)."""
    category = (link.state_category or "").lower()
    return category == "done" or link.state in ("Resolved", "Closed")


IMPORT_KEY = "import"  # an import's pages are not deliveries: never recorded as redeliveries


class Desk:
    def __init__(
        self,
        store: Store,
        providers: Mapping[str, Provider],
        platform: Platform | None = None,
        bus: EventBus | None = None,
        outbox: Outbox | None = None,
        worker: SyncWorker | None = None,
        health: HealthMonitor | None = None,
        operator: str | None = None,
        name_operator: bool = False,
        write_back: bool = False,
        enrich: bool = False,
        platform_api: PlatformClient | None = None,
        connections: Mapping[str, Connection] | None = None,
        operator_email: str | None = None,
        rules: RuleRunner | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.platform = platform or Platform()
        self.bus = bus or EventBus()
        self.outbox = outbox or Outbox(store)
        self.worker = worker
        self._options: dict[str, tuple[float, dict[str, list[Option]]]] = {}
        self._types: dict[str, tuple[float, list[TicketTypeView]]] = {}
        self._forms: dict[tuple[str, str], tuple[float, CreateFormView]] = {}
        self.monitor = health or HealthMonitor(providers, self.bus)
        self.operator = operator or default_operator()  # who the dashboard's actions are by
        self.name_operator = name_operator  # and whether the notes they send say so
        self.operator_email = operator_email  # who tickets are raised for (caller / reporter)
        self.write_back = write_back  # a person's status changes and comments reach the platform
        self.enrich = enrich  # thin webhook anomalies are completed from the platform's API
        self.platform_api = platform_api  # import (and, through the worker, write-back)
        self.connections = connections or {}  # their two-way settings (none: one-way notes)
        self.polled_at: Mapping[str, str] = {}  # the poller's: each connection's last poll
        self.rules = rules  # [[rules]]: tickets raised for the anomalies they match
        if worker is not None:
            worker.creator = self  # new-ticket jobs (a recurrence) are created through the desk
        self._import: asyncio.Task[ImportProgressView] | None = None
        self._import_view: ImportProgressView | None = None
        self._linking_now: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}

    def reconfigured(self, connections: Mapping[str, Connection]) -> None:
        """The connections' settings after a reload (their clients are swapped in the shared
        map); drop-down values read with the old settings are forgotten."""
        self.connections = connections
        self._options.clear()
        self._types.clear()
        self._forms.clear()

    # -- helpers -------------------------------------------------------------------------------

    def anomaly(self, anomaly_id: int) -> AnomalyDocument:
        """The anomaly as a typed document; NotFound if there is none. A cold one (issue #16)
        comes back to the hot store with the change made to it."""
        doc = self.store.anomaly_doc(anomaly_id) or self.store.cold_doc(anomaly_id)
        if doc is None:
            raise NotFound(f"no anomaly with id {anomaly_id}")
        return doc

    def provider(self, name: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None:
            known = ", ".join(sorted(self.providers)) or "none configured"
            raise Invalid(
                f"unknown connection {name!r} (known: {known})",
                [{"path": "connection", "message": f"no connection named {name!r}"}],
            )
        return provider

    async def _commit(self, ops: list[Op]) -> None:
        await self.store.commit(ops)  # the outbox hears of its jobs through the store's hook

    def _publish_anomaly(self, doc: AnomalyDocument, change: str) -> None:
        """``anomaly.updated`` carries the row as stored now, so a dashboard updates from it."""
        row = self.store.anomaly_summary(doc.id, AnomalyUpdated) if self.bus.subscribers else None
        if row is not None:
            row.change = change
            self.bus.publish(EventName.ANOMALY_UPDATED, row)

    # -- where changes go (two-way settings per connection) -----------------------------------

    def _gives(self, link: TicketLink, field: Literal["status", "comments"]) -> bool:
        conn = self.connections.get(link.connection)
        return conn is None or conn.gives(field)

    def _notes(
        self,
        doc: AnomalyDocument,
        kind: JobKind,
        text: str,
        field: Literal["status", "comments"],
        origin: str | None = None,
        others: bool = True,
        note: NoteVars | None = None,
    ) -> list[Put]:
        """Note jobs for the links whose connection takes ``field`` to its tickets; never to
        ``origin`` (where the change came from), and to no other link unless ``others``.
        ``note``: the values of a connection's note template, rendered here, once: the job keeps
        the text (a retry matches its earlier attempt by it)."""
        links = [
            link
            for link in doc.links
            if link.id != origin and (others or origin is None) and self._gives(link, field)
        ]
        if note is None or not any(self._templated(link) for link in links):
            return self.outbox.jobs_for(doc, kind, text, links)
        puts: list[Put] = []
        for link in links:
            puts += self.outbox.jobs_for(doc, kind, self._note_text(doc, link, text, note), [link])
        return puts

    def _templated(self, link: TicketLink) -> bool:
        conn = self.connections.get(link.connection)
        return conn is not None and conn.templates is not None

    def template_context(self, connection: str | None, rule: str | None = None) -> TemplateContext:
        """What a template sees besides the anomaly (the platform's name and URL, never its
        token)."""
        return TemplateContext(
            platform=self.platform.name,
            platform_url=self.platform.url,
            rule=rule,
            operator=self.operator,
            connection=connection,
        )

    def _note_text(
        self, doc: AnomalyDocument, link: TicketLink, default: str, note: NoteVars
    ) -> str:
        conn = self.connections.get(link.connection)
        if conn is None or conn.templates is None:
            return default
        name: TemplateField = "comment_note"
        if note.comment is None:
            name = "archive_note" if note.status in ARCHIVED else "status_note"
        note = dataclasses.replace(note, ticket=link.ticket_key, ticket_url=link.url or None)
        context = self.template_context(link.connection)
        return render_note([conn.templates], name, doc, context, note, default)

    def _transitions(self, doc: AnomalyDocument, note: str, origin: str | None = None) -> list[Put]:
        """An archived anomaly moves the tickets of connections with on_anomaly_archived =
        "transition" to done (never the ticket whose being done archived it)."""
        if doc.status not in ARCHIVED:
            return []
        links = []
        for link in doc.links:
            conn = self.connections.get(link.connection)
            if (
                link.id != origin
                and conn is not None
                and conn.on_anomaly_archived == "transition"
                and conn.gives("status")
            ):
                links.append(link)
        return self.outbox.jobs_for(doc, JobKind.TRANSITION, note, links)

    # -- ingestion -----------------------------------------------------------------------------

    async def ingest_import(
        self, delivery: Delivery, state_for: Callable[[int, int, int], Put]
    ) -> tuple[int, int, int]:
        """A page of an import, stored like a webhook, with the import's position."""

        def extra(result: IngestResultView) -> list[Op]:
            unchanged = len(result.unchanged) + len(result.stale)
            return [state_for(len(result.created), len(result.updated), unchanged)]

        result = await self.ingest(delivery, IMPORT_KEY, extra)
        return len(result.created), len(result.updated), len(result.unchanged) + len(result.stale)

    async def ingest(
        self,
        delivery: Delivery,
        key: str,
        extra: Callable[[IngestResultView], list[Op]] | None = None,
    ) -> IngestResultView:
        """Store a webhook delivery; status changes become notes like dashboard actions do.
        ``extra``: ops to commit with it (an import's position), made from what it did."""
        if is_redelivery_key(key) and self.store.delivery_seen(key):
            await self.store.barrier()  # the first copy may still be on its way to disk
            result = IngestResultView(delivery=key, duplicate=True)
            result.unchanged = [a.id for a in delivery.anomalies]
            return result
        at = datetime.now(UTC)
        ops, result, changed = plan_delivery(self.store, delivery, key, iso(at))
        for doc in changed:
            note = status_note(doc.status, at, self.platform.name)
            values = NoteVars(at=at, status=str(doc.status))
            ops += self._notes(doc, JobKind.STATUS, note, "status", note=values)
            ops += self._transitions(doc, note)
        if self.connections:
            ops += self._recurrences(delivery, result, changed)
        waiting: set[int] = set()  # thin: their rules are matched once they are enriched
        if self.enrich and delivery.kind != IMPORT:  # a job, delivered after the 2xx
            thin = {a.id for a in delivery.anomalies if is_thin(a)}
            for anomaly_id in result.created:
                if anomaly_id in thin:
                    job = self.outbox.platform_job(anomaly_id, JobKind.ENRICH)
                    ops.append(job)
                    if self.rules is not None and self.rules.rules:
                        waiting.add(anomaly_id)
                        wait = RulesWaiting(since=iso(at), enrich_job=int(job.key))
                        ops.append(Put("rules_waiting", str(anomaly_id), wait))
        if self.rules is not None and result.created:
            new_ids = set(result.created) - waiting
            new = {a.id: a for a in delivery.anomalies if a.id in new_ids}
            ops += self.rules.plan(new.values())  # jobs, counters and bucket: this transaction
        if self.rules is not None and self.rules.rules and (result.updated or result.stale):
            ops += self._completed(ops, {*result.updated, *result.stale})
        if extra is not None:
            ops += extra(result)
        if ops:
            await self._commit(ops)
        else:
            await self.store.barrier()
        if self.bus.subscribers:
            if result.quarantined:
                self.bus.publish(
                    EventName.DELIVERY_QUARANTINED,
                    DeliveryQuarantined(delivery=key, items=result.quarantined),
                )
            for anomaly_id in result.created:
                row = self.store.anomaly_summary(anomaly_id, AnomalySummary)  # times as sent
                if row is not None:
                    self.bus.publish(EventName.ANOMALY_CREATED, row)
            for anomaly_id in result.updated:
                change = "status" if anomaly_id in result.status_changed else "platform"
                self._publish_anomaly(self.anomaly(anomaly_id), change)
        return result

    def _completed(self, ops: list[Op], ids: set[int]) -> list[Op]:
        """Rules for anomalies stored thin that this delivery completes (checks, weight, the
        container's name), e.g. a detection that comes after its status event: all rules if they
        waited for enrichment (which no longer has to come), else those the thin one did not
        match. Called before the commit: the store still holds them as they were."""
        assert self.rules is not None
        puts = {
            int(op.key): op.doc
            for op in ops
            if isinstance(op, Put) and op.table == "anomalies" and int(op.key) in ids
        }
        planned: list[Op] = []
        for anomaly_id, row in puts.items():
            old = stored_doc(self.store, anomaly_id)  # cold: this delivery brings it back
            if old is None or not is_thin(old):
                continue
            new = AnomalyDocument.model_validate(row)
            if is_thin(new):
                continue
            if self.store.get("rules_waiting", str(anomaly_id)) is not None:
                planned += self.rules.plan([new])
                planned.append(Delete("rules_waiting", str(anomaly_id)))
            else:
                planned += self.rules.plan([new], before={anomaly_id: old})
        return planned

    # -- status and comments -------------------------------------------------------------------

    def _author(self, by: str) -> str | None:
        """Who a note names: the person, when notes name people at all."""
        return by if self.name_operator and by != OPERATOR else None

    async def set_status(
        self, anomaly_id: int, status: Status, comment: str | None = None, by: str | None = None
    ) -> AnomalyDocument:
        doc = self.anomaly(anomaly_id)
        current = str(doc.status)  # may be a status this version does not know: kept as sent
        if status == current:
            raise Conflict(f"anomaly {anomaly_id} is already {current}")
        if status == Status.ACKNOWLEDGED and current in ARCHIVED:
            raise Conflict(
                f"anomaly {anomaly_id} is archived ({current}); it cannot be acknowledged"
            )
        by = by or self.operator
        now = datetime.now(UTC)
        at = iso(now)
        new = with_status(doc, status, at, by)
        if comment:
            new = with_comment(new, comment, at, by)
        ops: list[Op] = [Put("anomalies", str(anomaly_id), new)]
        note = status_note(status.value, now, self.platform.name, self._author(by))
        values = NoteVars(at=now, status=status.value, author=self._author(by))
        ops += self._notes(new, JobKind.STATUS, note, "status", note=values)
        if comment:
            note = comment_note(comment, self.platform.name, self._author(by))
            values = dataclasses.replace(values, comment=comment)
            ops += self._notes(new, JobKind.COMMENT, note, "comments", note=values)
        ops += self._transitions(new, comment or note)
        if self.write_back:
            if comment and doc.status not in ARCHIVED:  # first: it refuses comments once archived
                ops.append(self.outbox.platform_job(anomaly_id, JobKind.COMMENT, comment))
            ops.append(self.outbox.platform_job(anomaly_id, JobKind.STATUS, status.value))
        await self._commit(ops)
        self._publish_anomaly(new, "status")
        return new

    async def acknowledge(self, anomaly_id: int) -> AnomalyDocument:
        return await self.set_status(anomaly_id, Status.ACKNOWLEDGED)

    async def archive(
        self, anomaly_id: int, status: Status, comment: str | None = None
    ) -> AnomalyDocument:
        if status not in ARCHIVED:
            allowed = ", ".join(s.value for s in sorted(ARCHIVED))
            raise Invalid(
                f"cannot archive as {status.value}; use one of {allowed}",
                [{"path": "status", "message": f"must be one of {allowed}"}],
            )
        return await self.set_status(anomaly_id, status, comment)

    async def comment(self, anomaly_id: int, text: str, by: str | None = None) -> AnomalyDocument:
        by = by or self.operator
        text = text.strip()
        if not text:
            raise Invalid(
                "a comment needs text", [{"path": "text", "message": "must not be empty"}]
            )
        now = datetime.now(UTC)
        new = with_comment(self.anomaly(anomaly_id), text, iso(now), by)
        ops: list[Op] = [Put("anomalies", str(anomaly_id), new)]
        note = comment_note(text, self.platform.name, self._author(by))
        values = NoteVars(at=now, comment=text, author=self._author(by))
        ops += self._notes(new, JobKind.COMMENT, note, "comments", note=values)
        if self.write_back and new.status not in ARCHIVED:  # the platform refuses those
            ops.append(self.outbox.platform_job(anomaly_id, JobKind.COMMENT, text))
        await self._commit(ops)
        self._publish_anomaly(new, "comment")
        return new

    # -- tickets -------------------------------------------------------------------------------

    async def create_ticket(
        self,
        anomaly_id: int,
        connection: str,
        fields: TicketFields,
        *,
        operator_email: str | None = None,
        text: TicketText | None = None,
        look_first: bool = False,
        then: Callable[[TicketLink], list[Op]] | None = None,
        job_id: int | None = None,
    ) -> TicketLink:
        """Create a ticket and link it; on an ambiguous failure, find it before giving up.
        ``look_first``: an earlier attempt's fate is unknown (a crash mid-create): link the
        ticket it made, if there is one, instead of making another. ``then``: ops committed with
        the link (a rule's counters). ``job_id``: the new-ticket job creating it, recorded on
        the link so that job knows its ticket after a crash.

        ``operator_email`` (``--as``, else the configured ``operator_email``) is who the ticket
        is raised for; ``text`` the templated title and description (a rule's); without it, the
        connection's templates, when set. A summary the form sends wins over a template's."""
        doc = self.anomaly(anomaly_id)  # 404 before anything else
        provider = self.provider(connection)
        required = REQUIRED_FIELDS[provider.kind]
        conn = self.connections.get(connection)
        if text is None and conn is not None and conn.templates is not None:
            text = render_ticket_text([conn.templates], doc, self.template_context(connection))
        if text is not None and str(fields.get(required) or "").strip():
            text = dataclasses.replace(text, title=None)  # the operator's own summary
        if not str(fields.get(required) or "").strip() and not (text and text.title):
            raise Invalid(
                f"fields.{required} is required for a {provider.kind} ticket",
                [{"path": f"fields.{required}", "message": "required"}],
            )
        email = operator_email or self.operator_email
        async with self._linking(anomaly_id, connection):
            anomaly = self.anomaly(anomaly_id)
            ticket = await self._created_earlier(provider, anomaly_id) if look_first else None
            try:
                if ticket is None:
                    ticket = await provider.create_ticket(
                        anomaly, fields, text=text, operator_email=email
                    )
            except UnavailableError as exc:
                if not exc.ambiguous:
                    action = f"could not create the {provider.kind} ticket"
                    raise upstream_error(exc, action) from None
                ticket = await self._recover_created(provider, anomaly_id, exc)
            except ProviderError as exc:
                raise upstream_error(exc, f"{connection} refused the ticket") from None
            link = await self._add_link(
                anomaly_id, provider, ticket, LinkOrigin.CREATED, then, job_id
            )
            return link

    async def _recover_created(
        self, provider: Provider, anomaly_id: int, exc: UnavailableError
    ) -> Ticket:
        """The create may have landed: look for it rather than risk a duplicate."""
        linked = {link.ticket_id for link in self.anomaly(anomaly_id).links}
        for delay in (0.0, 1.0, 3.0):  # search indexes can lag a create by a moment
            await asyncio.sleep(delay)
            try:
                found = [t for t in await provider.find_created(anomaly_id) if t.id not in linked]
            except ProviderError:
                continue
            if found:
                log.warning(
                    "create on %s was ambiguous (%s); found %s and linked it",
                    provider.name,
                    exc.message,
                    found[-1].key,
                )
                return found[-1]
        raise Upstream(
            f"{provider.name} did not confirm the ticket ({exc.message}) and none was found for "
            f"anomaly {anomaly_id}; creating again is safe"
        )

    async def _created_earlier(self, provider: Provider, anomaly_id: int) -> Ticket | None:
        """A ticket an earlier attempt made for the anomaly and never linked (the process died
        between the create and its commit), found by the integration's mark (Jira label,
        ServiceNow correlation_id). Unable to look: a retry later, never a blind create."""
        linked = {link.ticket_id for link in self.anomaly(anomaly_id).links}
        for delay in (0.0, 1.0, 3.0):  # search indexes can lag a create by a moment
            await asyncio.sleep(delay)
            try:
                found = [t for t in await provider.find_created(anomaly_id) if t.id not in linked]
            except ProviderError as exc:
                raise UpstreamUnavailable(
                    f"cannot tell whether an earlier attempt created the ticket: {exc}"
                ) from None
            if found:
                log.warning(
                    "an earlier attempt created %s on %s for anomaly %d; linked it",
                    found[-1].key,
                    provider.name,
                    anomaly_id,
                )
                earlier = "an earlier attempt had created it (its outcome was unknown): linked"
                return dataclasses.replace(found[-1], warnings=(*found[-1].warnings, earlier))
        return None

    async def link_ticket(
        self,
        anomaly_id: int,
        connection: str,
        key: str,
        *,
        then: Callable[[TicketLink], list[Op]] | None = None,
    ) -> TicketLink:
        self.anomaly(anomaly_id)  # 404 before anything else
        provider = self.provider(connection)
        key = key.strip()
        if not key:
            raise Invalid("a ticket key is required", [{"path": "ticket", "message": "required"}])
        # The check, the provider's write (ServiceNow notes the link on the incident) and the
        # commit as one step: the same link asked for twice at once is written once, then a 409.
        async with self._linking(anomaly_id, connection):
            doc = self.anomaly(anomaly_id)
            for link in doc.links:
                if link.connection == connection and key.upper() in (
                    link.ticket_key.upper(),
                    link.ticket_id.upper(),
                ):
                    raise Conflict(f"{link.ticket_key} is already linked to anomaly {anomaly_id}")
            try:
                ticket = await provider.link(doc, key)
            except ProviderError as exc:
                raise upstream_error(exc, f"cannot link {key}") from None
            link = await self._add_link(anomaly_id, provider, ticket, LinkOrigin.LINKED, then)
            return link

    @contextlib.asynccontextmanager
    async def _linking(self, anomaly_id: int, connection: str) -> AsyncIterator[None]:
        """One link or create at a time per (anomaly, connection); callers queue in order.

        Different anomalies, or other connections, never wait for each other. A lock lives only
        while someone holds or waits for it.
        """
        key = (anomaly_id, connection)
        lock, users = self._linking_now.get(key, (asyncio.Lock(), 0))
        self._linking_now[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._linking_now[key]
            if users == 1:
                del self._linking_now[key]
            else:
                self._linking_now[key] = (lock, users - 1)

    async def _add_link(
        self,
        anomaly_id: int,
        provider: Provider,
        ticket: Ticket,
        origin: LinkOrigin,
        then: Callable[[TicketLink], list[Op]] | None = None,
        job_id: int | None = None,
    ) -> TicketLink:
        doc = self.anomaly(anomaly_id)  # read again: other changes may have landed meanwhile
        for link in doc.links:
            if link.connection == provider.name and link.ticket_id == ticket.id:
                raise Conflict(f"{ticket.key} is already linked to anomaly {anomaly_id}")
        at = now_iso()
        link_id = uuid.uuid4().hex[:12]
        link = new_link(link_id, provider.name, provider.kind, ticket, origin, at, job_id)
        put = Put("anomalies", str(anomaly_id), with_link(doc, link, at))
        await self._commit([put, *(then(link) if then is not None else [])])
        if self.bus.subscribers:
            self.bus.publish(
                EventName.LINK_CREATED,
                LinkCreated(
                    anomaly_id=anomaly_id,
                    link=TicketLinkView.model_validate(put.doc["links"][-1]),
                    anomaly=self.store.anomaly_summary(anomaly_id, AnomalySummary),
                ),
            )
        return link

    async def unlink(self, anomaly_id: int, link_id: str) -> AnomalyDocument:
        """Forget the link here; the ticket is not touched. Its undelivered notes are cancelled."""
        doc = self.anomaly(anomaly_id)
        if doc.link_by_id(link_id) is None:
            raise NotFound(f"anomaly {anomaly_id} has no link {link_id}")
        new = without_link(doc, link_id, now_iso())
        cancelled = self.worker.cancel_link(link_id) if self.worker else []
        put = Put("anomalies", str(anomaly_id), new)
        await self._commit([put, *cancelled])
        if self.worker and cancelled:
            self.worker.forget({int(op.key) for op in cancelled})
        self.bus.publish(
            EventName.LINK_REMOVED,
            LinkRemoved(
                anomaly_id=anomaly_id,
                link_id=link_id,
                anomaly=self.store.anomaly_summary(anomaly_id, AnomalySummary),
            ),
        )
        for op in cancelled:  # the dashboard shows them cancelled, no longer dead
            self.bus.publish(EventName.SYNC_JOB, SyncJobView.model_validate(op.doc))
        return new

    async def refresh_links(
        self, anomaly_ids: list[int] | None = None, concurrency: int = 8
    ) -> int:
        """Read each linked ticket's current state. Never changes the anomaly itself."""
        if anomaly_ids is not None:
            docs = [self.anomaly(i) for i in anomaly_ids]
        else:
            docs = [self.anomaly(i) for i in self.store.linked_anomaly_ids()]
        gate = asyncio.Semaphore(concurrency)
        states: dict[str, Ticket] = {}

        async def read(link: TicketLink) -> None:
            provider = self.providers.get(link.connection)
            if provider is None:
                return
            async with gate:
                try:
                    states[link.id] = await provider.get_ticket(link.ticket_key)
                except ProviderError as exc:
                    log.info("state of %s not read: %s", link.ticket_key, exc)

        await asyncio.gather(*(read(link) for doc in docs for link in doc.links))
        at = now_iso()
        puts: list[Put] = []
        for doc in docs:
            current = self.store.anomaly_doc(doc.id) or doc
            new = with_ticket_states(current, states, at)
            if new.links != current.links:
                puts.append(Put("anomalies", str(doc.id), new))
        if puts:
            await self._commit(list(puts))
            for put in puts:
                self.bus.publish(
                    EventName.LINK_STATE,
                    LinkStateChanged(
                        anomaly_id=put.doc["id"],
                        links=[TicketLinkView.model_validate(x) for x in put.doc["links"]],
                        anomaly=self.store.anomaly_summary(put.doc["id"], AnomalySummary),
                    ),
                )
        return len(states)

    # -- provider reads ------------------------------------------------------------------------

    async def search(self, connection: str, text: str, limit: int = 20) -> list[Ticket]:
        provider = self.provider(connection)
        try:
            return await provider.search(text, limit)
        except ProviderError as exc:
            raise upstream_error(exc, f"search on {connection} failed") from None

    async def options(self, connection: str, refresh: bool = False) -> dict[str, list[Option]]:
        provider = self.provider(connection)
        cached = self._options.get(connection)
        if cached and not refresh and time.monotonic() - cached[0] < OPTIONS_TTL_S:
            return cached[1]
        try:
            values = await provider.options()
        except ProviderError as exc:
            raise upstream_error(
                exc, f"reading drop-down values from {connection} failed"
            ) from None
        self._options[connection] = (time.monotonic(), values)
        return values

    async def ticket_types(self, connection: str, refresh: bool = False) -> list[TicketTypeView]:
        """The issue types / tables a connection can create, cached like the drop-downs."""
        provider = self.provider(connection)
        cached = self._types.get(connection)
        if cached and not refresh and time.monotonic() - cached[0] < OPTIONS_TTL_S:
            return cached[1]
        try:
            types = await provider.ticket_types()
        except ProviderError as exc:
            raise upstream_error(exc, f"reading ticket types from {connection} failed") from None
        self._types[connection] = (time.monotonic(), types)
        return types

    async def create_form(
        self,
        connection: str,
        ticket_type: str | None = None,
        refresh: bool = False,
        anomaly_id: int | None = None,
    ) -> CreateFormView:
        """The create form of one ticket type (None: the connection's default), with who the
        ticket is raised for; cached like the drop-downs (the provider's metadata changes
        rarely, and the dashboard reloads it on every type change). For ``anomaly_id``, the
        title field's default is the connection's title template rendered for it: the form
        sends a summary, which wins over the template, so the template must be its default."""
        provider = self.provider(connection)
        key = (connection, ticket_type or "")
        cached = self._forms.get(key)
        if cached and not refresh and time.monotonic() - cached[0] < OPTIONS_TTL_S:
            form = cached[1]
        else:
            try:
                form = await provider.create_form(ticket_type)
            except ProviderError as exc:
                what = f"the {ticket_type} form" if ticket_type else "the create form"
                raise upstream_error(exc, f"reading {what} from {connection} failed") from None
            self._forms[key] = (time.monotonic(), form)
        form = form.model_copy(update={"operator_email": self.operator_email})
        conn = self.connections.get(connection)
        if anomaly_id is None or conn is None or conn.templates is None:
            return form
        title = render_ticket_text(
            [conn.templates], self.anomaly(anomaly_id), self.template_context(connection)
        ).title
        if title is None:
            return form
        required = REQUIRED_FIELDS[provider.kind]
        fields = [
            spec.model_copy(update={"default": title}) if spec.id == required else spec
            for spec in form.fields
        ]
        return form.model_copy(update={"fields": fields})

    async def find_users(self, connection: str, query: str, limit: int = 20) -> list[UserView]:
        """People matching ``query`` on a connection (assignee fields search as one types):
        never cached, a person added a minute ago must be found."""
        provider = self.provider(connection)
        try:
            return await provider.find_users(query, limit)
        except ProviderError as exc:
            raise upstream_error(exc, f"searching people on {connection} failed") from None

    @property
    def health(self) -> Mapping[str, ConnectionCheck]:
        """Each connection's last known state (checked, or learnt from deliveries)."""
        return self.monitor.state

    async def check_connections(self) -> dict[str, ConnectionCheck]:
        """Check every connection now; each one's result by name."""
        return await self.monitor.check_all()

    # -- two-way: recurrence ------------------------------------------------------------------

    def _recurrences(
        self, delivery: Delivery, result: IngestResultView, changed: list[AnomalyDocument]
    ) -> list[Op]:
        """An anomaly back while its ticket is done: the same one reopened by the platform, or a
        new one with the fingerprint of an anomaly whose ticket is done. Per connection,
        ``on_recurrence``: a comment on the done ticket, reopen it, or a new ticket."""
        ops: list[Op] = []
        for doc in changed:
            if doc.status in ARCHIVED or not _was_archived(doc):
                continue
            text = f"Anomaly {doc.id} is {doc.status} again in {self.platform.name}"
            ops += self._recur(doc, doc.id, text)
        new_ids = set(result.created)  # once: a delivery may carry 10,000 anomalies
        created = {a.id: a for a in delivery.anomalies if a.id in new_ids}
        for anomaly in created.values():
            if anomaly.fingerprint is None:
                continue
            for earlier_id in self.store.linked_with_fingerprint(anomaly.fingerprint):
                earlier = self.store.anomaly_doc(earlier_id)
                if earlier is None or earlier_id == anomaly.id:
                    continue
                text = (
                    f"Anomaly {anomaly.id} recurred in {self.platform.name} with the fingerprint "
                    f"of anomaly {earlier_id}"
                )
                ops += self._recur(earlier, anomaly.id, text)
            for earlier_id in self.store.cold_linked_with_fingerprint(anomaly.fingerprint):
                cold = self.store.cold_doc(earlier_id)  # issue #16: back to the hot store with
                if cold is None or earlier_id == anomaly.id:  # the jobs its tickets get
                    continue
                text = (
                    f"Anomaly {anomaly.id} recurred in {self.platform.name} with the fingerprint "
                    f"of anomaly {earlier_id}"
                )
                recurred = self._recur(cold, anomaly.id, text)
                if recurred:
                    ops += [Put("anomalies", str(earlier_id), cold), *recurred]
        return ops

    def _recur(self, doc: AnomalyDocument, anomaly_id: int, text: str) -> list[Op]:
        """For each of ``doc``'s done tickets, what its connection does on a recurrence of
        ``anomaly_id`` (``doc`` itself, or a new anomaly with its fingerprint)."""
        ops: list[Op] = []
        for link in doc.links:
            conn = self.connections.get(link.connection)
            if conn is None or not _ticket_done(link):
                continue
            if conn.on_recurrence == "reopen":
                ops += self.outbox.jobs_for(doc, JobKind.REOPEN, text, [link])
            elif conn.on_recurrence == "new_ticket":
                ops.append(self.outbox.new_ticket_job(anomaly_id, conn.name, link.provider, text))
            else:
                ops += self.outbox.jobs_for(doc, JobKind.COMMENT, text, [link])
        return ops

    async def created_for(self, job: SyncJob) -> str | None:
        """A new-ticket job's ticket, when an earlier attempt created and linked it."""
        doc = self.store.anomaly_doc(job.anomaly_id)
        links = doc.links if doc else []
        for link in links:
            if link.job_id == job.id:
                return link.ticket_key
        if job.rule is not None:
            return None  # a rule's links always name their job: another rule's is not ours
        for link in links:  # a job stored before links named their job
            if (
                link.job_id is None
                and link.connection == job.connection
                and link.linked_at
                and link.linked_at >= job.created_at
            ):
                return link.ticket_key
        return None

    async def create_for(self, job: SyncJob) -> str:
        """A new-ticket job: create the ticket (recovered, not doubled, after an ambiguous
        create or a crash mid-create) and link it. A rule's job is the rule's to run."""
        if job.rule is not None:
            if self.rules is None:
                raise ProviderError(f"rule {job.rule!r}: no rules are configured")
            return await self.rules.run(self, job)
        provider = self.provider(job.connection)
        required = REQUIRED_FIELDS[provider.kind]
        fields: TicketFields = {
            required: f"Anomaly {job.anomaly_id} recurred",
            "description": job.text,
        }
        try:
            link = await self.create_ticket(
                job.anomaly_id, job.connection, fields, look_first=job.verify, job_id=job.id
            )
        except Conflict as exc:
            return str(exc)
        except OperationError as exc:
            raise ProviderError(str(exc), connection=job.connection) from None
        return f"created {link.ticket_key} for the recurrence"

    # -- two-way: what a ticket says back ----------------------------------------------------

    async def apply_ticket_change(
        self, anomaly_id: int, link_id: str, change: TicketChange, account: str
    ) -> AnomalyDocument | None:
        """A poll read ``change`` on a linked ticket: its state always (and the cursor); what a
        person did there when the connection takes it back (issue #13). Never echoed: the
        integration's own writes (``ours``, or by ``account``) are skipped, and nothing is sent
        back to the ticket it came from."""
        doc = self.store.anomaly_doc(anomaly_id)
        cold = doc is None
        if cold:  # a cold anomaly's ticket (issue #16): back to the hot store if it changed
            doc = self.store.cold_doc(anomaly_id)
        link = None if doc is None else doc.link_by_id(link_id)
        if doc is None or link is None:
            return None  # unlinked meanwhile
        unseen = [c for c in change.comments if c.id not in link.seen_comments]
        if cold and change.ticket.updated == link.inbound_at and not unseen:
            return None  # read again in a poll's overlap, not changed: it stays cold
        conn = self.connections.get(link.connection)
        at = now_iso()
        key = link.ticket_key
        since_link = link.linked_at or ""
        fresh = [
            c
            for c in change.comments
            if c.id not in link.seen_comments
            and not c.ours
            and c.author_id != account
            and c.created >= since_link  # what was said before the link is the ticket's past
        ]
        was_done = _ticket_done(link)
        new = with_ticket_change(
            doc, link_id, change.ticket, tuple(c.id for c in change.comments), at
        )
        ops: list[Op] = []
        changed = ""
        if conn is not None and conn.takes("comments"):
            others = conn.fan_out_ticket_comments
            for comment in fresh:
                by = f"from {key} ({comment.author})"
                new = with_comment(new, comment.text, at, by, origin=link_id)
                note = comment_note(comment.text, f"{key} ({comment.author})")
                values = NoteVars(
                    at=datetime.now(UTC), comment=comment.text, author=comment.author, source=key
                )
                ops += self._notes(new, JobKind.COMMENT, note, "comments", link_id, others, values)
                if self.write_back and new.status not in ARCHIVED:
                    text = f"{comment.text}\n— {comment.author} on {key}"
                    ops.append(self.outbox.platform_job(anomaly_id, JobKind.COMMENT, text))
                changed = "comment"
        done_by_person = (
            change.done
            and not was_done  # a transition seen, not a state the ticket already had
            and (change.state_by is None or change.state_by != account)
        )
        if (
            conn is not None
            and conn.takes("status")
            and conn.on_ticket_done
            and done_by_person
            and new.status not in ARCHIVED
        ):
            status = Status(conn.on_ticket_done.partition(":")[2])
            by = f"{key} ({change.state_by})" if change.state_by else key
            now = datetime.now(UTC)
            new = with_status(new, status, iso(now), by)
            note = status_note(status.value, now, self.platform.name)
            values = NoteVars(at=now, status=status.value, source=key)
            ops += self._notes(new, JobKind.STATUS, note, "status", link_id, note=values)
            ops += self._transitions(new, f"{key} was done: archived as {status.value}", link_id)
            if self.write_back:
                ops.append(self.outbox.platform_job(anomaly_id, JobKind.STATUS, status.value))
            changed = "status"
        await self._commit([Put("anomalies", str(anomaly_id), new), *ops])
        self._publish_anomaly(new, changed or "ticket")
        return new

    # -- import from the platform ----------------------------------------------------------

    def import_status(self) -> ImportProgressView | None:
        """The running import's progress, else where the last one ended (None: never)."""
        if self._import_view is not None:
            running = self._import is not None and not self._import.done()
            return self._import_view.model_copy(update={"running": running})
        state = self.store.import_state()
        if state is None:
            return None
        return ImportProgressView(
            page=state.next_page - 1,
            pages=state.pages,
            total=state.total,
            created=state.created,
            updated=state.updated,
            unchanged=state.unchanged,
            done=state.done,
        )

    def anomaly_view(self, anomaly_id: int) -> AnomalyDetail | None:
        """The anomaly as the API shows it: stored, each link's notes, the platform's (zero
        counts when write-back is on and nothing was sent yet), its link in the platform."""
        detail = self.store.anomaly_detail(anomaly_id) or self.store.cold_detail(anomaly_id)
        if detail is None:
            return None
        if detail.platform_notes is None and self.write_back:
            detail.platform_notes = NoteCounts.zero()
        for link in detail.links:  # a complete poll since that found no change confirms it
            polled = self.polled_at.get(link.connection)
            if polled and (link.state_read_at is None or polled > link.state_read_at):
                link.state_read_at = polled
        if detail.url is None and self.platform.url:
            detail.url = f"{self.platform.url.rstrip('/')}/anomalies/{anomaly_id}"
        return detail

    def start_import(self, request: ImportRequest) -> ImportProgressView:
        """Start importing in the background (progress as ``import.progress`` events)."""
        if self.platform_api is None:
            raise Invalid(
                "the platform's API is not configured: set platform.url and platform.token_env",
                [{"path": "platform", "message": "no url or token"}],
            )
        if self._import is not None and not self._import.done():
            raise Conflict("an import is running already; its progress: GET /api/import")
        self._import_view = ImportProgressView(page=0, pages=0, total=0, running=True)
        self._import = asyncio.create_task(self.import_from_platform(request), name="import")
        return self._import_view

    async def stop_import(self) -> None:
        """Shutting down: an import stops between pages and resumes at the next start."""
        if self._import is not None and not self._import.done():
            self._import.cancel()
            with contextlib.suppress(asyncio.CancelledError, OperationError):
                await self._import

    async def import_from_platform(
        self,
        request: ImportRequest,
        shown: Callable[[ImportProgressView], None] | None = None,
    ) -> ImportProgressView:
        """Import every page (resuming an interrupted import of the same request); each page's
        progress is published, and handed to ``shown``."""
        if self.platform_api is None:
            raise Invalid("the platform's API is not configured", [])

        def progress(view: ImportProgressView) -> None:
            self._import_view = view.model_copy()
            self.bus.publish(EventName.IMPORT_PROGRESS, self._import_view)
            if shown is not None:
                shown(self._import_view)

        try:
            view = await run_import(
                self.platform_api, self, self.store.import_state(), request, progress
            )
        except ProviderError as exc:
            failed = self._import_view or ImportProgressView(page=0, pages=0, total=0)
            failed = failed.model_copy(update={"error": str(exc)})
            self._import_view = failed
            self.bus.publish(EventName.IMPORT_PROGRESS, failed)
            raise upstream_error(exc, "importing from the platform failed") from None
        log.info(
            "import: %d pages, %d anomalies listed: %d new, %d updated, %d unchanged",
            view.pages,
            view.total,
            view.created,
            view.updated,
            view.unchanged,
        )
        return view

    # -- sync jobs -----------------------------------------------------------------------------

    async def retry_job(self, job_id: int) -> SyncJob:
        job = self.store.job(job_id)
        if job is None:
            raise NotFound(f"no sync job {job_id}")
        if job.state != JobState.DEAD:
            raise Conflict(f"sync job {job_id} is {job.state}; only dead jobs can be retried")
        job = job_reset(job)
        await self.store.commit([Put("jobs", str(job_id), job)])
        if self.worker:
            self.worker.wake()
        self.bus.publish(EventName.SYNC_JOB, SyncJobView.model_validate(job))
        self._publish_anomaly(self.anomaly(job.anomaly_id), "notes")  # its badge follows
        return job
