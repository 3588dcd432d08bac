"""The rules at work: jobs when anomalies arrive, tickets (or links) when the jobs run.

Durability, and why each step is where it is:

* **Matching is part of storing.** :meth:`RuleRunner.plan` runs inside the delivery's (or import
  page's) transaction: a matched new anomaly, its ``new_ticket`` job and the rule's counters and
  token bucket are written together, so a crash never keeps one without the other.
* **One queue per rule and dedup key.** The job's queue is named by them, so two anomalies that
  share a ticket are created one after the other and the second sees the first's ticket (kept in
  the rule's state, written in the same transaction as the link).
* **Never doubled.** The worker marks the job in flight before it runs. After a crash the next
  attempt first looks for a link made since the job (``Desk.created_for``), then asks the
  provider for a ticket this integration made for the anomaly (``find_created``: Jira label,
  ServiceNow correlation_id) and links that one instead of creating another.
* **Pausing.** A refusal for good (401/403/400, the worker's dead outcome) counts against the
  rule; ``pause_after`` in a row pause it with the provider's words. A paused rule makes no jobs
  (matches are counted as skipped) and its waiting jobs go dead until it is resumed, which sets
  them going again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence

from anomaly_desk.core.documents import (
    AnomalyDocument,
    RuleState,
    RuleTicket,
    SyncJob,
    TicketLink,
    job_reset,
    new_ticket_job,
)
from anomaly_desk.core.events import EventBus
from anomaly_desk.core.ingest import now_iso
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.operations import (
    Conflict,
    Desk,
    NotFound,
    OperationError,
    RateLimited,
    UpstreamUnavailable,
)
from anomaly_desk.core.outbox import Outbox
from anomaly_desk.core.providers import (
    NotFoundError,
    Provider,
    ProviderError,
    RateLimitedError,
    Ticket,
    UnavailableError,
)
from anomaly_desk.core.providers.servicenow_tables import spec_for
from anomaly_desk.core.rules import DEDUP_REASONS, Rule, dedup_key, matches, take_token
from anomaly_desk.core.store import Delete, Op, Put, Store, StoreFailed
from anomaly_desk.core.templates import render_ticket_text
from anomaly_desk.core.views import RulePage, RuleView, SyncJobView
from anomaly_desk.core.vocabulary import EventName, JobKind, JobState

log = logging.getLogger(__name__)

PAUSED_BY_OPERATOR, PAUSED_BY_FAILURES = "operator", "failures"
REQUIRED_TITLE = {"jira": "summary", "servicenow": "short_description"}


class RulePaused(ProviderError):
    """The rule was paused while this job waited: it goes dead, uncounted, until resumed."""


def queue_key(rule: str, key: str) -> str:
    """The ``ticket_key`` of a rule's job: its queue is the rule's and the dedup key's."""
    return f"rule:{rule}:{key}"


def _done(ticket: Ticket) -> bool:
    """Jira: status category done; ServiceNow: a done state of the record's table (incident
    Resolved/Closed, change Closed/Canceled, a task's Closed Complete/Incomplete/Skipped…)."""
    if (ticket.state_category or "").lower() == "done":
        return True
    code = ticket.extra.get("state_code")
    if ticket.table is not None and code is not None:
        return str(code) in spec_for(ticket.table).done
    return ticket.state in ("Resolved", "Closed")


def ticket_row(rule: str, key: str) -> str:
    """A ``rule_tickets`` key: the rule's name and the dedup key (a name never holds a newline)."""
    return f"{rule}\n{key}"


class RuleRunner:
    """The configured rules, their durable state (the store's ``rules`` table) and their jobs."""

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        bus: EventBus,
        rules: Sequence[Rule],
        providers: Mapping[str, Provider],
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.bus = bus
        self.providers = providers  # shared with the desk: a reload swaps clients in it
        self.wake = wake  # the worker's: look at the queues again (resumed jobs)
        self.rules: dict[str, Rule] = {}
        self.configure(rules)
        store.on_commit(self._committed)  # every change of a rule's state becomes an event

    def configure(self, rules: Sequence[Rule]) -> None:
        """The rules as configured now (at start, after a reload); their state stays."""
        self.rules = {rule.name: rule for rule in rules}

    # -- state and views -------------------------------------------------------------------------

    def state(self, name: str) -> RuleState:
        return self.store.rule_state(name) or RuleState(name=name)

    def ticket_for(self, rule: str, key: str) -> RuleTicket | None:
        """The rule's last ticket for a dedup key (what a later anomaly with the key joins)."""
        raw = self.store.get("rule_tickets", ticket_row(rule, key))
        return None if raw is None else RuleTicket.model_validate(raw)

    def rule(self, name: str) -> Rule:
        rule = self.rules.get(name)
        if rule is None:
            known = ", ".join(sorted(self.rules)) or "none configured"
            raise NotFound(f"no rule named {name!r} (known: {known})")
        return rule

    def view(self, rule: Rule, state: RuleState | None = None) -> RuleView:
        return rule_view(rule, state or self.state(rule.name))

    def page(self) -> RulePage:
        """Every configured rule, in the configuration's order."""
        return RulePage(items=[self.view(rule) for rule in self.rules.values()])

    def paused(self) -> list[RuleView]:
        return [view for view in self.page().items if view.paused]

    def _committed(self, ops: list[Op]) -> None:
        """The store's post-commit hook: a rule whose state changed is published as it is now."""
        if not self.bus.subscribers:
            return
        for op in ops:
            if op.table == "rules" and not isinstance(op, Delete) and op.key in self.rules:
                state = RuleState.model_validate(op.doc)
                self.bus.publish(EventName.RULE_CHANGED, self.view(self.rules[op.key], state))

    # -- when anomalies are stored ---------------------------------------------------------------

    def plan(
        self, anomalies: Iterable[Anomaly], before: Mapping[int, Anomaly] | None = None
    ) -> list[Op]:
        """For each new anomaly and each rule it matches: a job (a ticket to create or join), or
        a count of why not (throttled, paused). Commit the ops with the anomalies.

        ``before``: anomalies a later delivery completed, as they were when stored thin; a rule
        that matched them then judged them then (it does not fire again)."""
        if not self.rules:
            return []
        now, at = time.time(), now_iso()
        states: dict[str, RuleState] = {}
        ops: list[Op] = []
        for anomaly in anomalies:
            earlier = before.get(anomaly.id) if before else None
            for rule in self.rules.values():
                if not matches(rule.match, anomaly):
                    continue
                if earlier is not None and matches(rule.match, earlier):
                    continue
                state = states.get(rule.name) or self.state(rule.name)
                if state.paused:
                    states[rule.name] = state.model_copy(update={"skipped": state.skipped + 1})
                    log.info(
                        "rule %r: anomaly %d skipped (the rule is paused)", rule.name, anomaly.id
                    )
                    continue
                taken, tokens, tokens_at = take_token(
                    rule.max_per_hour, state.tokens, state.tokens_at, now
                )
                update: dict[str, object] = {"tokens": tokens, "tokens_at": tokens_at}
                if taken:
                    ops.append(self._job(rule, anomaly, at))
                    update["last_fired_at"] = at
                else:
                    update["throttled"] = state.throttled + 1
                    log.info(
                        "rule %r: anomaly %d throttled (max_per_hour = %s)",
                        rule.name,
                        anomaly.id,
                        rule.max_per_hour,
                    )
                states[rule.name] = state.model_copy(update=update)
        ops += [Put("rules", name, state) for name, state in states.items()]
        return ops

    async def release_waiting(self) -> int:
        """Match the rules of anomalies that wait for an enrichment that cannot come (the
        platform's API is not configured any more) against what they have; how many."""
        waiting = self.store.rules_waiting()
        if not waiting:
            return 0
        docs = [doc for i in waiting if (doc := self.store.anomaly_doc(i)) is not None]
        try:
            await self.store.commit(
                [*self.plan(docs), *(Delete("rules_waiting", str(i)) for i in waiting)]
            )
        except StoreFailed as exc:  # they keep waiting: the next start or reload tries again
            log.error("rules: %d anomalies still wait for enrichment: %s", len(waiting), exc)
            return 0
        log.info("rules: %d anomalies waiting for enrichment matched without it", len(waiting))
        return len(waiting)

    def _job(self, rule: Rule, anomaly: Anomaly, at: str) -> Put:
        key = dedup_key(rule.dedup.key, anomaly) if rule.dedup else f"anomaly:{anomaly.id}"
        connection = rule.action.connection
        provider = self.providers.get(connection)
        kind = provider.kind if provider is not None else ""
        text = f"Rule {rule.name!r}: a {connection} ticket for anomaly {anomaly.id}"
        job_id = self.store.next_id("jobs")
        job = new_ticket_job(job_id, anomaly.id, connection, kind, text, uuid.uuid4().hex, at)
        job = job.model_copy(
            update={
                "rule": rule.name,
                "dedup_key": key,
                "ticket_key": queue_key(rule.name, key),
                "link_id": f"rule:{rule.name}",
            }
        )
        return Put("jobs", str(job_id), job)

    # -- when a job runs -------------------------------------------------------------------------

    async def run(self, desk: Desk, job: SyncJob) -> str:
        """Join the open ticket of an earlier anomaly with the same dedup key (link + note), or
        create one; what the sync log says. Raises what the worker retries or buries."""
        rule = self.rules.get(job.rule or "")
        if rule is None:
            raise ProviderError(f"rule {job.rule!r} is no longer configured; nothing created")
        if rule.action.connection != job.connection:  # a reload pointed it elsewhere
            raise ProviderError(
                f"rule {rule.name!r} now makes tickets on {rule.action.connection!r}, not "
                f"{job.connection!r} as when this job was made; nothing created"
            )
        state = self.state(rule.name)
        if state.paused:
            raise RulePaused(
                f"rule {rule.name!r} is paused ({state.paused_reason or 'by the operator'}); "
                "resuming it runs this job again",
                connection=job.connection,
            )
        try:
            joined = await self._join(desk, rule, job, state)
            if joined is not None:
                return joined
            return await self._create(desk, rule, job)
        except Conflict as exc:  # linked already (by a person, or an earlier attempt)
            return exc.detail
        except RateLimited as exc:
            raise RateLimitedError(
                exc.detail, retry_after=exc.retry_after, connection=job.connection
            ) from None
        except UpstreamUnavailable as exc:
            raise UnavailableError(exc.detail, connection=job.connection) from None
        except (OperationError, ProviderError) as exc:
            if isinstance(exc, UnavailableError | RateLimitedError):
                raise
            reason = exc.detail if isinstance(exc, OperationError) else str(exc)
            await self._failed(rule, job, reason)
            raise ProviderError(reason) from None

    async def _join(self, desk: Desk, rule: Rule, job: SyncJob, state: RuleState) -> str | None:
        """Within the dedup window, link the earlier anomaly's ticket (while it is not done) and
        note why; None: create a ticket instead."""
        if rule.dedup is None or job.dedup_key is None:
            return None
        earlier = self.ticket_for(rule.name, job.dedup_key) or state.tickets.get(job.dedup_key)
        if earlier is None or earlier.anomaly_id == job.anomaly_id:
            return None
        if time.time() - earlier.at > rule.dedup.window_s:
            return None
        provider = desk.provider(job.connection)
        try:
            ticket = await provider.get_ticket(earlier.ticket_key)
        except NotFoundError:
            return None  # deleted: a new ticket
        if _done(ticket):
            return None
        reason = DEDUP_REASONS[rule.dedup.key]
        note = (
            f"Anomaly {job.anomaly_id} matched rule {rule.name!r} ({reason} as anomaly "
            f"{earlier.anomaly_id})"
        )
        doc = desk.anomaly(job.anomaly_id)

        def linked(link: TicketLink) -> list[Op]:
            state = self.state(rule.name)
            update = {"linked": state.linked + 1, "failures": 0, "failed_jobs": ()}
            return [
                *self.outbox.jobs_for(doc, JobKind.COMMENT, note, [link]),
                Put("rules", rule.name, state.model_copy(update=update)),
            ]

        link = await desk.link_ticket(job.anomaly_id, job.connection, ticket.key, then=linked)
        return (
            f"rule {rule.name!r}: linked {link.ticket_key} of anomaly {earlier.anomaly_id} "
            f"({reason}, within {rule.dedup.window}) and noted it"
        )

    async def _create(self, desk: Desk, rule: Rule, job: SyncJob) -> str:
        action = rule.action
        doc = desk.anomaly(job.anomaly_id)
        provider = desk.provider(action.connection)
        fields = dict(action.fields)
        if action.issue_type is not None:
            fields["issuetype"] = action.issue_type
        if action.table is not None:
            fields["table"] = action.table
        conn = desk.connections.get(action.connection)
        sets = [action.templates, conn.templates if conn is not None else None]
        text = None
        if any(s is not None for s in sets):
            text = render_ticket_text(
                sets, doc, desk.template_context(action.connection, rule.name)
            )
        required = REQUIRED_TITLE[provider.kind]
        if not str(fields.get(required) or "").strip() and not (text and text.title):
            fields[required] = _default_title(doc, desk.platform.name)

        def created(link: TicketLink) -> list[Op]:
            state = self.state(rule.name)
            update = {
                "created": state.created + 1,
                "failures": 0,
                "failed_jobs": (),
                "tickets": {},  # kept in rule_tickets now (a state written before had them)
            }
            ops: list[Op] = [Put("rules", rule.name, state.model_copy(update=update))]
            key = job.dedup_key
            if rule.dedup is not None and key is not None and not key.startswith("anomaly:"):
                # one row per rule and key, out of the rule's state: the state is written with
                # every matching webhook, and must not grow with the tickets the rule made
                ticket = RuleTicket(
                    ticket_key=link.ticket_key,
                    ticket_id=link.ticket_id,
                    anomaly_id=job.anomaly_id,
                    at=time.time(),
                )
                ops.append(Put("rule_tickets", ticket_row(rule.name, key), ticket))
            return ops

        link = await desk.create_ticket(
            job.anomaly_id,
            action.connection,
            fields,
            text=text,
            look_first=job.verify,
            then=created,
            job_id=job.id,
        )
        notes = "".join(f"; {warning}" for warning in link.warnings)
        return f"rule {rule.name!r}: created {link.ticket_key}{notes}"

    async def _failed(self, rule: Rule, job: SyncJob, reason: str) -> None:
        """A refusal for good: counted once per job; ``pause_after`` in a row pause the rule."""
        state = self.state(rule.name)
        if job.id in state.failed_jobs:
            return
        failures = state.failures + 1
        update: dict[str, object] = {
            "failures": failures,
            "failed_jobs": (*state.failed_jobs, job.id)[-rule.pause_after :],
        }
        if failures >= rule.pause_after and not state.paused:
            update |= {
                "paused": True,
                "paused_by": PAUSED_BY_FAILURES,
                "paused_reason": reason,
                "paused_at": now_iso(),
            }
            log.warning(
                "rule %r paused after %d refusals in a row: %s", rule.name, failures, reason
            )
        await self.store.commit([Put("rules", rule.name, state.model_copy(update=update))])

    # -- the operator ----------------------------------------------------------------------------

    async def pause(self, name: str, by: str = PAUSED_BY_OPERATOR) -> RuleView:
        """Stop making jobs for the rule; its waiting jobs wait (dead) until it is resumed."""
        rule = self.rule(name)
        state = self.state(name)
        if state.paused:
            raise Conflict(f"rule {name!r} is paused already ({state.paused_reason or by})")
        update = {"paused": True, "paused_by": by, "paused_reason": None, "paused_at": now_iso()}
        state = state.model_copy(update=update)
        await self.store.commit([Put("rules", name, state)])
        return self.view(rule, state)

    async def resume(self, name: str) -> RuleView:
        """Make jobs again, from zero failures; the rule's dead jobs are set going again."""
        rule = self.rule(name)
        state = self.state(name)
        if not state.paused:
            raise Conflict(f"rule {name!r} is not paused")
        update = {
            "paused": False,
            "paused_by": None,
            "paused_reason": None,
            "paused_at": None,
            "failures": 0,
            "failed_jobs": (),
        }
        state = state.model_copy(update=update)
        again = [job_reset(job) for job in self.store.jobs([JobState.DEAD]) if job.rule == name]
        ops: list[Op] = [Put("rules", name, state)]
        ops += [Put("jobs", str(job.id), job) for job in again]
        await self.store.commit(ops)
        if self.wake is not None:
            self.wake()
        for job in again:
            self.bus.publish(EventName.SYNC_JOB, SyncJobView.model_validate(job))
        return self.view(rule, state)


def _default_title(doc: AnomalyDocument, platform: str) -> str:
    what = doc.message or doc.description or doc.location or doc.type
    return f"{platform} anomaly {doc.id}: {what}"


def rule_view(rule: Rule, state: RuleState) -> RuleView:
    """A rule as the API shows it: its settings that matter to an operator and its state."""
    return RuleView(
        name=rule.name,
        connection=rule.action.connection,
        paused=state.paused,
        paused_reason=state.paused_reason,
        paused_by=state.paused_by,
        created=state.created,
        linked=state.linked,
        throttled=state.throttled,
        skipped=state.skipped,
        failures=state.failures,
        pause_after=rule.pause_after,
        max_per_hour=rule.max_per_hour,
        paused_at=state.paused_at,
        last_fired_at=state.last_fired_at,
    )
