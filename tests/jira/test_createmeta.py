"""Create forms from Jira's createmeta, and every custom field type through a create.

Over loopback against the sandbox's Jira: project FIN has a custom field of every schema type
(Region required), OPS a radio field with a default; the sandbox judges the values itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.formatting.adf import TRUNCATION_MARKER, adf_to_text
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers import jira_forms
from anomaly_desk.core.providers.base import TicketText
from anomaly_desk.core.providers.errors import NotFoundError, ValidationError
from anomaly_desk.core.providers.jira import JiraClient
from anomaly_desk.core.vocabulary import FieldKind
from anomaly_desk.sandbox.adf import adf_errors
from anomaly_desk.sandbox.jira import JiraEmulator
from tests.jira.conftest import EMAIL, TOKEN, connection
from tests.support import ThreadedServer

DANA = "712020:8c1f4e2a-6b3d-4a5e-9f70-2d4c6b8a0e13"
REGION, SEVERITY, SYSTEMS, CHECKS, TEAM, STEWARD = (f"customfield_{n}" for n in range(10050, 10056))
LOSS, DUE, DETECTED, TAGS, LEDGER, ROOT_CAUSE = (f"customfield_{n}" for n in range(10056, 10062))


@pytest.fixture
async def fin(sandbox: ThreadedServer) -> AsyncIterator[JiraClient]:
    jira = JiraClient(connection(sandbox.url, project="FIN", issue_type="Bug"), Platform())
    yield jira
    await jira.aclose()


async def issue_fields(sandbox: ThreadedServer, key: str) -> dict[str, Any]:
    """The issue as the sandbox's Jira renders it."""
    async with httpx.AsyncClient(base_url=sandbox.url, auth=(EMAIL, TOKEN)) as http:
        answer = await http.get(f"/rest/api/3/issue/{key}")
    answer.raise_for_status()
    fields: dict[str, Any] = answer.json()["fields"]
    return fields


def every_field() -> dict[str, object]:
    """A value for each FIN custom field, the way the dashboard's form sends them."""
    return {
        REGION: "apac",  # a label, any case
        SEVERITY: "10110",  # an option id
        SYSTEMS: "Warehouse, CRM",
        CHECKS: ["Freshness", "Volume"],
        TEAM: "Finance/Treasury",
        STEWARD: "dana@example.com",
        LOSS: "1234.50",
        DUE: "2026-12-31",
        DETECTED: "2026-11-30T23:15:00+01:00",
        TAGS: "month end, ledger",
        LEDGER: "GL 4711",
        ROOT_CAUSE: "The nightly load ran twice.\n\nBoth runs wrote the same rows.",
    }


async def test_ticket_types_are_the_projects_issue_types(client: JiraClient) -> None:
    types = await client.ticket_types()
    assert [(t.id, t.name) for t in types] == [
        ("10001", "Task"),
        ("10002", "Bug"),
        ("10003", "Story"),
    ]


async def test_form_has_every_schema_kind_required_custom_fields_first(fin: JiraClient) -> None:
    form = await fin.create_form("Bug")
    assert form.connection == "jira"
    assert (form.ticket_type.id, form.ticket_type.name) == ("10002", "Bug")
    assert form.reporter_settable
    specs = {f.id: f for f in form.fields}
    assert form.fields[0].id == REGION
    assert form.fields[0].required
    assert form.fields[0].custom
    assert [c.label for c in specs[REGION].choices] == ["EMEA", "APAC", "AMER"]
    kinds = {fid: specs[fid].kind for fid in specs}
    assert kinds == {
        REGION: FieldKind.OPTION,
        SEVERITY: FieldKind.OPTION,
        SYSTEMS: FieldKind.MULTI_OPTION,
        CHECKS: FieldKind.MULTI_OPTION,
        TEAM: FieldKind.CASCADING,
        STEWARD: FieldKind.USER,
        LOSS: FieldKind.NUMBER,
        DUE: FieldKind.DATE,
        DETECTED: FieldKind.DATETIME,
        TAGS: FieldKind.LABELS,
        LEDGER: FieldKind.TEXT,
        ROOT_CAUSE: FieldKind.TEXTAREA,
        "summary": FieldKind.TEXT,
        "description": FieldKind.TEXTAREA,
        "priority": FieldKind.OPTION,
        "labels": FieldKind.LABELS,
        "assignee": FieldKind.USER,
    }
    # the desk fills these itself
    assert not {"project", "issuetype", "reporter"} & set(specs)
    assert specs["summary"].required
    assert specs["summary"].max_length == 255
    assert not specs["description"].required  # the anomaly block is always there
    team = specs[TEAM].choices
    assert [(c.label, [k.label for k in c.children]) for c in team] == [
        ("Data", ["Platform", "Analytics"]),
        ("Finance", ["Controlling", "Treasury"]),
    ]
    assert specs[SEVERITY].default == "10112"
    assert specs["priority"].default == "3"
    assert [s.required for s in form.fields].count(True) == 2  # Region and Summary
    # required custom first, system fields, then the optional custom ones
    ranks = [0 if s.custom and s.required else 1 if not s.custom else 2 for s in form.fields]
    assert ranks == sorted(ranks)


async def test_form_reads_every_page(
    sandbox: ThreadedServer, fin: JiraClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = await fin.create_form("10002")
    monkeypatch.setattr(jira_forms, "CREATEMETA_PAGE", 2)
    paged = JiraClient(connection(sandbox.url, project="FIN", issue_type="Bug"), Platform())
    try:
        assert await paged.create_form() == whole
        assert len(await paged.ticket_types()) == 3
    finally:
        await paged.aclose()


async def test_a_type_jira_does_not_have_is_not_found(fin: JiraClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await fin.create_form("Epic")
    assert "FIN has no issue type 'Epic'" in caught.value.message
    assert "Task, Bug, Story" in caught.value.message


async def test_ops_form_has_no_reporter(sandbox: ThreadedServer) -> None:
    ops = JiraClient(connection(sandbox.url, project="OPS"), Platform())
    try:
        form = await ops.create_form()
    finally:
        await ops.aclose()
    assert not form.reporter_settable
    assert [f.id for f in form.fields if f.custom] == [SEVERITY, ROOT_CAUSE]


async def test_every_custom_field_type_round_trips(
    sandbox: ThreadedServer, fin: JiraClient, anomaly: Anomaly
) -> None:
    ticket = await fin.create_ticket(anomaly, {"summary": "Ledger mismatch", **every_field()})
    assert ticket.key.startswith("FIN-")
    assert ticket.warnings == ()
    fields = await issue_fields(sandbox, ticket.key)
    assert fields[REGION]["value"] == "APAC"
    assert fields[SEVERITY]["value"] == "S1"
    assert [o["value"] for o in fields[SYSTEMS]] == ["Warehouse", "CRM"]
    assert [o["value"] for o in fields[CHECKS]] == ["Freshness", "Volume"]
    assert (fields[TEAM]["value"], fields[TEAM]["child"]["value"]) == ("Finance", "Treasury")
    assert fields[STEWARD]["accountId"] == DANA
    assert fields[LOSS] == 1234.5
    assert fields[DUE] == "2026-12-31"
    detected = datetime.strptime(fields[DETECTED], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert detected == datetime(2026, 11, 30, 22, 15, tzinfo=UTC)
    assert fields[TAGS] == ["month-end", "ledger"]
    assert fields[LEDGER] == "GL 4711"
    assert adf_errors(fields[ROOT_CAUSE]) == []
    assert adf_to_text(fields[ROOT_CAUSE]).strip().split("\n") == [
        "The nightly load ran twice.",
        "Both runs wrote the same rows.",
    ]


async def test_objects_and_ids_go_as_given(
    sandbox: ThreadedServer, fin: JiraClient, anomaly: Anomaly
) -> None:
    ticket = await fin.create_ticket(
        anomaly,
        {
            REGION: {"value": "EMEA"},
            TEAM: '{"id": "10140", "child": {"id": "10142"}}',
            STEWARD: DANA,
            LOSS: 7,
            SYSTEMS: ["10121"],
            DETECTED: "2026-11-30T08:00:00",  # no offset: UTC
        },
    )
    fields = await issue_fields(sandbox, ticket.key)
    assert fields[REGION]["id"] == "10100"
    assert (fields[TEAM]["value"], fields[TEAM]["child"]["value"]) == ("Data", "Analytics")
    assert fields[LOSS] == 7.0
    assert [o["value"] for o in fields[SYSTEMS]] == ["Billing"]
    assert fields[DETECTED] == "2026-11-30T08:00:00.000+0000"
    assert fields[SEVERITY]["value"] == "S3"  # left out: the field's default


async def test_a_missing_required_custom_field_is_jiras_400_on_that_field(
    fin: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    values = every_field()
    del values[REGION]
    with pytest.raises(ValidationError) as caught:
        await fin.create_ticket(anomaly, {**values, REGION: ""})  # left blank: not sent
    assert caught.value.status == 400
    assert caught.value.field_errors == {REGION: "Region is required."}
    assert emulator.issues == {}


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (LOSS, "a lot", "Estimated loss: 'a lot' is not a number"),
        (LOSS, "nan", "Estimated loss: 'nan' is not a number"),
        (DUE, "2026-02-30", "Fix by: '2026-02-30' is not a date (YYYY-MM-DD)"),
        (DUE, "31/12/2026", "Fix by: '31/12/2026' is not a date (YYYY-MM-DD)"),
        (DETECTED, "yesterday", "Detected at: 'yesterday' is not a date and time (ISO 8601)"),
        (TEAM, " / ", "Owning team: give a parent option and a child, as 'Parent/Child'"),
        (TEAM, "{not json", "Owning team: not a JSON object"),
        (TAGS, [["nested"]], "Finance tags: labels are words"),
    ],
)
async def test_a_value_of_the_wrong_kind_is_refused_before_sending(
    fin: JiraClient,
    emulator: JiraEmulator,
    anomaly: Anomaly,
    field: str,
    value: object,
    problem: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await fin.create_ticket(anomaly, {REGION: "EMEA", field: value})  # type: ignore[dict-item]
    assert caught.value.field_errors == {field: problem}
    assert caught.value.status is None  # refused here: nothing was sent
    assert emulator.issues == {}


async def test_an_option_jira_does_not_have_is_its_400(fin: JiraClient, anomaly: Anomaly) -> None:
    with pytest.raises(ValidationError) as caught:
        await fin.create_ticket(anomaly, {REGION: "Antarctica", TEAM: "Data/Treasury"})
    assert caught.value.field_errors == {
        REGION: "Option value 'Antarctica' is not valid",
        TEAM: "Option value 'Treasury' is not valid for parent option 'Data'",
    }


async def test_a_field_not_on_the_screen_is_refused_by_jira(
    client: JiraClient, anomaly: Anomaly
) -> None:
    with pytest.raises(ValidationError) as caught:
        await client.create_ticket(anomaly, {REGION: "EMEA"})  # DQ has no custom fields
    assert caught.value.field_errors == {
        REGION: f"Field '{REGION}' cannot be set. It is not on the appropriate screen, or unknown."
    }


async def test_a_default_value_applies_when_the_field_is_left_out(
    sandbox: ThreadedServer, anomaly: Anomaly
) -> None:
    ops = JiraClient(connection(sandbox.url, project="OPS"), Platform())
    try:
        ticket = await ops.create_ticket(anomaly, {ROOT_CAUSE: "Disk full on the loader."})
    finally:
        await ops.aclose()
    fields = await issue_fields(sandbox, ticket.key)
    assert fields[SEVERITY]["value"] == "S3"
    assert adf_to_text(fields[ROOT_CAUSE]).strip() == "Disk full on the loader."


async def test_a_long_title_and_description_are_cut_with_a_marker(
    fin: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    title = "Écart de rapprochement " + "x" * 300
    ticket = await fin.create_ticket(
        anomaly, {REGION: "EMEA", "description": "d" * 40_000}, text=TicketText(title=title)
    )
    assert len(ticket.summary) == 255
    assert ticket.summary.endswith("…")
    assert ticket.summary.startswith("Écart de rapprochement xxx")
    stored = emulator.find(ticket.key)
    assert stored is not None
    text = adf_to_text(stored.description)
    assert TRUNCATION_MARKER in text
    assert "Qualytics anomaly 4711" in text  # the block survives, the operator's text is cut


async def test_a_template_text_replaces_the_block_and_is_cut_too(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    short = await client.create_ticket(
        anomaly,
        {"description": "Operator's note."},
        text=TicketText(title="From the template", description="Line one.\n\nLine two."),
    )
    assert short.summary == "From the template"
    stored = emulator.find(short.key)
    assert stored is not None
    assert adf_to_text(stored.description).strip().split("\n") == [
        "Operator's note.",
        "Line one.",
        "Line two.",
    ]
    explicit = await client.create_ticket(
        anomaly, {"summary": "Typed by the operator"}, text=TicketText(title="Template")
    )
    assert explicit.summary == "Typed by the operator"
    long = await client.create_ticket(anomaly, {}, text=TicketText(description="é" * 40_000))
    stored = emulator.find(long.key)
    assert stored is not None
    assert adf_errors(stored.description) == []
    assert TRUNCATION_MARKER in adf_to_text(stored.description)
