"""What the retention tests share: stored anomalies of a chosen age, and reading both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anomaly_desk.core.store import Store

ARCHIVED_STATUSES = ("Resolved", "Duplicate", "Invalid", "Discarded")


def stored(i: int, status: str, updated_at: str, **more: Any) -> dict[str, Any]:
    """An anomaly as the store holds it, last changed at ``updated_at``."""
    return {
        "id": i,
        "type": "record",
        "status": status,
        "weight": i % 100,
        "datastore": {"id": 12, "name": "warehouse_prod"},
        "container": {"id": 300 + i % 7, "name": f"table_{i % 7}"},
        "fields": ["customer_id", "amount"],
        "message": f"customer_id is null in {i} records",
        "created": f"2026-0{1 + i % 9}-{10 + i % 18}T08:00:00Z",
        "received_at": "2026-01-05T08:00:00.000Z",
        "updated_at": updated_at,
        "comments": [],
        "links": [],
        "history": [{"at": updated_at, "kind": "received", "status": status, "by": "platform"}],
        **more,
    }


def mixed(n: int) -> list[dict[str, Any]]:
    """``n`` anomalies: every fifth open, the rest archived, last changed in one of three months
    of 2026 (June to August), long enough ago for the default 30 days."""
    docs = []
    for i in range(1, n + 1):
        status = "Active" if i % 5 == 0 else ARCHIVED_STATUSES[i % 4]
        docs.append(stored(i, status, f"2026-0{6 + i % 3}-{10 + i % 18}T08:00:00.000Z"))
    return docs


def seed(data_dir: Path, docs: list[dict[str, Any]]) -> None:
    store = Store(data_dir).open()
    store.bulk_load(docs)
    store.close_sync()


def where_each_is(store: Store) -> tuple[set[int], set[int]]:
    """The ids in the hot store and the ids current in the cold archive (not hot again)."""
    hot = {int(key) for key in store.all("anomalies")}
    rows, _ = store.cold.search("", None, 10**9, hot=store.is_hot)
    cold = [int(row["id"]) for row in rows]
    assert len(cold) == len(set(cold)), "an anomaly is twice in the cold archive's current view"
    return hot, set(cold)
