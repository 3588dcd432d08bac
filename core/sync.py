"""The sync worker: delivers outbox jobs as Jira comments / ServiceNow work notes.

Guarantees, and how:

* **Never lost.** Jobs are store rows; the worker's queues are rebuilt from them at start.
* **In order per ticket.** Each ticket has a FIFO queue; only its head is ever in flight. A dead
  head holds the jobs behind it until it is retried (or its link is removed), so notes never
  arrive out of order.
* **Concurrent across tickets**, bounded overall and per connection.
* **Never doubled.** A job is durably marked in flight before it is sent. If the process dies
  mid-send, or the provider times out after the request left, the outcome is unknown: the next
  attempt first asks the ticket whether the note is already there (``has_note``) and only sends
  when it is not. A done job is never sent again. What remains: a note the provider accepted but
  that is not yet visible to a read (eventual consistency) could be sent twice.
* **Retries** for rate limits (honouring Retry-After) and outages (exponential backoff with
  jitter); auth, validation and not-found errors go to ``dead`` at once with the provider's
  message. Every attempt is a sync-log entry and an event.
* **A rotated secret** is picked up: when a provider refuses the credential (401/403), the
  ``refresher`` (the receiver's) may re-read the connection's secrets (from Vault, past its
  cache) and put a new client in place; the attempt is then made once more with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from typing import Protocol

from anomaly_desk.core.config import SyncSettings
from anomaly_desk.core.documents import (
    SyncJob,
    job_after,
    job_cancelled,
    job_in_flight,
    job_started,
    log_entry,
)
from anomaly_desk.core.events import EventBus
from anomaly_desk.core.health import HealthMonitor
from anomaly_desk.core.ingest import now_iso
from anomaly_desk.core.outbox import Outbox, note_tag, ticket_queue
from anomaly_desk.core.providers import (
    AuthError,
    NoteTag,
    Provider,
    ProviderError,
    RateLimitedError,
    TicketRef,
    UnavailableError,
)
from anomaly_desk.core.store import Put, Store, StoreFailed
from anomaly_desk.core.views import AnomalyUpdated, SyncJobView, SyncLogEntryView
from anomaly_desk.core.vocabulary import (
    PLATFORM,
    WAITING,
    EventName,
    JobKind,
    JobState,
    SyncOutcome,
)

log = logging.getLogger(__name__)


def backoff(attempt: int, settings: SyncSettings) -> float:
    """Exponential, capped, with jitter so a recovering provider is not hit by a thundering herd."""
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2.0 ** max(0, attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


class Sender(Protocol):
    """Where a job goes: a ticket (through its provider) or the platform itself."""

    async def baseline(self, job: SyncJob) -> int:
        """Before a first send, when an earlier job had the same text: identical notes now."""
        ...

    async def landed(self, job: SyncJob, tag: NoteTag) -> bool:
        """Whether an earlier attempt of ``job`` already took effect."""
        ...

    async def send(self, job: SyncJob, tag: NoteTag) -> str | None:
        """Do it; a message for the sync log, or None."""
        ...


class TicketCreator(Protocol):
    """Creates (and links) the ticket a new-ticket job asks for; the Desk is one."""

    async def created_for(self, job: SyncJob) -> str | None:
        """The ticket an earlier attempt already created and linked, if any (its key)."""
        ...

    async def create_for(self, job: SyncJob) -> str:
        """Create and link it; what the sync log says."""
        ...


class SecretRefresher(Protocol):
    """Re-reads a connection's secrets when its provider refused them (the receiver has one)."""

    async def refresh(self, connection: str, failed: object) -> bool:
        """``failed`` (the connection's client, or the platform's sender) answered 401/403:
        read the connection's secrets again, past any cache, and put a client with them in its
        place. True when a client other than ``failed`` is in place to try again with."""
        ...


class TicketSender:
    """A note on a ticket (a Jira comment, a ServiceNow work note), a move of its workflow, or a
    new ticket."""

    def __init__(self, provider: Provider, creator: TicketCreator | None = None) -> None:
        self.provider = provider
        self.creator = creator

    async def baseline(self, job: SyncJob) -> int:
        if job.kind not in NOTE_KINDS:
            return 0
        return await self.provider.note_baseline(_ref(job), job.text)

    async def landed(self, job: SyncJob, tag: NoteTag) -> bool:
        if job.kind == JobKind.NEW_TICKET:
            return self.creator is not None and await self.creator.created_for(job) is not None
        if job.kind not in NOTE_KINDS:
            return False  # moving a workflow compares first: doing it again changes nothing
        return await self.provider.has_note(_ref(job), job.text, tag)

    async def send(self, job: SyncJob, tag: NoteTag) -> str | None:
        if job.kind == JobKind.TRANSITION:
            return await self.provider.move_to_done(_ref(job), job.text, tag)
        if job.kind == JobKind.REOPEN:
            return await self.provider.reopen(_ref(job), job.text, tag)
        if job.kind == JobKind.NEW_TICKET:
            if self.creator is None:
                raise ProviderError("no one to create the ticket", connection=job.connection)
            return await self.creator.create_for(job)
        await self.provider.add_note(_ref(job), job.text, tag)
        return None


NOTE_KINDS = frozenset({JobKind.STATUS, JobKind.COMMENT})
SETTLE_S = 20.0  # a connection's request timeout when the worker was not told (the default)


def _ref(job: SyncJob) -> TicketRef:
    return TicketRef(job.ticket_key, job.ticket_id, table=job.ticket_table)


class SyncWorker:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        providers: Mapping[str, Provider],
        bus: EventBus | None = None,
        settings: SyncSettings | None = None,
        health: HealthMonitor | None = None,
        platform: Sender | None = None,
    ) -> None:
        self.store = store
        self.health = health
        self.platform = platform  # write-back and enrichment jobs (the platform's queue)
        self.creator: TicketCreator | None = None  # new-ticket jobs (the Desk sets it)
        self.refresher: SecretRefresher | None = None  # re-reads secrets after a 401/403
        # per connection, how long a request can take (its timeout): a send cut by a crash is
        # verified only once that has passed (see ``job_in_flight``)
        self.settle_s: dict[str, float] = {}
        self.outbox = outbox
        self.providers = providers
        self.bus = bus or EventBus()
        self.settings = settings or SyncSettings()
        self._queues: dict[str, deque[int]] = {}
        self._busy: set[str] = set()
        self._per_connection: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0  # deliveries started and not yet finished (``_tasks`` lags behind)
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._paused_until = 0.0  # no delivery starts before this (the store refused writes)
        self._store_failures = 0
        outbox.listen(self.enqueue)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Rebuild the queues from the store and start delivering."""
        pending = sorted(self.store.jobs(WAITING), key=lambda job: job.id)
        for job in pending:
            self._queues.setdefault(ticket_queue(job), deque()).append(job.id)
        if pending:
            log.info("sync: %d jobs to deliver on %d tickets", len(pending), len(self._queues))
        self._runner = asyncio.create_task(self._run(), name="sync-worker")

    async def stop(self, grace: float = 5.0) -> None:
        """Let notes in flight finish (briefly); the in-flight marker covers the rest."""
        if self._runner:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def enqueue(self, jobs: list[SyncJob]) -> None:
        for job in sorted(jobs, key=lambda j: j.id):
            self._queues.setdefault(ticket_queue(job), deque()).append(job.id)
        self._wake.set()

    def wake(self) -> None:
        """Look at the queues again (a dead job was set back to pending)."""
        self._wake.set()

    def cancel_link(self, link_id: str) -> list[Put]:
        """Ops cancelling a removed link's undelivered jobs (the one in flight, if any, finishes)."""
        return [
            Put("jobs", str(job.id), job_cancelled(job))
            for job in self.store.jobs(WAITING)
            if job.link_id == link_id and not job.in_flight
        ]

    def forget(self, job_ids: set[int]) -> None:
        for queue in self._queues.values():
            for job_id in [j for j in queue if j in job_ids]:
                queue.remove(job_id)
        self._wake.set()

    def idle(self) -> bool:
        """No job pending or in flight (dead ones wait for a person, so they do not count)."""
        waiting = any(
            (head := self._head(queue)) is not None and head.state == JobState.PENDING
            for queue in self._queues.values()
        )
        return not waiting and not self._running

    # -- the loop ------------------------------------------------------------------------------

    def _head(self, queue: deque[int]) -> SyncJob | None:
        while queue:
            job = self.store.job(queue[0])
            if job is not None and job.state in WAITING:
                return job
            queue.popleft()  # done or cancelled meanwhile
        return None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = time.time()
            if now < self._paused_until:
                await asyncio.sleep(self._paused_until - now)
                continue
            next_due: float | None = None
            for name in list(self._queues):
                queue = self._queues[name]
                head = self._head(queue)
                if head is None:
                    del self._queues[name]
                    continue
                if name in self._busy or head.state == JobState.DEAD:
                    continue
                if head.next_at > now:
                    next_due = head.next_at if next_due is None else min(next_due, head.next_at)
                    continue
                connection = head.connection
                if self._running >= self.settings.concurrency:
                    break
                if self._per_connection.get(connection, 0) >= self.settings.per_connection:
                    continue
                self._running += 1
                self._busy.add(name)
                self._per_connection[connection] = self._per_connection.get(connection, 0) + 1
                task = asyncio.create_task(self._deliver(name, head))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            timeout = None if next_due is None else max(0.0, next_due - time.time())
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
            # its timeout fires, and stop() then waits forever on a loop that never ends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _deliver(self, queue_name: str, job: SyncJob) -> None:
        try:
            await self._attempt(job)
            self._store_failures = 0
        except StoreFailed as exc:  # the disk, not the provider: back off like any outage
            self._store_failures += 1
            pause = backoff(self._store_failures, self.settings)
            self._paused_until = max(self._paused_until, time.time() + pause)
            if self._store_failures == 1 or self._store_failures % 10 == 0:
                log.warning("sync: the store refuses writes (%s); pausing %.2fs", exc, pause)
        except Exception:  # a bug must not stop the worker: the job stays pending
            log.exception("sync: job %s failed unexpectedly", job.id)
            self._paused_until = max(self._paused_until, time.time() + 1.0)
        finally:
            self._running -= 1
            self._busy.discard(queue_name)
            connection = job.connection
            self._per_connection[connection] = self._per_connection.get(connection, 1) - 1
            self._wake.set()

    def _linked(self, job: SyncJob) -> bool:
        if job.connection == PLATFORM or job.kind == JobKind.NEW_TICKET:
            return True  # the platform's queue and a ticket to be are the anomaly's, not a link's
        anomaly = self.store.anomaly_doc(job.anomaly_id)
        return anomaly is not None and anomaly.link_by_id(job.link_id) is not None

    def _sender(self, job: SyncJob) -> Sender:
        if job.connection == PLATFORM:
            if self.platform is None:
                raise ProviderError("the platform has no token: write-back is off")
            return self.platform
        provider = self.providers.get(job.connection)
        if provider is None:
            raise ProviderError(f"connection {job.connection!r} is not configured")
        return TicketSender(provider, self.creator)

    async def _in_flight(self, sender: Sender, job: SyncJob, verify: bool) -> SyncJob:
        """``job`` durably marked in flight before anything leaves (with its baseline)."""
        baseline = None
        if not verify:
            # Nothing of this job can be on the ticket yet. If an earlier job put the same
            # text there, a provider that cannot mark notes (ServiceNow) counts the identical
            # notes now, so a later check looks for one more than that, not for the text.
            twin = self.outbox.has_earlier_twin(job)
            baseline = await sender.baseline(job) if twin else 0
        settled = time.time() + self.settle_s.get(job.connection, SETTLE_S)
        job = job_in_flight(job, baseline, settled)
        await self.store.commit([Put("jobs", str(job.id), job)])
        return job

    async def _send(self, sender: Sender, job: SyncJob, verify: bool) -> str | None:
        """One try of the (in-flight) ``job``: what the sync log says."""
        tag = note_tag(job)
        if verify and await sender.landed(job, tag):
            return "already on the ticket (an earlier attempt landed); not sent again"
        message = await sender.send(job, tag)
        if verify and message is None:
            message = "an earlier attempt's fate was unknown: checked the ticket, then sent"
        return message

    async def _refreshed(self, job: SyncJob, sender: Sender) -> bool:
        """After a refused credential: whether the refresher put a new client in place."""
        if self.refresher is None:
            return False
        failed = sender.provider if isinstance(sender, TicketSender) else sender
        try:
            renewed = await self.refresher.refresh(job.connection, failed)
        except Exception:  # a bug in re-reading must not lose the job: it goes dead as before
            log.exception("sync: re-reading the secrets of %s failed", job.connection)
            return False
        if renewed:
            log.info(
                "sync job=%s: %s refused the credential; secrets re-read, trying once more",
                job.id,
                job.connection,
            )
        return renewed

    async def _attempt(self, job: SyncJob) -> None:
        if not self._linked(job):  # unlinked while queued (or before a restart): never send
            await self.store.commit([Put("jobs", str(job.id), job_cancelled(job))])
            return
        attempt = job.attempts + 1
        since_retry = attempt - (job.retried_after or 0)  # backoff restarts after a person's retry
        verify = job.verify or job.in_flight  # an earlier attempt may have landed
        job = job_started(job, attempt, verify)
        started = time.perf_counter()
        outcome, message, retry_in = SyncOutcome.DONE, None, None
        failure: ProviderError | None = None
        sender: Sender | None = None
        try:
            sender = self._sender(job)
            job = await self._in_flight(sender, job, verify)  # kept whatever the send does
            try:
                message = await self._send(sender, job, verify)
            except AuthError:
                if not await self._refreshed(job, sender):
                    raise
                # a refused credential is a definite answer (nothing landed): the same again
                sender = self._sender(job)
                message = await self._send(sender, job, verify)
                again = "sent with the connection's secrets re-read after it refused them"
                message = f"{message}; {again}" if message else again
        except RateLimitedError as exc:
            failure = exc
            outcome, message = SyncOutcome.RETRY, str(exc)
            retry_in = (
                exc.retry_after
                if exc.retry_after is not None
                else backoff(since_retry, self.settings)
            )
        except UnavailableError as exc:
            failure = exc
            outcome, message = SyncOutcome.RETRY, str(exc)
            retry_in = backoff(since_retry, self.settings)
            verify = verify or exc.ambiguous
        except ProviderError as exc:
            failure = exc
            outcome, message = SyncOutcome.DEAD, str(exc)
        elapsed_ms = (time.perf_counter() - started) * 1000
        at = now_iso()
        if outcome != SyncOutcome.DONE and not self._linked(job):
            outcome = SyncOutcome.CANCELLED
            message = "the link was removed while this note was in flight"
        next_at = None
        if outcome == SyncOutcome.RETRY:
            assert retry_in is not None
            next_at = time.time() + retry_in
        job = job_after(job, outcome, at, verify, message, next_at)
        if next_at is not None:
            message = f"{message}; next try in {retry_in:.1f}s"
        entry_id = self.store.next_id("sync_log")
        entry = log_entry(entry_id, job, at, attempt, outcome, round(elapsed_ms, 1), message)
        logged = Put("sync_log", str(entry_id), entry)
        await self.store.commit([Put("jobs", str(job.id), job), logged])
        log.info(
            "sync job=%s ticket=%s kind=%s attempt=%d outcome=%s ms=%.0f%s",
            job.id,
            job.ticket_key,
            job.kind,
            attempt,
            outcome,
            elapsed_ms,
            f" ({message})" if message else "",
        )
        if self.health is not None and isinstance(sender, TicketSender):
            if failure is not None:
                self.health.failed(job.connection, failure)
            elif outcome == SyncOutcome.DONE:
                self.health.delivered(job.connection, job.ticket_key)
        if self.bus.subscribers:
            self.bus.publish(EventName.SYNC_ATTEMPT, SyncLogEntryView.model_validate(entry))
            self.bus.publish(EventName.SYNC_JOB, SyncJobView.model_validate(job))
            if outcome == SyncOutcome.DEAD or job.retried_after is not None:
                # the anomaly's notes waiting for a person changed: its row's badge follows
                row = self.store.anomaly_summary(job.anomaly_id, AnomalyUpdated)
                if row is not None:
                    row.change = "notes"
                    self.bus.publish(EventName.ANOMALY_UPDATED, row)
