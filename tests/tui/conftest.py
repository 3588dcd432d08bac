"""Shared fixtures for dashboard tests: a real receiver and sandbox on loopback, with data.

``tui_desk`` is the integration ``Desk`` (receiver + sandbox + an httpx client on the API) with
every fixture webhook ingested and one Jira ticket created for anomaly 10231. ``frozen_desk``
is a receiver over a store seeded with fixed documents, a dead sync job and a note held behind
it (anomaly 20024, ticket DQ-7, which also has a comment a person made on DQ-7), for
screenshots that must not change from run to run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot

from anomaly_desk.core.store import Put, Store
from anomaly_desk.tui.app import DashboardApp
from anomaly_desk.tui.client import DeskClient
from anomaly_desk.tui.screens.main import MainScreen
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import FIXTURES, ThreadedServer

SIZE = (160, 48)
WEBHOOKS = sorted(p.name for p in (FIXTURES / "webhooks").glob("*.json"))
LINKED_ANOMALY = 10280  # the newest fixture: highlighted first, so the detail shows its ticket


def make_desk(
    tmp_path: Path,
    sandbox: ThreadedServer,
    data_dir: Path | None = None,
    platform: bool = False,
    jira: str = "",
    servicenow: str = "",
    **sync: float,
) -> Desk:
    """A receiver over ``data_dir`` (``sync``: settings such as ``health_check_s=0.3``);
    ``platform``: with the platform's API (the sandbox's emulator): write-back and import;
    ``jira``/``servicenow``: more lines for that connection (two-way settings, ``poll_s``)."""
    config = write_config(
        tmp_path / "anomaly-desk.toml",
        sandbox.url,
        platform=platform,
        jira=jira,
        servicenow=servicenow,
        **sync,
    )
    data = data_dir or tmp_path / "data"
    receiver = start_receiver(config, data, ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    return Desk(receiver, sandbox, api, data, config)


@pytest.fixture
def tui_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """Receiver + sandbox with every fixture webhook ingested and one Jira ticket linked."""
    desk = make_desk(tmp_path, sandbox)
    try:
        for name in WEBHOOKS:
            desk.post_webhook(name)
        response = desk.api.post(
            f"/api/anomalies/{LINKED_ANOMALY}/tickets",
            json={"connection": "jira", "fields": {"summary": "Non-ASCII anomaly in müşteri"}},
        )
        assert response.status_code == 201, response.text
        desk.wait_idle()
        yield desk
    finally:
        desk.api.close()
        desk.receiver.stop()


# -- a receiver whose data never changes between runs, for SVG snapshots ----------------------

AT = "2026-11-20T09:00:00.000Z"


def frozen_anomaly(i: int, status: str, weight: int, links: list[dict[str, Any]]) -> dict[str, Any]:
    minute = 10 + i
    return {
        "id": 20000 + i,
        "uuid": f"00000000-0000-4000-8000-{i:012d}",
        "type": "shape" if i % 4 == 0 else "record",
        "status": status,
        "weight": weight,
        "datastore": {"id": 12, "name": "warehouse_prod"},
        "container": {"id": 300 + i % 3, "name": ("orders", "customers", "payments")[i % 3]},
        "fields": [("customer_id", "amount", "email", "created_at")[i % 4]],
        "message": f"{('customer_id is null', 'amount out of range', 'email malformed', 'late rows')[i % 4]} in {i * 7} records",
        "failed_checks": [
            {
                "check_id": 9000 + i,
                "rule_type": ("notNull", "between", "matchesPattern", "freshness")[i % 4],
                "fields": [("customer_id", "amount", "email", "created_at")[i % 4]],
                "message": f"{i * 7} records fail the check",
            }
        ],
        "global_tags": ["finance"],
        "anomalous_records_count": i * 7,
        "fingerprint": 770000 + i,
        "created": f"2026-11-20T08:{minute:02d}:00.000Z",
        "url": f"https://acme.qualytics.io/anomalies/{20000 + i}",
        "received_at": AT,
        "updated_at": AT,
        "comments": [],
        "links": links,
        "history": [{"at": AT, "kind": "received", "status": status, "by": "platform"}],
    }


FROZEN_LINK = {
    "id": "a1b2c3d4e5f6",
    "connection": "jira",
    "provider": "jira",
    "ticket_key": "DQ-7",
    "ticket_id": "10007",
    "url": "https://example.atlassian.net/browse/DQ-7",
    "summary": "Orders: customer_id is null",
    "origin": "created",
    "state": "In Progress",
    "state_category": "indeterminate",
    "state_read_at": "2026-11-20T09:05:00.000Z",
    "linked_at": "2026-11-20T09:01:00.000Z",
}
# what alice said on DQ-7, read back by a poll (two-way sync): "[ops]" would be a markup tag
INBOUND_COMMENT = {
    "at": "2026-11-20T09:06:00.000Z",
    "text": "CRM export ran late [ops] — rerun scheduled",
    "by": "from DQ-7 (alice@example.com)",
    "origin": FROZEN_LINK["id"],
}


def frozen_documents() -> list[dict[str, Any]]:
    statuses = ["Active", "Active", "Acknowledged", "Active", "Resolved", "Active", "Invalid"]
    docs = []
    for i in range(1, 25):
        status = statuses[i % len(statuses)]
        links = [FROZEN_LINK] if i == 24 else []
        docs.append(frozen_anomaly(i, status, (i * 37) % 100, links))
    newest = docs[-1]
    newest["comments"] = [
        {"at": "2026-11-20T09:02:00.000Z", "text": "Looking into it", "by": "operator"},
        {"at": "2026-11-20T09:04:00.000Z", "text": "Reloaded the batch", "by": "operator"},
        INBOUND_COMMENT,
    ]
    newest["history"] += [
        {
            "at": "2026-11-20T09:01:00.000Z",
            "kind": "ticket created",
            "ticket": "DQ-7",
            "connection": "jira",
        },
        {"at": "2026-11-20T09:02:00.000Z", "kind": "comment", "by": "operator"},
        {
            "at": "2026-11-20T09:03:00.000Z",
            "kind": "status",
            "from": "Active",
            "to": "Acknowledged",
            "by": "operator",
        },
        {"at": "2026-11-20T09:04:00.000Z", "kind": "comment", "by": "operator"},
        {"at": INBOUND_COMMENT["at"], "kind": "comment", "by": INBOUND_COMMENT["by"]},
    ]
    newest["status"] = "Acknowledged"
    return docs


def frozen_sync() -> list[Put]:
    """A delivered note, one that died on a 401, and one held behind it (never tried: the dead
    note heads DQ-7's queue), with fixed times."""
    base = {
        "anomaly_id": 20024,
        "link_id": FROZEN_LINK["id"],
        "connection": "jira",
        "ticket_key": "DQ-7",
    }
    jobs = [
        {
            **base,
            "id": 1,
            "kind": "comment",
            "text": "Comment from Qualytics: Looking into it",
            "state": "done",
        },
        {
            **base,
            "id": 2,
            "kind": "status",
            "text": "[2026-11-20 09:03:00 UTC] Qualytics Anomaly Status: Acknowledged",
            "state": "dead",
        },
        {
            **base,
            "id": 3,
            "kind": "comment",
            "text": "Comment from Qualytics: Reloaded the batch",
            "state": "pending",
        },
    ]
    ops: list[Put] = []
    for job in jobs:
        ops.append(
            Put(
                "jobs",
                str(job["id"]),
                {
                    **job,
                    "attempts": 0 if job["state"] == "pending" else 1,
                    "next_at": 0.0,
                    "last_error": "jira: authentication failed (401)"
                    if job["state"] == "dead"
                    else None,
                    "created_at": "2026-11-20T09:02:00.000Z",
                    "done_at": "2026-11-20T09:02:01.000Z" if job["state"] == "done" else None,
                    "in_flight": False,
                    "verify": False,
                },
            )
        )
    entries = [
        (1, 1, "09:02:01", "done", ""),
        (
            2,
            2,
            "09:03:01",
            "dead",
            "jira: authentication failed (401): Client must be authenticated",
        ),
    ]
    for entry_id, job_id, at, outcome, message in entries:
        job = jobs[job_id - 1]
        ops.append(
            Put(
                "sync_log",
                str(entry_id),
                {
                    "id": entry_id,
                    "at": f"2026-11-20T{at}.000Z",
                    "job_id": job_id,
                    "anomaly_id": 20024,
                    "link_id": FROZEN_LINK["id"],
                    "connection": "jira",
                    "ticket_key": "DQ-7",
                    "kind": job["kind"],
                    "attempt": 1,
                    "outcome": outcome,
                    "duration_ms": 12.0,
                    "message": message,
                    "text": job["text"],
                },
            )
        )
    return ops


def seed_frozen(data_dir: Path) -> None:
    store = Store(data_dir).open()
    store.bulk_load(frozen_documents())

    async def commit() -> None:
        await store.commit(frozen_sync())
        await store.close()

    asyncio.run(commit())


@pytest.fixture
def frozen_desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    seed_frozen(tmp_path / "data")
    desk = make_desk(tmp_path, sandbox)
    try:
        deadline = time.monotonic() + 10
        # connection health is read in the background at start: wait so the header is stable
        while any(c["health"] is None for c in desk.api.get("/api/connections").json()["items"]):
            assert time.monotonic() < deadline, "connection checks did not finish"
            time.sleep(0.05)
        yield desk
    finally:
        desk.api.close()
        desk.receiver.stop()


# -- driving the app ------------------------------------------------------------------------


def dashboard(desk: Desk, address: str | None = None) -> DashboardApp:
    return DashboardApp(DeskClient(desk.receiver.url), address=address)


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], Any], limit: float = 10.0, what: str = ""
) -> None:
    """Let the app run until ``condition()`` holds (the receiver answers asynchronously)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


def main_screen(pilot: Pilot[Any]) -> MainScreen:
    screen = pilot.app.screen_stack[1] if len(pilot.app.screen_stack) > 1 else pilot.app.screen
    assert isinstance(screen, MainScreen)
    return screen


async def ready(pilot: Pilot[Any]) -> MainScreen:
    """Until rows, detail, sync log and the live stream are all in."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="main screen")
    screen = main_screen(pilot)
    await wait_for(pilot, lambda: screen.rows_version > 0, what="first rows")
    await wait_for(pilot, lambda: screen.header.live == "live", what="event stream")
    await wait_for(
        pilot,
        lambda: (
            screen.table.current is None
            or (screen.detail_doc is not None and screen.detail_doc.id == screen.table.current.id)
        ),
        what="detail",
    )
    await wait_for(pilot, lambda: screen.header.counts is not None, what="counts")
    await wait_for(
        pilot,
        lambda: screen.connections is not None and all(c.health for c in screen.connections),
        what="connection health",
    )
    return screen
