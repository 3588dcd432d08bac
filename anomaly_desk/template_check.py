"""The templates part of ``anomaly-desk check``: every template rendered against a fixture.

Each connection's templates and each rule's (``[[rules]]`` ``action.templates``) are rendered against a real anomaly (``04-api-record-anomaly.json`` of the shipped
fixtures) with sample note values. An error there (an undefined name, a type error, a budget
exceeded) fails the check: at runtime the same template would fall back to the default text.
Each template is also rendered against a bare anomaly (an id, nothing else): what fails only
there is a warning, since such an anomaly gets the default text for that template.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from anomaly_desk.core.config import Settings
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.templates import (
    NoteVars,
    TemplateContext,
    TemplateField,
    TemplateSet,
    try_render,
    variables,
)
from anomaly_desk.demo_setup import default_fixtures

FIXTURE = "04-api-record-anomaly.json"
_NOTE_FIELDS: frozenset[TemplateField] = frozenset({"status_note", "comment_note", "archive_note"})


@dataclass(frozen=True, slots=True)
class TemplateResult:
    """One template's render: its first line, or the error (``line 2: …``)."""

    owner: str  # "connection jira" / "rule p1-to-jira"
    field: TemplateField
    text: str | None
    error: str | None
    bare_error: str | None  # rendered for an anomaly with an id only


def fixture_anomaly() -> Anomaly:
    """The anomaly templates are checked against (shipped with the package)."""
    path = default_fixtures() / FIXTURE
    return Anomaly.model_validate(json.loads(path.read_text(encoding="utf-8")))


def template_sets(settings: Settings) -> Iterator[tuple[str, TemplateSet, str | None, str | None]]:
    """``(owner, templates, connection, rule)`` for each connection and rule that has some."""
    for conn in settings.connections:
        if conn.templates is not None:
            yield f"connection {conn.name}", conn.templates, conn.name, None
    for rule in settings.rules:
        if rule.action.templates is not None:
            owner = f"rule {rule.name}"
            yield owner, rule.action.templates, rule.action.connection, rule.name


def check_templates(settings: Settings) -> list[TemplateResult]:
    anomaly = fixture_anomaly()
    bare = Anomaly(id=anomaly.id)
    now = datetime.now(UTC)
    results: list[TemplateResult] = []
    for owner, templates, connection, rule in template_sets(settings):
        context = TemplateContext(
            platform=settings.platform.name,
            platform_url=settings.platform.url,
            rule=rule,
            operator="ana@example.com",
            connection=connection,
            now=now,
        )
        for field, source in templates.defined().items():
            note = None
            if field in _NOTE_FIELDS:
                status = "Resolved" if field == "archive_note" else "Acknowledged"
                comment = "Rerun scheduled for tonight" if field == "comment_note" else None
                note = NoteVars(at=now, status=status, comment=comment, author="ana", ticket="DQ-1")
            text, error = try_render(source, variables(anomaly, context, note))
            _, bare_error = try_render(source, variables(bare, context, note))
            results.append(TemplateResult(owner, field, text, error, bare_error))
    return results


def print_templates(results: list[TemplateResult], out: TextIO) -> int:
    """One line per template; the number that failed."""
    if not results:
        return 0
    print(f"templates rendered against {FIXTURE}", file=out)
    owner_width = max(len(r.owner) for r in results)
    field_width = max(len(r.field) for r in results)
    for r in results:
        status = "ok" if r.error is None else "FAIL"
        shown = r.error if r.error is not None else _first_line(r.text or "")
        print(f"{status:<6}{r.owner:<{owner_width}}  {r.field:<{field_width}}  {shown}", file=out)
        if r.error is None and r.bare_error is not None:
            print(
                f"{'':<6}warning: an anomaly without these values gets the default text "
                f"({r.bare_error})",
                file=out,
            )
    failed = [r for r in results if r.error is not None]
    count = f"{len(results)} template{'s' if len(results) != 1 else ''}"
    print(f"{count}: {'all ok' if not failed else f'{len(failed)} failed'}", file=out)
    return len(failed)


def _first_line(text: str, width: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "(empty: the default text is used)"
    return line if len(line) <= width else line[: width - 1] + "…"
