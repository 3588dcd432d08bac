"""The sync log: one line per delivery attempt, streamed live; dead jobs stand out in red.

Backed by a DataTable capped at ``MAX_ROWS`` lines, so it stays cheap however long it runs.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

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
        self.entries: dict[str, dict[str, Any]] = {}
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

    def _outcome(self, entry: dict[str, Any]) -> Text:
        outcome = str(entry.get("outcome"))
        if outcome == "dead" and self.job_states.get(int(entry["job_id"])) not in (None, "dead"):
            return Text("dead · retried", style="dim red")
        return Text(
            f" {outcome} " if outcome == "dead" else outcome, style=OUTCOME_STYLES.get(outcome, "")
        )

    def add_entries(self, entries: list[dict[str, Any]]) -> None:
        """Append entries (oldest first), skipping ones already shown."""
        fresh = [e for e in entries if str(e["id"]) not in self.entries]
        if not fresh:
            return
        follow = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        for entry in fresh:
            key = str(entry["id"])
            self.entries[key] = entry
            if entry.get("outcome") == "dead":
                self.job_states.setdefault(int(entry["job_id"]), "dead")
            message = str(entry.get("message") or "")
            if entry.get("outcome") == "done" and not message:
                message = str(entry.get("text") or "").replace("\n", " ")
            style = "red" if entry.get("outcome") == "dead" else ""
            at = str(entry.get("at") or "")
            self.add_row(
                at[11:19] if len(at) >= 19 else at,
                Text(str(entry.get("ticket_key", "")), style="magenta"),
                str(entry.get("anomaly_id", "")),
                str(entry.get("kind", "")),
                str(entry.get("attempt", "")),
                self._outcome(entry),
                f"{float(entry.get('duration_ms') or 0):.0f}",
                Text(message, style=style, overflow="ellipsis", no_wrap=True),
                key=key,
            )
            self.last_id = max(self.last_id or 0, int(entry["id"]))
        while self.row_count > MAX_ROWS:
            oldest = next(iter(self.rows))
            self.entries.pop(oldest.value or "", None)
            self.remove_row(oldest)
        if follow:
            self.move_cursor(row=self.row_count - 1, animate=False)
        self.refresh_title()

    def job_changed(self, job: dict[str, Any]) -> None:
        """A ``sync.job`` event: re-mark the dead entries of that job."""
        job_id = int(job["id"])
        before = self.job_states.get(job_id)
        self.job_states[job_id] = str(job.get("state"))
        if before != job.get("state"):
            for key, entry in self.entries.items():
                if int(entry["job_id"]) == job_id and entry.get("outcome") == "dead":
                    self.update_cell(key, "outcome", self._outcome(entry))
            self.refresh_title()

    def set_job_states(self, jobs: list[dict[str, Any]]) -> None:
        for job in jobs:
            self.job_states[int(job["id"])] = str(job["state"])
        for key, entry in self.entries.items():
            if entry.get("outcome") == "dead":
                self.update_cell(key, "outcome", self._outcome(entry))
        self.refresh_title()

    def refresh_title(self) -> None:
        dead = self.dead_count
        if self.parent is not None:
            title = "Sync log"
            if dead:
                title += f" · [bold red]{dead} dead[/] (r retries)"
            self.parent.border_title = title

    # -- selection -----------------------------------------------------------------------------

    @property
    def selected(self) -> dict[str, Any] | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        return self.entries.get(key or "")

    def dead_job_for(self, entry: dict[str, Any] | None) -> int | None:
        """The job of ``entry`` when it is (still) dead."""
        if entry and entry.get("outcome") == "dead":
            job_id = int(entry["job_id"])
            if self.job_states.get(job_id, "dead") == "dead":
                return job_id
        return None

    def newest_dead_job(self, anomaly_id: int | None = None) -> int | None:
        for entry in reversed(list(self.entries.values())):
            if anomaly_id is not None and entry.get("anomaly_id") != anomaly_id:
                continue
            job = self.dead_job_for(entry)
            if job is not None:
                return job
        return None
