"""The anomaly table's rows, kept outside the widget: a window of the receiver's list.

The receiver serves pages (newest first, cursor paging). This model holds only the pages loaded so
far plus what live events added, so the dashboard never downloads 100k anomalies to draw 40 rows.
Rows are ``AnomalySummary`` views: what the list endpoint and the live events carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from anomaly_desk.core.views import AnomalySummary

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


def shown_in(filter_name: str, status: str) -> bool:
    """Whether ``status`` belongs in a filter's view. A status this version does not know (one
    the platform added later, kept as sent) counts as open, as the receiver lists it."""
    if status in FILTERS[filter_name][2]:
        return True
    return status not in OPEN | ARCHIVED and filter_name in ("open", "all")


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
    archive: bool = False  # the cold archive searched too (slower; its rows marked cold)

    @property
    def status(self) -> str:
        return FILTERS[self.filter][1]

    def admits(self, row: AnomalySummary) -> bool:
        """Whether a row the receiver pushed belongs in this view (search approximated locally)."""
        if not shown_in(self.filter, row.status):
            return False
        needle = self.q.strip().lower()
        return not needle or needle in search_text(row)


def search_text(row: AnomalySummary) -> str:
    """Roughly what the receiver's ``q`` matches; used only for rows pushed by live events."""
    parts = [
        str(row.id),
        row.datastore or "",
        row.container or "",
        " ".join(row.fields),
        row.message or "",
        row.type or "",
        " ".join(row.tickets),
    ]
    return "\n".join(parts).lower()


def place(row: AnomalySummary) -> str:
    """``datastore › container``."""
    return " › ".join(part for part in (row.datastore, row.container) if part) or "—"


def _newest_key(row: AnomalySummary) -> tuple[str, int]:
    return (row.created or "", row.id)


def _weight_key(row: AnomalySummary) -> tuple[float, str, int]:
    return (-(row.weight or 0), *_newest_key(row))


class AnomalyRows:
    """Loaded rows in the receiver's order, a sorted view of them, and the cursor to go on."""

    def __init__(self) -> None:
        self.query = Query()
        self.sort = "newest"
        self.generation = 0  # bumped on every reset: late pages of an old query are dropped
        self.next_cursor: str | None = None
        self.complete = False
        self._rows: list[AnomalySummary] = []
        self._by_id: dict[int, AnomalySummary] = {}
        self._view: list[AnomalySummary] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def has_more(self) -> bool:
        return not self.complete and self.next_cursor is not None

    @property
    def view(self) -> list[AnomalySummary]:
        if self._view is None:
            if self.sort == "newest":
                self._view = self._rows
            elif self.sort == "oldest":
                self._view = sorted(self._rows, key=_newest_key)
            else:
                self._view = sorted(self._rows, key=_weight_key)
        return self._view

    def get(self, anomaly_id: int) -> AnomalySummary | None:
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

    def replace(self, items: Iterable[AnomalySummary], cursor: str | None) -> None:
        self._rows = list(items)
        self._by_id = {r.id: r for r in self._rows}
        self.next_cursor = cursor
        self.complete = cursor is None
        self._view = None

    def extend(self, items: Iterable[AnomalySummary], cursor: str | None) -> None:
        for row in items:
            if row.id not in self._by_id:
                self._rows.append(row)
                self._by_id[row.id] = row
        self.next_cursor = cursor
        self.complete = cursor is None
        self._view = None

    def set_sort(self, sort: str) -> None:
        self.sort = sort
        self._view = None

    def add_new(self, rows: Iterable[AnomalySummary]) -> int:
        """Rows the receiver announced: placed by (created, id) among the loaded ones."""
        added = 0
        for row in rows:
            anomaly_id = row.id
            if anomaly_id in self._by_id:
                self.update(row)
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

    def update(self, row: AnomalySummary) -> bool:
        """The loaded row of ``row.id`` takes ``row``'s values (in place: it keeps its place);
        False when that anomaly is not loaded."""
        current = self._by_id.get(row.id)
        if current is None:
            return False
        if current is not row:
            for name in AnomalySummary.model_fields:
                setattr(current, name, getattr(row, name))
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
