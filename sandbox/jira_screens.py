"""The Jira emulator's create screens: custom fields of every schema type, per project.

* ``DQ`` and ``TM``: the system fields, ``reporter`` among them; no custom field.
* ``FIN`` (Finance Data): every custom field type a Jira Cloud site offers — select, radio
  buttons, multi-select, checkboxes, cascading select, user picker, number (float), date picker,
  date-time, labels, text field and (rich) text area — with "Region" required.
* ``OPS`` (Operations): ``reporter`` is not on its screen (a create naming it is refused the way
  Jira refuses it); a radio button field with a default value and a text area.

A create is judged here independently of any client, by each field's schema, as Jira does: an
option by ``id`` or ``value`` (a cascading one with a ``child`` of that parent), a user by
``accountId``, a number, a ``yyyy-MM-dd`` date, a date-time, labels without spaces, ADF for a
text area; a required field left out is "<Name> is required."; a field not on the project's
screen "cannot be set". The values are kept on the issue and rendered as Jira renders them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from anomaly_desk.sandbox.jira_text import java_length

Json = dict[str, Any]
API = "/rest/api/3"
CUSTOM = "com.atlassian.jira.plugin.system.customfieldtypes:"
NOT_ON_SCREEN = "Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
NO_OPTION = "Could not find valid 'id' or 'value' in the Parent Option object."
NOT_AN_ARRAY = "data was not an array"
NOT_A_NUMBER = "Operation value must be a number"
NOT_A_STRING = "Operation value must be a string"
BY_ACCOUNT = "Specify the user by accountId"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Jira's date-time: yyyy-MM-dd'T'HH:mm[:ss[.SSS]]Z (an offset like +0000 or +01:00, or Z)
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True, slots=True)
class FieldOption:
    id: str
    value: str
    children: tuple[FieldOption, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomField:
    """A custom field: its id, name, type key (``select``, ``float``…) and options."""

    id: str
    name: str
    type_key: str
    options: tuple[FieldOption, ...] = ()
    default: str | None = None  # an option id

    @property
    def custom_id(self) -> int:
        return int(self.id.removeprefix("customfield_"))

    @property
    def schema(self) -> Json:
        kind, items = SCHEMAS[self.type_key]
        schema: Json = {"type": kind}
        if items:
            schema["items"] = items
        schema["custom"] = CUSTOM + self.type_key
        schema["customId"] = self.custom_id
        return schema

    def option(self, ref: Json, among: tuple[FieldOption, ...] | None = None) -> FieldOption | str:
        """The option ``{"id"}`` or ``{"value"}`` names, or Jira's complaint."""
        choices = self.options if among is None else among
        if "id" in ref and ref["id"] is not None:
            found = next((o for o in choices if o.id == str(ref["id"])), None)
            return found or f"Option id '{ref['id']}' is not valid"
        if isinstance(ref.get("value"), str):
            found = next((o for o in choices if o.value == ref["value"]), None)
            return found or f"Option value '{ref['value']}' is not valid"
        return NO_OPTION


# type key → (schema type, items)
SCHEMAS: dict[str, tuple[str, str | None]] = {
    "select": ("option", None),
    "radiobuttons": ("option", None),
    "multiselect": ("array", "option"),
    "multicheckboxes": ("array", "option"),
    "cascadingselect": ("option-with-child", None),
    "userpicker": ("user", None),
    "float": ("number", None),
    "datepicker": ("date", None),
    "datetime": ("datetime", None),
    "labels": ("array", "string"),
    "textfield": ("string", None),
    "textarea": ("string", None),
}

REGION = CustomField(
    "customfield_10050",
    "Region",
    "select",
    (FieldOption("10100", "EMEA"), FieldOption("10101", "APAC"), FieldOption("10102", "AMER")),
)
SEVERITY = CustomField(
    "customfield_10051",
    "Severity",
    "radiobuttons",
    (FieldOption("10110", "S1"), FieldOption("10111", "S2"), FieldOption("10112", "S3")),
    default="10112",
)
SYSTEMS = CustomField(
    "customfield_10052",
    "Affected systems",
    "multiselect",
    (
        FieldOption("10120", "Warehouse"),
        FieldOption("10121", "Billing"),
        FieldOption("10122", "CRM"),
    ),
)
CHECKS = CustomField(
    "customfield_10053",
    "Check kinds",
    "multicheckboxes",
    (FieldOption("10130", "Freshness"), FieldOption("10131", "Volume")),
)
TEAM = CustomField(
    "customfield_10054",
    "Owning team",
    "cascadingselect",
    (
        FieldOption(
            "10140",
            "Data",
            (FieldOption("10141", "Platform"), FieldOption("10142", "Analytics")),
        ),
        FieldOption(
            "10143",
            "Finance",
            (FieldOption("10144", "Controlling"), FieldOption("10145", "Treasury")),
        ),
    ),
)
STEWARD = CustomField("customfield_10055", "Data steward", "userpicker")
LOSS = CustomField("customfield_10056", "Estimated loss", "float")
DUE = CustomField("customfield_10057", "Fix by", "datepicker")
DETECTED = CustomField("customfield_10058", "Detected at", "datetime")
TAGS = CustomField("customfield_10059", "Finance tags", "labels")
REFERENCE = CustomField("customfield_10060", "Ledger reference", "textfield")
ROOT_CAUSE = CustomField("customfield_10061", "Root cause", "textarea")
CUSTOM_FIELDS = (
    REGION,
    SEVERITY,
    SYSTEMS,
    CHECKS,
    TEAM,
    STEWARD,
    LOSS,
    DUE,
    DETECTED,
    TAGS,
    REFERENCE,
    ROOT_CAUSE,
)


@dataclass(frozen=True, slots=True)
class Screen:
    """A project's create screen (the same for each of its issue types)."""

    reporter: bool = True
    custom: tuple[CustomField, ...] = ()
    required: frozenset[str] = frozenset()  # custom field ids

    def field(self, fid: str) -> CustomField | None:
        return next((f for f in self.custom if f.id == fid), None)


SCREENS = {
    "FIN": Screen(custom=CUSTOM_FIELDS, required=frozenset({REGION.id})),
    "OPS": Screen(reporter=False, custom=(SEVERITY, ROOT_CAUSE)),
}
DEFAULT_SCREEN = Screen()


def screen_of(project_key: str) -> Screen:
    return SCREENS.get(project_key, DEFAULT_SCREEN)


# -- createmeta ----------------------------------------------------------------------------


def option_json(option: FieldOption, base: str, with_children: bool = True) -> Json:
    bean: Json = {
        "self": f"{base}{API}/customFieldOption/{option.id}",
        "value": option.value,
        "id": option.id,
    }
    if with_children and option.children:
        bean["children"] = [option_json(c, base) for c in option.children]
    return bean


def custom_meta_json(field: CustomField, required: bool, base: str) -> Json:
    """A custom field as createmeta describes it."""
    many = SCHEMAS[field.type_key][0] == "array"
    bean: Json = {
        "required": required,
        "schema": field.schema,
        "name": field.name,
        "key": field.id,
        "fieldId": field.id,
        "hasDefaultValue": field.default is not None,
        "operations": ["add", "set", "remove"] if many else ["set"],
    }
    if field.options:
        bean["allowedValues"] = [option_json(o, base) for o in field.options]
    if field.default is not None:
        chosen = next(o for o in field.options if o.id == field.default)
        bean["defaultValue"] = option_json(chosen, base)
    if field.type_key == "userpicker":
        bean["autoCompleteUrl"] = f"{base}{API}/user/search?query="
    if field.type_key == "labels":
        bean["autoCompleteUrl"] = (
            f"{base}/rest/api/1.0/labels/suggest?customFieldId={field.custom_id}&query="
        )
    return bean


# -- judging a create ------------------------------------------------------------------------

FindUser = Callable[[str], Any]  # an accountId → the site's User, or None
RichTextProblem = Callable[[object], str | None]  # an ADF value → Jira's complaint, or None


def judge(
    screen: Screen,
    fields: Json,
    errors: dict[str, str],
    find_user: FindUser,
    rich_text_problem: RichTextProblem,
) -> dict[str, Any]:
    """The stored values of the screen's custom fields in ``fields`` (defaults applied);
    complaints go to ``errors`` by field id."""
    values: dict[str, Any] = {}
    for field in screen.custom:
        raw = fields.get(field.id)
        if raw is None and field.default is not None and field.id not in fields:
            values[field.id] = field.default
            continue
        if raw is None or raw == [] or raw == "":
            if field.id in screen.required:
                errors[field.id] = f"{field.name} is required."
            continue
        stored = _value(field, raw, find_user, rich_text_problem)
        if isinstance(stored, Problem):
            errors[field.id] = stored.text
        else:
            values[field.id] = stored
    return values


@dataclass(frozen=True, slots=True)
class Problem:
    text: str


def _value(
    field: CustomField, raw: Any, find_user: FindUser, rich_text_problem: RichTextProblem
) -> Any:
    kind, items = SCHEMAS[field.type_key]
    if kind == "option":
        return _one_option(field, raw)
    if kind == "array" and items == "option":
        if not isinstance(raw, list):
            return Problem(NOT_AN_ARRAY)
        chosen = [_one_option(field, item) for item in raw]
        problem = next((c for c in chosen if isinstance(c, Problem)), None)
        return problem or list(dict.fromkeys(chosen))
    if kind == "option-with-child":
        return _cascading(field, raw)
    if kind == "user":
        if not isinstance(raw, dict) or not raw.get("accountId"):
            return Problem(BY_ACCOUNT)
        user = find_user(str(raw["accountId"]))
        if user is None or not user.active:
            return Problem(f"Specify a valid value for {field.name}")
        return user
    if kind == "number":
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return Problem(NOT_A_NUMBER)
        return float(raw)
    if kind == "date":
        return _date(raw)
    if kind == "datetime":
        return _datetime(raw)
    if kind == "array" and items == "string":
        return _labels(raw)
    if field.type_key == "textarea":
        complaint = rich_text_problem(raw)
        return Problem(complaint) if complaint else raw
    if not isinstance(raw, str):
        return Problem(NOT_A_STRING)
    if java_length(raw) > 255:
        return Problem(f"{field.name}: you can only enter 255 characters.")
    return raw


def _one_option(field: CustomField, raw: Any) -> str | Problem:
    if not isinstance(raw, dict):
        return Problem(NO_OPTION)
    found = field.option(raw)
    return Problem(found) if isinstance(found, str) else found.id


def _cascading(field: CustomField, raw: Any) -> list[str | None] | Problem:
    if not isinstance(raw, dict):
        return Problem(NO_OPTION)
    parent = field.option(raw)
    if isinstance(parent, str):
        return Problem(parent)
    child_ref = raw.get("child")
    if child_ref is None:
        return [parent.id, None]
    if not isinstance(child_ref, dict):
        return Problem(NO_OPTION)
    child = field.option(child_ref, parent.children)
    if isinstance(child, str):
        return Problem(f"{child} for parent option '{parent.value}'")
    return [parent.id, child.id]


def _date(raw: Any) -> str | Problem:
    if isinstance(raw, str) and _DATE.match(raw):
        try:
            date.fromisoformat(raw)
        except ValueError:
            pass
        else:
            return raw
    return Problem(f"Error parsing date string: {raw}")


def _datetime(raw: Any) -> datetime | Problem:
    if isinstance(raw, str) and _DATETIME.match(raw):
        text = raw.replace("Z", "+00:00")
        if re.search(r"[+-]\d{4}$", text):
            text = text[:-2] + ":" + text[-2:]
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:
            pass
    return Problem(f"Error parsing date string: {raw}")


def _labels(raw: Any) -> list[str] | Problem:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        return Problem("Specify the labels as an array of strings")
    for label in raw:
        if not label or any(ch.isspace() for ch in label):
            return Problem(f"The label '{label}' contains spaces which is invalid.")
        if java_length(label) > 255:
            return Problem("The label must not exceed 255 characters.")
    return list(dict.fromkeys(raw))


# -- rendering an issue's values -----------------------------------------------------------


def custom_values_json(
    project_key: str,
    values: dict[str, Any],
    base: str,
    user_json: Callable[[Any, str], Json],
    jira_time: Callable[[datetime], str],
) -> Json:
    """The issue's custom fields as Jira renders them (null when unset)."""
    rendered: Json = {}
    for field in screen_of(project_key).custom:
        value = values.get(field.id)
        rendered[field.id] = (
            None if value is None else _render(field, value, base, user_json, jira_time)
        )
    return rendered


def _render(
    field: CustomField,
    value: Any,
    base: str,
    user_json: Callable[[Any, str], Json],
    jira_time: Callable[[datetime], str],
) -> Any:
    kind, items = SCHEMAS[field.type_key]
    by_id = {o.id: o for o in field.options}
    if kind == "option":
        return option_json(by_id[value], base, with_children=False)
    if kind == "array" and items == "option":
        return [option_json(by_id[v], base, with_children=False) for v in value]
    if kind == "option-with-child":
        parent = by_id[value[0]]
        bean = option_json(parent, base, with_children=False)
        if value[1] is not None:
            child = next(c for c in parent.children if c.id == value[1])
            bean["child"] = option_json(child, base, with_children=False)
        return bean
    if kind == "user":
        return user_json(value, base)
    if kind == "datetime":
        return jira_time(value)
    return value
