"""The sync log: one line per delivery attempt, streamed live; dead jobs stand out in red.

Backed by a DataTable capped at ``MAX_ROWS`` lines, so it stays cheap however long it runs. It
follows the newest line until the user moves up (then the pane says it is paused; End follows
again), can show only the highlighted anomaly's lines (``t``) or only dead lines (``D``), and
opens a line's whole entry with Enter.

Jobs on the anomaly's platform queue (write-back, enrichment) say ``⇄ platform`` where a ticket
job has its key. Everything a provider or a person wrote (messages, note text, ticket keys) goes
into the table as ``Text``: a DataTable parses plain strings as markup, and
``[@click=app.quit]`` must stay words.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widget import Widget
from textual.widgets import DataTable

from anomaly_desk.core.views import SyncJobView, SyncLogEntryView
from anomaly_desk.tui.screens.log_entry import LogEntryScreen, target

MAX_ROWS = 300
PAUSED = "paused — End to follow"

OUTCOME_STYLES = {
    "done": "green",
    "retry": "yellow",
    "dead": "bold white on red",
    "cancelled": "dim",
}


def short_time(at: str) -> str:
    """``09:03:01`` of an ISO timestamp (the whole value when it is not one)."""
    return at[11:19] if len(at) >= 19 else at


class SyncLog(DataTable[Any]):
    """Newest at the bottom; follows the tail unless the cursor was moved up."""

    DEFAULT_CSS = """
    SyncLog { height: 1fr; }
    """

    BINDINGS = [
        Binding("enter", "select_cursor", "Details"),
        Binding("t", "toggle_anomaly", "This anomaly"),
        Binding("D", "toggle_dead", "Dead only"),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Follow", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.entries: dict[str, SyncLogEntryView] = {}  # every kept line, oldest first
        self.job_states: dict[int, str] = {}
        self.jobs: dict[int, SyncJobView] = {}  # the newest view of each job seen
        self.last_id: int | None = None
        self.following = True
        self.anomaly_id: int | None = None  # the anomaly highlighted in the table
        self.only_anomaly = False
        self.only_dead = False
        self._quiet = 0  # >0 while the log itself moves the cursor

    def on_mount(self) -> None:
        self.add_column("time", key="time", width=8)
        self.add_column("ticket", key="ticket", width=11)
        self.add_column("anomaly", key="anomaly", width=7)
        self.add_column("kind", key="kind", width=7)
        self.add_column("try", key="try", width=3)
        self.add_column("outcome", key="outcome", width=14)
        self.add_column("ms", key="ms", width=6)
        self.add_column("message", key="message")
        self.refresh_title()

    # -- data ----------------------------------------------------------------------------------

    @property
    def dead_count(self) -> int:
        return sum(1 for state in self.job_states.values() if state == "dead")

    def _job_cancelled(self, entry: SyncLogEntryView) -> bool:
        return entry.outcome == "cancelled" or self.job_states.get(entry.job_id) == "cancelled"

    def _outcome(self, entry: SyncLogEntryView) -> Text:
        outcome = entry.outcome
        if outcome == "dead":
            state = self.job_states.get(entry.job_id)
            if state == "cancelled":
                return Text("cancelled", style="dim")
            if state not in (None, "dead"):
                return Text("dead · retried", style="dim red")
            return Text(" dead ", style=OUTCOME_STYLES["dead"])
        return Text(outcome, style=OUTCOME_STYLES.get(outcome, ""))

    def _message(self, entry: SyncLogEntryView) -> Text:
        message = entry.message or ""
        if entry.outcome == "done" and not message:
            message = entry.text or ""
        message = " ".join(message.splitlines())
        if self._job_cancelled(entry):
            style = "dim"
        elif entry.outcome == "dead":
            style = "red"
        else:
            style = ""
        return Text(message, style=style, overflow="ellipsis", no_wrap=True)

    def _cells(self, entry: SyncLogEntryView) -> list[Text]:
        return [
            Text(short_time(entry.at)),
            target(entry),  # a ticket's key, or ⇄ platform (whose key is the anomaly's id)
            Text(str(entry.anomaly_id)),
            Text(entry.kind),
            Text(str(entry.attempt)),
            self._outcome(entry),
            Text(f"{entry.duration_ms:.0f}"),
            self._message(entry),
        ]

    def admits(self, entry: SyncLogEntryView) -> bool:
        """Whether the active filters show ``entry``."""
        if self.only_anomaly and entry.anomaly_id != self.anomaly_id:
            return False
        return not self.only_dead or entry.outcome == "dead"

    @contextmanager
    def _self_moving(self) -> Iterator[None]:
        """Cursor changes in here are the log's own, not the user moving away from the tail."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def add_entries(self, entries: list[SyncLogEntryView]) -> None:
        """Append entries (oldest first), skipping ones already shown."""
        fresh = [e for e in entries if str(e.id) not in self.entries]
        if not fresh:
            return
        with self._self_moving():
            for entry in fresh:
                key = str(entry.id)
                self.entries[key] = entry
                if entry.outcome == "dead":
                    self.job_states.setdefault(entry.job_id, "dead")
                if self.admits(entry):
                    self.add_row(*self._cells(entry), key=key)
                self.last_id = max(self.last_id or 0, entry.id)
            selected = self._selected_key()
            while len(self.entries) > MAX_ROWS:
                oldest = next(iter(self.entries))
                del self.entries[oldest]
                if oldest in self.rows:
                    self.remove_row(oldest)
            self._place_cursor(selected)
        self.refresh_title()

    def _selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value

    def _place_cursor(self, key: str | None) -> None:
        """The tail when following (or ``key`` is gone), else back on the line ``key``."""
        if not self.row_count:
            self.following = True  # nothing shown: nothing to stay on
            return
        if not self.following and key is not None and key in self.rows:
            row = self.get_row_index(key)
        else:
            self.following = True
            row = self.row_count - 1
        with self._self_moving():
            self.move_cursor(row=row, animate=False)

    def _rebuild(self) -> None:
        """Show again what the filters admit, keeping the cursor's line if it stays."""
        selected = self._selected_key()
        with self._self_moving():
            self.clear()
            for key, entry in self.entries.items():
                if self.admits(entry):
                    self.add_row(*self._cells(entry), key=key)
            self._place_cursor(selected)
        self.refresh_title()

    def _restyle_job(self, job_id: int) -> None:
        for key, entry in self.entries.items():
            if entry.job_id == job_id and key in self.rows:
                self.update_cell(key, "outcome", self._outcome(entry))
                self.update_cell(key, "message", self._message(entry))

    def job_changed(self, job: SyncJobView) -> None:
        """A ``sync.job`` event (or a job read again): re-mark the lines of that job."""
        self.jobs[job.id] = job
        before = self.job_states.get(job.id)
        self.job_states[job.id] = job.state
        if before != job.state:
            self._restyle_job(job.id)
            self.refresh_title()

    def set_job_states(self, jobs: Iterable[SyncJobView], every_dead: bool = False) -> None:
        """Jobs as the receiver has them now. ``every_dead``: ``jobs`` holds every dead job, so
        a job known here as dead that is missing has left that state (retried or cancelled)."""
        jobs = list(jobs)
        if every_dead:
            still = {job.id for job in jobs if job.state == "dead"}
            for job_id, state in list(self.job_states.items()):
                if state == "dead" and job_id not in still:
                    self.job_states[job_id] = "?"  # not dead; which state is not known here
                    self._restyle_job(job_id)
        for job in jobs:
            self.job_changed(job)
        self.refresh_title()

    # -- filters -------------------------------------------------------------------------------

    def set_anomaly_filter(self, anomaly_id: int | None) -> None:
        """The anomaly highlighted in the table: what "this anomaly only" (``t``) shows."""
        if anomaly_id == self.anomaly_id:
            return
        self.anomaly_id = anomaly_id
        if self.only_anomaly:
            self._rebuild()

    def action_toggle_anomaly(self) -> None:
        self.only_anomaly = not self.only_anomaly
        self._rebuild()

    def action_toggle_dead(self) -> None:
        self.only_dead = not self.only_dead
        self._rebuild()

    # -- following -----------------------------------------------------------------------------

    def _set_following(self, following: bool) -> None:
        if following != self.following:
            self.following = following
            self.refresh_title()

    def watch_cursor_coordinate(
        self, old_coordinate: Coordinate, new_coordinate: Coordinate
    ) -> None:
        super().watch_cursor_coordinate(old_coordinate, new_coordinate)
        if not self._quiet and self.row_count:
            self._set_following(new_coordinate.row >= self.row_count - 1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        """The wheel up leaves the tail too, even with the cursor still on the last line."""
        if self.row_count and self.max_scroll_y > 0:
            self._set_following(False)

    def action_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last(self) -> None:
        """The newest line, and follow new ones again."""
        if self.row_count:
            with self._self_moving():
                self.move_cursor(row=self.row_count - 1, animate=False)
        self._set_following(True)

    # -- titles --------------------------------------------------------------------------------

    def filter_label(self) -> str:
        parts = []
        if self.only_anomaly:
            shown = "—" if self.anomaly_id is None else str(self.anomaly_id)
            parts.append(f"anomaly {shown} only")
        if self.only_dead:
            parts.append("dead only")
        return " · ".join(parts)

    def refresh_title(self) -> None:
        if not isinstance(self.parent, Widget):
            return
        title = "Sync log"
        label = self.filter_label()
        if label:
            title += f" · [bold]{label}[/]"  # built from numbers and fixed words only
        dead = self.dead_count
        if dead:
            title += f" · [bold red]{dead} dead[/] (r retries)"
        self.parent.border_title = title
        self.parent.border_subtitle = "" if self.following else PAUSED

    # -- selection -----------------------------------------------------------------------------

    @property
    def selected(self) -> SyncLogEntryView | None:
        key = self._selected_key()
        return self.entries.get(key or "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click on the highlighted line): the whole entry in a dialog."""
        event.stop()
        entry = self.entries.get(event.row_key.value or "")
        if entry is None:
            return
        attempts = [e for e in self.entries.values() if e.job_id == entry.job_id]
        job = self.jobs.get(entry.job_id)
        state = self.job_states.get(entry.job_id)
        self.app.push_screen(LogEntryScreen(entry, attempts, job=job, job_state=state))

    def dead_job_for(self, entry: SyncLogEntryView | None) -> int | None:
        """The job of ``entry`` when it is (still) dead."""
        if (
            entry
            and entry.outcome == "dead"
            and self.job_states.get(entry.job_id, "dead") == "dead"
        ):
            return entry.job_id
        return None

    def newest_dead_job(self, anomaly_id: int | None = None) -> int | None:
        for entry in reversed(list(self.entries.values())):
            if anomaly_id is not None and entry.anomaly_id != anomaly_id:
                continue
            job = self.dead_job_for(entry)
            if job is not None:
                return job
        return None
