"""The headless demo's tour: drive the operator API as a person would, then prove every note.

Creates a Jira issue and a ServiceNow incident, links an existing ticket of each kind,
acknowledges, comments and archives, waits for the sync worker, and reads every note back from
the sandbox's own REST APIs: exactly once each, in order, or the demo fails.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import httpx

from anomaly_desk.demo_setup import (
    EXIT_FAILED,
    EXIT_OK,
    JIRA_LOGIN,
    PLATFORM,
    SERVICENOW_LOGIN,
    SETTLE_TIMEOUT_S,
    DemoError,
    Setup,
    say,
)
from anomaly_desk.pacing import delays, paced_replay
from anomaly_desk.replay import Auth, Result, Sender, Unreachable, progress_line, status_counts

if TYPE_CHECKING:
    from anomaly_desk.core.views import SyncJobView, TicketLinkView

T = TypeVar("T")


@dataclass
class Expect:
    """One ticket the tour touched and the notes that must be on it, in order."""

    anomaly_id: int
    link: TicketLinkView
    patterns: list[tuple[str, re.Pattern[str]]]  # (what to call it when missing, pattern)
    confirmed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.link.ticket_key

    @property
    def complete(self) -> bool:
        return len(self.notes) == len(self.patterns) and all(
            p.fullmatch(n) for (_, p), n in zip(self.patterns, self.notes, strict=True)
        )


def status_pattern(status: str) -> tuple[str, re.Pattern[str]]:
    return (
        f"[<time> UTC] {PLATFORM} Anomaly Status: {status}",
        re.compile(
            r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\] "
            + re.escape(f"{PLATFORM} Anomaly Status: {status}")
        ),
    )


def comment_pattern(text: str) -> tuple[str, re.Pattern[str]]:
    note = f"Comment from {PLATFORM}: {text}"
    return note, re.compile(re.escape(note))


def link_pattern(anomaly_id: int) -> tuple[str, re.Pattern[str]]:
    note = f"Linked to {PLATFORM} anomaly {anomaly_id}"
    return note + ": <link>", re.compile(re.escape(note) + r"\b.*", re.DOTALL)


@dataclass(frozen=True)
class Step:
    """What the tour does to one anomaly after its tickets are linked."""

    comment: str
    archive_as: str
    archive_comment: str


class Tour:
    """The scripted walk through the operator API, and the evidence collected from the sandbox."""

    def __init__(self, setup: Setup) -> None:
        from anomaly_desk.tui.client import (
            DeskClient,  # the dashboard's own client: the same API it uses
        )

        self.setup = setup
        self.desk = DeskClient(setup.receiver.url, timeout=30.0)
        self.jira = httpx.AsyncClient(base_url=setup.sandbox.url, auth=JIRA_LOGIN, timeout=10.0)
        self.snow = httpx.AsyncClient(
            base_url=setup.sandbox.url,
            auth=SERVICENOW_LOGIN,
            headers={"accept": "application/json"},
            timeout=10.0,
        )
        self.expect: list[Expect] = []

    async def aclose(self) -> None:
        await asyncio.gather(self.desk.aclose(), self.jira.aclose(), self.snow.aclose())

    # -- steps -------------------------------------------------------------------------------

    async def call(self, what: str, action: Awaitable[T]) -> T:
        from anomaly_desk.tui.client import ApiError

        try:
            return await action
        except ApiError as exc:
            raise DemoError(f"{what}: the receiver answered {exc.status} {exc.detail}") from None
        except httpx.HTTPError as exc:
            raise DemoError(f"{what}: {type(exc).__name__}: {exc}") from None

    async def pick(self, replayed: Sequence[Result]) -> tuple[int, int]:
        """Two active anomalies from this replay that have no tickets yet."""
        ids = {i for r in replayed for i in r.anomalies}
        page = await self.call(
            "listing anomalies", self.desk.list_anomalies(status="Active", limit=500)
        )
        free = sorted(a.id for a in page.items if a.id in ids and not a.tickets)
        if len(free) < 2:
            raise DemoError(
                "the tour needs two active anomalies without tickets; this data directory has "
                f"{len(free)} (run without --data-dir for a fresh one)"
            )
        return free[0], free[1]

    async def existing_jira_issue(self) -> str:
        response = await self.jira.post(
            "/rest/api/3/issue",
            json={
                "fields": {
                    "project": {"key": "DQ"},
                    "issuetype": {"name": "Bug"},
                    "summary": "Nightly orders load finishes late",
                }
            },
        )
        response.raise_for_status()
        return str(response.json()["key"])

    async def existing_incident(self) -> str:
        response = await self.snow.post(
            "/api/now/table/incident",
            json={
                "short_description": "CRM export job failing intermittently",
                "description": "Reported by the CRM team.",
            },
        )
        response.raise_for_status()
        return str(response.json()["result"]["number"])

    async def run(self, a: int, b: int) -> None:
        desk = self.desk
        say(f"  anomaly {a}: create a Jira issue and a ServiceNow incident")
        fields = {"description": "Created by the anomaly-desk demo tour."}
        jira_a = await self.call(
            "creating a Jira issue",
            desk.create_ticket(a, "jira", {"summary": f"Anomaly {a} in the demo", **fields}),
        )
        snow_a = await self.call(
            "creating a ServiceNow incident",
            desk.create_ticket(
                a, "servicenow", {"short_description": f"Anomaly {a} in the demo", **fields}
            ),
        )
        say(f"    created {jira_a.ticket_key} and {snow_a.ticket_key}")
        try:
            issue_b, incident_b = await asyncio.gather(
                self.existing_jira_issue(), self.existing_incident()
            )
        except httpx.HTTPError as exc:
            raise DemoError(f"creating tickets directly in the sandbox: {exc}") from None
        say(f"  sandbox: an existing Jira issue {issue_b} and incident {incident_b} (made there)")
        say(f"  anomaly {b}: link {issue_b} and {incident_b}")
        jira_b = await self.call(f"linking {issue_b}", desk.link_ticket(b, "jira", issue_b))
        snow_b = await self.call(
            f"linking {incident_b}", desk.link_ticket(b, "servicenow", incident_b)
        )
        steps = {
            a: Step("Owner: data platform — Zoë is on it", "Resolved", "Backfilled from CRM"),
            b: Step("Same root cause as the late load", "Duplicate", "Tracked in the CRM ticket"),
        }
        for anomaly_id, step in steps.items():
            say(
                f"  anomaly {anomaly_id}: acknowledge, comment, archive as {step.archive_as} "
                "with a comment"
            )
            await self.call("acknowledging", desk.acknowledge(anomaly_id))
            await self.call("commenting", desk.comment(anomaly_id, step.comment))
            await self.call(
                "archiving", desk.archive(anomaly_id, step.archive_as, step.archive_comment)
            )
        for anomaly_id, link in ((a, jira_a), (a, snow_a), (b, jira_b), (b, snow_b)):
            step = steps[anomaly_id]
            patterns = [
                status_pattern("Acknowledged"),
                comment_pattern(step.comment),
                status_pattern(step.archive_as),
                comment_pattern(step.archive_comment),
            ]
            if link.provider == "servicenow" and link.origin == "linked":
                patterns.insert(0, link_pattern(anomaly_id))
            self.expect.append(Expect(anomaly_id, link, patterns))

    # -- evidence ----------------------------------------------------------------------------

    async def notes(self, link: TicketLinkView) -> list[str]:
        """The ticket's notes as its own API returns them, oldest first."""
        if link.provider == "jira":
            from anomaly_desk.core.formatting.adf import adf_to_text

            response = await self.jira.get(
                f"/rest/api/3/issue/{link.ticket_key}/comment",
                params={"orderBy": "created", "maxResults": 100},
            )
            response.raise_for_status()
            return [adf_to_text(c["body"]).strip() for c in response.json()["comments"]]
        response = await self.snow.get(
            "/api/now/table/sys_journal_field",
            params={
                "sysparm_query": f"element_id={link.ticket_id}^element=work_notes"
                "^ORDERBYsys_created_on"
            },
        )
        response.raise_for_status()
        return [str(row["value"]).strip() for row in response.json()["result"]]

    async def pending(self) -> list[SyncJobView]:
        ours = {e.anomaly_id for e in self.expect}
        jobs = await self.call("reading sync jobs", self.desk.sync_jobs(state="pending"))
        return [j for j in jobs if j.anomaly_id in ours]

    async def watch(self, within_s: float = SETTLE_TIMEOUT_S) -> bool:
        """Print each note the moment the sandbox has it; True once the worker is idle."""
        deadline = time.monotonic() + within_s
        while True:
            pending = await self.pending()  # first: notes read after an empty queue are final
            try:
                found = await asyncio.gather(*(self.notes(e.link) for e in self.expect))
            except httpx.HTTPError as exc:
                raise DemoError(f"reading notes back from the sandbox: {exc}") from None
            for expect, notes in zip(self.expect, found, strict=True):
                expect.notes = notes
                while expect.confirmed < min(len(notes), len(expect.patterns)):
                    _, pattern = expect.patterns[expect.confirmed]
                    note = notes[expect.confirmed]
                    if not pattern.fullmatch(note):
                        break
                    say(f"✓ {expect.key:<11} {note.splitlines()[0]}")
                    expect.confirmed += 1
            if not pending:
                return True
            if time.monotonic() > deadline:
                say(
                    f"✗ the sync worker still had {len(pending)} notes pending after {within_s:g} s"
                )
                return False
            await asyncio.sleep(0.1)

    async def dead_jobs(self) -> list[SyncJobView]:
        ours = {e.anomaly_id for e in self.expect}
        jobs = await self.call("reading sync jobs", self.desk.sync_jobs(state="dead"))
        return [j for j in jobs if j.anomaly_id in ours]

    async def print_sync_log(self) -> None:
        ours = {e.anomaly_id for e in self.expect}
        entries = await self.call("reading the sync log", self.desk.sync_log(limit=1000))
        for entry in entries:
            if entry.anomaly_id not in ours:
                continue
            at = entry.at[11:19]
            message = f"  {entry.message}" if entry.message else ""
            say(
                f"  #{entry.id:<3} {at}  {entry.ticket_key:<11} {entry.kind:<8} "
                f"attempt {entry.attempt}  {entry.outcome:<5} "
                f"{entry.duration_ms:>6.1f} ms{message}"
            )


def print_summary(expect: Sequence[Expect]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Demo tour", title_justify="left")
    for column in ("Anomaly", "Ticket", "Provider", "How", "Notes", "Result"):
        table.add_column(column)
    for e in expect:
        provider = "Jira" if e.link.provider == "jira" else "ServiceNow"
        table.add_row(
            str(e.anomaly_id),
            e.key,
            provider,
            str(e.link.origin),
            f"{len(e.notes)}/{len(e.patterns)}",
            "ok" if e.complete else "MISSING",
        )
    Console(highlight=False, soft_wrap=False).print(table)


def explain(expect: Expect) -> None:
    """What is missing, extra or out of order on one ticket."""
    say(f"✗ {expect.key}: expected {len(expect.patterns)} notes in this order, found:")
    for index in range(max(len(expect.patterns), len(expect.notes))):
        want = expect.patterns[index] if index < len(expect.patterns) else None
        got = expect.notes[index] if index < len(expect.notes) else None
        if got is None:
            say(f"    {index + 1}. MISSING   {want[0] if want else ''}")
        elif want is None:
            say(f"    {index + 1}. EXTRA     {got.splitlines()[0]}")
        elif want[1].fullmatch(got):
            say(f"    {index + 1}. ok        {got.splitlines()[0]}")
        else:
            say(f"    {index + 1}. WRONG     expected {want[0]!r}, found {got.splitlines()[0]!r}")


async def headless(setup: Setup, speed: float | None) -> int:
    """Replay, tour, wait for the sync worker, and check every note on its ticket."""
    say(f"== Replay: {len(setup.payloads)} deliveries from {setup.fixtures}")
    pauses = delays(setup.payloads, speed)
    width = max(len(p.name) for p in setup.payloads)
    async with Sender(setup.receiver.url, Auth(secret=setup.webhook_secret)) as sender:
        try:
            results = await paced_replay(
                setup.payloads, pauses, sender, lambda r: say("  " + progress_line(r, width))
            )
        except Unreachable as exc:
            raise DemoError(str(exc)) from None
    say(f"  {status_counts(results)}")
    if not all(r.ok for r in results):
        say("✗ the receiver refused deliveries (above); the tour needs them all")
        return EXIT_FAILED

    tour = Tour(setup)
    try:
        say("\n== Tour through the operator API")
        a, b = await tour.pick(results)
        await tour.run(a, b)
        total = sum(len(e.patterns) for e in tour.expect)
        say(f"\n== Notes arriving on the tickets ({total} expected, read back from the sandbox)")
        idle = await tour.watch()
        dead = await tour.dead_jobs()
        say("\n== Sync log")
        await tour.print_sync_log()
        say()
        print_summary(tour.expect)
    finally:
        await tour.aclose()
    problems = [e for e in tour.expect if not e.complete]
    for expect in problems:
        explain(expect)
    for job in dead:
        say(f"✗ sync job {job.id} to {job.ticket_key} is dead: {job.last_error}")
    if problems or dead or not idle:
        say("Demo FAILED: not every note reached its ticket exactly once and in order.")
        return EXIT_FAILED
    say(
        f"Demo passed: {total} notes on {len(tour.expect)} tickets, each exactly once and in order."
    )
    return EXIT_OK
