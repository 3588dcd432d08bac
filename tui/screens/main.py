"""The main screen: anomaly table, detail pane and sync log, kept live by server-sent events.

Everything that talks to the receiver runs in a worker, never on the UI loop. Events only mark
what changed; a 250 ms tick applies the changes in one go, so a burst of 1,000 webhooks costs a
handful of redraws, not a thousand.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial

import httpx
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input

from anomaly_desk.core.views import (
    AnomalyDetail,
    AnomalySummary,
    AnomalyUpdated,
    ConnectionView,
    DeliveryQuarantined,
    EventView,
    LinkCreated,
    LinkRemoved,
    LinkStateChanged,
    StreamLagged,
    SyncJobView,
    SyncLogEntryView,
    TicketLinkView,
)
from anomaly_desk.tui.client import ApiError, DeskClient
from anomaly_desk.tui.screens.choose_link import ChooseLinkScreen, ConfirmScreen
from anomaly_desk.tui.screens.quarantine import QuarantineScreen
from anomaly_desk.tui.widgets.anomaly_rows import FILTERS, SORTS, AnomalyRows, Query, shown_in
from anomaly_desk.tui.widgets.anomaly_table import AnomalyTable
from anomaly_desk.tui.widgets.detail import DetailPane
from anomaly_desk.tui.widgets.filter_bar import FilterBar
from anomaly_desk.tui.widgets.header import DeskHeader
from anomaly_desk.tui.widgets.sync_log import SyncLog

FIRST_PAGE = 100  # enough for a tall terminal; the next pages come as the user scrolls
MORE_PAGE = 500  # the API's maximum
FLUSH_S = 0.25
COUNTS_EVERY_S = 1.0
HEALTH_EVERY_S = 10.0  # /healthz even when nothing happens: a full disk sends no events
QUARANTINE_COUNT_MAX = 500  # the API's page maximum: beyond it the header says "500+"
DETAIL_DELAY_S = 0.12
SEARCH_DELAY_S = 0.03
RECONNECT_MAX_S = 10.0

# (action, title, help) in the order the command palette lists them
ACTIONS: list[tuple[str, str, str]] = [
    ("acknowledge", "Acknowledge anomaly", "Mark the highlighted anomaly Acknowledged (a)"),
    ("create", "Create ticket", "Create a Jira or ServiceNow ticket for it (c)"),
    ("link", "Link existing ticket", "Search a connection and link a ticket (l)"),
    ("unlink", "Unlink ticket", "Forget a link; the ticket itself is not changed (u)"),
    ("archive", "Archive anomaly", "Resolved / Duplicate / Invalid / Discarded (x)"),
    ("comment", "Comment", "Add a comment; linked tickets get it as a note (m)"),
    ("retry", "Retry dead sync job", "Retry the selected dead job in the sync log (r)"),
    ("open", "Open in browser", "Open the linked ticket, or the anomaly itself (o)"),
    ("search", "Search", "Focus the search box (/)"),
    ("sort", "Change sort order", "Newest first, oldest first, by weight (s)"),
    ("filter('open')", "Show open", "Active and Acknowledged anomalies (1)"),
    ("filter('active')", "Show active", "Active anomalies only (2)"),
    ("filter('acknowledged')", "Show acknowledged", "Acknowledged anomalies only (3)"),
    ("filter('archived')", "Show archived", "Resolved, Duplicate, Invalid, Discarded (4)"),
    ("filter('all')", "Show all", "Every anomaly (5)"),
    ("reload", "Reload", "Fetch the list, counts and sync log again (ctrl+r)"),
    ("check_connections", "Check connections", "Test every connection now"),
    ("focus_log", "Focus sync log", "Move to the sync log to pick a dead job (tab)"),
    ("quarantine", "Show quarantine", "Delivered items kept aside: no usable anomaly id (Q)"),
]


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("slash", "search", "Search"),
        Binding("a", "acknowledge", "Ack"),
        Binding("c", "create", "Create"),
        Binding("l", "link", "Link"),
        Binding("u", "unlink", "Unlink"),
        Binding("x", "archive", "Archive"),
        Binding("m", "comment", "Comment"),
        Binding("r", "retry", "Retry"),
        Binding("o", "open", "Open"),
        Binding("s", "sort", "Sort"),
        Binding("1", "filter('open')", "Open", show=False),
        Binding("2", "filter('active')", "Active", show=False),
        Binding("3", "filter('acknowledged')", "Ack'd", show=False),
        Binding("4", "filter('archived')", "Archived", show=False),
        Binding("5", "filter('all')", "All", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape", "focus_table", "Table", show=False),
        Binding("q", "app.quit", "Quit"),
        # after Quit: where the footer is too narrow, this label is the one cut, not "Quit"
        Binding("Q", "quarantine", "Quarantine"),
    ]

    def __init__(self, client: DeskClient, address: str) -> None:
        super().__init__()
        self.client = client
        self.address = address
        self.model = AnomalyRows()
        self.detail_doc: AnomalyDetail | None = None
        self.connections: list[ConnectionView] | None = None
        self.rows_version = 0  # bumped whenever the table shows a fresh answer (tests, bench)
        self.rows_shown_at = 0.0  # perf_counter() of that moment
        self._loading_more = False
        # what events changed since the last flush
        self._created: list[AnomalySummary] = []
        self._updated: dict[int, AnomalyUpdated] = {}
        self._linked_rows: dict[int, AnomalySummary] = {}  # rows as the link events left them
        self._log: list[SyncLogEntryView] = []
        self._jobs: dict[int, SyncJobView] = {}
        self._counts_dirty = False
        self._counts_at = 0.0
        self._quarantine_dirty = False
        self._detail_dirty = False
        self._refetch = False
        self._attempt = 0

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield DeskHeader(self.address, id="header")
        with Horizontal(id="body"):
            with Vertical(id="list-pane"):
                yield FilterBar(id="filters")
                yield AnomalyTable(self.model, id="anomalies")
            yield DetailPane(id="detail")
        with Vertical(id="log-pane"):
            yield SyncLog(id="sync-log")
        yield Footer()

    @property
    def table(self) -> AnomalyTable:
        return self.query_one(AnomalyTable)

    def gone(self) -> bool:
        """True once the screen is being taken down: a worker resuming after a network wait
        must then leave the (removed) widgets alone — quitting mid-request is not a crash."""
        return not self.app.is_running or not self.is_attached

    @property
    def sync_log(self) -> SyncLog:
        return self.query_one(SyncLog)

    @property
    def header(self) -> DeskHeader:
        return self.query_one(DeskHeader)

    def on_mount(self) -> None:
        self.query_one("#list-pane").border_title = "Anomalies"
        self.query_one("#detail").border_title = "Detail"
        self.query_one("#log-pane").border_title = "Sync log"
        self.table.focus()
        self.load_rows(self.model.query)
        self.load_side()
        self.consume_events()
        self.set_interval(FLUSH_S, self.flush)
        self.set_interval(HEALTH_EVERY_S, self._health_tick)

    # -- loading -------------------------------------------------------------------------------

    def _set_list_title(self) -> None:
        label = FILTERS[self.model.query.filter][0]
        shown = len(self.model)
        more = "+" if self.model.has_more else ""
        title = f"Anomalies · {label} · {shown:,}{more} loaded"
        if self.model.query.q:
            title += f" · search “{self.model.query.q}”"
        self.query_one("#list-pane").border_title = title

    @work(exclusive=True, group="rows")
    async def load_rows(
        self, query: Query, keep_id: int | None = None, delay: float = 0.0, window: int = 0
    ) -> None:
        """The first page of ``query`` (or as many rows as ``window``, to keep a scrolled view)."""
        if delay:
            await asyncio.sleep(delay)
        generation = self.model.reset(query)
        limit = min(MORE_PAGE, max(FIRST_PAGE, window))
        try:
            page = await self.client.list_anomalies(query.status, query.q, limit)
        except ApiError as exc:
            if self.gone():
                return
            self.table.empty_text = f"Cannot load anomalies: {exc.detail}"
            self.table.refresh()
            self.notify(exc.detail, title="Cannot load anomalies", severity="error")
            return
        if generation != self.model.generation or self.gone():
            return
        self.model.replace(page.items, page.next_cursor)
        self.table.empty_text = (
            f"No anomalies match “{query.q}”"
            if query.q
            else f"No {FILTERS[query.filter][0].lower()} anomalies"
        )
        self.table.rows_changed(keep_id=keep_id, reset=keep_id is None)
        self.rows_version += 1
        self.rows_shown_at = time.perf_counter()
        self._set_list_title()
        if self.table.current is None:
            self.query_one(DetailPane).show(None)
            self.detail_doc = None

    def on_anomaly_table_need_more(self) -> None:
        self.load_more()

    @work(group="more")
    async def load_more(self) -> None:
        if self._loading_more or not self.model.has_more:
            return
        self._loading_more = True
        try:
            generation, cursor, query = (
                self.model.generation,
                self.model.next_cursor,
                self.model.query,
            )
            try:
                page = await self.client.list_anomalies(query.status, query.q, MORE_PAGE, cursor)
            except ApiError as exc:
                self.notify(exc.detail, title="Cannot load more anomalies", severity="error")
                return
            if (
                self.gone()
                or generation != self.model.generation
                or cursor != self.model.next_cursor
            ):
                return
            current = self.table.current
            self.model.extend(page.items, page.next_cursor)
            self.table.rows_changed(keep_id=current.id if current else None)
            self._set_list_title()
        finally:
            self._loading_more = False

    @work(group="side")
    async def load_side(self) -> None:
        """Counts, connections and the sync log: all but the rows, which come first."""
        await asyncio.gather(
            self.load_counts(),
            self.load_connections(),
            self.load_sync_log(),
            self.load_quarantine_count(),
        )

    def _health_tick(self) -> None:
        if time.monotonic() - self._counts_at >= HEALTH_EVERY_S:
            self.run_worker(self.load_counts(), group="counts", exclusive=True)

    async def load_counts(self) -> None:
        self._counts_at = time.monotonic()
        self._counts_dirty = False
        try:
            health = await self.client.health()
        except ApiError:
            health = None
        if self.gone():
            return
        if health is None:
            self.header.set_live("receiver unreachable")
        else:
            self.header.set_counts(health)  # also says when the store is degraded (503)

    async def load_quarantine_count(self) -> None:
        """How many delivered items are quarantined, for the header (and an open list)."""
        self._quarantine_dirty = False
        try:
            items = await self.client.quarantine(limit=QUARANTINE_COUNT_MAX)
        except ApiError:
            return
        if self.gone():
            return
        self.header.set_quarantined(len(items), more=len(items) >= QUARANTINE_COUNT_MAX)

    async def load_connections(self) -> None:
        try:
            self.connections = await self.client.connections()
        except ApiError:
            return
        if self.gone():
            return
        self.header.set_connections(self.connections)
        if any(c.health is None for c in self.connections):
            self.set_timer(1.0, self._connections_again)

    def _connections_again(self) -> None:
        self.run_worker(self.load_connections(), group="side")

    async def load_sync_log(self) -> None:
        log = self.sync_log
        try:
            if log.last_id is None:
                entries = await self.client.sync_log()
            else:
                entries = await self.client.sync_log(after=log.last_id, limit=1000)
            dead = await self.client.sync_jobs(state="dead")
        except ApiError as exc:
            self.notify(exc.detail, title="Cannot read the sync log", severity="error")
            return
        if self.gone():
            return
        log.add_entries(entries)
        log.set_job_states(dead)

    # -- live ----------------------------------------------------------------------------------

    @work(exclusive=True, group="events")
    async def consume_events(self) -> None:
        """Follow ``/api/events``; reconnect with backoff and refetch what may have been missed."""
        backoff = 0.5
        attempt = 0
        while True:
            attempt += 1
            self._attempt = attempt
            if attempt > 1:
                # subscribed by then in practice; anything older comes from the refetch
                self.set_timer(0.5, self._request_refetch)
            self.header.set_live("connecting")
            # the stream says nothing until something happens: no error by then means it is up
            self.set_timer(0.5, partial(self._maybe_live, attempt))
            try:
                async for kind, data in self.client.events():
                    if self.gone():
                        return
                    if self.header.live != "live":
                        self.header.set_live("live")
                    backoff = 0.5
                    self.note_event(kind, data)
            except (httpx.HTTPError, ApiError) as exc:
                if self.gone():
                    return
                self.header.set_live(f"reconnecting ({type(exc).__name__})")
            else:
                if self.gone():
                    return
                self.header.set_live("reconnecting")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _maybe_live(self, attempt: int) -> None:
        if attempt == self._attempt and self.header.live == "connecting":
            self.header.set_live("live")

    def _request_refetch(self) -> None:
        self._refetch = True

    def note_event(self, kind: str, data: EventView | None) -> None:
        """Note what changed; ``flush`` applies it. ``kind`` is for the record: the view says
        what happened (None: an event this version does not know)."""
        detail_id = self.detail_doc.id if self.detail_doc else None
        match data:
            case AnomalyUpdated():  # before AnomalySummary: it is one
                self._updated[data.id] = data
                self._counts_dirty = True
                self._detail_dirty |= data.id == detail_id
            case AnomalySummary():  # anomaly.created
                self._created.append(data)
                self._counts_dirty = True
            case LinkCreated() | LinkRemoved() | LinkStateChanged():
                if data.anomaly is not None:
                    self._linked_rows[data.anomaly_id] = data.anomaly
                self._detail_dirty |= data.anomaly_id == detail_id
            case SyncLogEntryView():
                self._log.append(data)
            case SyncJobView():
                self._jobs[data.id] = data
            case DeliveryQuarantined():
                self._quarantine_dirty = True
            case StreamLagged():
                self._refetch = True

    def flush(self) -> None:
        """Apply the changes noted since the last tick, in one redraw."""
        if self._refetch:
            self._refetch = False
            self._created.clear()
            self._updated.clear()
            self._linked_rows.clear()
            self.reload()
            return
        current = self.table.current
        keep = current.id if current else None
        changed = False
        query = self.model.query
        if self._created:
            fresh = [row for row in self._created if query.admits(row)]
            self._created.clear()
            changed |= bool(self.model.add_new(fresh))
        if self._updated:
            missing = False
            for anomaly_id, row in self._updated.items():
                admitted = query.admits(row)
                if self.model.get(anomaly_id) is None:
                    missing |= admitted and not query.q
                elif not admitted and not shown_in(query.filter, row.status):
                    changed |= self.model.remove(anomaly_id)
                else:
                    changed |= self.model.update(row)
            self._updated.clear()
            if missing:  # it moved into this view: fetch the window again, cursor kept
                self.load_rows(query, keep_id=keep, window=len(self.model))
        if self._linked_rows:
            for linked in self._linked_rows.values():
                changed |= self.model.update(linked)
            self._linked_rows.clear()
        if changed:
            self.table.rows_changed(keep_id=keep)
            self._set_list_title()
        if self._log:
            self.sync_log.add_entries(self._log)
            self._log = []
        if self._jobs:
            for job in self._jobs.values():
                self.sync_log.job_changed(job)
            self._jobs.clear()
        if self._detail_dirty and self.detail_doc is not None:
            self._detail_dirty = False
            self.load_detail(self.detail_doc.id, delay=0)
        if self._counts_dirty and time.monotonic() - self._counts_at >= COUNTS_EVERY_S:
            self.run_worker(self.load_counts(), group="counts", exclusive=True)
        if self._quarantine_dirty:
            self._quarantine_dirty = False
            self.run_worker(self.load_quarantine_count(), group="quarantine", exclusive=True)
            if isinstance(self.app.screen, QuarantineScreen):
                self.app.screen.load()

    def reload(self) -> None:
        current = self.table.current
        self.load_rows(
            self.model.query, keep_id=current.id if current else None, window=len(self.model)
        )
        self.load_side()

    # -- detail --------------------------------------------------------------------------------

    @on(AnomalyTable.Highlighted)
    def highlighted(self, message: AnomalyTable.Highlighted) -> None:
        if message.row is None:
            self.query_one(DetailPane).show(None)
            self.detail_doc = None
        else:
            self.load_detail(message.row.id)

    @work(exclusive=True, group="detail")
    async def load_detail(self, anomaly_id: int, delay: float = DETAIL_DELAY_S) -> None:
        """Debounced: moving the cursor quickly fetches only where it stops."""
        if delay:
            await asyncio.sleep(delay)
        try:
            doc = await self.client.anomaly(anomaly_id)
        except ApiError as exc:
            if self.gone():
                return
            self.query_one(DetailPane).show(
                None, note=f"Cannot load anomaly {anomaly_id}: {exc.detail}"
            )
            return
        if self.gone():
            return
        current = self.table.current
        if current is not None and current.id != anomaly_id:
            return
        self.detail_doc = doc
        self.query_one(DetailPane).show(doc)
        if self.model.update(doc.summary()):
            self.table.refresh()

    async def current_doc(self) -> AnomalyDetail | None:
        """The highlighted anomaly with its links, comments and history (fetched if needed)."""
        row = self.table.current
        if row is None:
            self.notify("No anomaly highlighted", severity="warning")
            return None
        if self.detail_doc is not None and self.detail_doc.id == row.id:
            return self.detail_doc
        try:
            self.detail_doc = await self.client.anomaly(row.id)
        except ApiError as exc:
            self.notify(exc.detail, title="Cannot load the anomaly", severity="error")
            return None
        self.query_one(DetailPane).show(self.detail_doc)
        return self.detail_doc

    def _show_doc(self, doc: AnomalyDetail) -> None:
        """An action's answer is the new document: show it without waiting for the event."""
        if self.model.update(doc.summary()):
            self.table.refresh()
        current = self.table.current
        if current is not None and current.id == doc.id:
            self.detail_doc = doc
            self.query_one(DetailPane).show(doc)

    # -- filters -------------------------------------------------------------------------------

    @on(FilterBar.Changed)
    def filters_changed(self, message: FilterBar.Changed) -> None:
        query = Query(message.status, message.q.strip())
        if query == self.model.query:
            return
        self.load_rows(query, delay=SEARCH_DELAY_S if query.q != self.model.query.q else 0.0)

    @on(Input.Submitted, "#search")
    def search_submitted(self) -> None:
        self.table.focus()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_table(self) -> None:
        self.table.focus()

    def action_focus_log(self) -> None:
        self.sync_log.focus()

    def action_filter(self, status: str) -> None:
        self.query_one(FilterBar).set_status(status)

    def action_sort(self) -> None:
        order = list(SORTS)
        current = self.table.current
        self.model.set_sort(order[(order.index(self.model.sort) + 1) % len(order)])
        self.query_one(FilterBar).set_sort_label(self.model.sort)
        self.table.rows_changed(keep_id=current.id if current else None)

    def action_reload(self) -> None:
        self.reload()

    def action_quarantine(self) -> None:
        self.app.push_screen(QuarantineScreen(self.client))

    async def action_check_connections(self) -> None:
        self.notify("Checking connections…")
        try:
            health = await self.client.check_connections()
        except ApiError as exc:
            self.notify(exc.detail, title="Check failed", severity="error")
            return
        await self.load_connections()
        bad = [f"{name}: {h.message}" for name, h in health.items() if not h.ok]
        if bad:
            self.notify("\n".join(bad), title="Connection problems", severity="error")
        else:
            self.notify(f"{len(health)} connection(s) ok")

    # -- actions -------------------------------------------------------------------------------

    async def _connections(self) -> list[ConnectionView]:
        if self.connections is None:
            await self.load_connections()
        return self.connections or []

    async def action_acknowledge(self) -> None:
        doc = await self.current_doc()
        if doc is None:
            return
        if doc.status != "Active":
            self.notify(f"Anomaly {doc.id} is {doc.status}", severity="warning")
            return
        try:
            new = await self.client.acknowledge(doc.id)
        except ApiError as exc:
            self.notify(exc.detail, title="Cannot acknowledge", severity="error")
            return
        self._show_doc(new)
        links = len(new.links)
        self.notify(
            f"Anomaly {new.id} acknowledged"
            + (f"; a note goes to {links} ticket(s)" if links else "")
        )

    def _screen_missing(self, name: str) -> None:
        self.notify(f"The {name} form is not available in this build", severity="error")

    async def action_create(self) -> None:
        doc = await self.current_doc()
        if doc is None:
            return
        try:
            from anomaly_desk.tui.screens.create_ticket import CreateTicketScreen
        except ImportError:
            self._screen_missing("create ticket")
            return
        connections = await self._connections()
        self.app.push_screen(CreateTicketScreen(self.client, doc, connections), self._linked)

    async def action_link(self) -> None:
        doc = await self.current_doc()
        if doc is None:
            return
        try:
            from anomaly_desk.tui.screens.link_ticket import LinkTicketScreen
        except ImportError:
            self._screen_missing("link ticket")
            return
        connections = await self._connections()
        self.app.push_screen(LinkTicketScreen(self.client, doc, connections), self._linked)

    def _linked(self, link: TicketLinkView | None) -> None:
        if link:
            self.notify(f"Linked {link.ticket_key} ({link.connection})")
            if self.detail_doc is not None:
                self.load_detail(self.detail_doc.id, delay=0)

    async def action_archive(self) -> None:
        doc = await self.current_doc()
        if doc is None:
            return
        try:
            from anomaly_desk.tui.screens.archive import ArchiveScreen
        except ImportError:
            self._screen_missing("archive")
            return
        anomaly_id = doc.id

        async def done(result: tuple[str, str | None] | None) -> None:
            if not result:
                return
            status, comment = result
            try:
                new = await self.client.archive(anomaly_id, status, comment)
            except ApiError as exc:
                self.notify(exc.detail, title="Cannot archive", severity="error")
                return
            self._show_doc(new)
            self.notify(f"Anomaly {anomaly_id} archived as {status}")

        self.app.push_screen(ArchiveScreen(doc), done)

    async def action_comment(self) -> None:
        doc = await self.current_doc()
        if doc is None:
            return
        try:
            from anomaly_desk.tui.screens.comment import CommentScreen
        except ImportError:
            self._screen_missing("comment")
            return
        anomaly_id = doc.id

        async def done(text: str | None) -> None:
            if not text:
                return
            try:
                new = await self.client.comment(anomaly_id, text)
            except ApiError as exc:
                self.notify(exc.detail, title="Cannot comment", severity="error")
                return
            self._show_doc(new)
            self.notify(f"Comment added to anomaly {anomaly_id}")

        self.app.push_screen(CommentScreen(doc), done)

    async def action_unlink(self) -> None:
        doc = await self.current_doc()
        if doc is None:
            return
        links = doc.links
        if not links:
            self.notify(f"Anomaly {doc.id} has no linked ticket", severity="warning")
            return
        anomaly_id = doc.id

        async def confirmed(link: TicketLinkView, yes: bool | None) -> None:
            if not yes:
                return
            try:
                new = await self.client.unlink(anomaly_id, link.id)
            except ApiError as exc:
                self.notify(exc.detail, title="Cannot unlink", severity="error")
                return
            self._show_doc(new)
            self.notify(f"Unlinked {link.ticket_key}; the ticket itself is unchanged")

        def confirm(link: TicketLinkView | None) -> None:
            if link is None:
                return
            question = (
                f"Unlink {link.ticket_key} ({link.connection}) from anomaly {anomaly_id}?\n"
                "Notes not yet delivered to it are cancelled; the ticket is not changed."
            )

            async def answer(yes: bool | None) -> None:
                await confirmed(link, yes)

            self.app.push_screen(ConfirmScreen(question, yes="Unlink"), answer)

        if len(links) == 1:
            confirm(links[0])
        else:
            self.app.push_screen(ChooseLinkScreen("Unlink which ticket?", links), confirm)

    async def action_retry(self) -> None:
        log = self.sync_log
        job_id = log.dead_job_for(log.selected)
        if job_id is None and not log.has_focus:
            current = self.table.current
            job_id = log.newest_dead_job(current.id if current else None)
        if job_id is None:
            self.notify(
                "No dead job selected: move to the sync log (tab) and pick a red line",
                severity="warning",
            )
            return
        try:
            job = await self.client.retry_job(job_id)
        except ApiError as exc:
            self.notify(exc.detail, title="Cannot retry", severity="error")
            return
        log.job_changed(job)
        self.notify(f"Retrying sync job {job_id} ({job.ticket_key})")

    async def action_open(self) -> None:
        doc = await self.current_doc()
        if doc is None:
            return
        links = [link for link in doc.links if link.url]

        def open_link(link: TicketLinkView | None) -> None:
            if link is not None and link.url:
                self.app.open_url(link.url)
                self.notify(f"Opened {link.ticket_key}")

        if len(links) == 1:
            open_link(links[0])
        elif links:
            self.app.push_screen(ChooseLinkScreen("Open which ticket?", links), open_link)
        elif doc.url:
            self.app.open_url(doc.url)
            self.notify(f"Opened anomaly {doc.id}")
        else:
            self.notify("Nothing to open: no ticket and no link back", severity="warning")
