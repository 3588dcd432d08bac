"""Sync benchmark: 1,000 notes over 200 tickets with 100 ms of provider latency.

Run: ``make bench`` or ``.venv/bin/python -m tests.benchmarks sync``. The sandbox (both emulators)
runs in its own process with its latency fault on; the worker is the receiver's own, on a real
store.
The serial baseline is the same worker with concurrency 1, timed on a subset in the same run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from anomaly_desk.core.config import SyncSettings
from anomaly_desk.core.connections import JiraConnection, Platform, ServiceNowConnection
from anomaly_desk.core.formatting.adf import adf_to_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.operations import Desk
from anomaly_desk.core.outbox import Outbox
from anomaly_desk.core.providers import Provider, make_provider
from anomaly_desk.core.store import Put, Store
from anomaly_desk.core.sync import SyncWorker
from tests.support import cli_process, free_port

TICKETS = 200
NOTES_PER_TICKET = 5
LATENCY_MS = 100
SERIAL_SAMPLE = 40


def providers(url: str) -> dict[str, Provider]:
    jira = JiraConnection(name="jira", url=url, email="demo@example.com", token="demo-token")
    snow = ServiceNowConnection(name="servicenow", url=url, username="admin", password="demo")
    return {c.name: make_provider(c, Platform()) for c in (jira, snow)}


async def seed(store: Store, clients: dict[str, Provider], tickets: int) -> list[dict[str, Any]]:
    """``tickets`` anomalies, each with one freshly created ticket (half Jira, half ServiceNow)."""
    anomalies = []
    for i in range(tickets):
        name = "jira" if i % 2 else "servicenow"
        anomaly = Anomaly.model_validate(
            {"id": 900_000 + i, "message": f"bench {i}", "created": "2026-11-20T00:00:00Z"}
        )
        field = "summary" if name == "jira" else "short_description"
        ticket = await clients[name].create_ticket(anomaly, {field: f"bench {i}"})
        link = {
            "id": f"L{i}",
            "connection": name,
            "provider": clients[name].kind,
            "ticket_key": ticket.key,
            "ticket_id": ticket.id,
            "url": ticket.url,
            "origin": "created",
        }
        doc = {
            **anomaly.model_dump(mode="json"),
            "links": [link],
            "comments": [],
            "history": [],
            "received_at": "x",
            "updated_at": "x",
        }
        await store.commit([Put("anomalies", str(anomaly.id), doc)])
        anomalies.append(doc)
    return anomalies


async def drain(
    url: str, faults: Any, tickets: int, notes: int, concurrency: int
) -> tuple[float, int, list[dict[str, Any]], dict[str, Provider]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp)).open()
        clients = providers(url)
        anomalies = await seed(store, clients, tickets)
        outbox = Outbox(store)
        settings = SyncSettings(concurrency=concurrency, per_connection=concurrency)
        worker = SyncWorker(store, outbox, clients, settings=settings)
        desk = Desk(store, clients, outbox=outbox, worker=worker)
        for n in range(notes):
            for doc in anomalies:
                await desk.comment(doc["id"], f"note {n + 1}")
        faults.update({"latency_ms": LATENCY_MS})
        started = time.perf_counter()
        worker.start()
        await settle(worker)
        elapsed = time.perf_counter() - started
        faults.update({"latency_ms": 0})
        await worker.stop()
        done = sum(1 for job in store.all("jobs").values() if job["state"] == "done")
        await store.close()
        return elapsed, done, anomalies, clients


async def settle(worker: SyncWorker) -> None:
    """Poll until the worker has nothing pending (a benchmark's only waiting)."""
    while not worker.idle():  # noqa: ASYNC110 - the worker has no completion event to wait on
        await asyncio.sleep(0.01)


async def in_order(
    clients: dict[str, Provider], anomalies: list[dict[str, Any]], notes: int
) -> bool:
    expected = [f"Comment from Qualytics: note {n + 1}" for n in range(notes)]
    for doc in anomalies:
        link = doc["links"][0]
        if link["connection"] == "jira":
            page = await clients["jira"]._request(
                "GET",
                f"/rest/api/3/issue/{link['ticket_key']}/comment",
                params={"maxResults": "100"},
            )
            got = [adf_to_text(c["body"]).strip() for c in page["comments"]]
        else:
            rows = await clients["servicenow"]._rows(
                "sys_journal_field",
                f"element_id={link['ticket_id']}^ORDERBYsys_created_on",
                "value",
            )
            got = [row["value"].strip() for row in rows]
        if got != expected:
            return False
    return True


async def run(url: str, faults: RemoteFaults) -> list[str]:
    total = TICKETS * NOTES_PER_TICKET
    serial_s, serial_done, _, serial_clients = await drain(
        url, faults, SERIAL_SAMPLE, 1, concurrency=1
    )
    for client in serial_clients.values():
        await client.aclose()
    per_note = serial_s / serial_done
    elapsed, done, anomalies, clients = await drain(
        url, faults, TICKETS, NOTES_PER_TICKET, concurrency=64
    )
    ordered = await in_order(clients, anomalies, NOTES_PER_TICKET)
    for client in clients.values():
        await client.aclose()
    serial_total = per_note * total
    return [
        f"Sync: {total:,} notes over {TICKETS} tickets (half Jira, half ServiceNow), "
        f"{LATENCY_MS} ms injected provider latency",
        "",
        "| worker | notes delivered | drain time | notes/s | vs serial | order per ticket |",
        "|---|---:|---:|---:|---:|---|",
        f"| serial (concurrency 1; {serial_done} notes timed) | {serial_done} | {serial_s:.1f} s "
        f"(≈ {serial_total:.0f} s for {total:,}) | {serial_done / serial_s:.1f} | 1x | kept |",
        f"| receiver's worker (64 in flight, 32 per connection) | {done:,} | {elapsed:.2f} s | "
        f"{done / elapsed:.0f} | {serial_total / elapsed:.0f}x | {'kept' if ordered else 'BROKEN'} |",
    ]


class RemoteFaults:
    """The sandbox's fault settings, over its control endpoint (it runs in its own process)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def update(self, values: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/_sandbox/faults", json=values).raise_for_status()


def main() -> list[str]:
    """The sandbox runs in its own process, like a remote service: its CPU is not ours."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with cli_process("sandbox", "--port", str(port), url=f"{url}/_sandbox/faults"):
        return asyncio.run(run(url, RemoteFaults(url)))


if __name__ == "__main__":
    print("\n".join(main()))
