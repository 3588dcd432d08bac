"""A value the anomaly or the note does not have prints as nothing, through filters too, and
``|default`` replaces it; ``{% if %}`` and ``is none`` still see it as missing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.templates import NoteVars, TemplateContext, try_render, variables

BARE = Anomaly(id=7)  # no description, weight, container, created…
CONTEXT = TemplateContext(now=datetime(2026, 12, 1, 9, 30, tzinfo=UTC))
NOTE = NoteVars(at=datetime(2026, 12, 1, 9, 31, tzinfo=UTC), status="Acknowledged")


def rendered(source: str) -> str:
    text, error = try_render(source, variables(BARE, CONTEXT, NOTE))
    assert error is None, error
    assert text is not None
    return text


@pytest.mark.parametrize(
    "expression",
    [
        "anomaly.description|upper",
        "anomaly.description|trim",
        "anomaly.description|title",
        "anomaly.description|string",
        "anomaly.description ~ ''",
        "'%s'|format(anomaly.description)",
        "anomaly.container.name|lower",
        "anomaly.weight|string",
        "comment|upper",  # a note's value: a status note has no comment
        "author|capitalize",
        "operator|trim",
    ],
)
def test_a_missing_value_through_a_filter_prints_as_nothing(expression: str) -> None:
    assert rendered(f"<{{{{ {expression} }}}}>") == "<>"


def test_default_replaces_a_missing_value() -> None:
    source = (
        "{{ anomaly.description|default('no description') }} / "
        "{{ anomaly.container.name|default('no container') }} / "
        "{{ anomaly.weight|default(0) }} / {{ comment|default('-') }} / "
        "{{ author|default('the platform') }} / {{ status|default('?') }}"
    )
    assert rendered(source) == (
        "no description / no container / 0 / - / the platform / Acknowledged"
    )


def test_if_or_and_is_none_still_see_a_missing_value() -> None:
    source = (
        "{% if anomaly.description %}has{% else %}none{% endif %} "
        "{{ anomaly.weight or 'unweighted' }} {{ anomaly.description is none }} "
        "{{ anomaly.created is none }} {{ anomaly.description is defined }}"
    )
    assert rendered(source) == "none unweighted True True False"


def test_a_value_that_is_there_is_unchanged() -> None:
    full = Anomaly(id=8, description="Nulls in id", weight=3)
    text, error = try_render(
        "{{ anomaly.description|upper }} {{ anomaly.weight|default(0) }}"
        " {{ anomaly.description is none }}",
        variables(full, CONTEXT),
    )
    assert (text, error) == ("NULLS IN ID 3 False", None)


def test_using_a_missing_value_as_an_object_is_an_error_naming_it() -> None:
    """``check`` warns about such a template (its bare-anomaly render), as before."""
    text, error = try_render("ok\n{{ anomaly.created.strftime('%Y') }}", variables(BARE, CONTEXT))
    assert text is None
    assert error == "line 2: 'created' of anomaly is empty here"
    _, error = try_render("{{ anomaly.weight + 1 }}", variables(BARE, CONTEXT))
    assert error is not None
    assert error.startswith("line 1: 'weight' of anomaly is empty here"), error


def test_a_typo_is_still_an_error() -> None:
    text, error = try_render("{{ anomaly.descripton|default('x') }}", variables(BARE, CONTEXT))
    # |default applies to an undefined name too (Jinja's rule), but printing it plain fails
    assert (text, error) == ("x", None)
    text, error = try_render("{{ anomaly.descripton }}", variables(BARE, CONTEXT))
    assert text is None
    assert error == "line 1: anomaly has no attribute 'descripton'"
