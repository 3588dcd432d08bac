"""The sync log: one line per delivery attempt, streamed live; dead jobs stand out in red.

Backed by a DataTable capped at ``MAX_ROWS`` lines, so it stays cheap however long it runs.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widget import Widget
from textual.widgets import DataTable

from anomaly_desk.core.views import SyncJobView, SyncLogEntryView

MAX_ROWS = 300

OUTCOME_STYLES = {
    "done": "green",
    "retry": "yellow",
    "dead": "bold white on red",
    "cancelled": "dim",
}


class SyncLog(DataTable[Any]):
    """Newest at the bottom; follows the tail unless the cursor was moved up."""

    DEFAULT_CSS = """
    SyncLog { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.entries: dict[str, SyncLogEntryView] = {}
        self.job_states: dict[int, str] = {}
        self.last_id: int | None = None

    def on_mount(self) -> None:
        self.add_column("time", key="time", width=8)
        self.add_column("ticket", key="ticket", width=11)
        self.add_column("anomaly", key="anomaly", width=7)
        self.add_column("kind", key="kind", width=7)
        self.add_column("try", key="try", width=3)
        self.add_column("outcome", key="outcome", width=14)
        self.add_column("ms", key="ms", width=6)
        self.add_column("message", key="message")

    # -- data ----------------------------------------------------------------------------------

    @property
    def dead_count(self) -> int:
        return sum(1 for state in self.job_states.values() if state == "dead")

    def _outcome(self, entry: SyncLogEntryView) -> Text:
        outcome = entry.outcome
        if outcome == "dead" and self.job_states.get(entry.job_id) not in (None, "dead"):
            return Text("dead · retried", style="dim red")
        return Text(
            f" {outcome} " if outcome == "dead" else outcome, style=OUTCOME_STYLES.get(outcome, "")
        )

    def add_entries(self, entries: list[SyncLogEntryView]) -> None:
        """Append entries (oldest first), skipping ones already shown."""
        fresh = [e for e in entries if str(e.id) not in self.entries]
        if not fresh:
            return
        follow = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        for entry in fresh:
            key = str(entry.id)
            self.entries[key] = entry
            if entry.outcome == "dead":
                self.job_states.setdefault(entry.job_id, "dead")
            message = entry.message or ""
            if entry.outcome == "done" and not message:
                message = (entry.text or "").replace("\n", " ")
            style = "red" if entry.outcome == "dead" else ""
            at = entry.at
            self.add_row(
                at[11:19] if len(at) >= 19 else at,
                Text(entry.ticket_key, style="magenta"),
                str(entry.anomaly_id),
                entry.kind,
                str(entry.attempt),
                self._outcome(entry),
                f"{entry.duration_ms:.0f}",
                Text(message, style=style, overflow="ellipsis", no_wrap=True),
                key=key,
            )
            self.last_id = max(self.last_id or 0, entry.id)
        while self.row_count > MAX_ROWS:
            oldest = next(iter(self.rows))
            self.entries.pop(oldest.value or "", None)
            self.remove_row(oldest)
        if follow:
            self.move_cursor(row=self.row_count - 1, animate=False)
        self.refresh_title()

    def job_changed(self, job: SyncJobView) -> None:
        """A ``sync.job`` event: re-mark the dead entries of that job."""
        before = self.job_states.get(job.id)
        self.job_states[job.id] = job.state
        if before != job.state:
            for key, entry in self.entries.items():
                if entry.job_id == job.id and entry.outcome == "dead":
                    self.update_cell(key, "outcome", self._outcome(entry))
            self.refresh_title()

    def set_job_states(self, jobs: list[SyncJobView]) -> None:
        for job in jobs:
            self.job_states[job.id] = job.state
        for key, entry in self.entries.items():
            if entry.outcome == "dead":
                self.update_cell(key, "outcome", self._outcome(entry))
        self.refresh_title()

    def refresh_title(self) -> None:
        dead = self.dead_count
        if isinstance(self.parent, Widget):
            title = "Sync log"
            if dead:
                title += f" · [bold red]{dead} dead[/] (r retries)"
            self.parent.border_title = title

    # -- selection -----------------------------------------------------------------------------

    @property
    def selected(self) -> SyncLogEntryView | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        return self.entries.get(key or "")

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
