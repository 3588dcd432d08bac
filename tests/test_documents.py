"""Typed documents: what is stored keeps its JSON, older shapes load, changes never mutate.

The ``legacy_*`` functions are the dict code the documents replaced, kept here as the oracle:
the JSON a document dumps must be the JSON that code stored.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from anomaly_desk.core.documents import (
    AnomalyDocument,
    DeliveryRecord,
    OtherEntry,
    QuarantinedDelivery,
    Stale,
    StatusChanged,
    SyncJob,
    SyncLogEntry,
    TicketAdded,
    TicketLink,
    dump_from,
    job_after,
    job_cancelled,
    job_in_flight,
    job_reset,
    job_started,
    log_entry,
    new_document,
    new_job,
    new_link,
    new_row,
    with_comment,
    with_link,
    with_stale,
    with_status,
    with_ticket_states,
    without_link,
)
from anomaly_desk.core.ingest import merge
from anomaly_desk.core.models import Anomaly, Status
from anomaly_desk.core.providers.base import Ticket
from anomaly_desk.core.store import Put, Store
from anomaly_desk.core.vocabulary import (
    HistoryKind,
    IngestOutcome,
    JobKind,
    JobState,
    LinkOrigin,
    SyncOutcome,
)
from anomaly_desk.core.webhooks import parse_delivery
from tests.support import FIXTURES

AT = "2026-11-20T09:00:00.000Z"
LATER = "2026-11-20T09:05:00.000Z"
LOCAL_KEYS = (
    "received_at",
    "updated_at",
    "history",
    "comments",
    "links",
    "platform_status",
    "platform_at",
)
TICKET = Ticket("DQ-7", "10007", "https://x.atlassian.net/browse/DQ-7", "Orders", "To Do", "new")


def fixture_anomalies() -> list[Anomaly]:
    anomalies = []
    for path in sorted((FIXTURES / "webhooks").glob("*.json")):
        anomalies += parse_delivery(path.read_bytes()).anomalies
    return anomalies


def odd_anomalies() -> list[Anomaly]:
    """Values kept as sent (``odd``), unknown keys, a status this version does not know."""
    body = [
        {
            "id": 5,
            "weight": "12.5%",
            "message": {"a": 1},
            "extra_key": [1, 2],
            "created": "2024/01/02",
        },
        {"id": 6, "status": "Snoozed", "type": "RecordAnomaly", "history": "not ours"},
    ]
    return parse_delivery(orjson.dumps(body)).anomalies


def dumped(doc: Any) -> dict[str, Any]:
    """Through JSON bytes, as the journal writes it."""
    data: dict[str, Any] = orjson.loads(orjson.dumps(doc.model_dump(mode="json")))
    return data


# -- the code the documents replaced (the oracle) ---------------------------------------------


def legacy_platform_fields(anomaly: Anomaly) -> dict[str, Any]:
    full = anomaly.model_dump(mode="json")
    sent = anomaly.model_fields_set | set(anomaly.model_extra or ())
    sent.add("id")
    return {key: full[key] for key in sent if key in full and key not in LOCAL_KEYS}


def legacy_new_document(anomaly: Anomaly, at: str, sent_at: str | None) -> dict[str, Any]:
    doc = anomaly.model_dump(mode="json")
    if doc.get("odd") is None:
        doc.pop("odd", None)
    doc.update(received_at=at, updated_at=at, comments=[], links=[])
    doc.update(platform_status=doc["status"], platform_at=sent_at)
    doc["history"] = [{"at": at, "kind": "received", "status": doc["status"], "by": "platform"}]
    return doc


def legacy_merge(
    existing: dict[str, Any] | None, anomaly: Anomaly, at: str, sent_at: str | None = None
) -> tuple[dict[str, Any] | None, str]:
    if existing is None:
        return legacy_new_document(anomaly, at, sent_at), "created"
    last = existing.get("platform_at")
    status = str(anomaly.status)
    if sent_at and last and sent_at < last:
        history = existing.get("history") or []
        seen = any(
            h.get("kind") == "stale" and h.get("sent_at") == sent_at and h.get("status") == status
            for h in history[-20:]
        )
        if seen:
            return None, "stale"
        entry = {"at": at, "kind": "stale", "status": status, "sent_at": sent_at, "by": "platform"}
        return {**existing, "history": [*history, entry]}, "stale"
    incoming = legacy_platform_fields(anomaly)
    reported = existing.get("platform_status", existing["status"])
    new_status = incoming.pop("status", reported)
    sent = set(incoming) | set(anomaly.odd or ())
    kept_odd = {k: v for k, v in (existing.get("odd") or {}).items() if k not in sent}
    odd = {**kept_odd, **(anomaly.odd or {})}
    incoming.pop("odd", None)
    changed = {key: value for key, value in incoming.items() if existing.get(key) != value}
    if odd != (existing.get("odd") or {}):
        changed["odd"] = odd
    newer = sent_at is not None and (last is None or sent_at > last)
    if not changed and new_status == reported and not newer:
        return None, "unchanged"
    doc = {**existing, **changed}
    outcome = "updated" if changed else "unchanged"
    if newer:
        doc["platform_at"] = sent_at
    if new_status != reported:
        doc["platform_status"] = new_status
        if new_status != existing["status"]:
            doc["status"] = new_status
            change = {
                "at": at,
                "kind": "status",
                "from": existing["status"],
                "to": new_status,
                "by": "platform",
            }
            doc["history"] = [*existing.get("history", []), change]
            outcome = "status"
    if outcome != "unchanged":
        doc["updated_at"] = at
    return doc, outcome


def legacy_link(origin: str) -> dict[str, Any]:
    return {
        "id": "ab12cd34ef56",
        "connection": "jira",
        "provider": "jira",
        "ticket_key": TICKET.key,
        "ticket_id": TICKET.id,
        "url": TICKET.url,
        "summary": TICKET.summary,
        "origin": origin,
        "state": TICKET.state,
        "state_category": TICKET.state_category,
        "state_read_at": AT,
        "linked_at": AT,
    }


def legacy_job() -> dict[str, Any]:
    return {
        "id": 3,
        "anomaly_id": 10231,
        "link_id": "ab12cd34ef56",
        "connection": "jira",
        "provider": "jira",
        "ticket_key": "DQ-7",
        "ticket_id": "10007",
        "kind": "comment",
        "text": "Comment from Qualytics: hi",
        "nonce": "f00d",
        "created_at": AT,
        "state": "pending",
        "attempts": 0,
        "next_at": 0.0,
        "in_flight": False,
        "verify": False,
        "last_error": None,
        "done_at": None,
    }


# -- the stored JSON is today's JSON ------------------------------------------------------------


@pytest.mark.parametrize("sent_at", [None, AT])
def test_a_new_document_dumps_what_was_stored_before(sent_at: str | None) -> None:
    for anomaly in [*fixture_anomalies(), *odd_anomalies()]:
        doc = new_document(anomaly, AT, sent_at)
        assert dumped(doc) == legacy_new_document(anomaly, AT, sent_at)
        assert AnomalyDocument.model_validate(dumped(doc)) == doc  # and reads back as itself
        assert new_row(anomaly, AT, sent_at) == dumped(doc)  # the hot path's direct JSON


def test_merge_stores_what_the_dict_merge_stored() -> None:
    """Every fixture, then each again with another status, newer, older, odd: same JSON, same
    outcome, step after step."""
    deliveries: list[tuple[Anomaly, str | None]] = []
    for anomaly in [*fixture_anomalies(), *odd_anomalies()]:
        data = anomaly.model_dump(mode="json", exclude_unset=True)
        again = Anomaly.model_validate({**data, "status": "Acknowledged", "message": "changed"})
        fewer = Anomaly.model_validate({"id": anomaly.id, "weight": "7", "odd": None})
        deliveries += [(anomaly, AT), (anomaly, AT), (again, LATER), (anomaly, AT), (anomaly, AT)]
        deliveries += [(fewer, None), (anomaly, None)]
    typed: dict[int, AnomalyDocument] = {}
    plain: dict[int, dict[str, Any]] = {}
    for i, (anomaly, sent_at) in enumerate(deliveries):
        at = f"2026-11-20T10:00:{i % 60:02d}.000Z"
        doc, outcome = merge(typed.get(anomaly.id), anomaly, at, sent_at)
        expected, expected_outcome = legacy_merge(plain.get(anomaly.id), anomaly, at, sent_at)
        assert outcome == expected_outcome
        assert (None if doc is None else dumped(doc)) == expected
        if doc is not None and expected is not None:
            typed[anomaly.id], plain[anomaly.id] = doc, expected
    assert {o for o in IngestOutcome} >= {"created", "updated", "status", "stale", "unchanged"}


def test_operator_changes_store_what_the_dict_code_stored() -> None:
    doc = new_document(fixture_anomalies()[0], AT, None)
    old = legacy_new_document(fixture_anomalies()[0], AT, None)

    new = with_status(doc, Status.ACKNOWLEDGED, LATER, "ann")
    history = {"at": LATER, "kind": "status", "from": "Active", "to": "Acknowledged", "by": "ann"}
    assert dumped(new) == {
        **old,
        "status": "Acknowledged",
        "updated_at": LATER,
        "history": [*old["history"], history],
    }
    new = with_comment(doc, "looking", LATER, "ann")
    assert dumped(new) == {
        **old,
        "updated_at": LATER,
        "comments": [{"at": LATER, "text": "looking", "by": "ann"}],
        "history": [*old["history"], {"at": LATER, "kind": "comment", "by": "ann"}],
    }
    for origin in LinkOrigin:
        link = new_link("ab12cd34ef56", "jira", "jira", TICKET, origin, AT)
        assert dumped(link) == legacy_link(origin)
        linked = with_link(doc, link, AT)
        entry = {"at": AT, "kind": f"ticket {origin}", "ticket": "DQ-7", "connection": "jira"}
        assert dumped(linked) == {
            **old,
            "updated_at": AT,
            "links": [legacy_link(origin)],
            "history": [*old["history"], entry],
        }
    unlinked = without_link(linked, "ab12cd34ef56", LATER)
    entry = {"at": LATER, "kind": "ticket unlinked", "ticket": "DQ-7", "connection": "jira"}
    assert dumped(unlinked) == {
        **dumped(linked),
        "updated_at": LATER,
        "links": [],
        "history": [*dumped(linked)["history"], entry],
    }
    read = Ticket("DQ-7", "10007", state="Done", state_category="done")
    refreshed = with_ticket_states(linked, {"ab12cd34ef56": read}, LATER)
    link_json = {**legacy_link("linked"), "state": "Done", "state_category": "done"}
    assert dumped(refreshed) == {**dumped(linked), "links": [{**link_json, "state_read_at": LATER}]}
    assert with_ticket_states(linked, {}, LATER) is linked
    stale = with_stale(doc, Status.ACTIVE, AT, LATER)
    entry = {"at": LATER, "kind": "stale", "status": "Active", "sent_at": AT, "by": "platform"}
    assert dumped(stale) == {**old, "history": [*old["history"], entry]}


def test_jobs_and_the_sync_log_store_what_the_dict_code_stored() -> None:
    link = TicketLink.model_validate(legacy_link("created"))
    job = new_job(3, 10231, link, JobKind.COMMENT, "Comment from Qualytics: hi", "f00d", AT)
    old = legacy_job()
    assert dumped(job) == old
    assert dumped(job_cancelled(job)) == {**old, "state": "cancelled"}
    dead = job.model_copy(update={"state": JobState.DEAD, "attempts": 3, "next_at": 9.0})
    # a person's retry: pending and due now, attempt numbers go on, backoff starts over
    reset = {**old, "state": "pending", "attempts": 3, "next_at": 0.0, "retried_after": 3}
    assert dumped(job_reset(dead)) == reset
    started = job_started(job, 1, False)
    assert dumped(started) == {**old, "attempts": 1, "verify": False}
    sending = job_in_flight(started, 0)
    assert dumped(sending) == {**old, "attempts": 1, "in_flight": True, "baseline": 0}
    assert dumped(job_in_flight(started)) == {**old, "attempts": 1, "in_flight": True}
    sent = {**old, "attempts": 1, "baseline": 0}
    assert dumped(job_after(sending, SyncOutcome.DONE, LATER, False)) == {
        **sent,
        "state": "done",
        "in_flight": False,
        "done_at": LATER,
        "last_error": None,
    }
    assert dumped(job_after(sending, SyncOutcome.RETRY, LATER, True, "down", 99.5)) == {
        **sent,
        "in_flight": False,
        "verify": True,
        "last_error": "down",
        "next_at": 99.5,
    }
    assert dumped(job_after(sending, SyncOutcome.DEAD, LATER, False, "401")) == {
        **sent,
        "state": "dead",
        "in_flight": False,
        "verify": False,
        "last_error": "401",
    }
    assert dumped(job_after(sending, SyncOutcome.CANCELLED, LATER, True, "gone")) == {
        **sent,
        "state": "cancelled",
        "in_flight": False,
        "verify": True,
    }
    entry = log_entry(8, job, LATER, 1, SyncOutcome.RETRY, 12.3, None)
    assert dumped(entry) == {
        "id": 8,
        "at": LATER,
        "job_id": 3,
        "anomaly_id": 10231,
        "link_id": "ab12cd34ef56",
        "connection": "jira",
        "ticket_key": "DQ-7",
        "kind": "comment",
        "attempt": 1,
        "outcome": "retry",
        "duration_ms": 12.3,
        "message": None,
        "text": "Comment from Qualytics: hi",
    }
    assert SyncLogEntry.model_validate(dumped(entry)) == entry


def test_delivery_records_and_quarantine_store_what_the_dict_code_stored() -> None:
    record = DeliveryRecord(at=1700000000.5, anomalies=(1, 2))
    assert dumped(record) == {"at": 1700000000.5, "anomalies": [1, 2]}
    raw = {"id": "x", "nested": [1, {"a": None}]}
    kept = QuarantinedDelivery(key="k", at=AT, delivery="id:1", path="[1]", reason="id", raw=raw)
    assert dumped(kept) == {
        "key": "k",
        "at": AT,
        "delivery": "id:1",
        "path": "[1]",
        "reason": "id",
        "raw": raw,
    }


# -- older shapes load --------------------------------------------------------------------------


def first_release_document() -> dict[str, Any]:
    """An anomaly as the first release stored it: no platform_status, platform_at or odd."""
    return {
        "id": 7,
        "uuid": None,
        "type": "record",
        "status": "Acknowledged",
        "weight": 3,
        "datastore": {"id": 1, "name": "warehouse"},
        "container": None,
        "fields": ["a"],
        "message": "m",
        "description": None,
        "failed_checks": [{"check_id": 1, "rule_type": "notNull", "fields": [], "message": None}],
        "global_tags": [],
        "anomalous_records_count": None,
        "fingerprint": None,
        "created": "2026-11-20T08:15:42.123000Z",
        "url": None,
        "container_id": 301,
        "received_at": AT,
        "updated_at": AT,
        "comments": [],
        "links": [
            {
                "id": "L1",
                "connection": "jira",
                "provider": "jira",
                "ticket_key": "DQ-1",
                "ticket_id": "1001",
            }
        ],
        "history": [
            {"at": AT, "kind": "received", "status": "Active", "by": "platform"},
            {"at": AT, "kind": "status", "from": "Active", "to": "Acknowledged", "by": "op"},
            {"at": AT, "kind": "snoozed", "until": "tomorrow"},
            {"at": AT, "kind": "ticket created"},
        ],
    }


def test_documents_stored_by_older_versions_load_with_defaults() -> None:
    raw = first_release_document()
    doc = AnomalyDocument.model_validate(raw)
    assert doc.platform_status is None
    assert doc.reported_status == Status.ACKNOWLEDGED
    assert doc.platform_at is None
    assert doc.odd is None
    assert doc.model_extra == {"container_id": 301}
    assert [type(entry) for entry in doc.history] == [
        type(doc.history[0]),
        StatusChanged,
        OtherEntry,  # a kind this version does not know
        OtherEntry,  # a known kind missing its keys
    ]
    assert doc.links[0].url == ""
    assert doc.links[0].state_read_at is None
    # Written back: everything as it was; platform_at is null as in every document written now,
    # and the link gets the keys a link has always had since (with their empty values).
    back = dumped(doc)
    assert back["history"] == raw["history"]
    assert {**back, "links": raw["links"]} == {**raw, "platform_at": None}
    assert "platform_status" not in back
    assert "odd" not in back


def test_jobs_stored_before_nonces_and_baselines_load() -> None:
    old = legacy_job()
    del old["nonce"]
    job = SyncJob.model_validate(old)
    assert job.nonce is None
    assert job.baseline is None
    assert dumped(job) == old  # absent stays absent
    assert SyncJob.model_validate({**old, "state": "dead"}).state is JobState.DEAD


def test_an_unknown_status_is_kept_as_sent() -> None:
    raw = {**first_release_document(), "status": "Snoozed"}
    doc = AnomalyDocument.model_validate(raw)
    assert doc.status == "Snoozed"
    assert not isinstance(doc.status, Status)
    assert dumped(with_status(doc, Status.ACTIVE, LATER, "ann"))["history"][-1]["from"] == "Snoozed"


# -- never changed in place ---------------------------------------------------------------------


def changes() -> list[tuple[str, Any, Callable[[Any], Any]]]:
    doc = AnomalyDocument.model_validate(first_release_document())
    link = new_link("L2", "servicenow", "servicenow", TICKET, LinkOrigin.LINKED, AT)
    job = SyncJob.model_validate(legacy_job())
    anomaly = Anomaly.model_validate({"id": 7, "status": "Resolved", "weight": 9, "x": 1})
    return [
        ("with_status", doc, lambda d: with_status(d, Status.RESOLVED, LATER, "ann")),
        ("with_comment", doc, lambda d: with_comment(d, "hi", LATER, "ann")),
        ("with_link", doc, lambda d: with_link(d, link, LATER)),
        ("without_link", doc, lambda d: without_link(d, "L1", LATER)),
        ("with_stale", doc, lambda d: with_stale(d, Status.ACTIVE, AT, LATER)),
        ("with_ticket_states", doc, lambda d: with_ticket_states(d, {"L1": TICKET}, LATER)),
        ("merge", doc, lambda d: merge(d, anomaly, LATER, LATER)[0]),
        ("job_cancelled", job, job_cancelled),
        ("job_reset", job_after(job, SyncOutcome.DEAD, LATER, False, "401"), job_reset),
        ("job_started", job, lambda j: job_started(j, 2, True)),
        ("job_in_flight", job, lambda j: job_in_flight(j, 3)),
        ("job_after", job, lambda j: job_after(j, SyncOutcome.DEAD, LATER, True, "no")),
    ]


@pytest.mark.parametrize(("name", "before", "change"), changes(), ids=lambda x: x)
def test_every_change_leaves_its_input_as_it_was(
    name: str, before: Any, change: Callable[[Any], Any]
) -> None:
    snapshot = copy.deepcopy(before.model_dump(mode="json"))
    after = change(before)
    assert after is not before, name
    assert after != before, name
    assert before.model_dump(mode="json") == snapshot, name


@pytest.mark.parametrize(("name", "before", "change"), changes(), ids=lambda x: x)
def test_a_change_is_dumped_from_what_it_was_made_of(
    name: str, before: Any, change: Callable[[Any], Any]
) -> None:
    """The store dumps an update from the row it was made from: same JSON as a whole dump, the
    row's keys where they were."""
    base_raw = {"unknown": "kept where it was", **before.model_dump(mode="json")}
    before = type(before).model_validate(base_raw)
    after = change(before)
    raw = dump_from(base_raw, before, after)
    assert raw == after.model_dump(mode="json"), name
    assert list(raw)[: len(base_raw)] == list(base_raw), name
    assert dump_from(base_raw, before, before) == base_raw
    other = type(before).model_validate(base_raw)  # shares nothing: everything is dumped
    assert dump_from(base_raw, other, after) == after.model_dump(mode="json"), name


def test_documents_are_frozen() -> None:
    doc = new_document(fixture_anomalies()[0], AT, None)
    with pytest.raises(ValueError, match="frozen"):
        doc.status = Status.RESOLVED  # type: ignore[misc]
    with pytest.raises(KeyError):
        without_link(doc, "nope", AT)


def test_history_kinds_and_enums_are_plain_strings_on_the_wire() -> None:
    link = new_link("L2", "jira", "jira", TICKET, LinkOrigin.CREATED, AT)
    doc = with_link(new_document(fixture_anomalies()[0], AT, None), link, AT)
    assert isinstance(doc.history[-1], TicketAdded)
    assert doc.history[-1].kind is HistoryKind.TICKET_CREATED
    text = orjson.dumps(doc.model_dump(mode="json"))
    assert b'"kind":"ticket created"' in text
    assert b'"origin":"created"' in text
    sent = new_document(fixture_anomalies()[0], AT, LATER)
    stale, outcome = merge(sent, fixture_anomalies()[0], LATER, AT)
    assert outcome is IngestOutcome.STALE
    assert stale is not None
    assert isinstance(stale.history[-1], Stale)
    assert merge(stale, fixture_anomalies()[0], LATER, AT) == (None, IngestOutcome.STALE)


# -- the store's boundary -----------------------------------------------------------------------


def test_put_takes_documents_and_the_store_reads_them_back(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path).open()
        doc = new_document(fixture_anomalies()[0], AT, None)
        link = TicketLink.model_validate(legacy_link("created"))
        job = new_job(1, doc.id, link, JobKind.STATUS, "note", "n1", AT)
        put = Put("anomalies", str(doc.id), doc)
        assert put.doc == dumped(doc)  # the store holds JSON
        await store.commit([put, Put("jobs", "1", job)])
        assert store.get("anomalies", str(doc.id)) is put.doc
        assert store.anomaly_doc(doc.id) == doc
        assert store.anomaly_doc(doc.id) is store.anomaly_doc(doc.id)  # read once per row
        assert store.anomaly_doc(404) is None
        assert store.job(1) == job
        assert store.job(2) is None
        assert store.jobs() == [job]
        assert store.jobs({JobState.DONE}) == []
        changed = with_comment(doc, "hi", LATER, "ann")
        await store.commit([Put("anomalies", str(doc.id), changed)])
        assert store.anomaly_doc(doc.id) == changed
        await store.close()
        # A journal line is the JSON the documents dump.
        reopened = Store(tmp_path).open()
        assert reopened.get("anomalies", str(doc.id)) == dumped(changed)
        assert reopened.anomaly_doc(doc.id) == changed
        reopened.close_sync()

    asyncio.run(run())


def test_a_container_sent_by_id_alone_keeps_the_name_stored_for_it() -> None:
    named = Anomaly.model_validate({"id": 7, "container": {"id": 301, "name": "orders"}})
    doc, _ = merge(None, named, AT)
    assert doc is not None
    by_id = Anomaly.model_validate({"id": 7, "container_id": 301, "weight": 3})
    kept, _ = merge(doc, by_id, LATER)
    assert kept is not None
    assert kept.container is not None
    assert (kept.container.id, kept.container.name, kept.weight) == (301, "orders", 3)
    moved, _ = merge(doc, Anomaly.model_validate({"id": 7, "container_id": 302}), LATER)
    assert moved is not None
    assert moved.container is not None
    assert (moved.container.id, moved.container.name) == (302, None)  # another container
