"""Form fields with a label, validation and an error line: one widget per kind of field the
providers describe (``FieldKind``), choices with an "Other…" escape."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import JsonValue
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.validation import Function, Length, Validator
from textual.widgets import Input, Label, Select, SelectionList, Static, TextArea

from anomaly_desk.core.views import FieldChoice, OptionView

OTHER = "\x00other"  # the Select value of the "Other…" entry: never a provider value
Options = dict[str, list[OptionView]]  # a connection's drop-down values by field name
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Kind = Literal[
    "text",
    "area",
    "choice",
    "derived",
    "number",
    "date",
    "datetime",
    "labels",
    "multi",
    "cascading",
    "user",
]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One form field: ``name`` is the provider's field name, the key sent to the API."""

    name: str
    label: str
    kind: Kind
    required: bool = False
    max_length: int = 0
    placeholder: str = ""
    wide: bool = False  # spans both columns of the form grid
    choices: tuple[FieldChoice, ...] = ()  # option, multi-option and cascading fields


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
        # a provider's field name is text, never markup ("[@click=app.quit]" stays as written)
        yield Label(Text(f"{self.spec.label}{star}"), classes="field-label")
        yield from self.compose_control()
        yield Static("", classes="field-error")

    def compose_control(self) -> ComposeResult:
        raise NotImplementedError

    @property
    def value(self) -> JsonValue:
        """What the API is sent; empty ("" or []) is not sent."""
        raise NotImplementedError

    @property
    def filled(self) -> bool:
        value = self.value
        return not (value is None or value == "" or value == [])

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

    def validators(self) -> list[Validator]:
        """Beyond required and length: what the kind of value asks for."""
        return []

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
        validators += self.validators()
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
    def value(self) -> JsonValue:
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
    def value(self) -> JsonValue:
        return self.query_one(TextArea).text.strip()

    def check(self) -> bool:
        if self.spec.required and not self.filled:
            self.set_error(f"{self.spec.label} is required")
            return False
        return self.error is None

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
        # (label, value); a spec's choices are known at once, else they come by set_options
        self.options: list[tuple[str, str]] = [(c.label, c.value) for c in spec.choices]

    def compose_control(self) -> ComposeResult:
        if self.options:
            yield Select(
                self._select_options(self.options), prompt="— not set —", id=self.spec.name
            )
        else:
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

    def on_mount(self) -> None:
        if self.spec.choices and self.default:
            self.choose(self.default)  # by value or label; else typed into "Other…"

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
        elif current == self.default:
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


class DerivedField(FormField):
    """A value the form works out from other fields and shows read-only; never sent (the
    provider derives it the same way). ``show`` sets what it says."""

    def compose_control(self) -> ComposeResult:
        yield Input(placeholder=self.spec.placeholder, id=self.spec.name, disabled=True)

    @property
    def value(self) -> str:
        return ""

    @property
    def shown(self) -> str:
        return self.query_one(Input).value

    def show(self, text: str) -> None:
        self.query_one(Input).value = text

    def focus_control(self) -> None:
        """Nothing to type here; the fields it comes from take the focus instead."""


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return bool(_DATE.match(text))


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class NumberField(TextField):
    """A number; sent as a JSON number (an integer when it is one)."""

    def validators(self) -> list[Validator]:
        return [Function(lambda v: not v.strip() or _number(v) is not None, "Not a number")]

    @property
    def value(self) -> JsonValue:
        text = self.input.value.strip()
        number = _number(text)
        return text if number is None else number


def _number(text: str) -> int | float | None:
    try:
        number = float(text.strip().replace("_", ""))
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


class DateField(TextField):
    """A day, ``YYYY-MM-DD``."""

    def validators(self) -> list[Validator]:
        return [Function(lambda v: not v.strip() or _is_date(v.strip()), "Not a date: YYYY-MM-DD")]


class DateTimeField(TextField):
    """A moment, ISO 8601 (``2026-12-01T09:30``; without an offset it is UTC)."""

    def validators(self) -> list[Validator]:
        return [
            Function(
                lambda v: not v.strip() or _is_datetime(v.strip()),
                "Not a date and time: YYYY-MM-DDTHH:MM",
            )
        ]


class LabelsField(TextField):
    """Free words, comma-separated; a label cannot hold a space, so spaces become dashes."""

    @property
    def value(self) -> JsonValue:
        words = ["-".join(part.split()) for part in self.input.value.split(",")]
        return list(dict.fromkeys(word for word in words if word))


class MultiOptionField(FormField):
    """Several of the provider's choices, ticked in a list (space or click)."""

    DEFAULT_CSS = """
    MultiOptionField > SelectionList { height: auto; max-height: 6; }
    """

    def compose_control(self) -> ComposeResult:
        chosen = set(self.default.split(",")) if self.default else set()
        yield SelectionList[str](
            *[(Text(c.label), c.value, c.value in chosen) for c in self.spec.choices],
            id=self.spec.name,
        )

    @property
    def value(self) -> JsonValue:
        return list(self.query_one(SelectionList).selected)

    @on(SelectionList.SelectedChanged)
    def _changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        event.stop()
        self.set_error(None)
        self.post_message(self.Changed(self))

    def check(self) -> bool:
        if self.spec.required and not self.filled:
            self.set_error(f"{self.spec.label}: tick at least one")
            return False
        return self.error is None

    def focus_control(self) -> None:
        self.query_one(SelectionList).focus()


class CascadingField(FormField):
    """A parent choice and one of its children: two drop-downs, the second follows the first.
    Sent as ``[parent, child]`` (option ids)."""

    DEFAULT_CSS = """
    CascadingField > Horizontal { height: auto; }
    CascadingField Select { width: 1fr; }
    """

    def compose_control(self) -> ComposeResult:
        parents = [(Text(c.label), c.value) for c in self.spec.choices]
        with Horizontal():
            yield Select(parents, prompt="— not set —", id=self.spec.name)
            yield Select([], prompt="— choose the first —", id=f"{self.spec.name}-child")

    @property
    def upper(self) -> Select[str]:
        return self.query_one(f"#{self.spec.name}", Select)

    @property
    def lower(self) -> Select[str]:
        return self.query_one(f"#{self.spec.name}-child", Select)

    def children_of(self, parent: object) -> list[FieldChoice]:
        found = next((c for c in self.spec.choices if c.value == parent), None)
        return found.children if found is not None else []

    @property
    def value(self) -> JsonValue:
        top, bottom = self.upper.value, self.lower.value
        if top == Select.NULL:
            return ""
        return [str(top)] if bottom == Select.NULL else [str(top), str(bottom)]

    @on(Select.Changed)
    def _changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select is self.upper:
            children = self.children_of(event.value)
            with self.prevent(Select.Changed):
                self.lower.set_options([(Text(c.label), c.value) for c in children])
                self.lower.prompt = "— not set —" if children else "— none —"
        self.set_error(None)
        self.post_message(self.Changed(self))

    def check(self) -> bool:
        if not self.spec.required:
            return self.error is None
        value = self.value
        if not value:
            self.set_error(f"{self.spec.label} is required")
            return False
        if isinstance(value, list) and len(value) < 2 and self.children_of(value[0]):
            self.set_error(f"{self.spec.label}: choose the second level too")
            return False
        return self.error is None

    def focus_control(self) -> None:
        if self.upper.value != Select.NULL and self.lower.value == Select.NULL:
            self.lower.focus()
        else:
            self.upper.focus()


FIELD_TYPES: dict[str, type[FormField]] = {
    "text": TextField,
    "area": AreaField,
    "choice": ChoiceField,
    "derived": DerivedField,
    "number": NumberField,
    "date": DateField,
    "datetime": DateTimeField,
    "labels": LabelsField,
    "multi": MultiOptionField,
    "cascading": CascadingField,
}


# -- the provider forms ---------------------------------------------------------------------------
