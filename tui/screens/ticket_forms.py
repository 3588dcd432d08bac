"""The basic create forms: the seed fields of a Jira issue and a ServiceNow incident, typed as
free text where a drop-down has no values. They stand in when the provider's form cannot be read
(``GET /api/connections/{name}/form``), and hold what both forms share: the prefilled summary and
ServiceNow's priority worked out from impact and urgency."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.widget import Widget

from anomaly_desk.core.providers.servicenow import LEVEL_WORDS, PRIORITY_MATRIX
from anomaly_desk.core.views import AnomalyDetail, ConnectionView
from anomaly_desk.tui.screens.dialog import ref_name
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


def priority_label(impact: str, urgency: str, options: Options) -> str:
    """The derived priority in the instance's own words when it said them ("" until both
    levels are set)."""
    priority = derived_priority(impact, urgency)
    if priority is None:
        return ""
    labels = {o.value: o.label for o in options.get("priority", [])}
    return labels.get(priority) or f"{priority} - {PRIORITY_NAMES[priority]}"


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
        shown.show(priority_label(str(impact.value), str(urgency.value), self.options))

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
