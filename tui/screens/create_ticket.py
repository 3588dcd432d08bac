"""Create a ticket for an anomaly: choose a connection, fill the provider's form, create + link.

The form is provider-specific because Jira and ServiceNow name and shape their fields differently;
the values sent are the loose forms the providers accept (names, ids, labels), so a drop-down is a
convenience and never a limit: every choice field has an "Other…" entry for typing a value.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, OptionList, Static

from anomaly_desk.core.providers.servicenow import LEVEL_WORDS, PRIORITY_MATRIX
from anomaly_desk.core.views import AnomalyDetail, ConnectionView, TicketLinkView
from anomaly_desk.tui.client import ApiError, DeskClient
from anomaly_desk.tui.screens.dialog import anomaly_line, dialog_css, ref_name
from anomaly_desk.tui.widgets.connection_list import ConnectionList
from anomaly_desk.tui.widgets.form_fields import (
    FIELD_TYPES,
    ChoiceField,
    DerivedField,
    FieldSpec,
    FormField,
    Options,
)

SUMMARY_LIMITS = {"jira": 255, "servicenow": 160}
SUMMARY_PREFIX = "[DQ]"
FIX_FIELDS = "Fix the marked fields."
# ServiceNow's priority names, for when the instance's own labels could not be read
PRIORITY_NAMES = {"1": "Critical", "2": "High", "3": "Moderate", "4": "Low", "5": "Planning"}


def level(value: str) -> str | None:
    """An impact or urgency as ServiceNow stores it (``"1"``..``"3"``), from a drop-down value
    or typed text (``2``, ``2 - Medium``, ``medium``); None when it is not one."""
    text = value.strip().lower()
    if not text:
        return None
    code = text[0] if text[0].isdigit() else LEVEL_WORDS.get(text.split(" - ")[-1].strip())
    return code if code in LEVEL_WORDS.values() else None


def derived_priority(impact: str, urgency: str) -> str | None:
    """The priority ServiceNow's lookup rules give ``impact`` × ``urgency`` (1+1 → 1 Critical,
    …, 3+3 → 5 Planning); None until both are set."""
    impact_level, urgency_level = level(impact), level(urgency)
    if impact_level is None or urgency_level is None:
        return None
    return PRIORITY_MATRIX.get((impact_level, urgency_level))


# -- texts shown about the anomaly and the connections ------------------------------------------


def default_summary(anomaly: AnomalyDetail, limit: int) -> str:
    """``[DQ] orders: customer_id is null in 1,204 records``, on one line, cut to ``limit``."""
    container = ref_name(anomaly.container)
    what = (
        anomaly.message or anomaly.description or f"{anomaly.type or 'data'} anomaly {anomaly.id}"
    )
    head = f"{SUMMARY_PREFIX} {container}: " if container else f"{SUMMARY_PREFIX} "
    text = " ".join(f"{head}{what}".split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class TicketForm(Widget):
    """One provider's fields on a two-column grid; collects the values the API takes."""

    DEFAULT_CSS = """
    TicketForm {
        layout: grid;
        grid-size: 2;
        grid-columns: 1fr 1fr;
        grid-rows: auto;
        grid-gutter: 0 2;
        height: auto;
    }
    """

    SPECS: ClassVar[tuple[FieldSpec, ...]] = ()
    ALIASES: ClassVar[dict[str, str]] = {}  # API field names that mean one of ours

    def __init__(self, connection: ConnectionView, anomaly: AnomalyDetail) -> None:
        super().__init__(id="form")
        self.connection = connection
        self.anomaly = anomaly
        self.options: Options = {}

    def defaults(self) -> dict[str, str]:
        return {}

    def compose(self) -> ComposeResult:
        defaults = self.defaults()
        for spec in self.SPECS:
            yield FIELD_TYPES[spec.kind](spec, defaults.get(spec.name, ""))

    def field(self, name: str) -> FormField | None:
        name = self.ALIASES.get(name, name)
        found = self.query(f"#field-{name}")
        return found.first(FormField) if found else None

    @property
    def choice_fields(self) -> list[ChoiceField]:
        return list(self.query(ChoiceField))

    def apply_options(self, options: Options) -> None:
        """Fill the drop-downs from ``GET /api/connections/{name}/options``."""
        self.options = options
        for field in self.choice_fields:
            field.set_options(self.choices_for(field.spec.name))

    def choices_for(self, name: str) -> list[tuple[str, str]]:
        return [(o.label, o.value) for o in self.options.get(name, [])]

    def options_failed(self) -> None:
        """No drop-down values: every choice field offers free text only."""
        for field in self.choice_fields:
            field.set_options([], prompt="— type a value —")

    def collect(self) -> dict[str, str] | None:
        """The non-empty values by provider field name, or None when a field is invalid."""
        fields = list(self.query(FormField))
        bad = [field for field in fields if not field.check()]
        if bad:
            bad[0].focus_control()
            return None
        return {field.spec.name: field.value for field in fields if field.value}

    def show_errors(self, errors: dict[str, str]) -> dict[str, str]:
        """Put each provider error on its field; returns the ones no field owns."""
        rest: dict[str, str] = {}
        first: FormField | None = None
        for name, message in errors.items():
            field = self.field(name)
            if field is None:
                rest[name] = message
                continue
            field.set_error(message)
            first = first or field
        if first is not None:
            first.focus_control()
            self.call_after_refresh(first.scroll_visible)  # the message under it too
        return rest


class JiraForm(TicketForm):
    """Jira Cloud: the seed fields of ``POST /rest/api/3/issue``."""

    SPECS = (
        FieldSpec("summary", "Summary", "text", required=True, max_length=255, wide=True),
        FieldSpec(
            "description",
            "Description",
            "area",
            placeholder="Optional; the anomaly details are added below it",
            wide=True,
        ),
        FieldSpec("project", "Project", "text", required=True, placeholder="project key"),
        FieldSpec("issuetype", "Issue type", "choice", required=True, placeholder="type name"),
        FieldSpec("priority", "Priority", "choice", placeholder="priority name"),
        FieldSpec("assignee", "Assignee", "choice", placeholder="email, name or account id"),
        FieldSpec(
            "labels", "Labels", "text", placeholder="comma-separated: pipeline, finance", wide=True
        ),
    )
    ALIASES = {"issue_type": "issuetype"}

    def defaults(self) -> dict[str, str]:
        return {
            "summary": default_summary(self.anomaly, SUMMARY_LIMITS["jira"]),
            "project": self.connection.project or "",
            "issuetype": self.connection.issue_type or "Task",
        }


class ServiceNowForm(TicketForm):
    """ServiceNow: the incident fields the Table API client sets."""

    SPECS = (
        FieldSpec(
            "short_description",
            "Short description",
            "text",
            required=True,
            max_length=160,
            wide=True,
        ),
        FieldSpec(
            "description",
            "Description",
            "area",
            placeholder="Optional; the anomaly details are added below it",
            wide=True,
        ),
        FieldSpec("category", "Category", "choice", placeholder="category value"),
        FieldSpec("subcategory", "Subcategory", "choice", placeholder="subcategory value"),
        FieldSpec("impact", "Impact", "choice", placeholder="1, 2 or 3"),
        FieldSpec("urgency", "Urgency", "choice", placeholder="1, 2 or 3"),
        # the instance derives priority from impact and urgency, refusing any other: shown only
        FieldSpec("priority", "Priority (impact × urgency)", "derived", placeholder="—"),
        FieldSpec("assignment_group", "Assignment group", "choice", placeholder="group name"),
        FieldSpec("assigned_to", "Assigned to", "choice", placeholder="user name or email"),
        FieldSpec("caller_id", "Caller", "choice", placeholder="user name or email"),
    )
    ALIASES = {"summary": "short_description"}

    def defaults(self) -> dict[str, str]:
        return {"short_description": default_summary(self.anomaly, SUMMARY_LIMITS["servicenow"])}

    def choices_for(self, name: str) -> list[tuple[str, str]]:
        if name == "subcategory":
            return self._subcategories()
        return super().choices_for(name)

    def _subcategories(self) -> list[tuple[str, str]]:
        """Subcategories depend on the category, as on the instance's own form."""
        category = self.field("category")
        chosen = category.value if category is not None else ""
        return [(o.label, o.value) for o in self.options.get(f"subcategory:{chosen}", [])]

    def on_mount(self) -> None:
        self.show_priority()

    def apply_options(self, options: Options) -> None:
        super().apply_options(options)
        self.show_priority()

    def show_priority(self) -> None:
        """The priority the instance will give the incident, in its own words when it said."""
        impact, urgency = self.field("impact"), self.field("urgency")
        shown = self.query_one("#field-priority", DerivedField)
        if impact is None or urgency is None:
            return
        priority = derived_priority(impact.value, urgency.value)
        if priority is None:
            shown.show("")
            return
        labels = {o.value: o.label for o in self.options.get("priority", [])}
        shown.show(labels.get(priority) or f"{priority} - {PRIORITY_NAMES[priority]}")

    @on(FormField.Changed, "#field-impact, #field-urgency")
    def _level_changed(self) -> None:
        self.show_priority()

    @on(FormField.Changed, "#field-category")
    def _category_changed(self, event: FormField.Changed) -> None:
        if not self.options:
            return
        subcategory = self.query_one("#field-subcategory", ChoiceField)
        choices = self._subcategories()
        prompt = "— not set —" if choices else "— choose a category first —"
        subcategory.set_options(choices, prompt=prompt)


FORMS: dict[str, type[TicketForm]] = {"jira": JiraForm, "servicenow": ServiceNowForm}


# -- the dialog -----------------------------------------------------------------------------------


class CreateTicketScreen(ModalScreen[TicketLinkView | None]):
    """Create a ticket on a connection and link it to the anomaly; dismisses with the link."""

    DEFAULT_CSS = dialog_css(
        "CreateTicketScreen",
        """
        CreateTicketScreen #body { height: auto; max-height: 70vh; }
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

    @property
    def form(self) -> TicketForm | None:
        found = self.query(TicketForm)
        return found.first() if found else None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Create a ticket"
            yield Static(Text(anomaly_line(self.anomaly)), id="anomaly")
            yield VerticalScroll(id="body")
            yield Static("", id="status")
            with Horizontal(id="buttons"):
                yield Button("Create", variant="primary", id="submit", disabled=True)
                yield Button("Cancel", id="cancel")
        yield Footer()

    async def on_mount(self) -> None:
        if not self.connections:
            self.set_status("No Jira or ServiceNow connection is configured.", "error")
        elif len(self.connections) == 1:
            await self.use_connection(self.connections[0])
        else:
            picker = ConnectionList(self.connections, id="connections")
            await self.query_one("#body").mount(Label("Choose a connection:", id="choose"), picker)
            picker.focus()

    @on(OptionList.OptionSelected, "#connections")
    async def _picked(self, event: OptionList.OptionSelected) -> None:
        chosen = next(c for c in self.connections if c.name == event.option.id)
        await self.use_connection(chosen)

    async def use_connection(self, connection: ConnectionView) -> None:
        """Step two: the provider's form, its drop-downs read in the background."""
        self.connection = connection
        kind = connection.provider
        what = "Jira issue" if kind == "jira" else "ServiceNow incident"
        self.query_one("#dialog").border_title = Text(f"Create a {what} · {connection.name}")
        body = self.query_one("#body")
        await body.remove_children()
        form = FORMS[kind](connection, self.anomaly)
        await body.mount(form)
        self.query_one("#submit", Button).disabled = False
        form.query(FormField).first().focus_control()
        self.refresh_bindings()
        self.load_options(connection.name)

    @work(exclusive=True, group="options")
    async def load_options(self, name: str) -> None:
        self.set_status(f"Reading drop-down values from {name}…", "busy")
        try:
            options = await self.client.options(name)
        except ApiError as exc:
            if self.form is not None:
                self.form.options_failed()
            self.set_status(f"Drop-down values unavailable ({exc.detail}); type values.", "error")
            return
        if self.form is not None:
            self.form.apply_options(options)
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

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        form = self.form
        if form is None or self.connection is None or self.sending:
            return
        fields = form.collect()
        if fields is None:
            self.set_status(FIX_FIELDS, "error", fields=True)
            return
        self.send(self.connection.name, fields)

    @work(exclusive=True, group="submit")
    async def send(self, connection: str, fields: dict[str, str]) -> None:
        self.set_sending(True)
        self.set_status(f"Creating the ticket on {connection}…", "busy")
        try:
            link = await self.client.create_ticket(self.anomaly.id, connection, fields)
        except ApiError as exc:
            self.set_sending(False)
            self.show_error(exc)
            return
        self.set_status(f"Created {link.ticket_key}.")
        self.dismiss(link)

    def set_sending(self, sending: bool) -> None:
        self.sending = sending
        self.query_one("#submit", Button).disabled = sending
        self.refresh_bindings()

    def show_error(self, exc: ApiError) -> None:
        """Provider field errors go on their fields; everything else in the status line."""
        errors = exc.field_errors()
        rest = self.form.show_errors(errors) if self.form is not None else errors
        self.set_status(exc.detail, "error", fields=bool(errors) and not rest)

    @on(FormField.Changed)
    def _edited(self) -> None:
        """A field note (ours or the provider's) goes once no field is marked any more."""
        form = self.form
        marked = form is None or any(field.error for field in form.query(FormField))
        if self.fields_note and not marked:
            self.set_status("")
