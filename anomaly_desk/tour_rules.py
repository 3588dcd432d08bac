"""The headless tour's rules step: the tickets ``[[rules]]`` raised, proved in the sandbox.

The demo's two rules (``demo.write_config``) fire while anomalies are first stored, during the
import at start and the replay. Once their jobs are done, each rule's ticket must exist exactly
once in the sandbox, found by the integration's own mark (Jira label ``anomaly-<id>``, ServiceNow
``correlation_id``), be of the rule's type (Bug, problem) and, where the type has a reporter, be
raised for the operator; every anomaly the rule took must be linked to it exactly once, and each
one the dedup joined to an earlier anomaly's ticket must have its note there exactly once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from anomaly_desk.demo_setup import OPERATOR, RULE_TYPES, SETTLE_TIMEOUT_S, DemoError, say

if TYPE_CHECKING:
    from anomaly_desk.core.views import RuleView, SyncJobView, TicketLinkView
    from anomaly_desk.tour import Tour

RULE_LINK = "rule:"  # a rule's new-ticket job names its link "rule:<name>"


def joined_note(anomaly_id: int, rule: str) -> str:
    """How the note a rule's dedup leaves on the shared ticket begins."""
    return f"Anomaly {anomaly_id} matched rule {rule!r}"


@dataclass
class RuleTicket:
    """One ticket a rule created, the anomalies linked to it, and what the sandbox shows."""

    rule: str
    link: TicketLinkView  # as linked to the anomaly it was created for
    created_for: list[int] = field(default_factory=list)  # exactly one when all is well
    joined: list[int] = field(default_factory=list)  # linked by the dedup, with a note each
    marked: list[str] = field(default_factory=list)  # keys carrying the created-for mark
    type_name: str = ""
    summary: str = ""
    raised_for: str | None = None  # Jira: the reporter's email; ServiceNow problem: none
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.link.ticket_key

    def noted(self, anomaly_id: int) -> int:
        start = joined_note(anomaly_id, self.rule)
        return sum(1 for note in self.notes if note.startswith(start))

    def problems(self) -> list[str]:
        out: list[str] = []
        if len(self.created_for) != 1:
            out.append(f"created for {len(self.created_for)} anomalies, not one")
        if self.marked != [self.key]:
            out.append(f"the sandbox has {self.marked or 'no'} ticket(s) with the mark, not once")
        wanted = RULE_TYPES.get(self.rule)
        if wanted is not None and self.type_name != wanted:
            out.append(f"type {self.type_name!r}, not {wanted!r}")
        if self.link.provider == "jira" and self.raised_for != OPERATOR:
            out.append(f"reporter {self.raised_for!r}, not {OPERATOR}")
        for anomaly_id in self.joined:
            if (count := self.noted(anomaly_id)) != 1:
                out.append(f"the note for anomaly {anomaly_id} is there {count} times")
        return out

    @property
    def complete(self) -> bool:
        return not self.problems()


@dataclass
class RulesCheck:
    """What the rules did, as the desk and the sandbox show it."""

    views: list[RuleView] = field(default_factory=list)
    tickets: list[RuleTicket] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # beyond one ticket's

    @property
    def anomalies(self) -> int:
        return sum(len(t.created_for) + len(t.joined) for t in self.tickets)

    @property
    def complete(self) -> bool:
        return not self.problems and bool(self.tickets) and all(t.complete for t in self.tickets)


class RulesStep:
    """Wait for the rules' jobs, then read their tickets back from the desk and the sandbox."""

    def __init__(self, tour: Tour) -> None:
        self.tour = tour
        self.result = RulesCheck()

    async def settled(self, within_s: float = SETTLE_TIMEOUT_S) -> list[SyncJobView]:
        """The rules' jobs once none (nor a note of their anomalies) is pending; late ones are
        a problem, not a wait without end."""
        deadline = time.monotonic() + within_s
        while True:
            jobs = await self.tour.call("reading sync jobs", self.tour.desk.sync_jobs())
            ours = [j for j in jobs if j.link_id.startswith(RULE_LINK)]
            ids = {j.anomaly_id for j in ours}
            pending = [j for j in jobs if j.state == "pending" and j.anomaly_id in ids]
            if not pending:
                return ours
            if time.monotonic() > deadline:
                self.result.problems.append(
                    f"{len(pending)} jobs of the rules' anomalies still pending after {within_s:g} s"
                )
                return ours
            await asyncio.sleep(0.1)

    async def run(self) -> RulesCheck:
        jobs = await self.settled()
        result = self.result
        for job in jobs:
            if job.state == "dead":
                result.problems.append(f"rule job {job.id} for anomaly {job.anomaly_id} is dead")
        result.views = await self.tour.call("reading the rules", self.tour.desk.rules())
        by_key: dict[tuple[str, str], RuleTicket] = {}
        for job in sorted(jobs, key=lambda j: j.id):
            rule = job.link_id.removeprefix(RULE_LINK)
            detail = await self.tour.call(
                f"reading anomaly {job.anomaly_id}", self.tour.desk.anomaly(job.anomaly_id)
            )
            links = [link for link in detail.links if link.connection == job.connection]
            if len(links) != 1:
                result.problems.append(
                    f"anomaly {job.anomaly_id} has {len(links)} {job.connection} tickets, not one"
                )
                continue
            link = links[0]
            ticket = by_key.setdefault((rule, link.ticket_key), RuleTicket(rule, link))
            if link.origin == "created":
                ticket.link = link
                ticket.created_for.append(job.anomaly_id)
            else:
                ticket.joined.append(job.anomaly_id)
        result.tickets = list(by_key.values())
        try:
            await asyncio.gather(*(self.read_back(t) for t in result.tickets))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise DemoError(f"reading the rules' tickets back from the sandbox: {exc!r}") from None
        for view in result.views:
            made = [t for t in result.tickets if t.rule == view.name]
            if not made:
                result.problems.append(f"rule {view.name!r} made no ticket")
            created = sum(len(t.created_for) for t in made)
            linked = sum(len(t.joined) for t in made)
            if (view.created, view.linked) != (created, linked):
                result.problems.append(
                    f"rule {view.name!r} counts {view.created} created, {view.linked} linked; "
                    f"the desk shows {created} and {linked}"
                )
        return result

    async def read_back(self, ticket: RuleTicket) -> None:
        """The ticket, its notes, and every ticket carrying its anomaly's mark, from the
        provider's own API."""
        ticket.notes = await self.tour.notes(ticket.link)
        if not ticket.created_for:
            return
        anomaly_id = ticket.created_for[0]
        if ticket.link.provider == "jira":
            found = await self.tour.jira.get(
                "/rest/api/3/search/jql",
                params={"jql": f'labels = "anomaly-{anomaly_id}"', "fields": "summary"},
            )
            found.raise_for_status()
            ticket.marked = [str(issue["key"]) for issue in found.json()["issues"]]
            response = await self.tour.jira.get(f"/rest/api/3/issue/{ticket.key}")
            response.raise_for_status()
            fields: dict[str, Any] = response.json()["fields"]
            ticket.type_name = str(fields["issuetype"]["name"])
            ticket.summary = str(fields.get("summary") or "")
            reporter = fields.get("reporter")
            ticket.raised_for = reporter.get("emailAddress") if isinstance(reporter, dict) else None
            return
        table = ticket.link.table or "incident"
        response = await self.tour.snow.get(
            f"/api/now/table/{table}",
            params={"sysparm_query": f"correlation_id={anomaly_id}", "sysparm_limit": 10},
        )
        response.raise_for_status()
        rows = response.json()["result"]
        ticket.marked = [str(row["number"]) for row in rows]
        ticket.type_name = table
        ticket.summary = next(
            (str(r["short_description"]) for r in rows if r["number"] == ticket.key), ""
        )


def report(result: RulesCheck) -> None:
    """A ✓ (or ✗) line per ticket and per anomaly joined to it."""
    for ticket in result.tickets:
        problems = ticket.problems()
        mark = "✗" if problems else "✓"
        created = ", ".join(str(i) for i in ticket.created_for) or "no anomaly"
        who = f", reporter {ticket.raised_for}" if ticket.raised_for else ""
        say(
            f"{mark} {ticket.key:<11} {ticket.type_name} for anomaly {created} by rule "
            f"{ticket.rule!r}, once{who}: {ticket.summary}"
        )
        for anomaly_id in ticket.joined:
            note = next(
                (n for n in ticket.notes if n.startswith(joined_note(anomaly_id, ticket.rule))),
                "",
            )
            ok = ticket.noted(anomaly_id) == 1
            say(f"{'✓' if ok else '✗'} {ticket.key:<11} linked {anomaly_id}, noted: {note}")
        for problem in problems:
            say(f"    {problem}")
    for problem in result.problems:
        say(f"✗ {problem}")


def print_rules_summary(result: RulesCheck) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Rules: tickets raised without a key pressed", title_justify="left")
    for column in ("Rule", "Ticket", "Type", "Created for", "Linked (dedup, noted)", "Result"):
        table.add_column(column)
    for t in result.tickets:
        table.add_row(
            t.rule,
            t.key,
            t.type_name,
            ", ".join(str(i) for i in t.created_for),
            ", ".join(str(i) for i in t.joined) or "-",
            "ok" if t.complete else "MISSING",
        )
    Console(highlight=False, soft_wrap=False).print(table)


# -- the operator: who the tour's own tickets are raised for ----------------------------------


@dataclass
class RaisedFor:
    """One ticket the tour created and who it names: Jira's reporter, ServiceNow's caller."""

    link: TicketLinkView
    who: str | None = None

    @property
    def ok(self) -> bool:
        return self.who == OPERATOR and not self.link.warnings

    def line(self) -> str:
        role = "reporter" if self.link.provider == "jira" else "caller"
        warnings = f" (warnings: {'; '.join(self.link.warnings)})" if self.link.warnings else ""
        return f"{'✓' if self.ok else '✗'} {self.link.ticket_key:<11} {role} {self.who}{warnings}"


async def raised_for(tour: Tour, link: TicketLinkView) -> RaisedFor:
    """The ticket's reporter or caller, as its own API names them (an email address)."""
    try:
        if link.provider == "jira":
            response = await tour.jira.get(f"/rest/api/3/issue/{link.ticket_key}")
            response.raise_for_status()
            reporter = response.json()["fields"].get("reporter")
            who = reporter.get("emailAddress") if isinstance(reporter, dict) else None
            return RaisedFor(link, who)
        table = link.table or "incident"
        response = await tour.snow.get(f"/api/now/table/{table}/{link.ticket_id}")
        response.raise_for_status()
        caller = response.json()["result"].get("caller_id")
        sys_id = caller.get("value") if isinstance(caller, dict) else caller
        if not sys_id:
            return RaisedFor(link, None)
        user = await tour.snow.get(f"/api/now/table/sys_user/{sys_id}")
        user.raise_for_status()
        return RaisedFor(link, str(user.json()["result"].get("email") or "") or None)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise DemoError(f"reading who {link.ticket_key} is raised for: {exc!r}") from None
