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
from collections.abc import Callable
from typing import Any, Literal

from anomaly_desk.core.ingest import now_iso
from anomaly_desk.core.providers.base import NoteTag
from anomaly_desk.core.store import Put, Store

JobKind = Literal["status", "comment"]
JobListener = Callable[[list[dict[str, Any]]], None]


def ticket_queue(job_or_link: dict[str, Any]) -> str:
    """Jobs for one ticket are delivered in order; this names that ticket's queue."""
    connection = job_or_link["connection"]
    ticket = job_or_link.get("ticket_id") or job_or_link["ticket_key"]
    return f"{connection}/{ticket}"


def note_tag(job: dict[str, Any]) -> NoteTag:
    """What the provider needs to recognise this job's own note on the ticket."""
    nonce = job.get("nonce")
    if not nonce:  # stored before jobs had one: derived, stable, and unique enough per desk
        return NoteTag(f"job-{job['id']}-{job['link_id']}", int(job.get("baseline") or 0), True)
    return NoteTag(str(nonce), int(job.get("baseline") or 0))


def _twin_key(job: dict[str, Any]) -> tuple[str, str]:
    return ticket_queue(job), job["text"].strip()


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[JobListener] = []
        self._first: dict[tuple[str, str], int] | None = None  # (ticket, text) -> first job id

    def has_earlier_twin(self, job: dict[str, Any]) -> bool:
        """Whether an earlier job (any state, any anomaly) went to the same ticket with the same
        text. Only then can a note identical to this job's already be there because of us, and
        only then does ServiceNow need a count before the send. An index, built once from the
        store and kept up by :meth:`submitted`: a delivery must not scan every job."""
        if self._first is None:
            self._first = {}
            for other in self.store.all("jobs").values():
                self._remember(other)
        return self._first.get(_twin_key(job), job["id"]) < job["id"]

    def _remember(self, job: dict[str, Any]) -> None:
        assert self._first is not None
        key = _twin_key(job)
        if job["id"] < self._first.get(key, job["id"] + 1):
            self._first[key] = job["id"]

    def listen(self, listener: JobListener) -> None:
        self._listeners.append(listener)

    def jobs_for(self, anomaly: dict[str, Any], kind: JobKind, text: str) -> list[Put]:
        """One pending job per link of ``anomaly``; commit them with the change."""
        at = now_iso()
        puts = []
        for link in anomaly.get("links") or ():
            job_id = self.store.next_id("jobs")
            job = {
                "id": job_id,
                "anomaly_id": anomaly["id"],
                "link_id": link["id"],
                "connection": link["connection"],
                "provider": link["provider"],
                "ticket_key": link["ticket_key"],
                "ticket_id": link["ticket_id"],
                "kind": kind,
                "text": text,
                "nonce": uuid.uuid4().hex,
                "created_at": at,
                "state": "pending",
                "attempts": 0,
                "next_at": 0.0,
                "in_flight": False,
                "verify": False,
                "last_error": None,
                "done_at": None,
            }
            puts.append(Put("jobs", str(job_id), job))
        return puts

    def submitted(self, ops: list[Any]) -> None:
        """Call after the commit that wrote ``ops``: hands their new jobs to the listeners."""
        jobs = [op.doc for op in ops if isinstance(op, Put) and op.table == "jobs"]
        if jobs and self._first is not None:
            for job in jobs:
                self._remember(job)
        if jobs:
            for listener in self._listeners:
                listener(jobs)
