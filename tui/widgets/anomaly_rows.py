"""The anomaly table's rows, kept outside the widget: a window of the receiver's list.

The receiver serves pages (newest first, cursor paging). This model holds only the pages loaded so
far plus what live events added, so the dashboard never downloads 100k anomalies to draw 40 rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OPEN = frozenset({"Active", "Acknowledged"})
ARCHIVED = frozenset({"Resolved", "Duplicate", "Invalid", "Discarded"})

# (label, API status filter, statuses it shows)
FILTERS: dict[str, tuple[str, str, frozenset[str]]] = {
    "open": ("Open", "open", OPEN),
    "active": ("Active", "Active", frozenset({"Active"})),
    "acknowledged": ("Acknowledged", "Acknowledged", frozenset({"Acknowledged"})),
    "archived": ("Archived", "archived", ARCHIVED),
    "all": ("All", "all", OPEN | ARCHIVED),
}


def shown_in(filter_name: str, status: Any) -> bool:
    """Whether ``status`` belongs in a filter's view. A status this version does not know (one
    the platform added later, kept as sent) counts as open, as the receiver lists it."""
    if status in FILTERS[filter_name][2]:
        return True
    unknown = isinstance(status, str) and status not in OPEN | ARCHIVED
    return unknown and filter_name in ("open", "all")


# sort mode → label. Only "newest" is the receiver's order; the others sort the loaded rows.
SORTS: dict[str, str] = {
    "newest": "newest first",
    "oldest": "oldest first (loaded rows)",
    "weight": "weight ↓ (loaded rows)",
}


@dataclass(frozen=True)
class Query:
    """What the table asks the receiver for."""

    filter: str = "open"
    q: str = ""

    @property
    def status(self) -> str:
        return FILTERS[self.filter][1]

    def admits(self, row: dict[str, Any]) -> bool:
        """Whether a row the receiver pushed belongs in this view (search approximated locally)."""
        if not shown_in(self.filter, row.get("status")):
            return False
        needle = self.q.strip().lower()
        return not needle or needle in search_text(row)


def search_text(row: dict[str, Any]) -> str:
    """Roughly what the receiver's ``q`` matches; used only for rows pushed by live events."""
    datastore = row.get("datastore")
    container = row.get("container")
    parts = [
        str(row.get("id", "")),
        datastore.get("name", "") if isinstance(datastore, dict) else str(datastore or ""),
        container.get("name", "") if isinstance(container, dict) else str(container or ""),
        " ".join(row.get("fields") or ()),
        row.get("message") or "",
        row.get("type") or "",
        " ".join(ticket_keys(row)),
    ]
    return "\n".join(parts).lower()


def ticket_keys(row: dict[str, Any]) -> list[str]:
    """Ticket keys of a full document (``links``) or of a summary row (``tickets``)."""
    if "links" in row:
        return [link.get("ticket_key", "") for link in row.get("links") or ()]
    return list(row.get("tickets") or ())


def place(row: dict[str, Any]) -> str:
    """``datastore › container`` from a full document or a summary row."""
    datastore = row.get("datastore")
    container = row.get("container")
    ds = datastore.get("name") if isinstance(datastore, dict) else datastore
    ct = container.get("name") if isinstance(container, dict) else container
    return " › ".join(part for part in (ds, ct) if part) or "—"


def _newest_key(row: dict[str, Any]) -> tuple[str, int]:
    return (str(row.get("created") or ""), int(row["id"]))


class AnomalyRows:
    """Loaded rows in the receiver's order, a sorted view of them, and the cursor to go on."""

    def __init__(self) -> None:
        self.query = Query()
        self.sort = "newest"
        self.generation = 0  # bumped on every reset: late pages of an old query are dropped
        self.next_cursor: str | None = None
        self.complete = False
        self._rows: list[dict[str, Any]] = []
        self._by_id: dict[int, dict[str, Any]] = {}
        self._view: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def has_more(self) -> bool:
        return not self.complete and self.next_cursor is not None

    @property
    def view(self) -> list[dict[str, Any]]:
        if self._view is None:
            if self.sort == "newest":
                self._view = self._rows
            elif self.sort == "oldest":
                self._view = sorted(self._rows, key=_newest_key)
            else:
                self._view = sorted(
                    self._rows, key=lambda r: (-(r.get("weight") or 0), *_newest_key(r))
                )
        return self._view

    def get(self, anomaly_id: int) -> dict[str, Any] | None:
        return self._by_id.get(anomaly_id)

    def index_of(self, anomaly_id: int) -> int | None:
        row = self._by_id.get(anomaly_id)
        if row is None:
            return None
        for i, candidate in enumerate(self.view):
            if candidate is row:
                return i
        return None

    def reset(self, query: Query) -> int:
        self.query = query
        self.generation += 1
        return self.generation

    def replace(self, items: Iterable[dict[str, Any]], cursor: str | None) -> None:
        self._rows = list(items)
        self._by_id = {int(r["id"]): r for r in self._rows}
        self.next_cursor = cursor
        self.complete = cursor is None
        self._view = None

    def extend(self, items: Iterable[dict[str, Any]], cursor: str | None) -> None:
        for row in items:
            if int(row["id"]) not in self._by_id:
                self._rows.append(row)
                self._by_id[int(row["id"])] = row
        self.next_cursor = cursor
        self.complete = cursor is None
        self._view = None

    def set_sort(self, sort: str) -> None:
        self.sort = sort
        self._view = None

    def add_new(self, rows: Iterable[dict[str, Any]]) -> int:
        """Rows the receiver announced: placed by (created, id) among the loaded ones."""
        added = 0
        for row in rows:
            anomaly_id = int(row["id"])
            if anomaly_id in self._by_id:
                self._by_id[anomaly_id].update(row)
                continue
            key = _newest_key(row)
            # below the last loaded row means it lies in a page not loaded yet
            if self._rows and not self.complete and key < _newest_key(self._rows[-1]):
                continue
            at = 0
            while at < len(self._rows) and _newest_key(self._rows[at]) > key:
                at += 1
            self._rows.insert(at, row)
            self._by_id[anomaly_id] = row
            added += 1
        if added:
            self._view = None
        return added

    def update(self, anomaly_id: int, changes: dict[str, Any]) -> bool:
        row = self._by_id.get(anomaly_id)
        if row is None:
            return False
        row.update(changes)
        if self.sort != "newest":
            self._view = None
        return True

    def remove(self, anomaly_id: int) -> bool:
        row = self._by_id.pop(anomaly_id, None)
        if row is None:
            return False
        self._rows = [r for r in self._rows if r is not row]
        self._view = None
        return True
