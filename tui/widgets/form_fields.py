"""Form fields with a label, validation and an error line; choices with an "Other…" escape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.validation import Function, Length, Validator
from textual.widgets import Input, Label, Select, Static, TextArea

from anomaly_desk.core.views import OptionView

OTHER = "\x00other"  # the Select value of the "Other…" entry: never a provider value
Options = dict[str, list[OptionView]]  # a connection's drop-down values by field name


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One form field: ``name`` is the provider's field name, the key sent to the API."""

    name: str
    label: str
    kind: Literal["text", "area", "choice", "derived"]
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


FIELD_TYPES: dict[str, type[FormField]] = {
    "text": TextField,
    "area": AreaField,
    "choice": ChoiceField,
    "derived": DerivedField,
}


# -- the provider forms ---------------------------------------------------------------------------
