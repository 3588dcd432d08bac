"""A create's values checked against the table's dictionary before anything is written.

The Table API takes almost anything and stores what it can: a list as its ``str()``, "tomorrow"
in a date column as an empty date, an unknown choice as a value no list shows. So every value
is checked here first, by the column's dictionary type: text must be text, dates and times real
ones (ServiceNow's ``YYYY-MM-DD HH:MM:SS`` in UTC, or ISO 8601, converted), a choice one of the
column's active choices (its label is taken too), and a dependent choice (``subcategory``) one
listed under the parent value given with it. Every problem is collected and refused at once, by
field, so a bad form changes nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from pydantic import JsonValue

from anomaly_desk.core.providers.base import TicketFields
from anomaly_desk.core.providers.servicenow_fields import TableForm
from anomaly_desk.core.vocabulary import FieldKind

GLIDE_DATE_TIME = "%Y-%m-%d %H:%M:%S"  # how the Table API takes and gives a date-time (UTC)
GLIDE_DATE = "%Y-%m-%d"
LIST_TYPES = frozenset({"glide_list"})  # columns that hold several values, comma-separated
SHOWN_CHOICES = 25  # allowed values named in a refusal
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def checked_values(
    values: TicketFields, form: TableForm | None, text_fields: frozenset[str]
) -> tuple[TicketFields, dict[str, str]]:
    """The values with dates converted and choices as their values, and the refusals by field.

    ``text_fields`` are the columns taken as text whatever the dictionary says (what the desk
    writes itself). Without a form (the dictionary is not readable) only JSON types are
    checked: the instance judges the rest.
    """
    out: TicketFields = {}
    errors: dict[str, str] = {}
    for name, raw in values.items():
        try:
            out[name] = _checked(name, raw, form, text_fields)
        except ValueError as exc:
            errors[name] = str(exc)
    if form is not None:
        for child, parent in form.parents.items():
            if child in out and child not in errors and parent not in errors:
                problem = _dependency(child, parent, out, form)
                if problem:
                    errors[child] = problem
    return out, errors


def _checked(name: str, raw: JsonValue, form: TableForm | None, text: frozenset[str]) -> JsonValue:
    spec = form.spec(name) if form is not None else None
    internal = form.types.get(name, "") if form is not None else ""
    kind = spec.kind if spec is not None else None
    if name in text or kind in (FieldKind.TEXT, FieldKind.TEXTAREA):
        if internal in LIST_TYPES and isinstance(raw, list):
            return [_text(name, item) for item in raw]
        return _text(name, raw)
    if kind == FieldKind.DATETIME:
        return _date_time(name, raw)
    if kind == FieldKind.DATE:
        return _date(name, raw)
    if kind == FieldKind.NUMBER:
        return _number(name, raw)
    if kind == FieldKind.OPTION and spec is not None:
        if isinstance(raw, bool) and internal == "boolean":
            return "true" if raw else "false"
        value = _text(name, raw).strip()
        if not spec.choices:
            return value
        for choice in spec.choices:
            if value == choice.value:
                return value
        for choice in spec.choices:  # "2 - High", or "High" for it
            if value.casefold() in (choice.label.casefold(), _label_word(choice.label)):
                return choice.value
        raise ValueError(f"{value!r} is not a {spec.name} choice; allowed: {_allowed(form, name)}")
    if internal in LIST_TYPES and isinstance(raw, list):
        return [_text(name, item) for item in raw]
    if isinstance(raw, bool) and kind is None:  # a column the dictionary did not describe
        return "true" if raw else "false"
    if isinstance(raw, dict):  # a reference as {"value": sys_id}, as the Table API answers it
        held = raw.get("value")
        if isinstance(held, str) and set(raw) <= {"value", "display_value", "link"}:
            return held
    return _text(name, raw)


def _text(name: str, raw: JsonValue) -> str:
    """Text as sent, or a number as its digits; a list, object or true/false is not text."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    raise ValueError(f"{name} takes text, not {_json_kind(raw)}")


def _json_kind(raw: JsonValue) -> str:
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "an object"
    return "true/false" if isinstance(raw, bool) else "null"


def _date_time(name: str, raw: JsonValue) -> str:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) or ISO 8601 (an offset is converted to UTC, none is UTC);
    a date alone is its midnight."""
    if not isinstance(raw, str):
        raise ValueError(f"{name} takes a date and time as text (YYYY-MM-DD HH:MM:SS, UTC)")
    text = raw.strip()
    if not (_DATE_TIME.match(text) or _DATE.match(text)):
        raise ValueError(f"{name}: {text!r} is not a date and time (YYYY-MM-DD HH:MM:SS, UTC)")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a date that exists") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f"{name}: {text!r} is outside the dates ServiceNow holds") from None
    return moment.strftime(GLIDE_DATE_TIME)


def _date(name: str, raw: JsonValue) -> str:
    """``YYYY-MM-DD``."""
    if not isinstance(raw, str):
        raise ValueError(f"{name} takes a date as text (YYYY-MM-DD)")
    text = raw.strip()
    if not _DATE.match(text):
        raise ValueError(f"{name}: {text!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text).strftime(GLIDE_DATE)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a date that exists") from None


def _number(name: str, raw: JsonValue) -> str:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, str) and _NUMBER.match(raw.strip()):
        return raw.strip()
    raise ValueError(f"{name} takes a number, not {raw!r}")


def _dependency(child: str, parent: str, values: TicketFields, form: TableForm) -> str | None:
    """Why ``child``'s value does not go with ``parent``'s (None: it does). A value listed
    under no parent is free; one listed under some needs one of them given with it."""
    value = str(values[child])
    listed = form.under.get(child, {}).get(value)
    if not listed:
        return None
    spec, parent_spec = form.spec(child), form.spec(parent)
    child_name = spec.name if spec else child
    parent_name = parent_spec.name if parent_spec else parent
    under = ", ".join(sorted(listed))
    given = values.get(parent)
    if given is None or given == "":
        return f"{child_name} {value!r} depends on {parent_name} ({parent}): give one of {under}"
    if str(given) in listed:
        return None
    offered = sorted(v for v, parents in form.under.get(child, {}).items() if str(given) in parents)
    allowed = ", ".join(offered[:SHOWN_CHOICES]) or "none"
    return (
        f"{child_name} {value!r} is not offered under {parent_name} {given!r} (it is under"
        f" {under}); allowed there: {allowed}"
    )


def _label_word(label: str) -> str:
    """``"2 - High"`` → ``"high"``: the word of a numbered choice's label."""
    code, dash, word = label.partition(" - ")
    return word.strip().casefold() if dash and code.strip().isdigit() else label.casefold()


def _allowed(form: TableForm | None, name: str) -> str:
    spec = form.spec(name) if form is not None else None
    values = list(dict.fromkeys(choice.value for choice in spec.choices)) if spec else []
    more = f" and {len(values) - SHOWN_CHOICES} more" if len(values) > SHOWN_CHOICES else ""
    return ", ".join(values[:SHOWN_CHOICES]) + more
