"""Ticket and note texts as sandboxed Jinja2 templates, per connection and per rule.

A ``TemplateSet`` is configuration: each template is compiled when the config is loaded, so a
syntax error is a config error naming the template and its line. Rendering is strict (an
undefined name is an error, so ``anomaly-desk check`` can report a typo); at runtime a template
that fails falls back to the default text, with one warning per template.

Templates see read-only copies of the anomaly and the platform (never a pydantic model or a
connection: no method, no secret) in Jinja's immutable sandbox, with a budget per render
(``template_sandbox``): no value over ``MAX_OUTPUT`` characters, ``MAX_STEPS`` loop iterations
and calls, ``MAX_WORK`` characters handled; the output stops at ``MAX_OUTPUT`` characters. A
value the anomaly or the note does not have is ``Missing``: it prints as nothing, ``|default``
replaces it. The result is plain text: the provider clients put it in ADF text nodes or plain
fields.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Literal

from jinja2 import Template, TemplateError, TemplateSyntaxError
from pydantic import BaseModel, ConfigDict, field_validator

from anomaly_desk.core.models import Anomaly, FailedCheck, Ref
from anomaly_desk.core.providers.base import TicketText
from anomaly_desk.core.template_sandbox import (
    MAX_OUTPUT,
    OWNERS,
    TemplateView,
    TextSandbox,
    missing,
    render_budget,
)

log = logging.getLogger(__name__)

TemplateField = Literal["title", "description", "status_note", "comment_note", "archive_note"]
TEMPLATE_FIELDS: tuple[TemplateField, ...] = (
    "title",
    "description",
    "status_note",
    "comment_note",
    "archive_note",
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # plain text keeps \t and \n only


_ENV = TextSandbox()


@functools.lru_cache(maxsize=256)
def compiled(source: str) -> Template:
    """A template compiled once per source text."""
    return _ENV.from_string(source)


class TemplateSet(BaseModel):
    """Templates for the texts Anomaly Desk writes; a field left out keeps the default text.

    ``title``: the ticket's summary / short description; ``description``: the ticket's
    description block; ``status_note`` / ``comment_note`` / ``archive_note``: the notes sent to a
    linked ticket when the anomaly's status changes, someone comments, or it is archived
    (``archive_note`` unset: ``status_note``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    FIELDS: ClassVar[tuple[TemplateField, ...]] = TEMPLATE_FIELDS

    title: str | None = None
    description: str | None = None
    status_note: str | None = None
    comment_note: str | None = None
    archive_note: str | None = None

    @field_validator(*TEMPLATE_FIELDS)
    @classmethod
    def _compiles(cls, source: str | None) -> str | None:
        """Compile now: a syntax error, an unknown filter or test is a config error."""
        if source is None:
            return None
        try:
            compiled(source)
        except TemplateSyntaxError as exc:
            raise ValueError(f"line {exc.lineno}: {exc.message or 'syntax error'}") from None
        return source

    def defined(self) -> dict[TemplateField, str]:
        """The templates that are set, by field name."""
        return {f: s for f in TEMPLATE_FIELDS if (s := getattr(self, f)) is not None}


# -- what a template sees ------------------------------------------------------------------------


class TextList(tuple[str, ...]):
    """A list of names that prints as ``a, b`` (``{{ anomaly.global_tags }}``)."""

    __slots__ = ()

    def __str__(self) -> str:
        return ", ".join(self)


@dataclass(frozen=True, slots=True, repr=False)
class RefVars(TemplateView):
    """A datastore or container; prints as its name. Absent: both None, false in ``{% if %}``."""

    id: int | str | None = None
    name: str | None = None

    def __str__(self) -> str:
        return self.name or ("" if self.id is None else str(self.id))

    def __bool__(self) -> bool:
        return self.id is not None or self.name is not None


@dataclass(frozen=True, slots=True, repr=False)
class CheckVars(TemplateView):
    """One failed check; prints as its message."""

    check_id: int | str | None
    rule_type: str | None
    fields: TextList
    message: str | None

    def __str__(self) -> str:
        return self.message or ""


@dataclass(frozen=True, slots=True, repr=False)
class AnomalyVars(TemplateView):
    """The anomaly as templates see it: values only."""

    id: int
    uuid: str | None
    type: str
    status: str
    weight: int | float | None
    datastore: RefVars
    container: RefVars
    location: str  # the datastore, then the container
    fields: TextList
    message: str | None
    description: str | None
    failed_checks: tuple[CheckVars, ...]
    global_tags: TextList
    anomalous_records_count: int | None
    fingerprint: int | str | None
    created: datetime | None
    url: str | None  # the deep link to the platform

    def __str__(self) -> str:
        return f"anomaly {self.id}"


@dataclass(frozen=True, slots=True, repr=False)
class NamedVars(TemplateView):
    """A platform (name, url), a rule (name) or a ticket (key as name, url)."""

    name: str | None = None
    url: str | None = None

    def __str__(self) -> str:
        return self.name or ""

    def __bool__(self) -> bool:
        return self.name is not None


def _cap(text: str | None) -> str | None:
    """A template sees at most ``MAX_OUTPUT`` characters of a text (no output holds more)."""
    return None if text is None else text[:MAX_OUTPUT]


def _ref(ref: Ref | None) -> RefVars:
    return RefVars() if ref is None else RefVars(ref.id, _cap(ref.name))


def _check(check: FailedCheck) -> CheckVars:
    return CheckVars(check.check_id, check.rule_type, TextList(check.fields), _cap(check.message))


def anomaly_vars(anomaly: Anomaly, platform_url: str | None = None) -> AnomalyVars:
    return AnomalyVars(
        id=anomaly.id,
        uuid=anomaly.uuid,
        type=anomaly.type,
        status=str(anomaly.status),
        weight=anomaly.weight,
        datastore=_ref(anomaly.datastore),
        container=_ref(anomaly.container),
        location=_cap(anomaly.location) or "",
        fields=TextList(anomaly.fields),
        message=_cap(anomaly.message),
        description=_cap(anomaly.description),
        failed_checks=tuple(_check(c) for c in anomaly.failed_checks),
        global_tags=TextList(anomaly.global_tags),
        anomalous_records_count=anomaly.anomalous_records_count,
        fingerprint=anomaly.fingerprint,
        created=anomaly.created,
        url=anomaly.link(platform_url),
    )


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What a template sees besides the anomaly: who, where and when."""

    platform: str = "Qualytics"  # the platform's name
    platform_url: str | None = None
    rule: str | None = None  # the rule that acted, when one did
    operator: str | None = None  # who did it, when a person did
    connection: str | None = None  # the connection the text goes to
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class NoteVars:
    """A note's own values: ``status`` / ``comment`` (the one that changed), ``author`` (who, when
    notes name people), ``at`` (when), ``source`` (who speaks: the platform or a ticket key),
    ``ticket`` the key of the ticket it goes to."""

    at: datetime
    status: str | None = None
    comment: str | None = None
    author: str | None = None
    source: str | None = None
    ticket: str | None = None
    ticket_url: str | None = None


def variables(
    anomaly: Anomaly, context: TemplateContext, note: NoteVars | None = None
) -> dict[str, object]:
    """The names a template can use (documented in the README's "Templates")."""
    values: dict[str, object] = {
        "anomaly": anomaly_vars(anomaly, context.platform_url),
        "platform": NamedVars(context.platform, context.platform_url),
        "rule": NamedVars(context.rule),
        "operator": context.operator,
        "connection": context.connection,
        "now": context.now,
    }
    if note is not None:
        values.update(
            status=note.status,
            comment=_cap(note.comment),
            author=note.author,
            at=note.at,
            source=note.source or context.platform,
            ticket=NamedVars(note.ticket, note.ticket_url),
        )
    # an empty value prints as nothing and |default replaces it (None would print "None")
    return {name: missing(name) if value is None else value for name, value in values.items()}


# -- rendering -----------------------------------------------------------------------------------


def render(source: str, values: dict[str, object]) -> str:
    """Render strictly (errors raise ``TemplateError``) within a fresh budget; the text stops at
    ``MAX_OUTPUT``."""
    chunks: list[str] = []
    size = 0
    with render_budget():
        stream: Iterator[str] = compiled(source).generate(values)
        try:
            for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size >= MAX_OUTPUT:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    text = _CONTROL.sub("", "".join(chunks)[:MAX_OUTPUT])
    return text.strip()


def template_line(exc: BaseException) -> int | None:
    """The template line a runtime error happened on (Jinja rewrites the traceback for it)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def try_render(source: str, values: dict[str, object]) -> tuple[str | None, str | None]:
    """``(text, None)`` or ``(None, error)``; every failure of a template is caught here."""
    try:
        return render(source, values), None
    except (
        TemplateError,
        ArithmeticError,
        TypeError,
        ValueError,
        LookupError,
        RecursionError,
        AttributeError,
        MemoryError,  # a size the guards did not foresee: this template's text, not the desk
    ) as exc:
        line = getattr(exc, "lineno", None) or template_line(exc)
        where = f"line {line}: " if line else ""
        message = exc.message if isinstance(exc, TemplateError) else f"{type(exc).__name__}: {exc}"
        return None, f"{where}{_OBJECT.sub(_plain, message or type(exc).__name__)}"


# Jinja names a value by its class ("'anomaly_desk.core.templates.RefVars object' has no
# attribute 'nmae'"); people know it by what it is.
_OBJECT = re.compile(r"'?anomaly_desk\.core\.templates\.(\w+) object'?")
_KNOWN = OWNERS


def _plain(match: re.Match[str]) -> str:
    return _KNOWN.get(match[1], match[1])


_warned: set[tuple[str, str]] = set()


def _render_or_default(
    name: str, source: str, values: dict[str, object], default: str | None
) -> str | None:
    """At runtime: the rendered text, or the default with one warning per template."""
    text, error = try_render(source, values)
    if error is None:
        return text if text else default  # an empty text: the default, not an empty ticket
    if (name, source) not in _warned:
        _warned.add((name, source))
        log.warning("template %s failed (%s); the default text is used", name, error)
    return default


def pick(templates: Sequence[TemplateSet | None], name: TemplateField) -> str | None:
    """The first set's template for ``name`` (a rule's, then the connection's)."""
    for template_set in templates:
        source = None if template_set is None else getattr(template_set, name)
        if source is not None:
            return str(source)
    return None


def default_title(anomaly: Anomaly, platform: str) -> str:
    """The title a failed title template falls back to, as a ticket without any summary gets
    it: ``Qualytics anomaly 10231: customer_id is null in 1,204 records``."""
    what = anomaly.message or anomaly.description or anomaly.location or anomaly.type
    return " ".join(f"{platform} anomaly {anomaly.id}: {what}".split())


def render_ticket_text(
    templates: Sequence[TemplateSet | None], anomaly: Anomaly, context: TemplateContext
) -> TicketText:
    """A ticket's title and description from the first set defining each (a rule's, then the
    connection's). A field no set defines is None (the form's value, the anomaly block); a
    template that fails gives the default: ``default_title`` (a create never fails for want of a
    title), the anomaly block for the description."""
    values = variables(anomaly, context)
    title = pick(templates, "title")
    description = pick(templates, "description")
    return TicketText(
        title=None
        if title is None
        else _render_or_default("title", title, values, default_title(anomaly, context.platform)),
        description=None
        if description is None
        else _render_or_default("description", description, values, None),
    )


def render_note(
    templates: Sequence[TemplateSet | None],
    name: TemplateField,
    anomaly: Anomaly,
    context: TemplateContext,
    note: NoteVars,
    default: str,
) -> str:
    """A note's text: its template rendered once, when the job is created (the job keeps the
    text: a retry matches and compares what was rendered then), else ``default``."""
    source = pick(templates, name)
    if source is None and name == "archive_note":
        source = pick(templates, "status_note")
    if source is None:
        return default
    return _render_or_default(name, source, variables(anomaly, context, note), default) or default
