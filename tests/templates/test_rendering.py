"""Rendering templates: the anomaly's fields, missing values, a hostile template, budgets."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import pytest

from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.templates import (
    MAX_OUTPUT,
    NoteVars,
    TemplateContext,
    TemplateSet,
    render_note,
    render_ticket_text,
    try_render,
    variables,
)
from tests.support import FIXTURES

CONTEXT = TemplateContext(
    platform="Qualytics",
    platform_url="https://acme.qualytics.io",
    rule="p1-to-jira",
    operator="ana@example.com",
    connection="jira",
    now=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
)


@pytest.fixture(scope="module")
def anomaly() -> Anomaly:
    path = FIXTURES / "webhooks" / "04-api-record-anomaly.json"
    return Anomaly.model_validate(json.loads(path.read_text(encoding="utf-8")))


def rendered(source: str, anomaly: Anomaly, note: NoteVars | None = None) -> str:
    text, error = try_render(source, variables(anomaly, CONTEXT, note))
    assert error is None, error
    assert text is not None
    return text


def refused(source: str, anomaly: Anomaly) -> str:
    text, error = try_render(source, variables(anomaly, CONTEXT))
    assert text is None, text
    assert error is not None
    return error


def test_the_anomaly_s_fields_and_the_context(anomaly: Anomaly) -> None:
    source = (
        "[{{ anomaly.type }}/{{ anomaly.status }}] {{ anomaly.datastore.name }}."
        "{{ anomaly.container.name }}: {{ anomaly.failed_checks[0].message }}"
        " | {{ anomaly.failed_checks[0].rule_type }} on {{ anomaly.fields }}"
        " | tags {{ anomaly.global_tags }} | weight {{ anomaly.weight }} | #{{ anomaly.id }}"
        " | {{ anomaly.created.strftime('%Y-%m-%d') }} | {{ anomaly.url }}"
        " | {{ platform.name }} {{ platform.url }} | {{ rule.name }} | {{ operator }}"
        " | {{ connection }} | {{ now.isoformat() }} | {{ anomaly.location }}"
    )
    assert rendered(source, anomaly) == (
        "[record/Active] crm_replica.accounts: 312 records fail satisfiesExpression"
        " | satisfiesExpression on country_code, region | tags crm, pii | weight 45 | #10260"
        " | 2026-11-20 | https://acme.qualytics.io/anomalies/10260"
        " | Qualytics https://acme.qualytics.io | p1-to-jira | ana@example.com"
        " | jira | 2026-12-01T09:30:00+00:00 | crm_replica › accounts"
    )
    # lists work as lists too, and a reference prints as its name
    assert rendered("{{ anomaly.global_tags|join(' #') }} {{ anomaly.container }}", anomaly) == (
        "crm #pii accounts"
    )
    assert rendered("{% for c in anomaly.failed_checks %}- {{ c }}{% endfor %}", anomaly) == (
        "- 312 records fail satisfiesExpression"
    )


def test_note_values(anomaly: Anomaly) -> None:
    note = NoteVars(
        at=datetime(2026, 12, 1, 9, 31, tzinfo=UTC),
        status="Acknowledged",
        comment="Rerun tonight",
        author="ana",
        ticket="DQ-7",
        ticket_url="https://acme.atlassian.net/browse/DQ-7",
    )
    source = "{{ status }} {{ comment }} {{ author }} {{ at.strftime('%H:%M') }} {{ source }} {{ ticket }}"
    assert rendered(source, anomaly, note) == "Acknowledged Rerun tonight ana 09:31 Qualytics DQ-7"


def test_missing_values_print_empty_and_test_false() -> None:
    bare = Anomaly(id=7)
    assert (
        rendered("<{{ anomaly.container.name }}|{{ anomaly.weight }}|{{ anomaly.created }}>", bare)
        == "<||>"
    )
    source = (
        "{{ anomaly.container.name or 'no container' }}{% if not anomaly.datastore %}!{% endif %}"
    )
    assert rendered(source, bare) == "no container!"
    source = "{{ anomaly.failed_checks[0].message if anomaly.failed_checks else 'no check' }}"
    assert rendered(source, bare) == ("no check")


def test_an_undefined_name_is_an_error_with_its_line(anomaly: Anomaly) -> None:
    assert refused("ok\n{{ anomaly.contianer }}", anomaly) == (
        "line 2: anomaly has no attribute 'contianer'"
    )
    assert refused("{{ anomaly.container.nmae }}", anomaly) == (
        "line 1: datastore/container has no attribute 'nmae'"
    )
    assert refused("{{ anomaly.failed_checks[3].message }}", Anomaly(id=7)).startswith("line 1: ")


def test_a_failing_template_falls_back_to_the_default_with_one_warning(
    anomaly: Anomaly, caplog: pytest.LogCaptureFixture
) -> None:
    templates = TemplateSet(
        title="{{ anomaly.failed_checks[0].message }} (fallback test)",
        description="{{ anomaly.message }}",
    )
    bare = Anomaly(id=8, message="thin")
    with caplog.at_level(logging.WARNING, logger="anomaly_desk.core.templates"):
        for _ in range(3):
            text = render_ticket_text([templates], bare, CONTEXT)
            assert text.title == "Qualytics anomaly 8: thin"  # as without any summary
            assert text.description == "thin"
    warnings = [r for r in caplog.records if "template title failed" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert render_ticket_text([templates], anomaly, CONTEXT).title == (
        "312 records fail satisfiesExpression (fallback test)"
    )


def test_a_rule_s_templates_come_before_the_connection_s(anomaly: Anomaly) -> None:
    rule = TemplateSet(title="rule: {{ anomaly.id }}")
    connection = TemplateSet(title="connection", description="from the connection")
    text = render_ticket_text([rule, None, connection], anomaly, CONTEXT)
    assert (text.title, text.description) == ("rule: 10260", "from the connection")
    assert render_ticket_text([None], anomaly, CONTEXT) == render_ticket_text([], anomaly, CONTEXT)
    assert render_ticket_text([], anomaly, CONTEXT).title is None


def test_notes_archive_falls_back_to_status_then_to_the_default(anomaly: Anomaly) -> None:
    note = NoteVars(at=datetime(2026, 12, 1, tzinfo=UTC), status="Resolved")
    only_status = TemplateSet(status_note="status {{ status }}")
    assert render_note([only_status], "archive_note", anomaly, CONTEXT, note, "dflt") == (
        "status Resolved"
    )
    both = TemplateSet(status_note="status", archive_note="archived as {{ status }}")
    assert render_note([both], "archive_note", anomaly, CONTEXT, note, "dflt") == (
        "archived as Resolved"
    )
    assert render_note([TemplateSet()], "comment_note", anomaly, CONTEXT, note, "dflt") == "dflt"
    empty = TemplateSet(status_note="{% if false %}x{% endif %}")
    assert render_note([empty], "status_note", anomaly, CONTEXT, note, "dflt") == "dflt"


@pytest.mark.parametrize(
    "source",
    [
        "{{ anomaly.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ anomaly.created.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ anomaly.fields.__class__.__base__.__subclasses__() }}",
        "{{ ''.format.__globals__ }}",
    ],
)
def test_the_sandbox_refuses_internals(anomaly: Anomaly, source: str) -> None:
    error = refused(source, anomaly)
    assert "unsafe" in error or "undefined" in error or "no attribute" in error, error


def test_no_secret_or_model_is_reachable(anomaly: Anomaly) -> None:
    """Templates see copies of values: no pydantic model, no connection, no token."""
    for source in (
        "{{ platform.token }}",
        "{{ anomaly.model_dump() }}",
        "{{ anomaly.odd }}",
        "{{ lipsum() }}",
    ):
        refused(source, anomaly)


def test_the_output_is_text_as_written(anomaly: Anomaly) -> None:
    """No escaping and no markup: the provider clients make ADF / plain fields of it; control
    characters other than tab and newline are dropped."""
    source = "*bold* {code} [link|http://x] <b>&amp;\x00\x07{{ '\x1b' }}\tend"
    assert rendered(source, anomaly) == "*bold* {code} [link|http://x] <b>&amp;\tend"


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ 'x' * 10**9 }}",
        "{{ ((10 ** 60) ** 60) ** 60 }}",
        "{{ 'x'|center(10**9) }}",
        "{{ 'x'|indent(10**9) }}",
        "{{ '%999999999s'|format(1) }}",
        "{{ '%*s' % (10**9, 1) }}",
        "{{ '%.2000000000d' % 1 }}",  # a precision, not a width
        "{{ '%(a)0999999999d' % {'a': 1} }}",  # after a mapping key
        "{{ '%.999999999d'|format(1) }}",
        "{{ '%.*d' % (10**9, 1) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s }}{% endmacro %}{{ d('x', 60) }}",
        "{% set l = [1] %}{% for i in range(60) %}{{ l.extend(l) }}{% endfor %}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    ],
)
def test_a_template_that_explodes_fails_fast(anomaly: Anomaly, source: str) -> None:
    started = time.perf_counter()
    refused(source, anomaly)
    assert time.perf_counter() - started < 2.0


def test_the_output_stops_at_the_cap(anomaly: Anomaly) -> None:
    started = time.perf_counter()
    text = rendered("{% for i in range(90000) %}{{ anomaly.message }}{% endfor %}", anomaly)
    assert len(text) == MAX_OUTPUT
    assert time.perf_counter() - started < 2.0
    # numbers as data are not sizes: a large id formats fine
    assert rendered("{{ '%08d'|format(anomaly.id * 1000) }}", anomaly) == "10260000"
