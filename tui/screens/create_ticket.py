"""Create a ticket for an anomaly: choose a connection, fill the provider's form, create + link.

The form is provider-specific because Jira and ServiceNow name and shape their fields differently;
the values sent are the loose forms the providers accept (names, ids, labels), so a drop-down is a
convenience and never a limit: every choice field has an "Other…" entry for typing a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.validation import Function, Length, Validator
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option

from tui.client import ApiError, DeskClient

OTHER = "\x00other"  # the Select value of the "Other…" entry: never a provider value
PROVIDER_NAMES = {"jira": "Jira Cloud", "servicenow": "ServiceNow"}
SUMMARY_LIMITS = {"jira": 255, "servicenow": 160}
SUMMARY_PREFIX = "[DQ]"

Options = dict[str, list[dict[str, str]]]


# -- texts shown about the anomaly and the connections ------------------------------------------


def _name(ref: Any) -> str:
    """A datastore/container is ``{"id", "name"}`` in a full anomaly and a name in a list row."""
    if isinstance(ref, dict):
        return str(ref.get("name") or ref.get("id") or "")
    return str(ref or "")


def default_summary(anomaly: dict[str, Any], limit: int) -> str:
    """``[DQ] orders: customer_id is null in 1,204 records``, on one line, cut to ``limit``."""
    container = _name(anomaly.get("container"))
    what = (
        anomaly.get("message")
        or anomaly.get("description")
        or f"{anomaly.get('type') or 'data'} anomaly {anomaly.get('id')}"
    )
    head = f"{SUMMARY_PREFIX} {container}: " if container else f"{SUMMARY_PREFIX} "
    text = " ".join(f"{head}{what}".split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def anomaly_line(anomaly: dict[str, Any]) -> str:
    """One line that tells which anomaly a dialog acts on."""
    where = " › ".join(
        n for n in (_name(anomaly.get("datastore")), _name(anomaly.get("container"))) if n
    )
    what = anomaly.get("message") or anomaly.get("description") or anomaly.get("type") or ""
    return " · ".join(str(p) for p in (f"Anomaly {anomaly.get('id')}", where, what) if p)


def connection_prompt(connection: dict[str, Any]) -> Text:
    """``jira  Jira Cloud · DQ / Task  ✓ authenticated as …`` for the connection chooser."""
    kind = connection.get("provider", "")
    text = Text(connection["name"], style="bold")
    text.append(f"  {PROVIDER_NAMES.get(kind, kind)}")
    if kind == "jira" and connection.get("project"):
        text.append(f" · {connection['project']} / {connection.get('issue_type') or 'Task'}")
    health = connection.get("health")
    if health is None:
        text.append("  · not checked yet", style="dim")
    elif health.get("ok"):
        text.append(f"  ✓ {health.get('message', 'ok')}", style="green")
    else:
        text.append(f"  ✗ {health.get('message', 'failing')}", style="red")
    return text


class ConnectionList(OptionList):
    """Step one of the ticket dialogs: which configured connection to use."""

    DEFAULT_CSS = """
    ConnectionList { height: auto; max-height: 12; margin: 1 0; }
    """

    def __init__(self, connections: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(
            *(Option(connection_prompt(c), id=c["name"]) for c in connections), **kwargs
        )


# -- form fields ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One form field: ``name`` is the provider's field name, the key sent to the API."""

    name: str
    label: str
    kind: Literal["text", "area", "choice"]
    required: bool = False
    max_length: int = 0
    placeholder: str = ""
    wide: bool = False  # spans both columns of the form grid


class FormField(Vertical):
    """A label, one control and the error under it: an error shows where the value is typed."""

    DEFAULT_CSS = """
    FormField { height: auto; }
    FormField.wide { column-span: 2; }
    FormField > .field-label { color: $text-muted; padding: 0 1; }
    FormField > .field-error { color: $text-error; padding: 0 1; display: none; }
    FormField.-error > .field-error { display: block; }
    FormField.-error Input, FormField.-error SelectCurrent, FormField.-error TextArea {
        border: tall $error;
    }
    """

    class Changed(Message):
        """The user changed this field's value (dependent fields listen for it)."""

        def __init__(self, field: FormField) -> None:
            super().__init__()
            self.field = field

        @property
        def control(self) -> FormField:
            return self.field

    def __init__(self, spec: FieldSpec, default: str = "") -> None:
        super().__init__(id=f"field-{spec.name}", classes="wide" if spec.wide else "")
        self.spec = spec
        self.default = default
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        star = " *" if self.spec.required else ""
        yield Label(f"{self.spec.label}{star}", classes="field-label")
        yield from self.compose_control()
        yield Static("", classes="field-error")

    def compose_control(self) -> ComposeResult:
        raise NotImplementedError

    @property
    def value(self) -> str:
        raise NotImplementedError

    def set_error(self, message: str | None) -> None:
        self.error = message or None
        self.query_one(".field-error", Static).update(Text(message or ""))
        self.set_class(bool(message), "-error")

    def check(self) -> bool:
        """Validate before sending; shows the problem on the field."""
        return True

    def focus_control(self) -> None:
        self.query(Input).first().focus()


class TextField(FormField):
    """A one-line value, checked by Textual validators (required, length)."""

    def compose_control(self) -> ComposeResult:
        validators: list[Validator] = []
        if self.spec.required:
            validators.append(Function(lambda v: bool(v.strip()), f"{self.spec.label} is required"))
        if self.spec.max_length:
            validators.append(
                Length(
                    maximum=self.spec.max_length,
                    failure_description=f"At most {self.spec.max_length} characters",
                )
            )
        yield Input(
            self.default,
            placeholder=self.spec.placeholder,
            id=self.spec.name,
            validators=validators,
            max_length=self.spec.max_length,
            validate_on=["changed", "submitted"],
        )

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @property
    def value(self) -> str:
        return self.input.value.strip()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        result = event.validation_result
        self.set_error(
            None if result is None or result.is_valid else result.failure_descriptions[0]
        )
        self.post_message(self.Changed(self))

    def check(self) -> bool:
        result = self.input.validate(self.input.value)
        if result is not None and not result.is_valid:
            self.set_error(result.failure_descriptions[0])
            return False
        return self.error is None

    def focus_control(self) -> None:
        self.input.focus()


class AreaField(FormField):
    """Free text over several lines (descriptions)."""

    DEFAULT_CSS = """
    AreaField > TextArea { height: 5; }
    """

    def compose_control(self) -> ComposeResult:
        yield TextArea(self.default, id=self.spec.name, placeholder=self.spec.placeholder)

    @property
    def value(self) -> str:
        return self.query_one(TextArea).text.strip()

    @on(TextArea.Changed)
    def _changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self.set_error(None)
        self.post_message(self.Changed(self))

    def focus_control(self) -> None:
        self.query_one(TextArea).focus()


class ChoiceField(FormField):
    """A drop-down of the provider's values plus "Other…", which opens a free-text input.

    The providers accept names as well as ids (a Jira user's email, a ServiceNow group's name),
    so a value missing from the list, or a list that could not be read, never blocks the user.
    """

    DEFAULT_CSS = """
    ChoiceField > Input.-hidden { display: none; }
    """

    def __init__(self, spec: FieldSpec, default: str = "") -> None:
        super().__init__(spec, default)
        self.options: list[tuple[str, str]] = []  # (label, value)

    def compose_control(self) -> ComposeResult:
        initial = [(self.default, self.default)] if self.default else []
        yield Select(
            self._select_options(initial),
            prompt="loading…",
            value=self.default or Select.NULL,
            id=self.spec.name,
        )
        yield Input(
            placeholder=self.spec.placeholder or "type a value",
            id=f"{self.spec.name}-other",
            classes="-hidden",
        )

    @property
    def select(self) -> Select[str]:
        return self.query_one(Select)

    @property
    def other(self) -> Input:
        return self.query_one(f"#{self.spec.name}-other", Input)

    @staticmethod
    def _select_options(options: list[tuple[str, str]]) -> list[tuple[Text, str]]:
        rows = [(Text(label), value) for label, value in options]
        return [*rows, (Text("Other…", style="italic"), OTHER)]

    @property
    def value(self) -> str:
        chosen = self.select.value
        if chosen == OTHER:
            return self.other.value.strip()
        if chosen == Select.NULL:
            return ""
        return str(chosen)

    def set_options(self, options: list[tuple[str, str]], prompt: str = "— not set —") -> None:
        """New choices; the current value stays chosen when it is still one of them."""
        current, typed = self.select.value, self.other.value
        with self.prevent(Select.Changed):
            self.options = list(options)
            self.select.set_options(self._select_options(self.options))
            self.select.prompt = prompt
        if current == OTHER:
            self._show(OTHER, typed)
        elif current in {value for _, value in self.options}:
            self._show(current)
        elif current == self.default and current != Select.NULL:
            self.choose(self.default)  # the connection's default, perhaps spelled differently
        else:
            self._show(Select.NULL)

    def choose(self, wanted: str) -> None:
        """Select ``wanted`` by value or label; anything else goes into the free-text input."""
        wanted = wanted.strip()
        for label, value in self.options:
            if wanted in (value, label) or wanted.lower() in (value.lower(), label.lower()):
                self._show(value)
                return
        if wanted:
            self._show(OTHER, wanted)
        else:
            self._show(Select.NULL)

    def _show(self, value: Any, typed: str | None = None) -> None:
        with self.prevent(Select.Changed):
            self.select.value = value
        if typed is not None:
            with self.prevent(Input.Changed):
                self.other.value = typed
        self.other.set_class(value != OTHER, "-hidden")

    @on(Select.Changed)
    def _selected(self, event: Select.Changed) -> None:
        event.stop()
        other = event.value == OTHER
        self.other.set_class(not other, "-hidden")
        self.set_error(None)
        if other:
            self.other.focus()
        self.post_message(self.Changed(self))

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_error(None)
        self.post_message(self.Changed(self))

    def check(self) -> bool:
        if self.spec.required and not self.value:
            self.set_error(f"{self.spec.label} is required")
            return False
        return self.error is None

    def focus_control(self) -> None:
        if self.select.value == OTHER:
            self.other.focus()
        else:
            self.select.focus()


FIELD_TYPES: dict[str, type[FormField]] = {
    "text": TextField,
    "area": AreaField,
    "choice": ChoiceField,
}


# -- the provider forms ---------------------------------------------------------------------------


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

    def __init__(self, connection: dict[str, Any], anomaly: dict[str, Any]) -> None:
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
        return [(o["label"], o["value"]) for o in self.options.get(name, [])]

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
            "project": str(self.connection.get("project") or ""),
            "issuetype": str(self.connection.get("issue_type") or "Task"),
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
        FieldSpec("priority", "Priority", "choice", placeholder="1 to 5"),
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
        return [(o["label"], o["value"]) for o in self.options.get(f"subcategory:{chosen}", [])]

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


DIALOG_CSS = """
{screen} {
    align: center middle;
    background: $background 60%;
}
{screen} > #dialog {
    width: 100;
    max-width: 100%;
    height: auto;
    max-height: 100%;
    margin: 0 2;
    border: thick $primary 80%;
    border-title-align: left;
    background: $surface;
    padding: 0 1;
}
{screen} #anomaly { color: $text-muted; padding: 0 1; height: auto; max-height: 2; }
{screen} #choose { padding: 0 1; }
{screen} #status { height: auto; padding: 0 1; }
{screen} #status.-error { color: $text-error; }
{screen} #status.-busy { color: $text-warning; }
{screen} #buttons { height: auto; align-horizontal: right; }
{screen} #buttons Button { margin-left: 2; }
"""


def dialog_css(screen: str, extra: str = "") -> str:
    """The shared look of the ticket dialogs, scoped to one screen class."""
    return DIALOG_CSS.replace("{screen}", screen) + extra


class CreateTicketScreen(ModalScreen[dict[str, Any] | None]):
    """Create a ticket on a connection and link it to the anomaly; dismisses with the link."""

    DEFAULT_CSS = dialog_css(
        "CreateTicketScreen",
        """
        CreateTicketScreen #body { height: auto; max-height: 70vh; }
        """,
    )

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Create", priority=True),
    ]

    def __init__(
        self, client: DeskClient, anomaly: dict[str, Any], connections: list[dict[str, Any]]
    ) -> None:
        super().__init__()
        self.client = client
        self.anomaly = anomaly
        self.connections = [c for c in connections if c.get("provider") in FORMS]
        self.connection: dict[str, Any] | None = None
        self.sending = False

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
        chosen = next(c for c in self.connections if c["name"] == event.option.id)
        await self.use_connection(chosen)

    async def use_connection(self, connection: dict[str, Any]) -> None:
        """Step two: the provider's form, its drop-downs read in the background."""
        self.connection = connection
        kind = connection["provider"]
        what = "Jira issue" if kind == "jira" else "ServiceNow incident"
        self.query_one("#dialog").border_title = f"Create a {what} · {connection['name']}"
        body = self.query_one("#body")
        await body.remove_children()
        form = FORMS[kind](connection, self.anomaly)
        await body.mount(form)
        self.query_one("#submit", Button).disabled = False
        form.query(FormField).first().focus_control()
        self.refresh_bindings()
        self.load_options(connection["name"])

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

    def set_status(self, text: str, kind: str = "") -> None:
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
            self.set_status("Fix the marked fields.", "error")
            return
        self.send(self.connection["name"], fields)

    @work(exclusive=True, group="submit")
    async def send(self, connection: str, fields: dict[str, str]) -> None:
        self.set_sending(True)
        self.set_status(f"Creating the ticket on {connection}…", "busy")
        try:
            link = await self.client.create_ticket(int(self.anomaly["id"]), connection, fields)
        except ApiError as exc:
            self.set_sending(False)
            self.show_error(exc)
            return
        self.set_status(f"Created {link.get('ticket_key', '')}.")
        self.dismiss(link)

    def set_sending(self, sending: bool) -> None:
        self.sending = sending
        self.query_one("#submit", Button).disabled = sending
        self.refresh_bindings()

    def show_error(self, exc: ApiError) -> None:
        """Provider field errors go on their fields; everything else in the status line."""
        if self.form is not None:
            self.form.show_errors(exc.field_errors())
        self.set_status(exc.detail, "error")
