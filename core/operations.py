"""Everything a person (or the platform) can do to an anomaly, as one ``Desk``.

Each change is one store transaction that carries its outbox jobs, so a status change made in the
dashboard and one that arrives by webhook produce exactly the same notes. Ticket creation and
linking talk to the provider while the caller waits: they return the ticket or the provider's
own field errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.events import EventBus
from anomaly_desk.core.formatting.notes import comment_note, status_note
from anomaly_desk.core.ingest import IngestResult, is_redelivery_key, iso, now_iso, plan_delivery
from anomaly_desk.core.models import ARCHIVED, Anomaly, Status
from anomaly_desk.core.outbox import Outbox
from anomaly_desk.core.providers import (
    NotFoundError,
    Option,
    Provider,
    ProviderError,
    RateLimitedError,
    Ticket,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.store import Op, Put, Store
from anomaly_desk.core.sync import SyncWorker, job_view
from anomaly_desk.core.webhooks import Delivery

log = logging.getLogger(__name__)

OPTIONS_TTL_S = 300.0
REQUIRED_FIELDS = {"jira": "summary", "servicenow": "short_description"}


class OperationError(Exception):
    """A refused operation; ``status`` is the HTTP status the API answers with."""

    status = 400
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after


class NotFound(OperationError):
    status, title = 404, "Not found"


class Conflict(OperationError):
    status, title = 409, "Conflict"


class Invalid(OperationError):
    status, title = 422, "Invalid request"


class Upstream(OperationError):
    """The ticketing system refused or failed; the message is the provider's own."""

    status, title = 502, "Ticketing system error"


def upstream_error(exc: ProviderError, action: str) -> OperationError:
    detail = f"{action}: {exc}"
    if isinstance(exc, ValidationError):
        errors = [{"path": f"fields.{k}", "message": v} for k, v in exc.field_errors.items()]
        return Invalid(detail, errors)
    if isinstance(exc, NotFoundError):
        return Invalid(detail, [{"path": "ticket", "message": exc.message}])
    if isinstance(exc, RateLimitedError):
        error = Upstream(detail, retry_after=exc.retry_after)
        error.status = 503
        return error
    if isinstance(exc, UnavailableError):
        error = Upstream(detail)
        error.status = 503
        return error
    return Upstream(detail)  # auth and anything else: the provider's words, as a 502


class Desk:
    def __init__(
        self,
        store: Store,
        providers: Mapping[str, Provider],
        platform: Platform | None = None,
        bus: EventBus | None = None,
        outbox: Outbox | None = None,
        worker: SyncWorker | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.platform = platform or Platform()
        self.bus = bus or EventBus()
        self.outbox = outbox or Outbox(store)
        self.worker = worker
        self._options: dict[str, tuple[float, dict[str, list[Option]]]] = {}
        self.health: dict[str, dict[str, Any]] = {}
        self._linking_now: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}

    # -- helpers -------------------------------------------------------------------------------

    def anomaly(self, anomaly_id: int) -> dict[str, Any]:
        doc = self.store.anomaly(anomaly_id)
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
        await self.store.commit(ops)
        self.outbox.submitted(ops)

    def _publish_anomaly(self, doc: dict[str, Any], change: str) -> None:
        self.bus.publish(
            "anomaly.updated",
            {
                "id": doc["id"],
                "status": doc["status"],
                "updated_at": doc["updated_at"],
                "change": change,
            },
        )

    # -- ingestion -----------------------------------------------------------------------------

    async def ingest(self, delivery: Delivery, key: str) -> IngestResult:
        """Store a webhook delivery; status changes become notes like dashboard actions do."""
        if is_redelivery_key(key) and self.store.delivery_seen(key):
            await self.store.barrier()  # the first copy may still be on its way to disk
            result = IngestResult(delivery=key, duplicate=True)
            result.unchanged = [a.id for a in delivery.anomalies]
            return result
        at = datetime.now(UTC)
        ops, result, changed = plan_delivery(self.store, delivery, key, iso(at))
        for doc in changed:
            ops += self.outbox.jobs_for(
                doc, "status", status_note(doc["status"], at, self.platform.name)
            )
        if ops:
            await self._commit(ops)
        else:
            await self.store.barrier()
        if self.bus.subscribers:
            if result.quarantined:
                self.bus.publish(
                    "delivery.quarantined", {"delivery": key, "items": result.quarantined}
                )
            for anomaly_id in result.created:
                doc = self.store.anomaly(anomaly_id)
                self.bus.publish("anomaly.created", summary(doc))
            for anomaly_id in result.updated:
                change = "status" if anomaly_id in result.status_changed else "platform"
                self._publish_anomaly(self.store.anomaly(anomaly_id), change)
        return result

    # -- status and comments -------------------------------------------------------------------

    async def set_status(
        self, anomaly_id: int, status: Status, comment: str | None = None, by: str = "operator"
    ) -> dict[str, Any]:
        doc = self.anomaly(anomaly_id)
        current = str(doc["status"])  # may be a status this version does not know: kept as sent
        if status == current:
            raise Conflict(f"anomaly {anomaly_id} is already {current}")
        if status == Status.ACKNOWLEDGED and current in ARCHIVED:
            raise Conflict(
                f"anomaly {anomaly_id} is archived ({current}); it cannot be acknowledged"
            )
        now = datetime.now(UTC)
        at = iso(now)
        history = [
            *doc.get("history", []),
            {"at": at, "kind": "status", "from": current, "to": status.value, "by": by},
        ]
        comments = list(doc.get("comments", []))
        if comment:
            comments.append({"at": at, "text": comment, "by": by})
            history.append({"at": at, "kind": "comment", "by": by})
        new = {
            **doc,
            "status": status.value,
            "updated_at": at,
            "history": history,
            "comments": comments,
        }
        ops: list[Op] = [Put("anomalies", str(anomaly_id), new)]
        ops += self.outbox.jobs_for(
            new, "status", status_note(status.value, now, self.platform.name)
        )
        if comment:
            ops += self.outbox.jobs_for(new, "comment", comment_note(comment, self.platform.name))
        await self._commit(ops)
        self._publish_anomaly(new, "status")
        return new

    async def acknowledge(self, anomaly_id: int) -> dict[str, Any]:
        return await self.set_status(anomaly_id, Status.ACKNOWLEDGED)

    async def archive(
        self, anomaly_id: int, status: Status, comment: str | None = None
    ) -> dict[str, Any]:
        if status not in ARCHIVED:
            allowed = ", ".join(s.value for s in sorted(ARCHIVED))
            raise Invalid(
                f"cannot archive as {status.value}; use one of {allowed}",
                [{"path": "status", "message": f"must be one of {allowed}"}],
            )
        return await self.set_status(anomaly_id, status, comment)

    async def comment(self, anomaly_id: int, text: str, by: str = "operator") -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise Invalid(
                "a comment needs text", [{"path": "text", "message": "must not be empty"}]
            )
        doc = self.anomaly(anomaly_id)
        at = now_iso()
        new = {
            **doc,
            "updated_at": at,
            "comments": [*doc.get("comments", []), {"at": at, "text": text, "by": by}],
            "history": [*doc.get("history", []), {"at": at, "kind": "comment", "by": by}],
        }
        ops: list[Op] = [Put("anomalies", str(anomaly_id), new)]
        ops += self.outbox.jobs_for(new, "comment", comment_note(text, self.platform.name))
        await self._commit(ops)
        self._publish_anomaly(new, "comment")
        return new

    # -- tickets -------------------------------------------------------------------------------

    async def create_ticket(
        self, anomaly_id: int, connection: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Create a ticket and link it; on an ambiguous failure, find it before giving up."""
        self.anomaly(anomaly_id)  # 404 before anything else
        provider = self.provider(connection)
        required = REQUIRED_FIELDS[provider.kind]
        if not str(fields.get(required) or "").strip():
            raise Invalid(
                f"fields.{required} is required for a {provider.kind} ticket",
                [{"path": f"fields.{required}", "message": "required"}],
            )
        async with self._linking(anomaly_id, connection):
            anomaly = Anomaly.model_validate(self.anomaly(anomaly_id))
            try:
                ticket = await provider.create_ticket(anomaly, fields)
            except UnavailableError as exc:
                if not exc.ambiguous:
                    action = f"could not create the {provider.kind} ticket"
                    raise upstream_error(exc, action) from None
                ticket = await self._recover_created(provider, anomaly_id, exc)
            except ProviderError as exc:
                raise upstream_error(exc, f"{connection} refused the ticket") from None
            return await self._add_link(anomaly_id, provider, ticket, "created")

    async def _recover_created(
        self, provider: Provider, anomaly_id: int, exc: UnavailableError
    ) -> Ticket:
        """The create may have landed: look for it rather than risk a duplicate."""
        linked = {link["ticket_id"] for link in self.anomaly(anomaly_id).get("links", [])}
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

    async def link_ticket(self, anomaly_id: int, connection: str, key: str) -> dict[str, Any]:
        self.anomaly(anomaly_id)  # 404 before anything else
        provider = self.provider(connection)
        key = key.strip()
        if not key:
            raise Invalid("a ticket key is required", [{"path": "ticket", "message": "required"}])
        # The check, the provider's write (ServiceNow notes the link on the incident) and the
        # commit as one step: the same link asked for twice at once is written once, then a 409.
        async with self._linking(anomaly_id, connection):
            doc = self.anomaly(anomaly_id)
            for link in doc.get("links", []):
                if link["connection"] == connection and key.upper() in (
                    link["ticket_key"].upper(),
                    link["ticket_id"].upper(),
                ):
                    raise Conflict(
                        f"{link['ticket_key']} is already linked to anomaly {anomaly_id}"
                    )
            try:
                ticket = await provider.link(Anomaly.model_validate(doc), key)
            except ProviderError as exc:
                raise upstream_error(exc, f"cannot link {key}") from None
            return await self._add_link(anomaly_id, provider, ticket, "linked")

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
        self, anomaly_id: int, provider: Provider, ticket: Ticket, origin: str
    ) -> dict[str, Any]:
        doc = self.anomaly(anomaly_id)  # read again: other changes may have landed meanwhile
        for link in doc.get("links", []):
            if link["connection"] == provider.name and link["ticket_id"] == ticket.id:
                raise Conflict(f"{ticket.key} is already linked to anomaly {anomaly_id}")
        at = now_iso()
        link = {
            "id": uuid.uuid4().hex[:12],
            "connection": provider.name,
            "provider": provider.kind,
            "ticket_key": ticket.key,
            "ticket_id": ticket.id,
            "url": ticket.url,
            "summary": ticket.summary,
            "origin": origin,
            "state": ticket.state,
            "state_category": ticket.state_category,
            "state_read_at": at,
            "linked_at": at,
        }
        history = {
            "at": at,
            "kind": f"ticket {origin}",
            "ticket": ticket.key,
            "connection": provider.name,
        }
        new = {
            **doc,
            "updated_at": at,
            "links": [*doc.get("links", []), link],
            "history": [*doc.get("history", []), history],
        }
        await self._commit([Put("anomalies", str(anomaly_id), new)])
        self.bus.publish("link.created", {"anomaly_id": anomaly_id, "link": link})
        return link

    async def unlink(self, anomaly_id: int, link_id: str) -> dict[str, Any]:
        """Forget the link here; the ticket is not touched. Its undelivered notes are cancelled."""
        doc = self.anomaly(anomaly_id)
        link = next((item for item in doc.get("links", []) if item["id"] == link_id), None)
        if link is None:
            raise NotFound(f"anomaly {anomaly_id} has no link {link_id}")
        at = now_iso()
        new = {
            **doc,
            "updated_at": at,
            "links": [item for item in doc["links"] if item["id"] != link_id],
            "history": [
                *doc.get("history", []),
                {
                    "at": at,
                    "kind": "ticket unlinked",
                    "ticket": link["ticket_key"],
                    "connection": link["connection"],
                },
            ],
        }
        ops: list[Op] = [Put("anomalies", str(anomaly_id), new)]
        cancelled = self.worker.cancel_link(link_id) if self.worker else []
        await self._commit(ops + cancelled)
        if self.worker and cancelled:
            self.worker.forget({op.doc["id"] for op in cancelled if isinstance(op, Put)})
        self.bus.publish("link.removed", {"anomaly_id": anomaly_id, "link_id": link_id})
        return new

    async def refresh_links(
        self, anomaly_ids: list[int] | None = None, concurrency: int = 8
    ) -> int:
        """Read each linked ticket's current state. Never changes the anomaly itself."""
        docs = (
            [self.anomaly(i) for i in anomaly_ids]
            if anomaly_ids is not None
            else [d for d in self.store.all("anomalies").values() if d.get("links")]
        )
        gate = asyncio.Semaphore(concurrency)
        states: dict[str, Ticket] = {}

        async def read(link: dict[str, Any]) -> None:
            provider = self.providers.get(link["connection"])
            if provider is None:
                return
            async with gate:
                try:
                    states[link["id"]] = await provider.get_ticket(link["ticket_key"])
                except ProviderError as exc:
                    log.info("state of %s not read: %s", link["ticket_key"], exc)

        await asyncio.gather(*(read(link) for doc in docs for link in doc.get("links", [])))
        at = now_iso()
        ops: list[Op] = []
        for doc in docs:
            current = self.store.anomaly(doc["id"]) or doc
            links = []
            for link in current.get("links", []):
                ticket = states.get(link["id"])
                if ticket is not None:
                    link = {
                        **link,
                        "state": ticket.state,
                        "state_category": ticket.state_category,
                        "summary": ticket.summary or link.get("summary"),
                        "state_read_at": at,
                    }
                links.append(link)
            if links != current.get("links", []):
                ops.append(Put("anomalies", str(doc["id"]), {**current, "links": links}))
        if ops:
            await self._commit(ops)
            for op in ops:
                assert isinstance(op, Put)
                self.bus.publish(
                    "link.state", {"anomaly_id": op.doc["id"], "links": op.doc["links"]}
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

    async def check_connections(self) -> dict[str, dict[str, Any]]:
        async def one(name: str, provider: Provider) -> None:
            started = time.perf_counter()
            try:
                who = await provider.check()
                result = {"ok": True, "message": f"authenticated as {who}"}
            except ProviderError as exc:
                result = {"ok": False, "message": str(exc)}
            result.update(checked_at=now_iso(), ms=round((time.perf_counter() - started) * 1000))
            self.health[name] = result

        await asyncio.gather(*(one(n, p) for n, p in self.providers.items()))
        return self.health

    # -- sync jobs -----------------------------------------------------------------------------

    async def retry_job(self, job_id: int) -> dict[str, Any]:
        job = self.store.get("jobs", str(job_id))
        if job is None:
            raise NotFound(f"no sync job {job_id}")
        if job["state"] != "dead":
            raise Conflict(f"sync job {job_id} is {job['state']}; only dead jobs can be retried")
        job = {**job, "state": "pending", "attempts": 0, "next_at": 0.0}
        await self.store.commit([Put("jobs", str(job_id), job)])
        if self.worker:
            self.worker.wake()
        self.bus.publish("sync.job", job_view(job))
        return job_view(job)


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """An anomaly as a list row: what the dashboard's table shows."""
    return {
        "id": doc["id"],
        "status": doc["status"],
        "type": doc.get("type"),
        "weight": doc.get("weight"),
        "datastore": (doc.get("datastore") or {}).get("name"),
        "container": (doc.get("container") or {}).get("name"),
        "fields": doc.get("fields") or [],
        "message": doc.get("message"),
        "created": doc.get("created"),
        "updated_at": doc.get("updated_at"),
        "tickets": [link["ticket_key"] for link in doc.get("links") or ()],
    }
