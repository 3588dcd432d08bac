"""The main screen: anomaly table, detail pane and sync log, kept live by server-sent events.

Everything that talks to the receiver runs in a worker, never on the UI loop. Events only mark
what changed; a 250 ms tick applies the changes in one go, so a burst of 1,000 webhooks costs a
handful of redraws, not a thousand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Literal

import httpx
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from anomaly_desk.core.views import (
    AnomaliesCompacted,
    AnomalyDetail,
    AnomalySummary,
    AnomalyUpdated,
    ConnectionHealth,
    ConnectionHealthChanged,
    ConnectionView,
    DeliveryQuarantined,
    EventView,
    ImportProgressView,
    LinkCreated,
    LinkRemoved,
    LinkStateChanged,
    StreamLagged,
    SyncJobView,
    SyncLogEntryView,
    TicketLinkView,
)
from anomaly_desk.core.vocabulary import PLATFORM
from anomaly_desk.tui.browser import open_in_browser
from anomaly_desk.tui.client import ApiError, DeskClient
from anomaly_desk.tui.screens.choose_link import (
    ChooseLinkScreen,
    ChooseValueScreen,
    ConfirmScreen,
    link_label,
    platform_label,
)
from anomaly_desk.tui.screens.commands import MAIN_COMMANDS, bindings, groups, palette
from anomaly_desk.tui.screens.confirm import ConfirmNotesScreen, notify_question
from anomaly_desk.tui.screens.import_platform import ImportScreen, finished, summary
from anomaly_desk.tui.screens.keymap import KeyMapScreen, key_sections
from anomaly_desk.tui.screens.log_entry import target_word
from anomaly_desk.tui.screens.quarantine import QuarantineScreen
from anomaly_desk.tui.widgets.anomaly_rows import FILTERS, SORTS, AnomalyRows, Query, shown_in
from anomaly_desk.tui.widgets.anomaly_table import AnomalyTable
from anomaly_desk.tui.widgets.connection_list import ConnectionList, health_line, newer_health
from anomaly_desk.tui.widgets.detail import DetailPane
from anomaly_desk.tui.widgets.filter_bar import FilterBar
from anomaly_desk.tui.widgets.footer import DeskFooter
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
WIDE_AT = 120  # columns from which the detail sits beside the list, not below it
TALL_AT = 40  # rows from which a narrow terminal has room for the detail below the list
PANES = ("list-pane", "detail", "log-pane")  # what `z` maximises: the pane holding the focus
IMPORT_POLL_S = 1.0  # a watched import with no event for this long is asked about (GET)
COMPACTED_NOTE_S = 4.0  # how long "N anomalies moved to the archive" stays: news, not an alarm

# (action, title, help) in the order the command palette lists them; keys: see commands.py
ACTIONS: list[tuple[str, str, str]] = palette(MAIN_COMMANDS)
# the sections of the key map (?): the screen's own groups, then the panes' keys, then the app's
KEY_MAP_ORDER = ("Notes", "Tickets", "View", "Anomaly table", "Sync log", "App")
# keys every screen inherits, sectioned like ours
KEY_MAP_GROUPS = {"app.focus_next": "View", "app.focus_previous": "View"}


def held_behind_dead(doc: AnomalyDetail) -> list[str]:
    """The tickets of ``doc`` with notes held behind a dead one (and ``platform`` when its
    write-back waits so): a note just sent to one of them is among them (it came after the dead
    one). Not "has a dead note": the note just sent may be the one that died, already (it is
    then on the sync log, in red, not held)."""
    held = [link.ticket_key for link in doc.links if link.notes is not None and link.notes.held]
    if doc.platform_notes is not None and doc.platform_notes.held:
        held.append(PLATFORM)
    return held


def row_of(doc: AnomalyDetail) -> AnomalySummary:
    """``doc``'s list row (its stuck notes count the platform's write-back too, as the
    receiver's rows do; a cold one stays marked cold)."""
    row = doc.summary()
    row.cold = doc.cold
    return row


def moved_note(moved: int) -> str:
    """The one notification of a compaction run."""
    return f"{moved:,} anomal{'y' if moved == 1 else 'ies'} moved to the archive"


class MainScreen(Screen[None]):
    # responsive layout (dashboard.tcss): -narrow/-wide by columns, -short/-tall by rows
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE_AT, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (TALL_AT, "-tall")]
    ALLOW_IN_MAXIMIZED_VIEW = "DeskHeader, Footer"

    BINDINGS = bindings(MAIN_COMMANDS)  # add a key in commands.py: footer, palette and ?

    def __init__(
        self,
        client: DeskClient,
        address: str,
        confirm_notes: bool = True,
        demo_info: str | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.address = address
        self.demo_info = demo_info  # the demo's banner, when the demo started the dashboard
        self.confirm_notes = confirm_notes  # ask before a key sends notes to linked tickets
        self.model = AnomalyRows()
        self.detail_pane = DetailPane(id="detail")
        self.connections: list[ConnectionView] | None = None
        self.rows_version = 0  # bumped whenever the table shows a fresh answer (tests, bench)
        self.rows_shown_at = 0.0  # perf_counter() of that moment
        self._loading_more = False
        # what events changed since the last flush
        self._created: list[AnomalySummary] = []
        self._updated: dict[int, AnomalyUpdated] = {}
        self._linked_rows: dict[int, AnomalySummary] = {}  # rows as the link events left them
        self._compacted: list[AnomaliesCompacted] = []  # anomalies.compacted: rows gone cold
        self._log: list[SyncLogEntryView] = []
        self._jobs: dict[int, SyncJobView] = {}
        self._health: dict[str, ConnectionHealth] = {}  # connection.health events, newest kept
        self._counts_dirty = False
        self._counts_at = 0.0
        self._quarantine_dirty = False
        self._detail_dirty = False
        self._refetch = False
        self._attempt = 0
        # the platform import: where it stands, whether this screen follows it to its end
        self.import_view: ImportProgressView | None = None
        self._import_event: ImportProgressView | None = None  # the newest, for the next flush
        self._import_event_at = 0.0  # time.monotonic() of the last import.progress event
        self._import_watching = False

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield DeskHeader(self.address, id="header")
        with Horizontal(id="body"):
            with Vertical(id="list-pane"):
                yield FilterBar(id="filters")
                yield AnomalyTable(self.model, id="anomalies")
            yield self.detail_pane
        with Vertical(id="log-pane"):
            yield SyncLog(id="sync-log")
        yield DeskFooter()

    def detail_shown(self) -> bool:
        """Whether the layout shows the detail pane: beside the list when wide, below it when
        narrow, hidden when narrow and short, unless `d` said otherwise (narrow and short, the
        detail then takes the sync log's place)."""
        if self.has_class("-detail-off"):
            return False
        if self.has_class("-detail-on"):
            return True
        return not (self.has_class("-narrow") and self.has_class("-short"))

    def action_toggle_detail(self) -> None:
        shown = not self.detail_shown()
        self.set_class(shown, "-detail-on")
        self.set_class(not shown, "-detail-off")
        if not shown and self.query_one(DetailPane).has_focus_within:
            self.table.focus()
        elif shown and self.has_class("-narrow", "-short") and self.sync_log.has_focus:
            self.table.focus()  # the detail takes the sync log's place

    def action_zoom(self) -> None:
        """Maximise the pane holding the focus (the list when none does); again restores, as
        does escape."""
        if self.maximized is not None:
            self.minimize()
            return
        chain = self.focused.ancestors_with_self if self.focused is not None else []
        panes = [node for node in chain if isinstance(node, Widget) and node.id in PANES]
        self.maximized = panes[0] if panes else self.query_one("#list-pane")

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
        self.set_interval(IMPORT_POLL_S, self._import_tick)
        if self.demo_info is not None:
            self.notify("i shows the sandbox credentials, webhook secret and logs", title="Demo")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Textual's notification, but plain text unless asked otherwise: messages carry ticket
        keys, summaries, provider errors and platform statuses, and ``[To Do]`` or
        ``[@click=app.quit]`` must be shown as written, never read as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "demo_info":
            return self.demo_info is not None
        return True

    def action_demo_info(self) -> None:
        if self.demo_info is not None:
            from anomaly_desk.tui.screens.demo_info import DemoInfoScreen

            self.app.push_screen(DemoInfoScreen(self.demo_info))

    # -- loading -------------------------------------------------------------------------------

    def _set_list_title(self) -> None:
        label = FILTERS[self.model.query.filter][0]
        shown = len(self.model)
        more = "+" if self.model.has_more else ""
        title = f"Anomalies · {label} · {shown:,}{more} loaded"
        if self.model.query.q:
            title += f" · search “{self.model.query.q}”"
        if self.model.query.archive:
            title += " · with the cold archive"
        self.query_one("#list-pane").border_title = Text(title)  # typed text: `[/]` is no tag

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
            page = await self.client.list_anomalies(
                query.status, query.q, limit, archive=query.archive
            )
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
        if query.filter in ("archived", "all") and not query.archive:  # older ones may be cold
            self.table.empty_text += " in the hot store: press 6 to include the cold archive"
        self.table.rows_changed(keep_id=keep_id, reset=keep_id is None)
        self.rows_version += 1
        self.rows_shown_at = time.perf_counter()
        self._set_list_title()
        if self.table.current is None:
            self._clear_detail()

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
                page = await self.client.list_anomalies(
                    query.status, query.q, MORE_PAGE, cursor, archive=query.archive
                )
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
            fetched = await self.client.connections()
        except ApiError:
            return
        if self.gone():
            return
        # an event that came while the answer was on its way may know better: it stays
        known = {c.name: c.health for c in self.connections or ()}
        self.connections = [
            c
            if newer_health(known.get(c.name), c.health)
            else c.model_copy(update={"health": known.get(c.name)})
            for c in fetched
        ]
        self.header.set_connections(self.connections)
        for connection in self.connections:
            self._pickers_health(connection.name, connection.health)
        if any(c.health is None for c in self.connections):
            self.set_timer(1.0, self._connections_again)

    def _health_changed(self, name: str, health: ConnectionHealth) -> None:
        """A ``connection.health`` event: the header, this screen's connections (what a picker
        opened later starts from) and any picker open now say it; going down or coming back is
        also a notification."""
        if self.connections is None:
            return  # the list is on its way, with this state or a newer one
        for i, connection in enumerate(self.connections):
            if connection.name != name:
                continue
            before = connection.health
            if not newer_health(before, health):
                return
            self.connections[i] = connection.model_copy(update={"health": health})
            self.header.set_connections(self.connections)
            self._pickers_health(name, health)
            if before is not None and before.ok and not health.ok:
                message = health_line(name, health.message)
                self.notify(message, title="Connection failing", severity="error")
            elif before is not None and not before.ok and health.ok:
                message = health_line(name, health.message)
                self.notify(message, title="Connection works again")
            return

    def _pickers_health(self, name: str, health: ConnectionHealth | None) -> None:
        """Connection pickers open on any screen (a ticket dialog above this one) follow."""
        for screen in self.app.screen_stack:
            for picker in screen.query(ConnectionList):
                picker.set_health(name, health)

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
        log.set_job_states(dead, every_dead=True)

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
        self._forget_import()

    def _forget_import(self) -> None:
        """The stream was cut: the receiver may have restarted, and an import with it (it then
        waits to be started again, to resume). ``GET /api/import`` cannot tell a running import
        from a cut one, so a running one is forgotten: its next event brings it back."""
        if self.import_view is not None and not finished(self.import_view):
            self.import_view = None
            self._import_watching = False
            self.header.set_import(None)

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
                # a delivery changes the shown anomaly's counts (pending → delivered or dead)
                self._detail_dirty |= data.anomaly_id == detail_id
            case SyncJobView():
                self._jobs[data.id] = data
            case DeliveryQuarantined():
                self._quarantine_dirty = True
            case ConnectionHealthChanged():
                self._health[data.name] = data.health
            case ImportProgressView():
                self._import_event = data
                self._import_event_at = time.monotonic()
            case AnomaliesCompacted():
                self._compacted.append(data)
                self._counts_dirty = True
                if data.reload:  # too many to name: read the list again
                    self._refetch = True
                    self._detail_dirty |= self.detail_doc is not None and not self.detail_doc.cold
                else:
                    self._detail_dirty |= detail_id in data.ids
            case StreamLagged():
                self._refetch = True

    def flush(self) -> None:
        """Apply the changes noted since the last tick, in one redraw."""
        compacted, self._compacted = self._compacted, []
        if compacted:  # one quiet line per run, whatever it moved
            for run in compacted:
                self.notify(moved_note(run.moved), title="Retention", timeout=COMPACTED_NOTE_S)
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
        if compacted:  # before the updates: one that came after the move brought it back
            changed |= self._gone_cold({i for run in compacted for i in run.ids})
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
        if self._health:
            for name, health in self._health.items():
                self._health_changed(name, health)
            self._health.clear()
        if self._import_event is not None:
            event, self._import_event = self._import_event, None
            self.import_progress(event, "event")
        if self._detail_dirty:
            self._detail_dirty = False
            self._refresh_detail()
        if self._counts_dirty and time.monotonic() - self._counts_at >= COUNTS_EVERY_S:
            self.run_worker(self.load_counts(), group="counts", exclusive=True)
        if self._quarantine_dirty:
            self._quarantine_dirty = False
            self.run_worker(self.load_quarantine_count(), group="quarantine", exclusive=True)
            if isinstance(self.app.screen, QuarantineScreen):
                self.app.screen.load()

    def _gone_cold(self, ids: set[int]) -> bool:
        """Rows a compaction moved: dropped from a hot list, marked ❄ in one with the archive."""
        changed = False
        for anomaly_id in ids:
            row = self.model.get(anomaly_id)
            if row is None:
                continue
            if self.model.query.archive:
                changed |= not row.cold
                row.cold = True
            else:
                changed |= self.model.remove(anomaly_id)
        return changed

    def reload(self) -> None:
        current = self.table.current
        self.load_rows(
            self.model.query, keep_id=current.id if current else None, window=len(self.model)
        )
        self.load_side()

    # -- detail --------------------------------------------------------------------------------

    # One source of truth: the detail shows the highlighted anomaly, or nothing; every key acts
    # on what it shows (``current_doc``). A document whose row is no longer highlighted is
    # dropped, whenever it arrives.

    @property
    def detail_doc(self) -> AnomalyDetail | None:
        """What the detail pane shows: the anomaly the keys act on (None: nothing selected)."""
        return self.detail_pane.doc

    def _is_highlighted(self, anomaly_id: int) -> bool:
        current = self.table.current
        return current is not None and current.id == anomaly_id

    def _clear_detail(self) -> None:
        """Nothing highlighted: nothing shown, and a load on its way must not bring it back."""
        self.workers.cancel_group(self, "detail")
        self._detail_dirty = False
        self.detail_pane.show(None)

    def _refresh_detail(self) -> None:
        """Read the shown anomaly again (an event or a form changed it), if still highlighted."""
        doc = self.detail_doc
        if doc is not None and self._is_highlighted(doc.id):
            self.load_detail(doc.id, delay=0)

    @on(AnomalyTable.Highlighted)
    def highlighted(self, message: AnomalyTable.Highlighted) -> None:
        self.sync_log.set_anomaly_filter(message.row.id if message.row else None)
        if message.row is None:
            self._clear_detail()
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
            if not self.gone() and self._is_highlighted(anomaly_id):
                self.detail_pane.show(None, note=f"Cannot load anomaly {anomaly_id}: {exc.detail}")
            return
        if self.gone() or not self._is_highlighted(anomaly_id):
            return
        self.detail_pane.show(doc)
        if self.model.update(row_of(doc)):
            self.table.refresh()

    async def current_doc(self) -> AnomalyDetail | None:
        """What a key acts on: the highlighted anomaly. When the debounced load has not shown it
        yet it is fetched and shown first, so a key never acts on something not on screen."""
        row = self.table.current
        if row is None:
            self._clear_detail()
            self.notify("No anomaly selected", severity="warning")
            return None
        shown = self.detail_doc
        if shown is not None and shown.id == row.id:
            return shown
        try:
            doc = await self.client.anomaly(row.id)
        except ApiError as exc:
            self.notify(exc.detail, title="Cannot load the anomaly", severity="error")
            return None
        if self.gone():
            return None
        if not self._is_highlighted(row.id):  # an event took the row away meanwhile
            self.notify(f"Anomaly {row.id} is no longer in the list", severity="warning")
            return None
        self.workers.cancel_group(self, "detail")  # it would only fetch the same again
        self.detail_pane.show(doc)
        return doc

    async def _counted(self, doc: AnomalyDetail) -> AnomalyDetail:
        """``doc`` with what became of each ticket's notes. An action's answer may come without
        the counts (only ``GET /api/anomalies/{id}`` is sure to have them): then read it again;
        if that fails, ``doc`` as it is."""
        if all(link.notes is not None for link in doc.links):
            return doc
        try:
            return await self.client.anomaly(doc.id)
        except ApiError:
            return doc

    def _show_doc(self, doc: AnomalyDetail) -> None:
        """An action's answer is the new document: show it without waiting for the event."""
        row = row_of(doc)
        known = self.model.get(doc.id)
        if known is not None and any(link.notes is None for link in doc.links):
            row.stuck_notes = known.stuck_notes  # no counts in ``doc``: not a reason to clear
        if self.model.update(row):
            self.table.refresh()
        if self._is_highlighted(doc.id):
            self.detail_pane.show(doc)

    # -- filters -------------------------------------------------------------------------------

    @on(FilterBar.Changed)
    def filters_changed(self, message: FilterBar.Changed) -> None:
        query = Query(message.status, message.q.strip(), message.archive)
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

    def action_toggle_archive(self) -> None:
        """``6``: the cold archive in the list or out, said in a notification (and the tab
        change it makes from an open tab: the archive holds archived anomalies only)."""
        bar = self.query_one(FilterBar)
        left = bar.toggle_archive()
        if not bar.archive:
            self.notify("The cold archive is no longer searched", title="Cold archive off")
            return
        message = "Anomalies archived long ago are searched too (slower)"
        if left is not None:
            message += (
                f"; it holds archived anomalies only, so the list shows All, not {FILTERS[left][0]}"
            )
        self.notify(message, title="Cold archive on")

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

    def action_rules(self) -> None:
        from anomaly_desk.tui.screens.rules import RulesScreen

        self.app.push_screen(RulesScreen(self.client))

    def action_keys(self) -> None:
        """The key map, from the live bindings: this screen's, the panes' and the app's."""
        panes = [("Anomaly table", self.table), ("Sync log", self.sync_log)]
        group_of = {**KEY_MAP_GROUPS, **groups(MAIN_COMMANDS)}
        sections = key_sections(self, group_of, panes, KEY_MAP_ORDER)
        self.app.push_screen(KeyMapScreen(sections, self.connections))

    async def action_check_connections(self) -> None:
        self.notify("Checking connections…")
        try:
            health = await self.client.check_connections()
        except ApiError as exc:
            self.notify(exc.detail, title="Check failed", severity="error")
            return
        await self.load_connections()
        bad = [health_line(name, h.message) for name, h in health.items() if not h.ok]
        if bad:
            self.notify("\n".join(bad), title="Connection problems", severity="error")
        else:
            self.notify(f"{len(health)} connection(s) ok")

    # -- actions -------------------------------------------------------------------------------

    async def _connections(self) -> list[ConnectionView]:
        if self.connections is None:
            await self.load_connections()
        return self.connections or []

    async def _notes_confirmed(
        self, what: str, doc: AnomalyDetail, go: Callable[[], Awaitable[None]], yes: str
    ) -> None:
        """Run ``go`` (which notes every linked ticket), after asking when there is a ticket to
        note and the setting wants a question: a note cannot be taken back."""
        if not doc.links or not self.confirm_notes:
            await go()
            return

        async def answer(confirmed: bool | None) -> None:
            if confirmed:
                await go()

        question = notify_question(what, doc)
        self.app.push_screen(ConfirmNotesScreen(question, doc, yes=yes), answer)

    async def action_acknowledge(self) -> None:
        doc = await self.current_doc()
        if doc is None:
            return
        if doc.status != "Active":
            self.notify(f"Anomaly {doc.id} is {doc.status}", severity="warning")
            return
        anomaly_id = doc.id

        async def go() -> None:
            try:
                new = await self._counted(await self.client.acknowledge(anomaly_id))
            except ApiError as exc:
                self.notify(exc.detail, title="Cannot acknowledge", severity="error")
                return
            self._show_doc(new)
            links = len(new.links)
            self._notify_notes(
                new,
                f"Anomaly {new.id} acknowledged"
                + (f"; a note goes to {links} ticket(s)" if links else ""),
            )

        await self._notes_confirmed(f"Acknowledge {anomaly_id}", doc, go, yes="Acknowledge")

    def _notify_notes(self, doc: AnomalyDetail, done: str) -> None:
        """``done``, and when a note it sent waits behind a dead one, which ticket holds it: the
        note is not lost, but it goes nowhere until that dead note is retried (``r``)."""
        held = held_behind_dead(doc)
        if not held:
            self.notify(done)
            return
        named = ["the platform" if key == PLATFORM else key for key in held]
        where = (
            f"a dead note on {named[0]}" if len(named) == 1 else f"dead notes on {', '.join(named)}"
        )
        self.notify(
            f"{done}, but the note is held behind {where}: r retries the dead one, then the "
            "held ones follow",
            title="Note held",
            severity="warning",
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
            summary = f": {link.summary}" if link.summary else ""
            self.notify(f"Linked {link.ticket_key} ({link.connection}){summary}")
            self._refresh_detail()

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

            async def go() -> None:
                try:
                    new = await self._counted(
                        await self.client.archive(anomaly_id, status, comment)
                    )
                except ApiError as exc:
                    self.notify(exc.detail, title="Cannot archive", severity="error")
                    return
                self._show_doc(new)
                self._notify_notes(new, f"Anomaly {anomaly_id} archived as {status}")

            what = f"Archive {anomaly_id} as {status}"
            await self._notes_confirmed(what, doc, go, yes="Archive")

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
                new = await self._counted(await self.client.comment(anomaly_id, text))
            except ApiError as exc:
                self.notify(exc.detail, title="Cannot comment", severity="error")
                return
            self._show_doc(new)
            self._notify_notes(new, f"Comment added to anomaly {anomaly_id}")

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
                new = await self._counted(await self.client.unlink(anomaly_id, link.id))
            except ApiError as exc:
                self.notify(exc.detail, title="Cannot unlink", severity="error")
                return
            self._show_doc(new)
            self.notify(f"Unlinked {link.ticket_key}; the ticket itself is unchanged")
            await self._reread_jobs(anomaly_id)

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

    async def _reread_jobs(self, anomaly_id: int) -> None:
        """After an unlink the core has cancelled that ticket's waiting notes, dead ones too:
        read the log and the anomaly's jobs again, so the dead count and ``r`` forget them."""
        await self.load_sync_log()
        try:
            jobs = await self.client.sync_jobs(anomaly_id=anomaly_id)
        except ApiError:
            return  # load_sync_log has said so
        if not self.gone():
            self.sync_log.set_job_states(jobs)

    async def action_retry(self) -> None:
        """On the focused sync log: the selected line's job. Anywhere else: the dead jobs of the
        anomaly the detail shows, never the log's hidden selection (maybe another anomaly's)."""
        log = self.sync_log
        if log.has_focus:
            job_id = log.dead_job_for(log.selected)
            if job_id is None:
                self.notify(
                    "The selected line is not a dead job: pick a red one", severity="warning"
                )
                return
            await self._retry([job_id])
            return
        doc = await self.current_doc()
        if doc is None:
            return
        try:
            dead = await self.client.sync_jobs(state="dead", anomaly_id=doc.id)
        except ApiError as exc:
            self.notify(exc.detail, title="Cannot read the sync jobs", severity="error")
            return
        if not dead:
            self.notify(
                f"Anomaly {doc.id} has no dead sync job: nothing to retry", severity="warning"
            )
            return
        await self._retry([job.id for job in dead])

    async def _retry(self, job_ids: list[int]) -> None:
        retried: list[SyncJobView] = []
        for job_id in job_ids:
            try:
                job = await self.client.retry_job(job_id)
            except ApiError as exc:
                self.notify(exc.detail, title=f"Cannot retry sync job {job_id}", severity="error")
                continue
            if self.gone():
                return
            self.sync_log.job_changed(job)
            retried.append(job)
        if retried:
            keys = ", ".join(sorted({target_word(job) for job in retried}))
            jobs = ", ".join(str(job.id) for job in retried)
            self.notify(f"Retrying sync job {jobs} ({keys})")

    async def action_open(self) -> None:
        """The linked ticket; with several, a chooser of them and the anomaly itself; with none,
        the anomaly in the platform (``O`` opens that whatever is linked)."""
        doc = await self.current_doc()
        if doc is None:
            return
        links = [link for link in doc.links if link.url]
        if len(links) == 1 and links[0].url:
            await self.open_url(links[0].url, links[0].ticket_key)
            return
        if not links:
            await self.action_open_platform()
            return
        choices: list[tuple[Text | str, str]] = [
            (link_label(link), link.url) for link in links if link.url
        ]
        names = {link.url: link.ticket_key for link in links if link.url}
        if doc.url:
            choices.append((platform_label(doc), doc.url))
            names.setdefault(doc.url, f"anomaly {doc.id}")

        async def chosen(url: str | None) -> None:
            if url is not None:
                await self.open_url(url, names.get(url, url))

        self.app.push_screen(ChooseValueScreen("Open which?", choices), chosen)

    async def action_open_platform(self) -> None:
        """The anomaly itself, in the platform (its link)."""
        doc = await self.current_doc()
        if doc is None:
            return
        if doc.url:
            await self.open_url(doc.url, f"anomaly {doc.id}")
        elif doc.links:
            self.notify(
                f"Anomaly {doc.id} has no link into the platform (o opens its ticket)",
                severity="warning",
            )
        else:
            self.notify("Nothing to open: no ticket and no link back", severity="warning")

    async def open_url(self, url: str, what: str) -> None:
        """A browser where one can appear and said it opened; else the URL on the clipboard
        (OSC 52: the clipboard of the terminal the user sits at, over SSH too) and on screen."""
        if await open_in_browser(url):
            self.notify(url, title=f"Opened {what} in the browser")
        else:
            self.app.copy_to_clipboard(url)
            self.notify(f"Copied URL: {url}", title=f"No browser here to open {what}")

    def copy(self, text: str) -> None:
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {text}")

    async def action_yank(self) -> None:
        """The linked ticket's key to the clipboard; with several links (or to get a URL), a
        chooser of every key and URL the anomaly has."""
        doc = await self.current_doc()
        if doc is None:
            return
        if len(doc.links) == 1:
            self.copy(doc.links[0].ticket_key)
            return
        choices: list[tuple[str, str]] = []
        for link in doc.links:
            choices.append((f"{link.ticket_key}   key · {link.connection}", link.ticket_key))
            if link.url:
                choices.append((f"{link.url}   {link.ticket_key}'s URL", link.url))
        if doc.url:
            choices.append((f"{doc.url}   the anomaly on the platform", doc.url))
        if not choices:
            self.notify(f"Anomaly {doc.id}: no ticket and no link to copy", severity="warning")
            return
        if len(choices) == 1:  # no ticket: the anomaly's own URL
            self.copy(choices[0][1])
            return

        def chosen(value: str | None) -> None:
            if value is not None:
                self.copy(value)

        self.app.push_screen(ChooseValueScreen("Copy which?", choices), chosen)

    # -- import from the platform ----------------------------------------------------------

    def action_import_platform(self) -> None:
        """The import dialog: its options, or the progress of the import running now."""
        running = self.import_view if not finished(self.import_view) else None
        screen = ImportScreen(self.client, self._import_started, running)
        self.app.push_screen(screen)

    def _import_started(self, view: ImportProgressView, sent_at: float) -> None:
        """The dialog started an import (or found one running): follow it to its end. Events
        that came after the request went out know more than its answer."""
        if self._import_event_at > sent_at and self.import_view is not None:
            self._import_watching = not finished(self.import_view)
            return
        self._import_watching = True
        self.import_progress(view, "start")

    def _import_tick(self) -> None:
        """An import followed with no recent event (a lost stream, a race with the answer):
        ask where it stands."""
        if not self._import_watching:
            return
        if time.monotonic() - self._import_event_at < IMPORT_POLL_S:
            return
        self.run_worker(self._poll_import(), group="import-poll", exclusive=True)

    async def _poll_import(self) -> None:
        try:
            view = await self.client.import_status()
        except ApiError:
            return
        if view is not None and not self.gone() and self._import_watching:
            self.import_progress(view, "poll")

    def import_progress(
        self, view: ImportProgressView, source: Literal["event", "start", "poll"]
    ) -> None:
        """Where an import stands: the header, the dialog if open, and at its end a
        notification and the list read again. ``source``: an ``import.progress`` event (an
        import started elsewhere is followed too), the answer that started one, or a poll."""
        before = self.import_view
        stale = before is not None and (
            finished(before) or (not finished(view) and view.page < before.page)
        )
        if source == "poll" and stale:
            return  # the events have said more already
        self.import_view = view
        self.header.set_import(None if finished(view) else view)
        for screen in self.app.screen_stack:
            if isinstance(screen, ImportScreen):
                screen.show_progress(view)
        if not finished(view):
            self._import_watching = True
            return
        announce = (self._import_watching or source == "event") and view != before
        self._import_watching = False
        if not announce:
            return  # announced already, or an old end this screen never saw run
        if view.error is not None:
            self.notify(summary(view), title="Import stopped", severity="error", timeout=15)
        else:
            self.notify(summary(view), title="Import done")
        self.reload()
