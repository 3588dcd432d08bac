"""The outbox: a change on an anomaly becomes one note job per linked ticket.

Jobs are store rows written in the same transaction as the change that caused them, so a change
is never stored without its notes, nor notes without their change. After the commit, listeners
(the sync worker) are told about the new jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from core.ingest import now_iso
from core.store import Put, Store

JobKind = Literal["status", "comment"]
JobListener = Callable[[list[dict[str, Any]]], None]


def ticket_queue(job_or_link: dict[str, Any]) -> str:
    """Jobs for one ticket are delivered in order; this names that ticket's queue."""
    connection = job_or_link["connection"]
    ticket = job_or_link.get("ticket_id") or job_or_link["ticket_key"]
    return f"{connection}/{ticket}"


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[JobListener] = []

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
        if jobs:
            for listener in self._listeners:
                listener(jobs)
