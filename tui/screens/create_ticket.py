"""Create a ticket for an anomaly: choose a connection and a ticket type, fill the form the
provider describes for that type, create + link.

The form is read from the provider (Jira createmeta, ServiceNow's dictionary): every field of the
type, required ones first and marked, one widget per kind of value; a submit with a required field
empty is refused before anything is sent. When the form cannot be read, the provider's seed
fields stand in. The values sent are the loose forms the providers accept (names, ids, labels),
so a drop-down is a convenience and never a limit: a choice field has an "Other…" entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import ClassVar

from pydantic import JsonValue
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, OptionList, Select, Static

from anomaly_desk.core.views import (
    AnomalyDetail,
    ConnectionView,
    CreateFormView,
    TicketLinkView,
    UserView,
)
from anomaly_desk.tui.client import ApiError, DeskClient
from anomaly_desk.tui.screens.dialog import anomaly_line, dialog_css
from anomaly_desk.tui.screens.spec_form import SpecForm, TypeRow
from anomaly_desk.tui.screens.ticket_forms import FORMS, TicketForm, default_summary
from anomaly_desk.tui.widgets.connection_list import ConnectionList
from anomaly_desk.tui.widgets.form_fields import OTHER, ChoiceField, FormField, Options

__all__ = ["FIX_FIELDS", "CreateTicketScreen", "SpecForm", "default_summary"]

FIX_FIELDS = "Fix the marked fields."


# -- the dialog -----------------------------------------------------------------------------------


class CreateTicketScreen(ModalScreen[TicketLinkView | None]):
    """Create a ticket on a connection and link it to the anomaly; dismisses with the link.

    The form comes from the provider (``GET /api/connections/{name}/form``): the type picker
    reads another type's form; when it cannot be read, the basic form of the provider's seed
    fields stands in, every value typed."""

    DEFAULT_CSS = dialog_css(
        "CreateTicketScreen",
        """
        CreateTicketScreen #body { height: auto; max-height: 70vh; }
        CreateTicketScreen #raised-for { color: $text-muted; padding: 0 1; height: auto; }
        CreateTicketScreen #raised-for.-none { display: none; }
        """,
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Create", priority=True),
    ]

    def __init__(
        self, client: DeskClient, anomaly: AnomalyDetail, connections: list[ConnectionView]
    ) -> None:
        super().__init__()
        self.client = client
        self.anomaly = anomaly
        self.connections = [c for c in connections if c.provider in FORMS]
        self.connection: ConnectionView | None = None
        self.sending = False
        self.fields_note = False  # the status line is about marked fields: gone once they are
        self.spec_view: CreateFormView | None = None  # None: the basic form (or none yet)
        self.options: Options = {}
        self.sent = 0  # create requests sent (a refused submit sends none)

    @property
    def form(self) -> TicketForm | None:
        found = self.query(TicketForm)
        return found.first() if found else None

    @property
    def fields(self) -> list[FormField]:
        """Every field on the dialog, in the order shown: the type row's, then the form's."""
        return list(self.query_one("#body").query(FormField))

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Create a ticket"
            yield Static(Text(anomaly_line(self.anomaly)), id="anomaly")
            yield Static("", id="raised-for", classes="-none")
            yield VerticalScroll(id="body")
            yield Static("", id="status")
            with Horizontal(id="buttons"):
                yield Button("Create", variant="primary", id="submit", disabled=True)
                yield Button("Cancel", id="cancel")
        yield Footer()

    async def on_mount(self) -> None:
        self.show_raised_for(self.client.raised_for)
        if not self.connections:
            self.set_status("No Jira or ServiceNow connection is configured.", "error")
        elif len(self.connections) == 1:
            await self.use_connection(self.connections[0])
        else:
            picker = ConnectionList(self.connections, id="connections")
            await self.query_one("#body").mount(Label("Choose a connection:", id="choose"), picker)
            picker.focus()

    def show_raised_for(self, email: str | None, form: CreateFormView | None = None) -> None:
        """Who the ticket is raised for, and, once the form is read, whether this type can
        say so: a ServiceNow table without a caller field, a Jira screen without a reporter."""
        line = self.query_one("#raised-for", Static)
        provider = self.connection.provider if self.connection is not None else ""
        line.update(Text(raised_for_text(email, form, provider) if email else ""))
        line.set_class(not email, "-none")

    @on(OptionList.OptionSelected, "#connections")
    async def _picked(self, event: OptionList.OptionSelected) -> None:
        chosen = next(c for c in self.connections if c.name == event.option.id)
        await self.use_connection(chosen)

    async def use_connection(self, connection: ConnectionView) -> None:
        """Step two: the connection's form, read in the background."""
        self.connection = connection
        kind = connection.provider
        what = "Jira issue" if kind == "jira" else "ServiceNow ticket"
        self.query_one("#dialog").border_title = Text(f"Create a {what} · {connection.name}")
        await self.query_one("#body").remove_children()
        self.refresh_bindings()
        self.load(connection)

    def users(self, text: str) -> Awaitable[list[UserView]]:
        assert self.connection is not None
        return self.client.find_users(self.connection.name, text)

    @work(exclusive=True, group="form")
    async def load(self, connection: ConnectionView) -> None:
        """Types, the default type's form and the drop-down values, at once; without a form,
        the basic one."""
        name = connection.name
        self.set_status(f"Reading drop-down values from {name} and its create form…", "busy")
        types, form, options = await asyncio.gather(
            self.client.ticket_types(name),
            self.client.create_form(name, anomaly=self.anomaly.id),
            self.client.options(name),
            return_exceptions=True,
        )
        body = self.query_one("#body")
        self.options = options if isinstance(options, dict) else {}
        if not isinstance(form, CreateFormView):
            await body.remove_children()
            basic = FORMS[connection.provider](connection, self.anomaly)
            await body.mount(basic)
            self.spec_view = None
            self.ready(basic)
            if isinstance(options, dict):
                basic.apply_options(options)
                self.set_status(f"Create form unavailable ({_detail(form)}); the basic fields.")
            else:
                basic.options_failed()
                detail = _detail(options)
                self.set_status(f"Drop-down values unavailable ({detail}); type values.", "error")
            return
        listed = types if isinstance(types, list) else []
        await body.remove_children()
        await body.mount(TypeRow(connection, listed, form.ticket_type))
        await self.show_form(form)
        self.set_status("" if isinstance(types, list) else f"Ticket types: {_detail(types)}")

    async def show_form(self, form: CreateFormView, kept: dict[str, str] | None = None) -> None:
        assert self.connection is not None
        old = self.query(SpecForm)
        if old:
            await old.remove()
        self.spec_view = form
        self.show_raised_for(self.client.raised_for or form.operator_email, form)
        new = SpecForm(self.connection, self.anomaly, form, self.options, self.users, kept)
        await self.query_one("#body").mount(new)
        self.ready(new)

    def ready(self, form: TicketForm) -> None:
        """The form is in: sending is possible; the focus on its first field, unless the
        person is at the type picker (a new type's form came in)."""
        self.query_one("#submit", Button).disabled = False
        row = self.query("#type-row")
        picking = bool(row) and row.first().has_focus_within
        shown = form.query(FormField)
        if shown and not picking:
            shown.first().focus_control()
        self.refresh_bindings()

    @on(FormField.Changed, "#field-issuetype, #field-table")
    def _type_changed(self, event: FormField.Changed) -> None:
        """Another ticket type: its form replaces this one (typed text kept)."""
        picker = event.field
        assert isinstance(picker, ChoiceField)
        wanted = picker.select.value
        if self.connection is None or self.spec_view is None or wanted in (OTHER, Select.NULL):
            return  # the basic form's type is only a value to send
        if self.spec_view is not None and self.spec_view.ticket_type.id == wanted:
            return
        current = self.query(SpecForm)
        kept = current.first().kept_values() if current else {}
        self.load_type(self.connection, str(wanted), kept)

    @work(exclusive=True, group="form")
    async def load_type(
        self, connection: ConnectionView, wanted: str, kept: dict[str, str]
    ) -> None:
        self.set_status(f"Reading the form of this type from {connection.name}…", "busy")
        try:
            form = await self.client.create_form(connection.name, wanted, self.anomaly.id)
        except ApiError as exc:
            self.set_status(f"Cannot read that type's form: {exc.detail}", "error")
            return
        await self.show_form(form, kept)
        self.set_status("")

    def set_status(self, text: str, kind: str = "", fields: bool = False) -> None:
        self.fields_note = fields
        status = self.query_one("#status", Static)
        status.update(Text(text))
        status.set_class(kind == "error", "-error")
        status.set_class(kind == "busy", "-busy")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "submit":
            if self.connection is None:
                return False
            return None if self.sending else True
        return True

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def collect(self) -> dict[str, JsonValue] | None:
        """The filled values by provider field name; None (the first bad field focused and the
        status naming the missing required ones) when any is missing or invalid."""
        fields = self.fields
        bad = [field for field in fields if not field.check()]
        if bad:
            missing = [f.spec.label for f in bad if f.spec.required and not f.filled]
            wrong = [
                f"{f.spec.label} ({short_error(f.error)})"
                for f in bad
                if f.error and not (f.spec.required and not f.filled)
            ]
            note = f" Required: {', '.join(missing)}." if missing else ""
            note += f" Fix: {', '.join(wrong)}." if wrong else ""
            self.set_status(FIX_FIELDS + note, "error", fields=True)
            bad[0].focus_control()
            self.call_after_refresh(bad[0].scroll_visible)
            return None
        return {field.spec.name: field.value for field in fields if field.filled}

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        if self.form is None or self.connection is None or self.sending:
            return
        fields = self.collect()
        if fields is not None:
            self.send(self.connection.name, fields)

    @work(exclusive=True, group="submit")
    async def send(self, connection: str, fields: dict[str, JsonValue]) -> None:
        self.set_sending(True)
        self.set_status(f"Creating the ticket on {connection}…", "busy")
        self.sent += 1
        try:
            link = await self.client.create_ticket(self.anomaly.id, connection, fields)
        except ApiError as exc:
            self.set_sending(False)
            self.show_error(exc)
            return
        self.set_status(f"Created {link.ticket_key}.")
        if link.warnings:
            self.app.notify(
                "\n".join(link.warnings),
                title=f"{link.ticket_key} created, not quite as asked",
                severity="warning",
                timeout=15,
                markup=False,  # people's names and addresses, never markup
            )
        self.dismiss(link)

    def set_sending(self, sending: bool) -> None:
        self.sending = sending
        self.query_one("#submit", Button).disabled = sending
        self.refresh_bindings()

    def show_error(self, exc: ApiError) -> None:
        """Provider field errors go on their fields; everything else in the status line."""
        errors = exc.field_errors()
        rest = self.show_field_errors(errors)
        self.set_status(exc.detail, "error", fields=bool(errors) and not rest)

    def show_field_errors(self, errors: dict[str, str]) -> dict[str, str]:
        """Each provider error on its field (type row or form); the ones no field owns."""
        by_name = {field.spec.name: field for field in self.fields}
        form = self.form
        aliases = form.ALIASES if form is not None else {}
        rest: dict[str, str] = {}
        first: FormField | None = None
        for name, message in errors.items():
            field = by_name.get(aliases.get(name, name))
            if field is None:
                rest[name] = message
                continue
            field.set_error(message)
            first = first or field
        if first is not None:
            first.focus_control()
            self.call_after_refresh(first.scroll_visible)  # the message under it too
        return rest

    @on(FormField.Changed)
    def _edited(self) -> None:
        """A field note (ours or the provider's) goes once no field is marked any more."""
        marked = any(field.error for field in self.fields)
        if self.fields_note and not marked:
            self.set_status("")


def short_error(message: str) -> str:
    """A field's error as the status line names it: ``Not a date: YYYY-MM-DD`` → ``not a
    date``."""
    text = message.split(":")[0].strip()
    return text[:1].lower() + text[1:]


def raised_for_text(email: str, form: CreateFormView | None, provider: str) -> str:
    """``Raised for …``, and what the provider will do where the type has no field for it
    (the create's warning, said before the create)."""
    if form is None:
        return f"Raised for {email}"
    kind = form.ticket_type.name
    if provider == "jira":
        if form.reporter_settable:
            return f"Raised for {email} (the reporter)"
        return f"Raised for {email}: added as a watcher (a {kind} here has no reporter field)"
    has_caller = form.ticket_type.id == "incident" or any(f.id == "caller_id" for f in form.fields)
    if has_caller:
        return f"Raised for {email} (the caller)"
    return f"No caller will be set for {email}: a {kind} has no caller field"


def _detail(exc: object) -> str:
    return exc.detail if isinstance(exc, ApiError) else str(exc)
