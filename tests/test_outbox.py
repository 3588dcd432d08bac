"""Outbox jobs carry a nonce; a job knows whether an earlier job put the same text on its ticket."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from anomaly_desk.core.outbox import Outbox, note_tag
from anomaly_desk.core.providers.base import NoteTag
from anomaly_desk.core.store import Put, Store


def link(i: int, ticket: str = "sys-1", connection: str = "servicenow") -> dict[str, Any]:
    return {
        "id": f"L{i}",
        "connection": connection,
        "provider": connection,
        "ticket_key": f"INC{i}",
        "ticket_id": ticket,
    }


def test_every_job_gets_its_own_nonce_and_twins_are_found(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        outbox = Outbox(store)
        one = {"id": 1, "links": [link(1), link(2, ticket="sys-2")]}
        other = {"id": 2, "links": [link(3)]}  # another anomaly, same incident as link 1
        ops = outbox.jobs_for(one, "comment", "Comment from Qualytics: same")
        ops += outbox.jobs_for(one, "comment", "Comment from Qualytics: same")
        ops += outbox.jobs_for(other, "comment", "Comment from Qualytics: same ")
        ops += outbox.jobs_for(one, "comment", "Comment from Qualytics: different")
        await store.commit(ops)
        jobs = [op.doc for op in ops if isinstance(op, Put)]
        assert len({job["nonce"] for job in jobs}) == len(jobs) == 7
        twins = {job["id"]: outbox.has_earlier_twin(job) for job in jobs}
        # 1: sys-1 first; 2: sys-2 first; 3, 4: repeats on sys-1, sys-2; 5: repeat on sys-1 from
        # the other anomaly (whitespace aside); 6, 7: a new text
        assert twins == {1: False, 2: False, 3: True, 4: True, 5: True, 6: False, 7: False}
        await store.close()

    asyncio.run(run())


def test_a_job_stored_without_a_nonce_gets_a_stable_derived_one() -> None:
    job = {"id": 12, "link_id": "ab12cd34ef56", "text": "x"}
    assert note_tag(job) == NoteTag("job-12-ab12cd34ef56", 0, legacy=True)
    assert note_tag(job) == note_tag(dict(job))
    assert note_tag({**job, "nonce": "f00d", "baseline": 2}) == NoteTag("f00d", 2)


def test_twins_committed_later_are_known_without_a_rescan(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        outbox = Outbox(store)
        first = outbox.jobs_for({"id": 1, "links": [link(1)]}, "comment", "again")
        await store.commit(first)
        outbox.submitted(first)
        assert outbox.has_earlier_twin(first[0].doc) is False  # builds the index
        second = outbox.jobs_for({"id": 1, "links": [link(1)]}, "comment", "again")
        await store.commit(second)
        outbox.submitted(second)  # what every commit path does: the index follows
        assert outbox.has_earlier_twin(second[0].doc) is True
        await store.close()

    asyncio.run(run())
