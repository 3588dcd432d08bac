"""Jira create forms: createmeta fields → form specs, and the form's values → Jira's values.

Jira describes every field of an issue type's create screen by its ``schema`` (``type``,
``items``, ``custom``): that schema, not the field's name, says what the create request must
carry (an option ``{"id"}``, a list of them, a cascading ``{"id", "child"}``, an ``accountId``,
a number, a ``YYYY-MM-DD`` date, an ADF document for a custom text area…). A value that cannot
be one of those is refused here with the field's name, before anything is sent; whether an
option or a person exists is Jira's to judge.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pydantic import JsonValue

from anomaly_desk.core.formatting.adf import (
    JIRA_TEXT_LIMIT,
    adf_json,
    text_to_adf,
    truncate_doc,
    truncate_text,
)
from anomaly_desk.core.formatting.clean import clean_text
from anomaly_desk.core.providers.payloads import JiraAllowedOption, JiraFieldMeta
from anomaly_desk.core.views import FieldChoice, TicketFieldSpec
from anomaly_desk.core.vocabulary import FieldKind

CUSTOM = "com.atlassian.jira.plugin.system.customfieldtypes:"
TEXT_FIELD_LIMIT = 255  # a custom single-line text field, as Jira counts it
SUMMARY_LIMIT = 255
# Fields the desk fills itself: the project and issue type come from the connection and the
# chosen type, the reporter from the operator's email (``reporter_settable`` tells the form).
DESK_FIELDS = frozenset({"project", "issuetype", "reporter"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FieldValueError(ValueError):
    """A form value that cannot be what the field's schema asks for (``field`` is its id)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldShape:
    """One createmeta field as the client converts values for it."""

    spec: TicketFieldSpec
    many: bool = False  # an array: several options, labels or people

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True, slots=True)
class JiraForm:
    """An issue type's create screen: its fields by id and whether ``reporter`` is on it."""

    shapes: dict[str, FieldShape]
    reporter_settable: bool

    def visible(self) -> list[TicketFieldSpec]:
        """The fields the operator fills: required custom fields first, then the system
        fields in Jira's order, then the optional custom ones; the desk's own left out."""
        specs = [s.spec for s in self.shapes.values() if s.id not in DESK_FIELDS]

        def rank(spec: TicketFieldSpec) -> int:
            if spec.custom:
                return 0 if spec.required else 2
            return 1

        return sorted(specs, key=rank)


def _label(value: JiraAllowedOption) -> str:
    return str(value.get("value") or value.get("name") or value.get("id") or "")


def _choice(value: JiraAllowedOption) -> FieldChoice | None:
    ident = value.get("id")
    if ident is None:
        return None
    children = [c for c in (_choice(child) for child in value.get("children") or []) if c]
    return FieldChoice(value=str(ident), label=_label(value), children=children)


def _kind(meta: JiraFieldMeta) -> tuple[FieldKind, bool]:
    """The form kind of a field, and whether it holds several values."""
    schema = meta.get("schema") or {}
    kind = str(schema.get("type") or "string")
    items = str(schema.get("items") or "")
    custom = str(schema.get("custom") or "")
    system = str(schema.get("system") or "")
    if kind == "array":
        if items == "string":
            return FieldKind.LABELS, True
        if items == "user":
            return FieldKind.USER, True
        return FieldKind.MULTI_OPTION, True
    if kind == "option-with-child":
        return FieldKind.CASCADING, False
    if kind == "user":
        return FieldKind.USER, False
    if kind == "number":
        return FieldKind.NUMBER, False
    if kind == "date":
        return FieldKind.DATE, False
    if kind == "datetime":
        return FieldKind.DATETIME, False
    if kind == "string":
        textarea = custom == CUSTOM + "textarea" or system in ("description", "environment")
        return (FieldKind.TEXTAREA if textarea else FieldKind.TEXT), False
    if meta.get("allowedValues") is not None:  # option, priority, resolution, version…
        return FieldKind.OPTION, False
    return FieldKind.TEXT, False


def _default(meta: JiraFieldMeta) -> JsonValue:
    if not meta.get("hasDefaultValue"):
        return None
    value = meta.get("defaultValue")
    if isinstance(value, dict):
        ident = value.get("id") or value.get("accountId")
        return str(ident) if ident is not None else None
    if isinstance(value, list):
        return [str(v.get("id") or v.get("accountId")) if isinstance(v, dict) else v for v in value]
    return value


def field_shape(meta: JiraFieldMeta) -> FieldShape | None:
    """A createmeta field as a form field; None for a field without an id."""
    fid = str(meta.get("fieldId") or meta.get("key") or "")
    if not fid:
        return None
    kind, many = _kind(meta)
    choices = [c for c in (_choice(v) for v in meta.get("allowedValues") or []) if c]
    schema = meta.get("schema") or {}
    limit = {"summary": SUMMARY_LIMIT}.get(fid)
    if limit is None and kind == FieldKind.TEXTAREA:
        limit = JIRA_TEXT_LIMIT
    elif limit is None and kind == FieldKind.TEXT and schema.get("custom"):
        limit = TEXT_FIELD_LIMIT
    spec = TicketFieldSpec(
        id=fid,
        name=str(meta.get("name") or fid),
        kind=kind,
        # the desk always writes a description (the anomaly block)
        required=bool(meta.get("required")) and fid != "description",
        custom=bool(schema.get("custom")) or fid.startswith("customfield_"),
        choices=choices if kind in _CHOICE_KINDS else [],
        default=_default(meta),
        max_length=limit,
    )
    return FieldShape(spec, many)


_CHOICE_KINDS = (FieldKind.OPTION, FieldKind.MULTI_OPTION, FieldKind.CASCADING)


def jira_form(metas: list[JiraFieldMeta]) -> JiraForm:
    shapes = {s.id: s for s in (field_shape(m) for m in metas) if s is not None}
    return JiraForm(shapes, reporter_settable="reporter" in shapes)


# -- values ------------------------------------------------------------------------------------


def _empty(value: JsonValue) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _items(shape: FieldShape, value: JsonValue) -> list[JsonValue]:
    """Several values: a list as given, a JSON list, or a comma-separated string."""
    if isinstance(value, list):
        return [v for v in value if not _empty(v)]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return _items(shape, parsed)
        return [part.strip() for part in text.split(",") if part.strip()]
    return [value]


def _find(choices: list[FieldChoice], wanted: str) -> FieldChoice | None:
    """A choice by its id, else by its label (case-insensitive)."""
    exact = next((c for c in choices if c.value == wanted), None)
    if exact is not None:
        return exact
    folded = wanted.casefold()
    return next((c for c in choices if c.label.casefold() == folded), None)


def option_value(shape: FieldShape, value: JsonValue) -> JsonValue:
    """``{"id"}`` for a known option (by id or label), ``{"value"}`` for a label Jira will judge."""
    if isinstance(value, dict):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldValueError(shape.id, f"{shape.spec.name}: choose one of its options")
    wanted = str(value).strip()
    found = _find(shape.spec.choices, wanted)
    if found is not None:
        return {"id": found.value}
    if shape.id == "priority" or not shape.spec.custom:
        return {"id": wanted} if wanted.isdigit() else {"name": wanted}
    return {"id": wanted} if wanted.isdigit() and not shape.spec.choices else {"value": wanted}


def cascading_value(shape: FieldShape, value: JsonValue) -> JsonValue:
    """``{"id": parent, "child": {"id": child}}`` from ``"Parent/Child"``, ``[parent, child]``
    or a JSON object (given as is)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            raise FieldValueError(shape.id, f"{shape.spec.name}: not a JSON object") from None
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        parts = [part.strip() for part in value.split("/", 1)]
    elif isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        parts = [str(v).strip() for v in value]
    else:
        parts = []
    parts = [part for part in parts if part]
    if not 1 <= len(parts) <= 2:
        problem = f"{shape.spec.name}: give a parent option and a child, as 'Parent/Child'"
        raise FieldValueError(shape.id, problem)
    parent = _find(shape.spec.choices, parts[0])
    result: dict[str, JsonValue] = {"id": parent.value} if parent else {"value": parts[0]}
    if len(parts) == 2:
        child = _find(parent.children, parts[1]) if parent else None
        result["child"] = {"id": child.value} if child else {"value": parts[1]}
    return result


def number_value(shape: FieldShape, value: JsonValue) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value.strip().isascii() and "_" not in value:
        try:  # ASCII only: float() takes full-width digits and "1_0", which nobody means
            number = float(value.strip())
        except ValueError:
            number = math.nan
    else:
        number = math.nan
    if not math.isfinite(number):
        raise FieldValueError(shape.id, f"{shape.spec.name}: {value!r} is not a number")
    return number


def date_value(shape: FieldShape, value: JsonValue) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    try:
        if not _DATE.match(text):
            raise ValueError(text)
        date.fromisoformat(text)
    except ValueError:
        problem = f"{shape.spec.name}: {value!r} is not a date (YYYY-MM-DD)"
        raise FieldValueError(shape.id, problem) from None
    return text


def datetime_value(shape: FieldShape, value: JsonValue) -> str:
    """Jira's ``2024-01-15T10:30:00.000+0000``; a time without an offset is UTC."""
    text = str(value).strip() if isinstance(value, str) else ""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        when = None
    if when is None:
        problem = f"{shape.spec.name}: {value!r} is not a date and time (ISO 8601)"
        raise FieldValueError(shape.id, problem)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when.astimezone(UTC)  # Jira stores the instant: 9999-12-31T23:59-05:00 has none
    except OverflowError:
        problem = f"{shape.spec.name}: {value!r} has no UTC instant (it falls outside years 1-9999)"
        raise FieldValueError(shape.id, problem) from None
    # %Y is not zero-padded for years before 1000 on every platform
    stamp = f"{when.year:04d}-" + when.strftime("%m-%dT%H:%M:%S.")
    return stamp + f"{when.microsecond // 1000:03d}" + when.strftime("%z")


def label_values(shape: FieldShape, value: JsonValue) -> list[JsonValue]:
    """Words without spaces (Jira refuses a label with one: they become dashes) nor control
    characters."""
    labels: list[JsonValue] = []
    for item in _items(shape, value):
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise FieldValueError(shape.id, f"{shape.spec.name}: labels are words")
        label = "-".join(clean_text(str(item)).split())
        if label and label not in labels:
            labels.append(truncate_text(label, 255))
    return labels


def textarea_value(value: JsonValue) -> JsonValue:
    """An ADF document from plain text (a document given as such goes as is), cut to fit."""
    if isinstance(value, dict):
        return value
    return adf_json(truncate_doc(text_to_adf(str(value))))


def convert(shape: FieldShape, value: JsonValue) -> JsonValue:
    """The value Jira's create takes for this field, from what the form sent."""
    kind = shape.spec.kind
    if kind == FieldKind.OPTION:
        return option_value(shape, value)
    if kind == FieldKind.MULTI_OPTION:
        return [option_value(shape, item) for item in _items(shape, value)]
    if kind == FieldKind.CASCADING:
        return cascading_value(shape, value)
    if kind == FieldKind.NUMBER:
        return number_value(shape, value)
    if kind == FieldKind.DATE:
        return date_value(shape, value)
    if kind == FieldKind.DATETIME:
        return datetime_value(shape, value)
    if kind == FieldKind.LABELS:
        return label_values(shape, value)
    if kind == FieldKind.TEXTAREA:
        return textarea_value(value)
    if kind == FieldKind.TEXT and isinstance(value, str):
        limit = shape.spec.max_length
        return truncate_text(" ".join(value.split()), limit) if limit else value
    return value


def is_empty(value: JsonValue) -> bool:
    """A value the form left blank: the field is not sent (Jira then says if it is required)."""
    return _empty(value) or (isinstance(value, str) and not value.strip())
