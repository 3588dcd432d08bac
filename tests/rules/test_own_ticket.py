"""After a crash, a rule's create job recognises its own ticket, never another rule's.

Two rules on one connection match one anomaly: rule A's ticket is created and linked, rule B's
job died in flight. B's retry must not take A's link for its own (its ticket would never be
made); it finds its own by the job id the link records.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from anomaly_desk.core.documents import AnomalyDocument, SyncJob, new_link, new_row, with_link
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.operations import Desk
from anomaly_desk.core.providers import Ticket
from anomaly_desk.core.store import Put, Store
from anomaly_desk.core.vocabulary import JobKind, LinkOrigin


def _job(job_id: int, rule: str | None) -> SyncJob:
    return SyncJob(
        id=job_id,
        anomaly_id=7,
        link_id="new:jira",
        connection="jira",
        provider="jira",
        ticket_key="new-7",
        kind=JobKind.NEW_TICKET,
        text="",
        rule=rule,
        created_at="2026-01-01T00:00:00.000Z",
    )


def test_a_retried_rule_job_does_not_take_another_rules_link(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path).open()
        try:
            at = "2026-01-01T00:00:01.000Z"
            doc = AnomalyDocument.model_validate(new_row(Anomaly(id=7), at, None))
            ticket = Ticket(key="DQ-1", id="10001")
            link = new_link("l1", "jira", "jira", ticket, LinkOrigin.CREATED, at, job_id=1)
            await store.commit([Put("anomalies", "7", with_link(doc, link, at))])
            desk = Desk(store, {})
            assert await desk.created_for(_job(1, "rule A")) == "DQ-1"
            assert await desk.created_for(_job(2, "rule B")) is None
        finally:
            await store.close()

    asyncio.run(scenario())
