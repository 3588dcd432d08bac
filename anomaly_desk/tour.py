"""The headless demo's tour: drive the operator API as a person would, then prove every note.

First the rules' tickets (``tour_rules``): each exists once in the sandbox, every anomaly a rule
took is linked to it, and each one its dedup joined has its note there once.

Then creates a Jira issue and a ServiceNow incident (raised for the operator: reporter, caller),
links an existing ticket of each kind,
acknowledges, comments and archives, waits for the sync worker, and reads every note back from
the sandbox's own REST APIs: exactly once each, in order, or the demo fails. Then the platform's
side: the import at start is done, and the platform accepted each toured anomaly's write-back
(acknowledge, the comment, the archive's comment, the archive) exactly once each, in that order,
as its own log of accepted calls shows (``GET /_sandbox/platform/writes``).

Last, two-way sync: on a third anomaly's Jira issue a person (alice, through Jira's own API, with
her own account) comments and moves the issue to Done. The desk, polling every ``POLL_S``, must
archive the anomaly as Resolved, take her comment once, pass both on to the platform once, and
send nothing back to the issue; and the desk's own notes must never have come back as comments.
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
    JIRA_PERSON,
    OPERATOR,
    PLATFORM,
    PLATFORM_CONTROL,
    POLL_S,
    SERVICENOW_LOGIN,
    SETTLE_TIMEOUT_S,
    TWO_WAY_TIMEOUT_S,
    DemoError,
    Setup,
    say,
)
from anomaly_desk.pacing import delays, paced_replay
from anomaly_desk.replay import Auth, Result, Sender, Unreachable, progress_line, status_counts
from anomaly_desk.tour_rules import (
    RaisedFor,
    RulesCheck,
    RulesStep,
    print_rules_summary,
    raised_for,
    report,
)

if TYPE_CHECKING:
    from anomaly_desk.core.views import AnomalyDetail, SyncJobView, TicketLinkView

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


def templated_status_pattern(anomaly_id: int, status: str) -> tuple[str, re.Pattern[str]]:
    """ServiceNow's status note, from the demo config's ``status_note`` template."""
    note = f"{PLATFORM} anomaly {anomaly_id} is now {status}"
    return (
        f"{note} (<time> UTC)",
        re.compile(re.escape(note) + r" \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)"),
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


# -- two-way: a person works a ticket, the desk follows --------------------------------------

PERSON = JIRA_PERSON[0].partition("@")[0]  # "alice"
PERSON_SAYS = f"Looking at the loader now — {PERSON}"


@dataclass
class Check:
    """One thing the two-way step must show: its ✓ line, and what was found when it fails."""

    line: str
    short: str  # its row in the summary
    ok: bool
    details: list[str] = field(default_factory=list)  # printed under the line (ok or not)


@dataclass
class TwoWay:
    """The third toured anomaly: a person comments on its Jira issue and moves it to Done. The
    desk must archive the anomaly as Resolved by that issue, take the comment once, pass both on
    to the platform once each, and send nothing back to the issue."""

    anomaly_id: int
    link: TicketLinkView
    own: dict[int, list[str]]  # the other toured anomalies' comments, all made in the desk
    before: list[str] = field(default_factory=list)  # the issue's comments before the person
    after: list[str] = field(default_factory=list)  # ... and once the desk followed
    detail: AnomalyDetail | None = None
    writes: list[Call] = field(default_factory=list)
    others: dict[int, list[str]] = field(default_factory=dict)  # their comments, read again
    followed_s: float | None = None  # how long the desk took to show it all (None: not in time)

    @property
    def key(self) -> str:
        return self.link.ticket_key

    def archived(self) -> Check:
        line = (
            f"{self.key} {PERSON} moved it to Done → anomaly {self.anomaly_id} archived as Resolved"
        )
        short = f"Done → archived as Resolved, by {self.key}"
        detail = self.detail
        if detail is None:
            return Check(line, short, False, ["the anomaly could not be read"])
        changes = [h for h in detail.history if h.kind == "status"]
        last = changes[-1] if changes else None
        by = last.by if last is not None else None
        ok = (
            detail.status == "Resolved"
            and last is not None
            and last.to == "Resolved"
            and by is not None
            and re.fullmatch(re.escape(self.key) + r" \(.+\)", by) is not None
        )
        if last is None:
            details = [f"status {detail.status}, no status change in its history"]
            return Check(line, short, ok, details)
        return Check(line, short, ok, [f"history: {last.from_} → {last.to} by {by}"])

    def commented(self) -> Check:
        line = f"{PERSON}'s comment is on the anomaly, once"
        comments = self.detail.comments if self.detail is not None else []
        theirs = [c for c in comments if c.text == PERSON_SAYS]
        ok = (
            len(comments) == 1
            and len(theirs) == 1
            and (theirs[0].by or "").startswith(f"from {self.key} (")
            and theirs[0].origin == self.link.id
        )
        short = f"{PERSON}'s comment on the anomaly, once"
        if not comments:
            return Check(line, short, ok, ["the anomaly has no comments"])
        return Check(line, short, ok, [f"{c.by}: {c.text}" for c in comments])

    def on_platform(self) -> Check:
        line = "the platform archived it too"
        i = self.anomaly_id
        comments = [
            c
            for c in self.writes
            if c.get("method") == "POST"
            and c.get("path") == "/api/comments"
            and isinstance(c.get("body"), dict)
            and str(c["body"].get("message", "")).startswith(PERSON_SAYS)
            and c["body"].get("anomaly_id") == i
        ]
        archives = [c for c in self.writes if is_archive(i, "Resolved")(c)]
        ok = len(comments) == 1 and len(archives) == 1 and len(self.writes) == 2
        found = [call_text(c).replace("\n", " ") for c in self.writes] or ["no write calls"]
        return Check(line, f"{PLATFORM}: comment + archive, once each", ok, found)

    def not_echoed(self) -> Check:
        line = f"nothing was echoed back to {self.key}: its comments are {PERSON}'s only"
        ok = self.after == [*self.before, PERSON_SAYS]
        found = [n.splitlines()[0] for n in self.after] or ["no comments"]
        short = f"nothing echoed to {self.key}"
        return Check(line, short, ok, [] if ok else [f"found: {found}"])

    def own_notes_stayed(self) -> Check:
        ids = " and ".join(str(i) for i in self.own)
        line = f"our own notes did not come back: {ids} have only the comments made in the desk"
        ok = self.others == self.own
        details = [] if ok else [f"{i}: {self.others.get(i)}" for i in self.own]
        return Check(line, "the desk's own notes not taken back", ok, details)

    def checks(self) -> list[Check]:
        return [
            self.archived(),
            self.commented(),
            self.on_platform(),
            self.not_echoed(),
            self.own_notes_stayed(),
        ]

    @property
    def complete(self) -> bool:
        return self.followed_s is not None and all(c.ok for c in self.checks())


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
        # a person, not the desk: her own account, through Jira's ordinary API
        self.person = httpx.AsyncClient(base_url=setup.sandbox.url, auth=JIRA_PERSON, timeout=10.0)
        self.expect: list[Expect] = []
        self.platform: list[PlatformExpect] = []
        self.two_way: TwoWay | None = None
        self.steps: dict[int, Step] = {}
        self.created: list[TicketLinkView] = []  # the tour's own creates (raised for OPERATOR)

    async def aclose(self) -> None:
        await asyncio.gather(
            self.desk.aclose(),
            self.jira.aclose(),
            self.snow.aclose(),
            self.control.aclose(),
            self.receiver.aclose(),
            self.person.aclose(),
        )

    @property
    def ours(self) -> set[int]:
        """The toured anomalies: their ticket notes and their platform write-back."""
        ours = {e.anomaly_id for e in self.expect} | {p.anomaly_id for p in self.platform}
        return ours | ({self.two_way.anomaly_id} if self.two_way else set())

    # -- steps -------------------------------------------------------------------------------

    async def call(self, what: str, action: Awaitable[T]) -> T:
        from anomaly_desk.tui.client import ApiError

        try:
            return await action
        except ApiError as exc:
            raise DemoError(f"{what}: the receiver answered {exc.status} {exc.detail}") from None
        except httpx.HTTPError as exc:
            raise DemoError(f"{what}: {type(exc).__name__}: {exc}") from None

    async def pick(self, replayed: Sequence[Result]) -> tuple[int, int, int]:
        """Three active anomalies from this replay that have no tickets yet."""
        ids = {i for r in replayed for i in r.anomalies}
        page = await self.call(
            "listing anomalies", self.desk.list_anomalies(status="Active", limit=500)
        )
        free = sorted(a.id for a in page.items if a.id in ids and not a.tickets)
        if len(free) < 3:
            raise DemoError(
                "the tour needs three active anomalies without tickets; this data directory has "
                f"{len(free)} (run without --data-dir for a fresh one)"
            )
        return free[0], free[1], free[2]

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
        self.created = [jira_a, snow_a]
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
        self.steps = steps
        self.platform = [PlatformExpect(i, step) for i, step in steps.items()]
        for anomaly_id, link in ((a, jira_a), (a, snow_a), (b, jira_b), (b, snow_b)):
            step = steps[anomaly_id]
            templated = link.provider == "servicenow"  # its status_note is a template
            acknowledged, archived = (
                (
                    templated_status_pattern(anomaly_id, "Acknowledged"),
                    templated_status_pattern(anomaly_id, step.archive_as),
                )
                if templated
                else (status_pattern("Acknowledged"), status_pattern(step.archive_as))
            )
            patterns = [
                acknowledged,
                comment_pattern(step.comment),
                archived,
                comment_pattern(step.archive_comment),
            ]
            if link.provider == "servicenow" and link.origin == "linked":
                patterns.insert(0, link_pattern(anomaly_id))
            self.expect.append(Expect(anomaly_id, link, patterns))

    # -- two-way: a person on the ticket -----------------------------------------------------

    async def person_comments(self, key: str, text: str) -> None:
        from anomaly_desk.core.formatting.adf import text_to_adf

        response = await self.person.post(
            f"/rest/api/3/issue/{key}/comment", json={"body": text_to_adf(text)}
        )
        response.raise_for_status()

    async def person_moves_to_done(self, key: str) -> None:
        """The transition into the done category that Jira offers her, with a resolution when
        its screen has one: what a person's click on "Done" sends."""
        response = await self.person.get(
            f"/rest/api/3/issue/{key}/transitions", params={"expand": "transitions.fields"}
        )
        response.raise_for_status()
        offered = response.json()["transitions"]
        done = [t for t in offered if t["to"]["statusCategory"]["key"] == "done"]
        if not done:
            raise DemoError(f"Jira offers {JIRA_PERSON[0]} no transition to done on {key}")
        body: dict[str, Any] = {"transition": {"id": done[0]["id"]}}
        if "resolution" in (done[0].get("fields") or {}):
            body["fields"] = {"resolution": {"name": "Done"}}
        answer = await self.person.post(f"/rest/api/3/issue/{key}/transitions", json=body)
        answer.raise_for_status()

    async def settled(self, anomaly_id: int, within_s: float = SETTLE_TIMEOUT_S) -> None:
        """Until the anomaly has no sync jobs pending (its notes are on the tickets)."""
        deadline = time.monotonic() + within_s
        while await self.call(
            "reading sync jobs", self.desk.sync_jobs(state="pending", anomaly_id=anomaly_id)
        ):
            if time.monotonic() > deadline:
                raise DemoError(f"anomaly {anomaly_id}'s notes still pending after {within_s:g} s")
            await asyncio.sleep(0.1)

    async def read_two_way(self, two_way: TwoWay) -> None:
        """What the desk, the issue and the platform show now."""
        two_way.detail = await self.call(
            f"reading anomaly {two_way.anomaly_id}", self.desk.anomaly(two_way.anomaly_id)
        )
        two_way.writes = await self.writes(two_way.anomaly_id)
        try:
            two_way.after = await self.notes(two_way.link)
        except httpx.HTTPError as exc:
            raise DemoError(f"reading {two_way.key}'s comments: {exc}") from None
        for anomaly_id in two_way.own:
            detail = await self.call(f"reading anomaly {anomaly_id}", self.desk.anomaly(anomaly_id))
            two_way.others[anomaly_id] = [c.text for c in detail.comments]

    async def followed(self, two_way: TwoWay) -> bool:
        """Whether the desk shows it all: archived, her comment, both written to the platform,
        nothing pending."""
        await self.read_two_way(two_way)
        pending = await self.call(
            "reading sync jobs",
            self.desk.sync_jobs(state="pending", anomaly_id=two_way.anomaly_id),
        )
        detail = two_way.detail
        return (
            not pending
            and two_way.archived().ok
            and detail is not None
            and any(c.text == PERSON_SAYS for c in detail.comments)
            and any(is_archive(two_way.anomaly_id, "Resolved")(c) for c in two_way.writes)
            and any(c.get("path") == "/api/comments" for c in two_way.writes)
        )

    async def person_on_ticket(self, anomaly_id: int, within_s: float = TWO_WAY_TIMEOUT_S) -> None:
        """Create the anomaly's Jira issue here; then, as the person, comment on it and move it to
        Done, and wait for the desk to follow (one more poll after, so a double would show)."""
        say(f"  anomaly {anomaly_id}: create a Jira issue")
        link = await self.call(
            "creating a Jira issue",
            self.desk.create_ticket(
                anomaly_id,
                "jira",
                {
                    "summary": f"Anomaly {anomaly_id}: the nightly loader",
                    "description": "Created by the anomaly-desk demo tour, for a person to work.",
                },
            ),
        )
        say(f"    created {link.ticket_key}")
        own = {i: [step.comment, step.archive_comment] for i, step in self.steps.items()}
        two_way = self.two_way = TwoWay(anomaly_id, link, own)
        await self.settled(anomaly_id)
        key = link.ticket_key
        try:
            two_way.before = await self.notes(link)
            say(f"  {JIRA_PERSON[0]}, through Jira's API: comments on {key}, moves it to Done")
            await self.person_comments(key, PERSON_SAYS)
            await self.person_moves_to_done(key)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise DemoError(f"{JIRA_PERSON[0]} working {key} in the sandbox: {exc!r}") from None
        acted = time.monotonic()
        while not await self.followed(two_way):
            if time.monotonic() - acted > within_s:
                say(f"✗ the desk had not followed {key} after {within_s:g} s")
                break
            await asyncio.sleep(0.2)
        else:
            two_way.followed_s = time.monotonic() - acted
            say(
                f"  the desk followed after {two_way.followed_s:.1f} s (it polls every {POLL_S} s);"
                " one more poll, so that anything coming back twice would show"
            )
            await asyncio.sleep(POLL_S + 0.5)
            await self.settled(anomaly_id)
        await self.read_two_way(two_way)
        for check in two_way.checks():
            say(f"{'✓' if check.ok else '✗'} {check.line}")
            for line in check.details:
                say(f"    {line}")

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


def print_two_way_summary(two_way: TwoWay) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Two-way: a person on the ticket", title_justify="left")
    for column in ("Anomaly", "Ticket", f"{PERSON} commented, moved it to Done", "Result"):
        table.add_column(column)
    for check in two_way.checks():
        table.add_row(
            str(two_way.anomaly_id), two_way.key, check.short, "ok" if check.ok else "MISSING"
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
    rules = RulesCheck()
    people: list[RaisedFor] = []
    try:
        say(
            "\n== Rules: tickets raised without a key pressed, at the import and the replay "
            "(read back from the sandbox)"
        )
        rules = await RulesStep(tour).run()
        report(rules)
        say("\n== Tour through the operator API")
        a, b, c = await tour.pick(results)
        await tour.run(a, b)
        people = [await raised_for(tour, link) for link in tour.created]
        say(f"  raised for the operator ({OPERATOR}, operator_email):")
        for person in people:
            say("  " + person.line())
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
        say(
            f"\n== Two-way: a person works a ticket ({JIRA_PERSON[0]} on Jira; the desk reads "
            f"tickets back every {POLL_S} s)"
        )
        await tour.person_on_ticket(c)
        dead = await tour.dead_jobs()
        say("\n== Sync log")
        await tour.print_sync_log()
        say()
        print_rules_summary(rules)
        print_summary(tour.expect)
        print_platform_summary(tour.platform, imported.total if imported else None)
        if tour.two_way is not None:
            print_two_way_summary(tour.two_way)
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
    two_way = tour.two_way
    person_problem = two_way is None or not two_way.complete
    operator_problem = not people or not all(p.ok for p in people)
    if (
        problems
        or platform_problems
        or dead
        or not idle
        or imported is None
        or person_problem
        or not rules.complete
        or operator_problem
    ):
        failed = []
        if not rules.complete:
            failed.append("not every rule's ticket is in the sandbox once, linked and noted")
        if operator_problem:
            failed.append(f"not every ticket the tour created is raised for {OPERATOR}")
        if problems or any(j.connection != PLATFORM_QUEUE for j in dead):
            failed.append("not every note reached its ticket exactly once and in order")
        if platform_problems or any(j.connection == PLATFORM_QUEUE for j in dead):
            failed.append("not every write-back reached the platform exactly once and in order")
        if not idle:
            failed.append(f"the sync worker was not done within {SETTLE_TIMEOUT_S:g} s")
        if imported is None:
            failed.append("the import from the platform did not finish")
        if person_problem:
            where = two_way.key if two_way is not None else "the Jira issue"
            failed.append(
                f"not everything {PERSON} did on {where} came back to the anomaly and "
                f"{PLATFORM} exactly once within {TWO_WAY_TIMEOUT_S:g} s with nothing echoed"
            )
        say(f"Demo FAILED: {'; '.join(failed)}.")
        return EXIT_FAILED
    assert two_way is not None  # person_problem otherwise
    say(
        f"Demo passed: {len(rules.tickets)} tickets raised by {len(rules.views)} rules for "
        f"{rules.anomalies} anomalies, each once and linked; "
        f"{total} notes on {len(tour.expect)} tickets and {writes} writes to "
        f"{PLATFORM} for {len(tour.platform)} anomalies, each exactly once and in order; "
        f"{imported.total} anomalies imported from the platform; {PERSON}'s comment and Done "
        f"on {two_way.key} came to anomaly {two_way.anomaly_id} and {PLATFORM} once each, "
        "and nothing was echoed."
    )
    return EXIT_OK
