"""Stored anomalies for the scale benchmark: a year of a busy desk, generated fast.

Pure stdlib + orjson on purpose: the benchmark's child processes load this file by path under
either tree (today's or the working tree's), so it must import nothing of ``anomaly_desk``.

The documents are the stored shape (what the receiver writes after a webhook, a status change,
a comment or a ticket): 80 % archived, created over the last twelve months and archived one to
three weeks later; 20 % open (a few old ones, most from the last days). Some carry comments,
some a Jira or ServiceNow ticket, every one its history. They come oldest first (ids ascending
with time), the order a desk that has been running a year would have written them in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson

DAY = 86_400.0
ARCHIVED_SHARE = 0.8
RECENT_DAYS = 7.0  # the open anomalies are mostly this young
ARCHIVED_STATUSES = ("Resolved",) * 6 + ("Invalid",) * 2 + ("Duplicate", "Discarded")
OPEN_STATUSES = ("Active",) * 4 + ("Acknowledged",)
TABLES = (
    *("orders", "customers", "payments", "invoices", "shipments", "leads", "events"),
    *("sessions", "refunds", "accounts", "subscriptions", "products", "inventory", "returns"),
    *("claims", "policies", "transfers", "ledger", "audits", "devices"),
)
DATASTORES = ("warehouse_prod", "crm_replica", "billing_pg", "events_lake", "erp_oracle")
RULES = (
    ("notNull", "customer_id", "customer_id is null in {n} records"),
    ("between", "amount", "amount out of range [0, 100000] in {n} records"),
    ("matchesPattern", "email", "email does not match the pattern in {n} records"),
    ("isUnique", "order_id", "order_id is duplicated in {n} records"),
    ("afterDateTime", "shipped_at", "shipped_at before ordered_at in {n} records"),
    ("expectedValues", "currency", "currency not in the expected values in {n} records"),
)
PEOPLE = ("root", "alice@example.com", "bob.martin", "ops@example.com")
COMMENTS = (
    "looked at it, upstream fix in progress",
    "known issue with the nightly load, see the runbook",
    "false positive: the source backfilled yesterday",
    "asked the data owner to confirm the expected range",
)
SEARCH_RARE = "invoices_17"  # one anomaly in a thousand (a container)
SEARCH_COMMON = "amount"  # about one in six
SEARCH_NONE = "no-such-thing"  # nothing: the receiver looks at every anomaly
SEARCHES = (SEARCH_RARE, SEARCH_COMMON, SEARCH_NONE)


def iso(t: float) -> str:
    """The receiver's own timestamp format (milliseconds, Z)."""
    whole = int(t)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((t - whole) * 1000):03d}Z"
    )


def _platform_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def _created(p: float, now: float) -> float:
    """Detection time of the anomaly at position ``p`` (0 oldest .. 1 newest)."""
    if p < ARCHIVED_SHARE:
        return now - 365 * DAY + p / ARCHIVED_SHARE * (365 - RECENT_DAYS) * DAY
    return (
        now
        - RECENT_DAYS * DAY
        + (p - ARCHIVED_SHARE) / (1 - ARCHIVED_SHARE) * (RECENT_DAYS * DAY - 600)
    )


def _is_archived(i: int, p: float) -> bool:
    """80 % overall: most old ones (a few linger open), a few recent ones."""
    if p < ARCHIVED_SHARE:
        return i % 50 != 7
    return i % 10 == 3


def platform_anomaly(
    i: int, status: str = "Active", created: str | None = None
) -> dict[str, object]:
    """Anomaly ``i`` as the platform sends it in a webhook (about 0.8 KB of JSON)."""
    rule, field, text = RULES[i % len(RULES)]
    table = TABLES[i % len(TABLES)]
    count = 1 + (i * 7919) % 5000
    return {
        "id": i,
        "uuid": f"00000000-0000-4000-8000-{i:012d}",
        "type": "record" if i % 5 else "shape",
        "status": status,
        "weight": i % 100,
        "datastore": {"id": 12 + i % 5, "name": DATASTORES[i % 5]},
        "container": {"id": 300 + i % 1000, "name": f"{table}_{i // 20 % 50}"},
        "fields": [field],
        "message": text.format(n=count),
        "failed_checks": [
            {
                "check_id": 9000 + i % 300,
                "rule_type": rule,
                "fields": [field],
                "message": f"{field} must pass {rule}",
            }
        ],
        "global_tags": ["finance", "tier-1"] if i % 3 else ["ops"],
        "anomalous_records_count": count,
        "fingerprint": 880_000_000 + i,
        "created": created or _platform_time(time.time()),
        "url": f"https://acme.qualytics.io/anomalies/{i}",
    }


def stored_anomaly(i: int, n: int, now: float) -> dict[str, object]:
    """Anomaly ``i`` of ``n`` (ids from 1) as the receiver stores it, as of ``now``."""
    p = (i - 1) / n
    created = _created(p, now)
    received = created + 120
    archived = _is_archived(i, p)
    doc = platform_anomaly(i, "Active", _platform_time(created))
    history: list[dict[str, object]] = [
        {"at": iso(received), "kind": "received", "by": "platform", "status": "Active"}
    ]
    comments: list[dict[str, object]] = []
    links: list[dict[str, object]] = []
    updated = received
    if i % 12 == 5:  # a ticket, a day after it arrived
        at = min(received + DAY, now - 60)
        jira = i // 12 % 2 == 0
        key = f"DQ-{i}" if jira else f"INC{i:07d}"
        done = "Done" if jira else "Resolved"
        links.append(
            {
                "id": f"L{i}",
                "connection": "jira" if jira else "servicenow",
                "provider": "jira" if jira else "servicenow",
                "ticket_key": key,
                "ticket_id": str(10_000 + i),
                "url": f"https://acme.atlassian.net/browse/{key}"
                if jira
                else f"https://acme.service-now.com/incident.do?sys_id={i:032x}",
                "summary": str(doc["message"]),
                "origin": "created",
                "state": done if archived else ("To Do" if jira else "New"),
                "state_category": "done" if archived else "new",
                "state_read_at": iso(at),
                "linked_at": iso(at),
            }
        )
        history.append(
            {"at": iso(at), "kind": "ticket created", "ticket": key, "by": PEOPLE[i % 4]}
        )
        history[-1]["connection"] = links[0]["connection"]
        updated = at
    for c in range(1 + i % 2 if i % 10 == 1 else 0):  # comments on one in ten
        at = min(received + (c + 1) * 3 * 3600, now - 60)
        by = PEOPLE[(i + c) % 4]
        comments.append({"at": iso(at), "text": COMMENTS[(i + c) % 4], "by": by})
        history.append({"at": iso(at), "kind": "comment", "by": by})
        updated = max(updated, at)
    status = OPEN_STATUSES[i % len(OPEN_STATUSES)]
    if archived:
        status = ARCHIVED_STATUSES[i % len(ARCHIVED_STATUSES)]
        if p < ARCHIVED_SHARE:
            at = min(received + (1 + (i * 31) % 21) * DAY, now - DAY)
        else:
            at = min(received + (1 + i % 12) * 3600, now - 60)
        at = max(at, updated + 1)
        by = "platform" if i % 4 else PEOPLE[i % 3]
        history.append({"at": iso(at), "kind": "status", "by": by, "from": "Active", "to": status})
        updated = at
    elif status == "Acknowledged":
        at = max(min(received + 3600, now - 60), updated + 1)
        history.append(
            {"at": iso(at), "kind": "status", "by": "root", "from": "Active", "to": status}
        )
        updated = at
    doc["status"] = status
    doc["received_at"] = iso(received)
    doc["updated_at"] = iso(updated)
    doc["platform_status"] = status
    doc["platform_at"] = _platform_time(updated)
    doc["comments"] = comments
    doc["links"] = links
    doc["history"] = history
    return doc


def stored_anomalies(n: int, now: float) -> Iterator[dict[str, object]]:
    """The ``n`` anomalies, oldest first."""
    for i in range(1, n + 1):
        yield stored_anomaly(i, n, now)


def write_chunks(path: str, n: int, now: float, chunk: int = 5_000) -> None:
    """The ``n`` anomalies as lines of JSON arrays: generated once, read by both trees' loaders."""
    with open(path, "wb") as out:
        batch: list[dict[str, object]] = []
        for doc in stored_anomalies(n, now):
            batch.append(doc)
            if len(batch) == chunk:
                out.write(orjson.dumps(batch) + b"\n")
                batch = []
        if batch:
            out.write(orjson.dumps(batch) + b"\n")


def read_chunks(path: str) -> Iterator[dict[str, object]]:
    with open(path, "rb") as src:
        for line in src:
            yield from orjson.loads(line)
