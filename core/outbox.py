"""The outbox: a change on an anomaly becomes one note job per linked ticket.

Jobs are store rows written in the same transaction as the change that caused them, so a change
is never stored without its notes, nor notes without their change. After the commit, listeners
(the sync worker) are told about the new jobs.

Each job carries a ``nonce``, unique to it: two identical comments are two jobs and two notes, and
a retry recognises its own earlier attempt by the nonce (Jira) or by a count of identical notes
taken before its first send (ServiceNow, whose work notes carry no metadata), never by the text.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from anomaly_desk.core.documents import (
    AnomalyDocument,
    SyncJob,
    TicketLink,
    new_job,
    new_platform_job,
    new_ticket_job,
)
from anomaly_desk.core.ingest import now_iso
from anomaly_desk.core.providers.base import NoteTag
from anomaly_desk.core.store import Delete, Op, Put, Store
from anomaly_desk.core.vocabulary import JobKind, JobState

JobListener = Callable[[list[SyncJob]], None]


def ticket_queue(job_or_link: SyncJob | TicketLink) -> str:
    """Jobs for one ticket are delivered in order; this names that ticket's queue."""
    return f"{job_or_link.connection}/{job_or_link.ticket_id or job_or_link.ticket_key}"


def note_tag(job: SyncJob) -> NoteTag:
    """What the provider needs to recognise this job's own note on the ticket."""
    if not job.nonce:  # stored before jobs had one: derived, stable, and unique enough per desk
        return NoteTag(f"job-{job.id}-{job.link_id}", job.baseline or 0, True)
    return NoteTag(job.nonce, job.baseline or 0)


def _new(job: SyncJob) -> bool:
    """A job as :meth:`Outbox.jobs_for` made it, not a later state of it."""
    return (
        job.state == JobState.PENDING
        and not job.attempts
        and not job.in_flight
        and job.last_error is None
    )


def _twin_key(job: SyncJob) -> tuple[str, str]:
    return ticket_queue(job), job.text.strip()


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[JobListener] = []
        self._first: dict[tuple[str, str], int] | None = None  # (ticket, text) -> first job id
        store.on_commit(self.submitted)  # every commit path, once durable: none can forget it

    def has_earlier_twin(self, job: SyncJob) -> bool:
        """Whether an earlier job (any state, any anomaly) went to the same ticket with the same
        text. Only then can a note identical to this job's already be there because of us, and
        only then does ServiceNow need a count before the send. An index, built once from the
        store and kept up by :meth:`submitted`: a delivery must not scan every job."""
        if self._first is None:
            self._first = {}
            for other in self.store.jobs():
                self._remember(other)
        return self._first.get(_twin_key(job), job.id) < job.id

    def _remember(self, job: SyncJob) -> None:
        assert self._first is not None
        key = _twin_key(job)
        if job.id < self._first.get(key, job.id + 1):
            self._first[key] = job.id

    def listen(self, listener: JobListener) -> None:
        self._listeners.append(listener)

    def jobs_for(
        self,
        anomaly: AnomalyDocument,
        kind: JobKind,
        text: str,
        links: Iterable[TicketLink] | None = None,
    ) -> list[Put]:
        """One pending job per link of ``anomaly`` (or per link of ``links``); commit them with
        the change."""
        at = now_iso()
        puts: list[Put] = []
        for link in anomaly.links if links is None else links:
            job_id = self.store.next_id("jobs")
            job = new_job(job_id, anomaly.id, link, kind, text, uuid.uuid4().hex, at)
            puts.append(Put("jobs", str(job_id), job))
        return puts

    def platform_job(self, anomaly_id: int, kind: JobKind, text: str = "") -> Put:
        """A job on the anomaly's platform queue (write-back, enrichment); commit it with the
        change that caused it."""
        job_id = self.store.next_id("jobs")
        job = new_platform_job(job_id, anomaly_id, kind, text, uuid.uuid4().hex, now_iso())
        return Put("jobs", str(job_id), job)

    def new_ticket_job(self, anomaly_id: int, connection: str, provider: str, text: str) -> Put:
        """A job creating a ticket on ``connection`` for the anomaly; commit it with its cause."""
        job_id = self.store.next_id("jobs")
        nonce = uuid.uuid4().hex
        job = new_ticket_job(job_id, anomaly_id, connection, provider, text, nonce, now_iso())
        return Put("jobs", str(job_id), job)

    def submitted(self, ops: list[Op]) -> None:
        """The store's post-commit hook: hands the new jobs ``ops`` wrote to the listeners.

        Every transaction comes through here, the sync worker's updates of its own jobs too, so
        only a job's first version counts: pending and never tried (a retried dead job keeps its
        ``last_error`` and is still in its queue)."""
        written = [
            SyncJob.model_validate(op.doc)
            for op in ops
            if not isinstance(op, Delete) and op.table == "jobs"
        ]
        jobs = [job for job in written if _new(job)]
        if jobs and self._first is not None:
            for job in jobs:
                self._remember(job)
        if jobs:
            for listener in self._listeners:
                listener(jobs)
