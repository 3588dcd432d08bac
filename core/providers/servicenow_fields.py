"""A ServiceNow create form from the instance's own dictionary.

``sys_dictionary`` rows (the table's, then its parents' up to ``task``: a child's row wins) give
each column's label, type, mandatory flag, length and reference; ``sys_choice`` the values of
choice columns (a table's own choices win over ``task``'s), with the parent value each one of a
dependent column belongs under (``dependent_value``; the parent column from the dictionary's
``dependent_on_field``). The same labels map a data policy's refusal ("The following fields are
mandatory: Cause notes") back to field ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anomaly_desk.core.providers.payloads import ServiceNowRow
from anomaly_desk.core.views import FieldChoice, TicketFieldSpec
from anomaly_desk.core.vocabulary import FieldKind

DICTIONARY_FIELDS = (
    "name,element,column_label,internal_type,mandatory,max_length,reference,choice,"
    "default_value,read_only,active,dependent_on_field,dependent"
)
CHOICE_READ_FIELDS = "name,element,value,label,sequence,inactive,dependent_value"
# a dependent column whose dictionary row does not name its parent (older instances)
KNOWN_PARENTS = {"subcategory": "category"}
# set by the desk or the instance, or meaningless on a create: never offered on the form
NOT_ON_FORM = frozenset(
    {
        "number",
        "state",
        "active",
        "correlation_id",
        "correlation_display",
        "work_notes",
        "comments",
        "opened_by",
        "opened_at",
        "closed_at",
        "closed_by",
        "resolved_at",
        "resolved_by",
        "close_code",
        "close_notes",
        "approval",
        "escalation",
        "upon_approval",
        "upon_reject",
    }
)
TEXT_TYPES = {"string", "translated_text", "email", "url", "phone_number_e164"}
AREA_TYPES = {"journal_input", "journal", "html", "translated_html", "multi_two_lines"}
NUMBER_TYPES = {"integer", "decimal", "float", "longint", "numeric", "currency", "price"}
LONG_TEXT = 256  # a string column this long is a text area on the form
CHOICE_LISTS = {"1", "3"}  # sys_dictionary.choice: dropdown with / without -- None --
BOOLEAN_CHOICES = [
    FieldChoice(value="true", label="true"),
    FieldChoice(value="false", label="false"),
]


@dataclass(frozen=True, slots=True)
class TableForm:
    """A table's form with what the client needs besides it."""

    table: str
    label: str
    fields: list[TicketFieldSpec]
    columns: frozenset[str]  # every active column, on the form or not
    labels: dict[str, str]  # column label (casefolded) -> column
    types: dict[str, str] = field(default_factory=dict)  # column -> internal_type
    parents: dict[str, str] = field(default_factory=dict)  # dependent column -> its parent
    # dependent column -> its value -> the parent values it is offered under
    under: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)

    def spec(self, element: str) -> TicketFieldSpec | None:
        return next((f for f in self.fields if f.id == element), None)

    def max_length(self, element: str) -> int | None:
        found = self.spec(element)
        return found.max_length if found else None


def merge_dictionary(rows: list[ServiceNowRow], chain: list[str]) -> list[ServiceNowRow]:
    """One row per column, the most specific table's (``chain``: the table first)."""
    rank = {name: index for index, name in enumerate(chain)}
    best: dict[str, ServiceNowRow] = {}
    for row in rows:
        element = row.get("element", "")
        if not element or row.get("active", "true") == "false":
            continue  # the collection row (the table itself), or a retired column
        held = best.get(element)
        if held is None or rank.get(row.get("name", ""), 99) < rank.get(held.get("name", ""), 99):
            best[element] = row
    return list(best.values())


def build_form(
    table: str,
    label: str,
    rows: list[ServiceNowRow],
    choices: list[ServiceNowRow],
    chain: list[str],
) -> TableForm:
    """The form's fields, required first, from merged dictionary rows and their choices."""
    columns = merge_dictionary(rows, chain)
    by_element = _choices(choices, chain)
    specs: list[TicketFieldSpec] = []
    for row in columns:
        element = row.get("element", "")
        if element.startswith("sys_") or element in NOT_ON_FORM or _flag(row.get("read_only")):
            continue
        kind = field_kind(row)
        default = row.get("default_value", "")
        options = by_element.get(element, []) if kind == FieldKind.OPTION else []
        if kind == FieldKind.OPTION and row.get("internal_type") == "boolean":
            options = list(BOOLEAN_CHOICES)
        specs.append(
            TicketFieldSpec(
                id=element,
                name=row.get("column_label") or element,
                kind=kind,
                required=_flag(row.get("mandatory")) and not default,
                custom=element.startswith("u_"),
                choices=options,
                default=None if not default or default.startswith("javascript:") else default,
                max_length=_length(row.get("max_length")),
            )
        )
    specs.sort(key=lambda spec: not spec.required)
    labels = {
        (row.get("column_label") or "").casefold(): row.get("element", "")
        for row in columns
        if row.get("column_label")
    }
    under = _dependent_values(choices, chain)
    parents = {
        row.get("element", ""): parent
        for row in columns
        if (parent := _parent(row, under)) and row.get("element") in by_element
    }
    return TableForm(
        table=table,
        label=label,
        fields=specs,
        columns=frozenset(row.get("element", "") for row in columns),
        labels=labels,
        types={row.get("element", ""): row.get("internal_type", "") for row in columns},
        parents=parents,
        under={element: under.get(element, {}) for element in parents},
    )


def _parent(row: ServiceNowRow, under: dict[str, dict[str, frozenset[str]]]) -> str:
    """The column a dependent choice column hangs under ("" for none): the dictionary's
    ``dependent_on_field`` (or the older ``dependent``), else the base instance's pairing when
    its choices carry parent values."""
    element = row.get("element", "")
    named = (row.get("dependent_on_field") or row.get("dependent") or "").strip()
    if named:
        return named
    return KNOWN_PARENTS.get(element, "") if under.get(element) else ""


def _dependent_values(
    rows: list[ServiceNowRow], chain: list[str]
) -> dict[str, dict[str, frozenset[str]]]:
    """Per column, per active choice value, the parent values it is listed under (from the
    most specific table that lists the column's choices)."""
    owner = _owners(rows, chain)
    found: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        element, parent_value = row.get("element", ""), row.get("dependent_value", "")
        if row.get("inactive") == "true" or owner.get(element) != row.get("name"):
            continue
        if parent_value:
            found.setdefault(element, {}).setdefault(row.get("value", ""), set()).add(parent_value)
    return {
        element: {value: frozenset(parents) for value, parents in values.items()}
        for element, values in found.items()
    }


def field_kind(row: ServiceNowRow) -> FieldKind:
    """The form's kind for a dictionary column."""
    kind = row.get("internal_type", "string")
    if row.get("choice", "0") in CHOICE_LISTS or kind in ("choice", "boolean"):
        return FieldKind.OPTION
    if kind == "reference":
        return FieldKind.USER if row.get("reference") == "sys_user" else FieldKind.REFERENCE
    if kind in AREA_TYPES:
        return FieldKind.TEXTAREA
    if kind in NUMBER_TYPES:
        return FieldKind.NUMBER
    if kind == "glide_date":
        return FieldKind.DATE
    if kind == "glide_date_time":
        return FieldKind.DATETIME
    length = _length(row.get("max_length"))
    return FieldKind.TEXTAREA if length is not None and length >= LONG_TEXT else FieldKind.TEXT


def refused_fields(detail: str, labels: dict[str, str]) -> dict[str, str]:
    """``…The following fields are mandatory: Cause notes, Impact`` → their column ids (a label
    the dictionary does not know is kept as written, in snake case)."""
    _, _, listed = " ".join(detail.split()).partition("mandatory:")
    out: dict[str, str] = {}
    for label in listed.split(","):
        label = label.strip().rstrip(".")
        if label:
            element = labels.get(label.casefold()) or label.casefold().replace(" ", "_")
            out[element] = "mandatory"
    return out


def _choices(rows: list[ServiceNowRow], chain: list[str]) -> dict[str, list[FieldChoice]]:
    """Per column, the active choices of the most specific table that has any, in order."""
    owner = _owners(rows, chain)
    out: dict[str, list[FieldChoice]] = {}
    ordered = sorted(rows, key=lambda row: _length(row.get("sequence")) or 0)
    for row in ordered:
        element = row.get("element", "")
        if row.get("inactive") == "true" or owner.get(element) != row.get("name"):
            continue
        choice = FieldChoice(value=row.get("value", ""), label=row.get("label", ""))
        if choice not in out.setdefault(element, []):
            out[element].append(choice)
    return out


def _owners(rows: list[ServiceNowRow], chain: list[str]) -> dict[str, str]:
    """Per column, the most specific table of ``chain`` that lists active choices for it."""
    rank = {name: index for index, name in enumerate(chain)}
    owner: dict[str, str] = {}
    for row in rows:
        element, name = row.get("element", ""), row.get("name", "")
        if row.get("inactive") == "true" or not element:
            continue
        held = owner.get(element)
        if held is None or rank.get(name, 99) < rank.get(held, 99):
            owner[element] = name
    return owner


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


def _length(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
