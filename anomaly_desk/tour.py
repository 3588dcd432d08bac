"""The headless demo's tour: drive the operator API as a person would, then prove every note.

Creates a Jira issue and a ServiceNow incident, links an existing ticket of each kind,
acknowledges, comments and archives, waits for the sync worker, and reads every note back from
the sandbox's own REST APIs: exactly once each, in order, or the demo fails. Then the platform's
side: the import at start is done, and the platform accepted each toured anomaly's write-back
(acknowledge, the comment, the archive's comment, the archive) exactly once each, in that order,
as its own log of accepted calls shows (``GET /_sandbox/platform/writes``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pydantic

from anomaly_desk.core.views import ImportProgressView
from anomaly_desk.core.vocabulary import PLATFORM as PLATFORM_QUEUE
from anomaly_desk.demo_setup import (
    EXIT_FAILED,
    EXIT_OK,
    IMPORT_TIMEOUT_S,
    JIRA_LOGIN,
    PLATFORM,
    PLATFORM_CONTROL,
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


# -- the platform's side: the write calls it accepted ----------------------------------------

Call = dict[str, Any]  # one item of GET /_sandbox/platform/writes


def call_text(call: Call) -> str:
    """``status Acknowledged  (PUT /api/anomalies/10233)``: what a write call did, and how."""
    method, path = str(call.get("method")), str(call.get("path"))
    body, query = call.get("body"), call.get("query")
    query = query if isinstance(query, dict) else {}
    how = f"{method} {path}" + (
        "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    )
    if method == "PUT" and isinstance(body, dict) and "status" in body:
        return f"status {body['status']}  ({how})"
    if method == "POST" and isinstance(body, dict) and "message" in body:
        return f"comment: {body['message']}  ({how})"
    if method == "DELETE" and "status" in query:
        return f"archived as {query['status']}  ({how})"
    return how


def is_acknowledge(anomaly_id: int) -> Callable[[Call], bool]:
    return lambda c: (
        c.get("method") == "PUT"
        and c.get("path") == f"/api/anomalies/{anomaly_id}"
        and c.get("body") == {"status": "Acknowledged"}
    )


def is_comment(anomaly_id: int, text: str) -> Callable[[Call], bool]:
    return lambda c: (
        c.get("method") == "POST"
        and c.get("path") == "/api/comments"
        and c.get("body") == {"message": text, "anomaly_id": anomaly_id}
    )


def is_archive(anomaly_id: int, status: str) -> Callable[[Call], bool]:
    return lambda c: (
        c.get("method") == "DELETE"
        and c.get("path") == f"/api/anomalies/{anomaly_id}"
        and c.get("query") == {"archive": "true", "status": status}
    )


@dataclass
class PlatformExpect:
    """One toured anomaly and the write calls the platform must have accepted, in order."""

    anomaly_id: int
    step: Step
    calls: list[Call] = field(default_factory=list)

    @property
    def wanted(self) -> list[tuple[str, Callable[[Call], bool]]]:
        i, step = self.anomaly_id, self.step
        return [
            ("status Acknowledged  (PUT)", is_acknowledge(i)),
            (f"comment: {step.comment}  (POST)", is_comment(i, step.comment)),
            (f"comment: {step.archive_comment}  (POST)", is_comment(i, step.archive_comment)),
            (
                f"archived as {step.archive_as}  (DELETE ?archive=true)",
                is_archive(i, step.archive_as),
            ),
        ]

    @property
    def complete(self) -> bool:
        wanted = self.wanted
        return len(self.calls) == len(wanted) and all(
            matches(call) for (_, matches), call in zip(wanted, self.calls, strict=True)
        )


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
        self.control = httpx.AsyncClient(base_url=setup.sandbox.url, timeout=10.0)
        self.receiver = httpx.AsyncClient(base_url=setup.receiver.url, timeout=10.0)
        self.expect: list[Expect] = []
        self.platform: list[PlatformExpect] = []

    async def aclose(self) -> None:
        await asyncio.gather(
            self.desk.aclose(),
            self.jira.aclose(),
            self.snow.aclose(),
            self.control.aclose(),
            self.receiver.aclose(),
        )

    @property
    def ours(self) -> set[int]:
        """The toured anomalies: their ticket notes and their platform write-back."""
        return {e.anomaly_id for e in self.expect} | {p.anomaly_id for p in self.platform}

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
        self.platform = [PlatformExpect(i, step) for i, step in steps.items()]
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
        """The toured anomalies' jobs still to deliver: ticket notes and platform write-back."""
        ours = self.ours
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
                say(f"✗ the sync worker still had {len(pending)} jobs pending after {within_s:g} s")
                return False
            await asyncio.sleep(0.1)

    async def dead_jobs(self) -> list[SyncJobView]:
        """Dead jobs of the toured anomalies, and every dead job on the platform's queue."""
        ours = self.ours
        jobs = await self.call("reading sync jobs", self.desk.sync_jobs(state="dead"))
        return [j for j in jobs if j.anomaly_id in ours or j.connection == PLATFORM_QUEUE]

    # -- the platform's side ----------------------------------------------------------------

    async def imported(self, within_s: float = IMPORT_TIMEOUT_S) -> ImportProgressView | None:
        """The receiver's import at start once done (None: not done in time, or it failed)."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                response = await self.receiver.get("/api/import")
                view = (
                    ImportProgressView.model_validate_json(response.content)
                    if response.status_code == 200
                    else None
                )
            except (httpx.HTTPError, pydantic.ValidationError) as exc:
                raise DemoError(f"reading the import's progress: {exc}") from None
            if view is not None and view.done:
                return view
            if view is not None and view.error:
                say(f"✗ the import from the platform stopped: {view.error}")
                return None
            if time.monotonic() > deadline:
                say(f"✗ the import from the platform was not done after {within_s:g} s")
                return None
            await asyncio.sleep(0.1)

    async def writes(self, anomaly_id: int) -> list[Call]:
        """The write calls the platform accepted for the anomaly, in the order it got them."""
        try:
            response = await self.control.get(
                f"{PLATFORM_CONTROL}/writes", params={"anomaly_id": anomaly_id}
            )
            response.raise_for_status()
            items = response.json()["items"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise DemoError(f"reading the platform's writes for {anomaly_id}: {exc}") from None
        return [item for item in items if isinstance(item, dict)]

    async def check_platform(self) -> None:
        """Read each toured anomaly's accepted writes and print those that are as expected."""
        for expect in self.platform:
            expect.calls = await self.writes(expect.anomaly_id)
            for (_, matches), call in zip(expect.wanted, expect.calls, strict=False):
                if not matches(call):
                    break
                say(f"✓ {expect.anomaly_id!s:<11} {call_text(call)}")

    async def print_sync_log(self) -> None:
        ours = self.ours
        entries = await self.call("reading the sync log", self.desk.sync_log(limit=1000))
        for entry in entries:
            if entry.anomaly_id not in ours:
                continue
            at = entry.at[11:19]
            message = f"  {entry.message}" if entry.message else ""
            where = entry.ticket_key
            if entry.connection == PLATFORM_QUEUE:  # the platform's queue: the anomaly itself
                where = f"{PLATFORM_QUEUE} {entry.anomaly_id}"
            say(
                f"  #{entry.id:<3} {at}  {where:<14} {entry.kind:<8} "
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


def print_platform_summary(platform: Sequence[PlatformExpect], imported: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    caption = f"{imported} anomalies imported at start" if imported is not None else "no import"
    table = Table(
        title=f"Platform write-back ({PLATFORM})",
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    for column in ("Anomaly", "Writes expected, in order", "Accepted", "Result"):
        table.add_column(column)
    for p in platform:
        table.add_row(
            str(p.anomaly_id),
            f"acknowledge, 2 comments, archive as {p.step.archive_as}",
            f"{len(p.calls)}/{len(p.wanted)}",
            "ok" if p.complete else "MISSING",
        )
    Console(highlight=False, soft_wrap=False).print(table)


def explain_platform(expect: PlatformExpect) -> None:
    """What is missing, extra or out of order among one anomaly's accepted platform writes."""
    wanted = expect.wanted
    say(
        f"✗ {PLATFORM} anomaly {expect.anomaly_id}: expected {len(wanted)} accepted writes in "
        "this order, found:"
    )
    for index in range(max(len(wanted), len(expect.calls))):
        want = wanted[index] if index < len(wanted) else None
        got = expect.calls[index] if index < len(expect.calls) else None
        if got is None:
            say(f"    {index + 1}. MISSING   {want[0] if want else ''}")
        elif want is None:
            say(f"    {index + 1}. EXTRA     {call_text(got)}")
        elif want[1](got):
            say(f"    {index + 1}. ok        {call_text(got)}")
        else:
            say(f"    {index + 1}. WRONG     expected {want[0]!r}, found {call_text(got)!r}")


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
        writes = sum(len(p.wanted) for p in tour.platform)
        say(
            f"\n== {PLATFORM}: the import at start and {writes} write-backs (read back from the "
            "platform's log of accepted calls)"
        )
        imported = await tour.imported()
        if imported is not None:
            changes = (
                f"{imported.created} new, {imported.updated} updated, {imported.unchanged} "
                "unchanged"
            )
            say(f"✓ imported {imported.total} anomalies from the platform ({changes})")
        await tour.check_platform()
        dead = await tour.dead_jobs()
        say("\n== Sync log")
        await tour.print_sync_log()
        say()
        print_summary(tour.expect)
        print_platform_summary(tour.platform, imported.total if imported else None)
    finally:
        await tour.aclose()
    problems = [e for e in tour.expect if not e.complete]
    for expect in problems:
        explain(expect)
    platform_problems = [p for p in tour.platform if not p.complete]
    for platform in platform_problems:
        explain_platform(platform)
    for job in dead:
        if job.connection == PLATFORM_QUEUE:
            say(
                f"✗ platform job {job.id} ({job.kind}) for anomaly {job.anomaly_id} is dead: "
                f"{job.last_error}"
            )
        else:
            say(f"✗ sync job {job.id} to {job.ticket_key} is dead: {job.last_error}")
    if problems or platform_problems or dead or not idle or imported is None:
        failed = []
        if problems or any(j.connection != PLATFORM_QUEUE for j in dead):
            failed.append("not every note reached its ticket exactly once and in order")
        if platform_problems or any(j.connection == PLATFORM_QUEUE for j in dead):
            failed.append("not every write-back reached the platform exactly once and in order")
        if not idle:
            failed.append(f"the sync worker was not done within {SETTLE_TIMEOUT_S:g} s")
        if imported is None:
            failed.append("the import from the platform did not finish")
        say(f"Demo FAILED: {'; '.join(failed)}.")
        return EXIT_FAILED
    say(
        f"Demo passed: {total} notes on {len(tour.expect)} tickets and {writes} writes to "
        f"{PLATFORM} for {len(tour.platform)} anomalies, each exactly once and in order; "
        f"{imported.total} anomalies imported from the platform."
    )
    return EXIT_OK
