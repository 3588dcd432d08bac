"""Outbox jobs carry a nonce; a job knows whether an earlier job put the same text on its ticket."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from anomaly_desk.core.documents import AnomalyDocument, SyncJob
from anomaly_desk.core.outbox import Outbox, note_tag
from anomaly_desk.core.providers.base import NoteTag
from anomaly_desk.core.store import Put, Store
from anomaly_desk.core.vocabulary import JobKind


def link(i: int, ticket: str = "sys-1", connection: str = "servicenow") -> dict[str, Any]:
    return {
        "id": f"L{i}",
        "connection": connection,
        "provider": connection,
        "ticket_key": f"INC{i}",
        "ticket_id": ticket,
    }


def anomaly(anomaly_id: int, *links: dict[str, Any]) -> AnomalyDocument:
    return AnomalyDocument.model_validate({"id": anomaly_id, "links": links})


def legacy_job(**changes: Any) -> SyncJob:
    """A job as stored before jobs had a nonce."""
    job = {
        "id": 12,
        "anomaly_id": 1,
        "link_id": "ab12cd34ef56",
        "connection": "servicenow",
        "provider": "servicenow",
        "ticket_key": "INC1",
        "ticket_id": "sys-1",
        "kind": "comment",
        "text": "x",
        "created_at": "2026-11-20T09:00:00.000Z",
        "state": "pending",
        "attempts": 0,
        "next_at": 0.0,
        "in_flight": False,
        "verify": False,
        "last_error": None,
        "done_at": None,
    }
    return SyncJob.model_validate({**job, **changes})


def test_every_job_gets_its_own_nonce_and_twins_are_found(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        outbox = Outbox(store)
        one = anomaly(1, link(1), link(2, ticket="sys-2"))
        other = anomaly(2, link(3))  # another anomaly, same incident as link 1
        ops = outbox.jobs_for(one, JobKind.COMMENT, "Comment from Qualytics: same")
        ops += outbox.jobs_for(one, JobKind.COMMENT, "Comment from Qualytics: same")
        ops += outbox.jobs_for(other, JobKind.COMMENT, "Comment from Qualytics: same ")
        ops += outbox.jobs_for(one, JobKind.COMMENT, "Comment from Qualytics: different")
        await store.commit(ops)
        jobs = [SyncJob.model_validate(op.doc) for op in ops if isinstance(op, Put)]
        assert len({job.nonce for job in jobs}) == len(jobs) == 7
        twins = {job.id: outbox.has_earlier_twin(job) for job in jobs}
        # 1: sys-1 first; 2: sys-2 first; 3, 4: repeats on sys-1, sys-2; 5: repeat on sys-1 from
        # the other anomaly (whitespace aside); 6, 7: a new text
        assert twins == {1: False, 2: False, 3: True, 4: True, 5: True, 6: False, 7: False}
        await store.close()

    asyncio.run(run())


def test_a_job_stored_without_a_nonce_gets_a_stable_derived_one() -> None:
    job = legacy_job()
    assert note_tag(job) == NoteTag("job-12-ab12cd34ef56", 0, legacy=True)
    assert note_tag(job) == note_tag(job.model_copy())
    assert note_tag(legacy_job(nonce="f00d", baseline=2)) == NoteTag("f00d", 2)


def test_twins_committed_later_are_known_without_a_rescan(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        outbox = Outbox(store)
        first = outbox.jobs_for(anomaly(1, link(1)), JobKind.COMMENT, "again")
        await store.commit(first)
        outbox.submitted(first)
        assert outbox.has_earlier_twin(SyncJob.model_validate(first[0].doc)) is False  # the index
        second = outbox.jobs_for(anomaly(1, link(1)), JobKind.COMMENT, "again")
        await store.commit(second)
        outbox.submitted(second)  # what every commit path does: the index follows
        assert outbox.has_earlier_twin(SyncJob.model_validate(second[0].doc)) is True
        await store.close()

    asyncio.run(run())
