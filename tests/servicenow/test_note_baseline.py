"""Work notes carry no metadata: a job's note is recognised by counting identical notes.

``note_baseline`` counts the identical work notes before a job's first send; ``has_note`` says
the job's note landed iff there are more now. The comparison is exact and ours: the text never
goes into an encoded query (``^`` has no escape there, ``=`` ignores case).
"""

from __future__ import annotations

import httpx

from anomaly_desk.core.providers.base import NoteTag
from anomaly_desk.core.providers.servicenow import ServiceNowClient
from tests.servicenow.conftest import connection, make_anomaly
from tests.support import ThreadedServer

NOTE = "Comment from Qualytics: rerun scheduled ^ORnumberISNOTEMPTY"


async def test_count_then_check(client: ServiceNowClient) -> None:
    ticket = await client.create_ticket(make_anomaly(), {"short_description": "count"})
    assert await client.note_baseline(ticket, NOTE) == 0
    await client.add_note(ticket, NOTE)
    await client.add_note(ticket, NOTE.upper())  # not identical: case matters
    await client.add_note(ticket, "Comment from Qualytics: rerun scheduled")  # a prefix only
    assert await client.note_baseline(ticket, NOTE) == 1

    tag = NoteTag("job-2", baseline=1)  # the second identical note, before its send
    assert await client.has_note(ticket, NOTE, tag) is False
    await client.add_note(ticket, NOTE, tag)
    assert await client.has_note(ticket, NOTE, tag) is True
    assert await client.note_baseline(ticket, NOTE) == 2


async def test_other_incidents_and_customer_comments_do_not_count(
    client: ServiceNowClient, sandbox: ThreadedServer
) -> None:
    one = await client.create_ticket(make_anomaly(), {"short_description": "one"})
    two = await client.create_ticket(make_anomaly(), {"short_description": "two"})
    await client.add_note(two, NOTE)
    async with httpx.AsyncClient(base_url=sandbox.url, auth=("admin", "demo")) as raw:
        response = await raw.patch(f"/api/now/table/incident/{one.id}", json={"comments": NOTE})
        response.raise_for_status()
    assert await client.note_baseline(one, NOTE) == 0
    assert await client.has_note(one, NOTE, NoteTag("job-1")) is False


async def test_the_count_reads_the_journal_once_and_never_sends_the_text(
    sandbox: ThreadedServer,
) -> None:
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    snc = ServiceNowClient(connection(sandbox.url))
    snc._client.event_hooks["request"].append(record)
    try:
        ticket = await snc.create_ticket(make_anomaly(), {"short_description": "wire"})
        seen.clear()
        assert await snc.note_baseline(ticket, NOTE) == 0
    finally:
        await snc.aclose()
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/api/now/table/sys_journal_field"
    query = request.url.params["sysparm_query"]
    assert query == f"element_id={ticket.id}^element=work_notes^ORDERBYDESCsys_created_on"
    assert request.url.params["sysparm_fields"] == "value"
