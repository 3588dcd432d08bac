"""The create form a provider describes for one ticket type (issue #15): Jira createmeta,
ServiceNow's dictionary, read through ``GET /api/connections/{name}/form`` as field specs, one
widget per kind of value, required fields first, the ticket type picked above it."""

from __future__ import annotations

from dataclasses import replace

from pydantic import JsonValue
from textual import on
from textual.app import ComposeResult
from textual.widget import Widget

from anomaly_desk.core.views import (
    AnomalyDetail,
    ConnectionView,
    CreateFormView,
    FieldChoice,
    TicketFieldSpec,
    TicketTypeView,
)
from anomaly_desk.core.vocabulary import FieldKind
from anomaly_desk.tui.screens.ticket_forms import (
    SUMMARY_LIMITS,
    TicketForm,
    default_summary,
    priority_label,
)
from anomaly_desk.tui.widgets.form_fields import (
    FIELD_TYPES,
    ChoiceField,
    DerivedField,
    FieldSpec,
    FormField,
    Kind,
    Options,
)
from anomaly_desk.tui.widgets.user_field import Searcher, UserField

TYPE_FIELDS = {"jira": ("issuetype", "Issue type"), "servicenow": ("table", "Ticket type")}
TITLE_FIELDS = {"summary", "short_description"}  # prefilled with the anomaly's one line
# what the desk fills itself or the type picker above the form stands for
NOT_ON_FORM = {"project", "issuetype", "table", "reporter"}
SIMPLE_KINDS: dict[FieldKind, Kind] = {
    FieldKind.TEXT: "text",
    FieldKind.TEXTAREA: "area",
    FieldKind.NUMBER: "number",
    FieldKind.DATE: "date",
    FieldKind.DATETIME: "datetime",
    FieldKind.LABELS: "labels",
    FieldKind.USER: "user",
}
PLACEHOLDERS: dict[Kind, str] = {
    "date": "YYYY-MM-DD",
    "datetime": "YYYY-MM-DDTHH:MM (UTC unless an offset is given)",
    "labels": "comma-separated: pipeline, finance",
    "number": "a number",
}
WIDE_KINDS = {"area", "labels", "multi", "cascading"}


def default_text(value: JsonValue) -> str:
    """A provider's default as the form shows it (a list: comma-separated)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def form_specs(
    form: CreateFormView, options: Options, kind: str
) -> list[tuple[TicketFieldSpec, FieldSpec]]:
    """The form's fields as the dashboard shows them: required ones first (in the provider's
    order), then the rest; a field with values to choose from as a drop-down, even when only
    ``/options`` has them (ServiceNow groups)."""
    ids = {f.id for f in form.fields}
    # the instance works the priority out from impact and urgency (an incident); a form that
    # requires it (rm_defect) wants it chosen
    required = {f.id for f in form.fields if f.required}
    derived = (
        kind == "servicenow"
        and {"impact", "urgency", "priority"} <= ids
        and "priority" not in required
    )
    shown: list[tuple[TicketFieldSpec, FieldSpec]] = []
    for spec in form.fields:
        if spec.id in NOT_ON_FORM:
            continue
        choices = tuple(spec.choices) or tuple(
            FieldChoice(value=o.value, label=o.label) for o in options.get(spec.id, [])
        )
        wanted: Kind
        if derived and spec.id == "priority":
            wanted = "derived"  # the instance derives it from impact and urgency
        elif spec.kind in SIMPLE_KINDS:
            wanted = SIMPLE_KINDS[spec.kind]
        elif spec.kind == FieldKind.MULTI_OPTION:
            wanted = "multi" if choices else "labels"
        elif spec.kind == FieldKind.CASCADING:
            wanted = "cascading" if choices else "text"
        elif kind == "servicenow" and spec.id == "subcategory":
            wanted = "choice"  # its values follow the category
            choices = ()
        else:  # option, reference
            wanted = "choice" if choices or spec.kind == FieldKind.OPTION else "text"
        limit = spec.max_length or (SUMMARY_LIMITS[kind] if spec.id in TITLE_FIELDS else 0)
        label = f"{spec.name} (impact × urgency)" if wanted == "derived" else spec.name
        placeholder = (
            "Optional; the anomaly details are added below it"
            if spec.id == "description"
            else PLACEHOLDERS.get(wanted, "")
        )
        shown.append(
            (
                spec,
                FieldSpec(
                    spec.id,
                    label,
                    wanted,
                    # the desk refuses a ticket without its title, whatever the form says
                    required=(spec.required or spec.id in TITLE_FIELDS) and wanted != "derived",
                    max_length=limit if wanted in ("text", "area") else 0,
                    placeholder=placeholder,
                    wide=wanted in WIDE_KINDS or spec.id in TITLE_FIELDS,
                    choices=choices,
                ),
            )
        )
    shown.sort(key=lambda pair: not pair[1].required)  # stable: the provider's order kept
    if derived:  # the priority right after what it is worked out from
        ids_shown = [spec.id for spec, _ in shown]
        priority = shown.pop(ids_shown.index("priority"))
        shown.insert([spec.id for spec, _ in shown].index("urgency") + 1, priority)
    return fill_rows(shown)


def fill_rows(
    shown: list[tuple[TicketFieldSpec, FieldSpec]],
) -> list[tuple[TicketFieldSpec, FieldSpec]]:
    """A half-width field alone on its row (a wide one or the end follows) takes the whole row:
    the grid cannot put a wide field beside it."""
    filled: list[tuple[TicketFieldSpec, FieldSpec]] = []
    left = True  # the next field starts a row
    for index, (spec, field) in enumerate(shown):
        following = shown[index + 1][1] if index + 1 < len(shown) else None
        if not field.wide and left and (following is None or following.wide):
            field = replace(field, wide=True)
        filled.append((spec, field))
        left = field.wide or not left
    return filled


class SpecForm(TicketForm):
    """A ticket type's create form as the provider describes it (``GET …/form``): one widget
    per field kind, required fields first. ServiceNow's habits stay (priority shown as impact ×
    urgency give it, subcategories following the category) when the form has those fields."""

    def __init__(
        self,
        connection: ConnectionView,
        anomaly: AnomalyDetail,
        form: CreateFormView,
        options: Options,
        search: Searcher,
        kept: dict[str, str] | None = None,
    ) -> None:
        super().__init__(connection, anomaly)
        self.spec_view = form
        self.options = options
        self.search = search
        self.kept = kept or {}  # what was typed before the type changed
        self.shown = form_specs(form, options, connection.provider)

    def defaults(self) -> dict[str, str]:
        values = {spec.id: default_text(spec.default) for spec, _ in self.shown}
        for spec, shown in self.shown:
            if spec.id in TITLE_FIELDS and not values[spec.id]:
                values[spec.id] = default_summary(self.anomaly, shown.max_length or 255)
        return {**values, **{k: v for k, v in self.kept.items() if k in values}}

    def compose(self) -> ComposeResult:
        defaults = self.defaults()
        for _, spec in self.shown:
            default = defaults.get(spec.name, "")
            if spec.kind == "user":
                yield UserField(spec, self.search, default)
            else:
                yield FIELD_TYPES[spec.kind](spec, default)

    def on_mount(self) -> None:
        self._subcategory_choices()
        self.show_priority()

    def _subcategory_choices(self) -> None:
        found = self.query("#field-subcategory")
        if self.connection.provider != "servicenow" or not found:
            return
        field = found.first()
        if not isinstance(field, ChoiceField):
            return
        choices = self.subcategories()
        field.set_options(choices, prompt="— not set —" if choices else "— choose a category —")

    def subcategories(self) -> list[tuple[str, str]]:
        """ServiceNow's subcategories of the chosen category: the category's children in the
        form, else the drop-down values read for it."""
        category = self.field("category")
        chosen = category.value if category is not None else ""
        spec = next((s for s, _ in self.shown if s.id == "category"), None)
        parent = next((c for c in spec.choices if c.value == chosen), None) if spec else None
        if parent is not None and parent.children:
            return [(c.label, c.value) for c in parent.children]
        return [(o.label, o.value) for o in self.options.get(f"subcategory:{chosen}", [])]

    def show_priority(self) -> None:
        """The priority the instance will give the ticket, when the form shows it derived."""
        shown = self.query("#field-priority")
        impact, urgency = self.field("impact"), self.field("urgency")
        if not shown or impact is None or urgency is None:
            return
        derived = shown.first()
        if isinstance(derived, DerivedField):
            derived.show(priority_label(str(impact.value), str(urgency.value), self.options))

    @on(FormField.Changed, "#field-impact, #field-urgency")
    def _level_changed(self) -> None:
        self.show_priority()

    @on(FormField.Changed, "#field-category")
    def _category_changed(self) -> None:
        self._subcategory_choices()

    def kept_values(self) -> dict[str, str]:
        """Text typed in the form, to keep when another type's form replaces this one."""
        return {
            f.spec.name: str(f.value)
            for f in self.query(FormField)
            if f.spec.kind in ("text", "area") and isinstance(f.value, str) and f.value
        }


class TypeRow(Widget):
    """Above the form: the ticket type (a change reads that type's form) and, for Jira, the
    connection's project, read-only."""

    DEFAULT_CSS = """
    TypeRow {
        layout: grid;
        grid-size: 2;
        grid-columns: 1fr 1fr;
        grid-rows: auto;
        grid-gutter: 0 2;
        height: auto;
    }
    """

    def __init__(
        self, connection: ConnectionView, types: list[TicketTypeView], current: TicketTypeView
    ) -> None:
        super().__init__(id="type-row")
        self.connection = connection
        self.types = types if any(t.id == current.id for t in types) else [current, *types]
        self.current = current

    def compose(self) -> ComposeResult:
        name, label = TYPE_FIELDS[self.connection.provider]
        choices = tuple(FieldChoice(value=t.id, label=t.name) for t in self.types)
        yield ChoiceField(FieldSpec(name, label, "choice", required=True, choices=choices))
        if self.connection.provider == "jira":
            # the connection's ``project``: the types and the form are that project's, so it
            # is shown, never typed (and not sent: the receiver creates in it)
            yield DerivedField(FieldSpec("project", "Project (the connection's)", "derived"))

    def on_mount(self) -> None:
        self.query_one(ChoiceField).choose(self.current.id)
        found = self.query("#field-project")
        if found and isinstance(shown := found.first(), DerivedField):
            shown.show(self.connection.project or "")

    @property
    def picker(self) -> ChoiceField:
        return self.query_one(ChoiceField)
