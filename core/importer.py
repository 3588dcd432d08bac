"""Import from the platform's API: a new desk starts with the anomalies the platform has.

Pages of ``GET /api/anomalies`` (oldest first, so pages do not shift as new anomalies arrive)
are stored through the same merge as webhooks (:meth:`Desk.ingest` with a ``Delivery`` of kind
``import``): the same staleness rules, status changes noted on linked tickets, history saying
``imported``, nothing written back to the platform (no echo). Each page is one transaction with
the import's position (:class:`ImportState`), so an interrupted import resumes at the first page
it had not stored, and a page is never half stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, Protocol

from anomaly_desk.core.documents import ImportState
from anomaly_desk.core.models import NoUsableId
from anomaly_desk.core.providers import ProviderError
from anomaly_desk.core.salvage import tolerant
from anomaly_desk.core.store import Put
from anomaly_desk.core.views import ImportProgressView
from anomaly_desk.core.webhooks import Delivery, Quarantined

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # the platform's maximum
STATE_KEY = "import"


class PlatformLister(Protocol):
    async def list_page(
        self,
        page: int,
        size: int,
        archived: Literal["include", "only"] | None,
        since: date | None,
        datastore: int | None,
    ) -> Any: ...


StateFor = Callable[[int, int, int], Put]  # (created, updated, unchanged) -> the state's put


class Ingester(Protocol):
    """What an import stores through (the Desk): the webhook's merge, plus the import's state
    in the same transaction; answers (created, updated, unchanged)."""

    async def ingest_import(
        self, delivery: Delivery, state_for: StateFor
    ) -> tuple[int, int, int]: ...


@dataclass(frozen=True)
class ImportRequest:
    archived: bool = False  # archived anomalies too
    since: date | None = None  # created on or after this day
    datastore: int | None = None

    @property
    def key(self) -> str:
        """Which import this is: a resumed import must ask the same question."""
        since = self.since.isoformat() if self.since else ""
        return f"archived={self.archived};since={since};datastore={self.datastore or ''}"


def page_delivery(items: list[Any], page: int) -> Delivery:
    """A page of the platform's anomalies as a delivery; an item without a usable id is kept
    aside (quarantined), as a webhook's would be."""
    delivery = Delivery("import", [])
    for index, item in enumerate(items):
        try:
            delivery.anomalies.append(tolerant(item))
        except NoUsableId as exc:
            delivery.quarantined.append(Quarantined(f"page {page}: items[{index}]", str(exc), item))
    return delivery


def _items(answer: Any) -> tuple[list[Any], int]:
    if not isinstance(answer, dict):
        raise ProviderError("the platform's list is not an object", connection="platform")
    items, total = answer.get("items"), answer.get("total")
    if not isinstance(items, list) or not isinstance(total, int):
        raise ProviderError("the platform's list has no items or total", connection="platform")
    return items, total


async def run_import(
    api: PlatformLister,
    desk: Ingester,
    previous: ImportState | None,
    request: ImportRequest,
    progress: Callable[[ImportProgressView], None] = lambda _: None,
) -> ImportProgressView:
    """Import every page (or the rest of an interrupted import of the same ``request``)."""
    resumed = previous is not None and previous.params == request.key and not previous.done
    state = previous if resumed and previous is not None else None
    page = state.next_page if state else 1
    view = ImportProgressView(
        page=page - 1,
        pages=state.pages if state else 0,
        total=state.total if state else 0,
        created=state.created if state else 0,
        updated=state.updated if state else 0,
        unchanged=state.unchanged if state else 0,
        resumed_from=page if resumed else None,
    )
    if resumed:
        log.info("import: resuming at page %d of %d", page, view.pages)
    while True:
        archived: Literal["include"] | None = "include" if request.archived else None
        answer = await api.list_page(page, PAGE_SIZE, archived, request.since, request.datastore)
        items, total = _items(answer)
        pages = max(1, -(-total // PAGE_SIZE))
        view.total, view.pages = total, pages
        last = page >= pages or not items
        delivery = page_delivery(items, page)

        def state_for(
            created: int,
            updated: int,
            unchanged: int,
            page: int = page,  # bound now: called within this turn, but say so
            pages: int = pages,
            total: int = total,
            last: bool = last,
        ) -> Put:
            state = ImportState(
                params=request.key,
                next_page=page + 1,
                pages=pages,
                total=total,
                created=view.created + created,
                updated=view.updated + updated,
                unchanged=view.unchanged + unchanged,
                done=last,
            )
            return Put("counters", STATE_KEY, state)

        created, updated, unchanged = await desk.ingest_import(delivery, state_for)
        view.created += created
        view.updated += updated
        view.unchanged += unchanged
        view.page = page
        view.done = last
        progress(view)
        if last:
            return view
        page += 1
