"""Every note reaches every linked ticket exactly once: identical texts and concurrent links.

The sandbox here sits behind ``WriteFaults``, which misbehaves on writes only. Both holes tested
here need the reads around the write to work: ServiceNow counts the identical work notes before
its first send, and the retry reads the ticket to learn whether the ambiguous write landed. The
global ``latency_ms`` fault would time those reads out as well.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from anomaly_desk.sandbox.faults import buffered, error_body
from tests.integration.conftest import Desk
from tests.support import ThreadedServer

PROVIDERS = ["jira", "servicenow"]
ANOMALY = 10261  # from 05-api-shape-anomaly.json
SAME = "Comment from Qualytics: same words"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class WriteFaults:
    """ASGI middleware in front of the sandbox: faults for writes to the emulated APIs only.

    * ``drop``: that many writes are answered 504 by a gateway that never passed them on
      (ambiguous for the client; nothing landed).
    * ``slow_s``: a write is taken in, held that long, then applied whatever the client did
      (ambiguous for a client that gave up first; it landed). A read that arrives meanwhile
      waits for it, as a read after a committed write sees it.
    * ``journal_reads`` counts reads of ServiceNow's journal (``sys_journal_field``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.drop = 0
        self.slow_s = 0.0
        self.journal_reads = 0
        self._held = 0
        self._settled = asyncio.Event()  # no write held
        self._settled.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/rest/", "/api/now/")):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in WRITES:
            await self._settled.wait()
            if "sys_journal_field" in path:
                self.journal_reads += 1
            await self.app(scope, receive, send)
            return
        if self.drop > 0:
            self.drop -= 1
            body = error_body(path, 504, "Gateway Timeout")
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 504, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if self.slow_s > 0:
            replay = await buffered(receive)
            self._held += 1
            self._settled.clear()
            try:
                await asyncio.sleep(self.slow_s)
                await self.app(scope, replay, send)
            finally:
                self._held -= 1
                if not self._held:
                    self._settled.set()
            return
        await self.app(scope, receive, send)


@pytest.fixture
def sandbox() -> Iterator[ThreadedServer]:
    """This module's sandbox: the usual one behind ``WriteFaults`` (``sandbox.writes``)."""
    from anomaly_desk.sandbox.app import create_app

    app = create_app()
    writes = WriteFaults(app)
    with ThreadedServer(writes) as server:
        server.app = app  # ``desk.faults`` and the emulators' state, as usual
        server.writes = writes  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def writes(sandbox: ThreadedServer) -> WriteFaults:
    return sandbox.writes  # type: ignore[attr-defined,no-any-return]


# --------------------------------------------------------------------------- helpers


def open_ticket(desk: Desk, connection: str) -> str:
    """A ticket someone opened by hand, straight in the provider; its key."""
    if connection == "jira":
        with desk.jira() as jira:
            fields = {"project": {"key": "DQ"}, "issuetype": {"name": "Task"}, "summary": "hand"}
            return str(jira.post("/rest/api/3/issue", json={"fields": fields}).json()["key"])
    with desk.snow() as snow:
        created = snow.post("/api/now/table/incident", json={"short_description": "by hand"})
        return str(created.raise_for_status().json()["result"]["number"])


def link_ticket(desk: Desk, connection: str) -> dict[str, Any]:
    key = open_ticket(desk, connection)
    response = desk.api.post(
        f"/api/anomalies/{ANOMALY}/links", json={"connection": connection, "ticket": key}
    )
    assert response.status_code == 201, response.text
    return response.json()


def comment(desk: Desk, text: str) -> None:
    response = desk.api.post(f"/api/anomalies/{ANOMALY}/comments", json={"text": text})
    assert response.status_code == 201, response.text


def sync_log(desk: Desk) -> list[dict[str, Any]]:
    return desk.api.get("/api/sync-log", params={"limit": 500}).json()["items"]


def wait_for_retry(desk: Desk, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        retries = [e for e in sync_log(desk) if e["outcome"] == "retry"]
        if retries:
            return retries[0]
        assert time.monotonic() < deadline, sync_log(desk)
        time.sleep(0.02)


def ambiguous(writes: WriteFaults, landed: bool) -> None:
    """The next write's answer is lost; the write itself lands or not."""
    if landed:
        writes.slow_s = 2.6  # longer than the connection's 2 s timeout
    else:
        writes.drop = 1


# --------------------------------------------------------------------------- A: same text twice


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("connection", PROVIDERS)
def test_a_repeated_comment_after_an_ambiguous_write_is_a_second_note(
    desk: Desk, writes: WriteFaults, connection: str, landed: bool
) -> None:
    """Two identical comments are two notes, whatever became of the second one's first write."""
    desk.post_webhook("05-api-shape-anomaly.json")
    link = link_ticket(desk, connection)
    comment(desk, "same words")
    desk.wait_idle()
    assert desk.notes(link).count(SAME) == 1

    ambiguous(writes, landed)
    comment(desk, "same words")  # the operator says it again: a second note
    retry = wait_for_retry(desk)
    assert retry["job_id"] == 2
    writes.slow_s = 0.0
    desk.wait_idle()

    assert desk.notes(link).count(SAME) == 2
    jobs = desk.api.get("/api/sync-jobs").json()["items"]
    assert [j["state"] for j in jobs] == ["done", "done"]
    last = sync_log(desk)[-1]
    assert last["job_id"] == 2
    assert last["outcome"] == "done"
    if landed:  # found its own earlier attempt: not sent again
        assert "already on the ticket" in last["message"]
    else:  # the older identical note is not this job's: sent
        assert "checked the ticket, then sent" in last["message"]


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("connection", PROVIDERS)
def test_a_single_ambiguous_note_arrives_exactly_once(
    desk: Desk, writes: WriteFaults, connection: str, landed: bool
) -> None:
    desk.post_webhook("05-api-shape-anomaly.json")
    link = link_ticket(desk, connection)
    ambiguous(writes, landed)
    comment(desk, "same words")
    wait_for_retry(desk)
    writes.slow_s = 0.0
    desk.wait_idle()
    assert desk.notes(link).count(SAME) == 1
    assert [j["state"] for j in desk.api.get("/api/sync-jobs").json()["items"]] == ["done"]


def test_servicenow_counts_identical_notes_only_when_a_twin_came_first(
    desk: Desk, writes: WriteFaults
) -> None:
    """The common case costs no extra call: the journal is read only for a repeated text."""
    desk.post_webhook("05-api-shape-anomaly.json")
    link = link_ticket(desk, "servicenow")
    before = writes.journal_reads
    comment(desk, "first words")
    comment(desk, "other words")
    desk.wait_idle()
    assert writes.journal_reads == before  # distinct texts: no read at all
    comment(desk, "first words")
    desk.wait_idle()
    assert writes.journal_reads == before + 1  # one count before the first send
    notes = desk.notes(link)
    assert notes.count("Comment from Qualytics: first words") == 2


def test_identical_status_notes_on_a_ticket_shared_by_two_anomalies(
    desk: Desk, writes: WriteFaults
) -> None:
    """One incident linked to two anomalies: the same text from each is two notes."""
    desk.post_webhook("06-api-list-archived.json")
    key = open_ticket(desk, "servicenow")
    links = [
        desk.api.post(
            f"/api/anomalies/{i}/links", json={"connection": "servicenow", "ticket": key}
        ).json()
        for i in (10270, 10271)
    ]
    first = desk.api.post("/api/anomalies/10270/comments", json={"text": "rerun"})
    assert first.status_code == 201
    desk.wait_idle()
    writes.drop = 1  # a gateway loses the second anomaly's identical note
    second = desk.api.post("/api/anomalies/10271/comments", json={"text": "rerun"})
    assert second.status_code == 201
    wait_for_retry(desk)
    desk.wait_idle()
    assert desk.notes(links[0]).count("Comment from Qualytics: rerun") == 2


# --------------------------------------------------------------------------- B: concurrent links


def _link_three_times(desk: Desk, connection: str, key: str) -> list[httpx.Response]:
    responses: list[httpx.Response] = []
    barrier = threading.Barrier(3)

    def post() -> None:
        with httpx.Client(base_url=desk.api.base_url, timeout=30) as api:
            barrier.wait()
            responses.append(
                api.post(
                    f"/api/anomalies/{ANOMALY}/links",
                    json={"connection": connection, "ticket": key},
                )
            )

    threads = [threading.Thread(target=post) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return responses


@pytest.mark.parametrize("connection", PROVIDERS)
def test_linking_the_same_ticket_three_times_at_once_links_and_writes_once(
    desk: Desk, connection: str
) -> None:
    desk.post_webhook("05-api-shape-anomaly.json")
    key = open_ticket(desk, connection)
    desk.faults.update({"latency_ms": 200})  # every caller is inside the provider at once
    responses = _link_three_times(desk, connection, key)
    desk.faults.update({"latency_ms": 0})
    assert sorted(r.status_code for r in responses) == [201, 409, 409], [r.text for r in responses]
    links = desk.api.get(f"/api/anomalies/{ANOMALY}").json()["links"]
    assert [link["ticket_key"] for link in links] == [key]
    if connection == "servicenow":
        notes = desk.snow_notes(links[0]["ticket_id"])
        assert sum(note.startswith("Linked to") for note in notes) == 1, notes
    else:  # linking an issue only reads it
        assert desk.jira_notes(key) == []


def test_one_incident_linked_to_two_anomalies_at_once_gets_a_note_for_each(desk: Desk) -> None:
    desk.post_webhook("06-api-list-archived.json")
    key = open_ticket(desk, "servicenow")
    desk.faults.update({"latency_ms": 200})
    results: dict[int, int] = {}

    def post(anomaly_id: int) -> None:
        with httpx.Client(base_url=desk.api.base_url, timeout=30) as api:
            response = api.post(
                f"/api/anomalies/{anomaly_id}/links",
                json={"connection": "servicenow", "ticket": key},
            )
            results[anomaly_id] = response.status_code

    threads = [threading.Thread(target=post, args=(i,)) for i in (10270, 10271)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    desk.faults.update({"latency_ms": 0})
    assert results == {10270: 201, 10271: 201}
    incident = desk.api.get("/api/anomalies/10270").json()["links"][0]["ticket_id"]
    notes = desk.snow_notes(incident)
    assert sum(note.startswith("Linked to") for note in notes) == 2, notes
