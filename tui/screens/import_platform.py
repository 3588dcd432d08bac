"""Import from the platform: a few options, then the import's progress, page by page.

The dialog asks (archived too? since which day? one datastore?), checks the answers here with
messages under the fields, and starts the import (``POST /api/import``). It then shows where the
import stands: a progress bar and ``page 2/3 · 120 new, 30 updated``, fed by the main screen from
the ``import.progress`` events (:meth:`ImportScreen.show_progress`). Closing it does not stop the
import: the header goes on showing it, and ``I`` opens this dialog on it again.

A receiver without the platform's API (422) gets a message saying how to configure it; an import
already running (409) is shown, not started twice. The platform's error text is shown as text,
never as markup.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, ProgressBar, Static

from anomaly_desk.core.views import ImportProgressView
from anomaly_desk.tui.client import ApiError, DeskClient
from anomaly_desk.tui.screens.dialog import dialog_css

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
NOT_CONFIGURED = (
    "This receiver has no access to the platform's API. In its configuration file "
    "(anomaly-desk.toml), under [platform], set url (the platform's address) and token_env "
    "(the environment variable holding an API token; or token_keyring), start the receiver "
    "again, and `anomaly-desk check` says whether the token works."
)
# (started view, time.monotonic() before the request went out): the main screen watches it
Started = Callable[[ImportProgressView, float], None]


def finished(view: ImportProgressView | None) -> bool:
    """Whether ``view`` is the end of an import: done, or stopped by an error."""
    return view is not None and (view.done or view.error is not None)


def parse_since(text: str, today: date | None = None) -> tuple[date | None, str | None]:
    """``(day, None)`` for ``YYYY-MM-DD`` (or nothing), else ``(None, what is wrong)``."""
    text = text.strip()
    if not text:
        return None, None
    if not DAY.fullmatch(text):
        return None, f"Write the day as YYYY-MM-DD, e.g. 2026-11-01 (not {text!r})"
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None, f"{text} is not a day of the calendar"
    if day > (today or datetime.now(UTC).date()):
        return None, f"{text} is in the future: no anomaly was created since"
    return day, None


def parse_datastore(text: str) -> tuple[int | None, str | None]:
    """``(id, None)`` for a datastore id (or nothing), else ``(None, what is wrong)``."""
    text = text.strip()
    if not text:
        return None, None
    if not text.isascii() or not text.isdigit():
        return None, f"The datastore's id is a whole number, e.g. 12 (not {text!r})"
    if int(text) < 1:
        return None, "Datastore ids start at 1"
    return int(text), None


def progress_line(view: ImportProgressView) -> str:
    """``page 2/3 · 120 new, 30 updated`` (and ``, 5 unchanged`` when some were)."""
    if view.pages == 0 and not finished(view):
        return "starting: asking the platform for the first page…"
    counts = f"{view.created:,} new, {view.updated:,} updated"
    if view.unchanged:
        counts += f", {view.unchanged:,} unchanged"
    line = f"page {view.page}/{view.pages} · {counts}"
    if view.resumed_from is not None:
        line += f" · resumed at page {view.resumed_from}"
    return line


def summary(view: ImportProgressView) -> str:
    """The end of an import in one sentence (the final notification)."""
    if view.error is not None:
        where = f"page {view.page}/{view.pages}" if view.pages else "the first page"
        return (
            f"Stopped after {where}: {view.error}. Importing again with the same options "
            "resumes where it stopped."
        )
    if view.total == 0:
        return "The platform listed no anomaly for these options: nothing imported."
    pages = "1 page" if view.pages == 1 else f"{view.pages} pages"
    return (
        f"Imported {view.total:,} anomalies in {pages}: {view.created:,} new, "
        f"{view.updated:,} updated, {view.unchanged:,} unchanged"
    )


class ImportScreen(ModalScreen[None]):
    """Options, then progress. ``view``: an import already running, shown at once."""

    DEFAULT_CSS = dialog_css(
        "ImportScreen",
        """
        ImportScreen > #dialog { width: 76; height: auto; }
        ImportScreen #options { height: auto; }
        ImportScreen #about { color: $text-muted; padding: 0 1; height: auto; }
        ImportScreen #archived { margin: 1 1 0 1; }
        ImportScreen .field { height: 1; margin-top: 1; }
        ImportScreen .field-label { color: $text-muted; padding: 0 1; width: 26; }
        ImportScreen .field Input { width: 16; }
        ImportScreen .field-hint { color: $text-muted; padding: 0 1; width: auto; }
        ImportScreen .field-error { color: $text-error; padding: 0 1 0 27; height: auto; }
        ImportScreen .field-error.-empty { display: none; }
        ImportScreen .field Input.-wrong { background: $error 40%; }
        ImportScreen #progress { height: auto; padding: 1 1 0 1; display: none; }
        ImportScreen.-progress #progress { display: block; }
        ImportScreen.-progress #options { display: none; }
        ImportScreen.-progress #submit { display: none; }
        ImportScreen #progress-line { height: auto; }
        ImportScreen #import-bar { margin-top: 1; }
        ImportScreen #result { height: auto; margin-top: 1; }
        ImportScreen #result.-empty { display: none; }
        ImportScreen.-progress #buttons { margin-top: 1; }
        ImportScreen #result.-error { color: $text-error; }
        ImportScreen #result.-done { color: $text-success; }
        ImportScreen #progress-hint { color: $text-muted; height: auto; margin-top: 1; }
        ImportScreen #status { margin-top: 1; }
        ImportScreen #status.-empty { display: none; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+s", "submit", "Import", priority=True),
    ]

    def __init__(
        self,
        client: DeskClient,
        started: Started,
        view: ImportProgressView | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.started = started
        self.view: ImportProgressView | None = None
        self.views: list[ImportProgressView] = []  # every state shown, oldest first
        self._initial = view
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Import from the platform"
            with Vertical(id="options"):
                yield Static(
                    "The platform's anomalies are stored here as if a webhook had delivered "
                    "them; nothing is written back. An import cut short resumes when started "
                    "again with the same options.",
                    id="about",
                    markup=False,
                )
                yield Checkbox(
                    "Archived anomalies too (else the open ones only)", id="archived", compact=True
                )
                with Horizontal(classes="field"):
                    yield Label("Since (optional)", classes="field-label")
                    yield Input(placeholder="YYYY-MM-DD", id="since", max_length=10, compact=True)
                    yield Label("created on or after", classes="field-hint")
                yield Static("", id="since-error", classes="field-error -empty")
                with Horizontal(classes="field"):
                    yield Label("Datastore id (optional)", classes="field-label")
                    yield Input(placeholder="e.g. 12", id="datastore", max_length=12, compact=True)
                    yield Label("its anomalies only", classes="field-hint")
                yield Static("", id="datastore-error", classes="field-error -empty")
            with Vertical(id="progress"):
                yield Static("", id="progress-line")
                yield ProgressBar(total=None, show_eta=False, id="import-bar")
                yield Static("", id="result", classes="-empty")
                yield Static("", id="progress-hint")
            yield Static("", id="status", classes="-empty")
            with Horizontal(id="buttons"):
                yield Button("Import", variant="primary", id="submit")
                yield Button("Cancel", id="close")
        yield Footer()

    def on_mount(self) -> None:
        if self._initial is not None:
            self.show_progress(self._initial)
        else:
            self.query_one("#archived", Checkbox).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "submit":
            return not self.has_class("-progress")  # the footer offers ^s with the options only
        return True

    # -- options ------------------------------------------------------------------------------

    def _field_error(self, name: str, message: str | None) -> None:
        error = self.query_one(f"#{name}-error", Static)
        error.update(Text(message or ""))
        error.set_class(not message, "-empty")
        self.query_one(f"#{name}", Input).set_class(bool(message), "-wrong")  # Input owns -invalid

    def _set_status(self, message: str, kind: str = "") -> None:
        status = self.query_one("#status", Static)
        status.update(Text(message))
        status.set_class(not message, "-empty")
        status.set_class(kind == "error", "-error")
        status.set_class(kind == "busy", "-busy")

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        if event.input.id in ("since", "datastore"):
            self._field_error(event.input.id, None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        if self.has_class("-progress") or self._busy:
            return
        since, since_error = parse_since(self.query_one("#since", Input).value)
        datastore, datastore_error = parse_datastore(self.query_one("#datastore", Input).value)
        self._field_error("since", since_error)
        self._field_error("datastore", datastore_error)
        if since_error or datastore_error:
            self.query_one("#since" if since_error else "#datastore", Input).focus()
            self._set_status("Fix the marked field first.", "error")
            return
        archived = self.query_one("#archived", Checkbox).value
        self.start(archived, since, datastore)

    @work(exclusive=True, group="import")
    async def start(self, archived: bool, since: date | None, datastore: int | None) -> None:
        self._busy = True
        self._set_status("Starting the import…", "busy")
        sent_at = time.monotonic()
        try:
            view = await self.client.start_import(archived, since, datastore)
        except ApiError as exc:
            if not self.is_attached:
                return
            if exc.status == 409:
                await self._running_already(sent_at)
            else:
                self._refused(exc)
            return
        finally:
            self._busy = False
        if not self.is_attached:
            return
        self._set_status("")
        self.started(view, sent_at)  # the main screen: the header, and what comes next
        if self.view is None:  # no event came before the answer did
            self.show_progress(view)

    async def _running_already(self, sent_at: float) -> None:
        """409: an import runs already (started elsewhere): show its progress instead."""
        try:
            view = await self.client.import_status()
        except ApiError as exc:
            self._set_status(f"An import is running already; its progress: {exc.detail}", "error")
            return
        if view is None or not self.is_attached:
            return
        self.started(view, sent_at)
        self.show_progress(view)
        self._set_status("An import was running already: this is its progress.")

    def _refused(self, exc: ApiError) -> None:
        paths = {error.path: error.message for error in exc.errors}
        if exc.status == 422 and "platform" in paths:
            self._set_status(NOT_CONFIGURED, "error")
            return
        fields = [name for name in ("since", "datastore") if name in paths]
        for name in fields:
            self._field_error(name, paths[name])
        if fields:
            self._set_status("The receiver refused the marked field.", "error")
        else:
            self._set_status(f"Cannot import: {exc.detail}", "error")

    # -- progress -----------------------------------------------------------------------------

    def show_progress(self, view: ImportProgressView) -> None:
        """Where the import stands (an event, or the receiver's answer)."""
        if view == self.view:
            return
        self.view = view
        self.views.append(view)
        if not self.has_class("-progress"):
            self.add_class("-progress")
            self.refresh_bindings()
        self._set_status("")
        self.query_one("#progress-line", Static).update(Text(progress_line(view)))
        bar = self.query_one("#import-bar", ProgressBar)
        if view.pages:
            bar.update(total=view.pages, progress=view.page)
        result = self.query_one("#result", Static)
        hint = self.query_one("#progress-hint", Static)
        close = self.query_one("#close", Button)
        result.set_class(view.error is not None, "-error")
        result.set_class(view.done and view.error is None, "-done")
        result.set_class(not finished(view), "-empty")
        if finished(view):
            result.update(Text(summary(view)))
            hint.update("enter or esc closes")
            close.label = "Close"
            close.focus()
        else:
            result.update("")
            hint.update("The import goes on if this closes: the header shows it, I reopens it.")
            close.label = "Close"

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
