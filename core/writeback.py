"""The platform's own queue: write-back of the desk's actions, and enrichment of thin anomalies.

An acknowledgement, an archive or a comment made in the desk is a job on the anomaly's platform
queue, written in the same transaction as the change (:meth:`Outbox.platform_job`) and delivered
by the same worker as ticket notes, so it inherits their promises: never lost, in order per
anomaly, retried with backoff on 429/5xx/timeouts, dead with the platform's words on
401/403/404/409/422 until a person retries it, and never doubled: an attempt whose fate is
unknown first asks the platform (the anomaly's status, or a count of identical comments taken
before the first send) and only then sends again.

Changes that came *from* the platform (a webhook, an import, an enrichment) never make such a
job: nothing is echoed back.

Enrichment completes an anomaly a webhook delivered thin (no failed checks, no weight, a
container without its name) from ``GET /api/anomalies/{id}``, off the webhook's hot path; it
fills only what is missing and says so in the history (``enriched``).

The ``[[rules]]`` of a thin anomaly wait for it (``rules_waiting``): a rule on containers, check
types or weight cannot judge an anomaly that lacks them. They are matched in the transaction
that stores the enrichment (or finds nothing to add), and deleted from ``rules_waiting`` in it,
so they run once even if the job is tried again. When the platform cannot complete it (no such
anomaly, a refusal for good, or still unreachable after :data:`RULES_WAIT_ATTEMPTS` tries) the
rules are matched against what the webhook gave: late, never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import pydantic

from anomaly_desk.core.documents import AnomalyDocument, Enriched, SyncJob
from anomaly_desk.core.events import EventBus
from anomaly_desk.core.ingest import now_iso
from anomaly_desk.core.models import Anomaly, NoUsableId, Ref, is_thin
from anomaly_desk.core.providers import (
    NoteTag,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from anomaly_desk.core.providers.platform import PlatformClient
from anomaly_desk.core.providers.platform_payloads import ArchiveStatus
from anomaly_desk.core.salvage import tolerant
from anomaly_desk.core.store import Delete, Op, Put, Store
from anomaly_desk.core.views import AnomalyUpdated
from anomaly_desk.core.vocabulary import ARCHIVED, EventName, JobKind, Status

log = logging.getLogger(__name__)

RulePlanner = Callable[[Iterable[Anomaly], Mapping[int, Anomaly] | None], list[Op]]
"""``RuleRunner.plan``: the rules' ops for anomalies (``before``: as they were, judged thin)."""
RULES_WAIT_ATTEMPTS = 3  # tries of an unreachable platform before rules take the thin anomaly

# What a ticket needs and a thin webhook may lack; enrichment fills these when they are empty.
ENRICHED_FIELDS = (
    "failed_checks",
    "weight",
    "url",
    "description",
    "anomalous_records_count",
    "fingerprint",
    "global_tags",
    "fields",
    "datastore",
    "container",
    "type",
    "uuid",
    "created",
)


def _message(comment: Any) -> str | None:
    value = comment.get("message") if isinstance(comment, dict) else None
    return value if isinstance(value, str) else None


def with_enrichment(doc: AnomalyDocument, full: Anomaly, at: str) -> AnomalyDocument | None:
    """``doc`` with what it lacks taken from the platform's full anomaly (None: nothing to add).
    Nothing the desk already holds is replaced: a webhook's values and the desk's state win."""
    update: dict[str, object] = {}
    for name in ENRICHED_FIELDS:
        mine, theirs = getattr(doc, name, None), getattr(full, name, None)
        if mine in (None, [], "", ()) and theirs not in (None, [], "", ()):
            update[name] = theirs
        elif isinstance(mine, Ref) and isinstance(theirs, Ref) and (ref := mine.named_from(theirs)):
            update[name] = ref
    if not update:
        return None
    entry = Enriched(at=at, fields=sorted(update))
    return doc.model_copy(update={**update, "history": (*doc.history, entry), "updated_at": at})


class PlatformSender:
    """Delivers the platform queue's jobs (see the module's docstring)."""

    def __init__(
        self,
        api: PlatformClient,
        store: Store,
        bus: EventBus,
        plan_rules: RulePlanner | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.bus = bus
        self.plan_rules = plan_rules  # the rules of anomalies that waited for enrichment

    async def _identical(self, job: SyncJob) -> int:
        found = await self.api.comments(job.anomaly_id)
        items = found if isinstance(found, list) else []
        return sum(1 for c in items if _message(c) == job.text)

    async def baseline(self, job: SyncJob) -> int:
        return await self._identical(job) if job.kind == JobKind.COMMENT else 0

    async def landed(self, job: SyncJob, tag: NoteTag) -> bool:
        if job.kind == JobKind.COMMENT:
            return await self._identical(job) > tag.baseline
        if job.kind == JobKind.STATUS:
            return await self._status(job) == job.text
        return False  # enrichment: doing it again is harmless

    async def _status(self, job: SyncJob) -> str | None:
        anomaly = await self.api.get_anomaly(job.anomaly_id)
        status = anomaly.get("status") if isinstance(anomaly, dict) else None
        return status if isinstance(status, str) else None

    async def send(self, job: SyncJob, tag: NoteTag) -> str | None:
        if job.kind == JobKind.COMMENT:
            await self.api.add_comment(job.anomaly_id, job.text)
            return None
        if job.kind == JobKind.STATUS:
            return await self._set_status(job)
        return await self._enrich(job)

    async def _set_status(self, job: SyncJob) -> str | None:
        try:
            if job.text == Status.ACKNOWLEDGED:
                await self.api.acknowledge(job.anomaly_id)
            elif job.text in ARCHIVED:
                await self.api.archive(job.anomaly_id, cast(ArchiveStatus, job.text))
            else:
                raise ValidationError(
                    f"the platform takes no status {job.text!r} from the desk",
                    connection="platform",
                )
        except ValidationError:
            # 409: perhaps someone did the same in the platform already; that is success
            if await self._status(job) == job.text:
                return f"the platform already had it {job.text}"
            raise
        return None

    async def _enrich(self, job: SyncJob) -> str | None:
        try:
            raw = await self.api.get_anomaly(job.anomaly_id)
        except NotFoundError:  # nothing to complete it from; retrying cannot help
            ruled = await self._rules_without(job)
            return f"the platform has no anomaly {job.anomaly_id}: nothing to enrich{ruled}"
        except (UnavailableError, RateLimitedError):
            if job.attempts >= RULES_WAIT_ATTEMPTS:
                await self._rules_without(job)
            raise
        except ProviderError:
            await self._rules_without(job)
            raise
        try:
            full = tolerant(raw)
        except (NoUsableId, pydantic.ValidationError) as exc:
            await self._rules_without(job)
            raise ProviderError(
                f"the platform's anomaly {job.anomaly_id} is not usable: {exc}",
                connection="platform",
            ) from None
        current = self.store.anomaly_doc(job.anomaly_id)
        if current is None:
            await self._rules_without(job)
            return "the anomaly is gone here: nothing to enrich"
        at = now_iso()
        new = with_enrichment(current, full, at)
        rules = self._rules(new or current, current if new is not None else None)
        if new is None:
            if rules:
                await self.store.commit(rules)
                return "nothing was missing; its rules matched"
            return "nothing was missing"
        await self.store.commit([Put("anomalies", str(new.id), new), *rules])
        if self.bus.subscribers:
            row = self.store.anomaly_summary(new.id, AnomalyUpdated)
            if row is not None:
                row.change = "platform"
                self.bus.publish(EventName.ANOMALY_UPDATED, row)
        added = new.history[-1]
        assert isinstance(added, Enriched)
        return f"enriched: {', '.join(added.fields)}{'; its rules matched' if rules else ''}"

    def _rules(self, doc: AnomalyDocument, before: AnomalyDocument | None = None) -> list[Op]:
        """To commit with what the anomaly became: the rules of one that waited for enrichment
        (all of them), or of one judged thin already (the platform was down three tries, or left
        the configuration) that enrichment completes now (those its thin self did not match)."""
        if self.store.get("rules_waiting", str(doc.id)) is not None:
            planned = self.plan_rules([doc], None) if self.plan_rules is not None else []
            return [*planned, Delete("rules_waiting", str(doc.id))]
        completed = before is not None and is_thin(before) and not is_thin(doc)
        if self.plan_rules is not None and before is not None and completed:
            return self.plan_rules([doc], {doc.id: before})
        return []

    async def _rules_without(self, job: SyncJob) -> str:
        """The waiting rules matched against what the webhook gave: enrichment cannot be had."""
        doc = self.store.anomaly_doc(job.anomaly_id)
        if doc is not None:
            ops = self._rules(doc)
        elif self.store.get("rules_waiting", str(job.anomaly_id)) is not None:
            ops = [Delete("rules_waiting", str(job.anomaly_id))]
        else:
            ops = []
        if not ops:
            return ""
        await self.store.commit(ops)
        log.info("anomaly %d: its rules matched without enrichment", job.anomaly_id)
        return "; its rules matched with what the webhook gave"
