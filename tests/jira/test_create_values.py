"""Create values the desk refuses before sending, and what it cleans: a summary or description
that is not text, a date and time with no UTC instant, and the desk's own correlation labels
(``anomaly-desk``, ``anomaly-<id>``) given by a person, which would let a later crash recovery
adopt an unrelated issue.

Over loopback against the sandbox's Jira (projects FIN and DQ); issues are counted through
Jira's own search, so "nothing created" is what Jira says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.errors import ValidationError
from anomaly_desk.core.providers.jira import JiraClient
from anomaly_desk.sandbox.jira import JiraEmulator
from tests.integration.conftest import ENV, start_receiver, write_config
from tests.jira.conftest import EMAIL, TOKEN, connection
from tests.support import FIXTURES, ThreadedServer

REGION, DETECTED, TAGS = "customfield_10050", "customfield_10058", "customfield_10059"
NO_INSTANT = "Detected at: {!r} has no UTC instant (it falls outside years 1-9999)"


@pytest.fixture
async def fin(sandbox: ThreadedServer) -> AsyncIterator[JiraClient]:
    jira = JiraClient(connection(sandbox.url, project="FIN", issue_type="Bug"), Platform())
    yield jira
    await jira.aclose()


def search(sandbox: ThreadedServer, jql: str) -> list[dict[str, Any]]:
    """Issues through Jira's search, with the fields these tests look at."""
    with httpx.Client(base_url=sandbox.url, auth=(EMAIL, TOKEN)) as http:
        page = http.get(
            "/rest/api/3/search/jql",
            params={"jql": jql, "fields": f"summary,labels,{DETECTED}", "maxResults": 1000},
        )
    page.raise_for_status()
    issues: list[dict[str, Any]] = page.json()["issues"]
    return issues


def issue_count(sandbox: ThreadedServer) -> int:
    return len(search(sandbox, "project = FIN OR project = DQ"))


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("summary", ["a"], "summary takes text, not a list"),
        ("summary", {"a": 1}, "summary takes text, not an object"),
        ("summary", True, "summary takes text, not true/false"),
        ("description", {"type": "doc"}, "description takes text, not an object"),
        ("description", {"evil": 1}, "description takes text, not an object"),
        ("description", ["x"], "description takes text, not a list"),
        (DETECTED, "9999-12-31T23:59-05:00", NO_INSTANT.format("9999-12-31T23:59-05:00")),
        (DETECTED, "0001-01-01T00:00+01:00", NO_INSTANT.format("0001-01-01T00:00+01:00")),
        # float() reads these, nobody writes them as numbers
        ("customfield_10056", "\uff11\uff12", "Estimated loss: '\uff11\uff12' is not a number"),
        ("customfield_10056", "1_0", "Estimated loss: '1_0' is not a number"),
    ],
)
async def test_a_value_that_cannot_be_sent_is_refused_naming_its_field(
    fin: JiraClient,
    sandbox: ThreadedServer,
    anomaly: Anomaly,
    field: str,
    value: Any,
    problem: str,
) -> None:
    before = issue_count(sandbox)
    with pytest.raises(ValidationError) as caught:
        await fin.create_ticket(anomaly, {"summary": "s", REGION: "EMEA", field: value})
    assert caught.value.field_errors == {field: problem}
    assert caught.value.status is None  # refused here: nothing was sent
    assert issue_count(sandbox) == before


async def test_a_number_is_text_and_control_characters_leave_the_summary(
    fin: JiraClient, sandbox: ThreadedServer, anomaly: Anomaly
) -> None:
    ticket = await fin.create_ticket(
        anomaly, {"summary": "\x00\x01 Ledger\x1b[31m \x7fgap\u200b\tbig", REGION: "EMEA"}
    )
    (issue,) = search(sandbox, f"key = {ticket.key}")
    assert issue["fields"]["summary"] == "Ledger[31m gap\u200b big"
    numbered = await fin.create_ticket(anomaly, {"summary": 4711, REGION: "EMEA"})
    assert numbered.summary == "4711"


async def test_a_summary_of_control_characters_only_falls_back_to_the_default(
    fin: JiraClient, anomaly: Anomaly
) -> None:
    ticket = await fin.create_ticket(anomaly, {"summary": "\x00\x01\x1b", REGION: "EMEA"})
    assert ticket.summary.startswith("Qualytics anomaly 4711: 412 rows have a negative")


async def test_a_year_before_1000_is_sent_zero_padded(
    fin: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    payload = await fin.build_fields(anomaly, {DETECTED: "0001-01-01T10:00+01:00"}, form=None)
    assert payload[DETECTED] == "0001-01-01T10:00+01:00"  # not on a known screen: as given
    form = await fin._form_for({})
    shaped = await fin.build_fields(anomaly, {DETECTED: "0001-01-01T10:00+01:00"}, form=form)
    assert shaped[DETECTED] == "0001-01-01T10:00:00.000+0100"
    # the sandbox parses four-digit years only, as Jira: "999-06-30…" would be its 400
    ticket = await fin.create_ticket(anomaly, {REGION: "EMEA", DETECTED: "0999-06-30T12:00Z"})
    stored = emulator.find(ticket.key)
    assert stored is not None
    assert stored.custom[DETECTED] == datetime(999, 6, 30, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("labels", "taken"),
    [
        ("anomaly-99601", "'anomaly-99601'"),
        (["dq", "ANOMALY-12"], "'ANOMALY-12'"),
        ("finance, anomaly 7", "'anomaly-7'"),  # a space becomes a dash: still the mark
        (["anomaly-desk"], "'anomaly-desk'"),
        (["Anomaly-Desk", "anomaly-1"], "'Anomaly-Desk', 'anomaly-1'"),
    ],
)
async def test_the_desks_correlation_labels_are_refused(
    client: JiraClient,
    sandbox: ThreadedServer,
    anomaly: Anomaly,
    labels: Any,
    taken: str,
) -> None:
    before = issue_count(sandbox)
    with pytest.raises(ValidationError) as caught:
        await client.create_ticket(anomaly, {"summary": "operator's ticket", "labels": labels})
    problem = caught.value.field_errors["labels"]
    assert problem.startswith(f"labels: {taken} cannot be set: ")
    assert "correlation labels" in problem
    assert set(caught.value.field_errors) == {"labels"}
    assert issue_count(sandbox) == before
    assert await client.find_created(99601) == []


async def test_a_configured_label_is_the_mark_refused(
    sandbox: ThreadedServer, anomaly: Anomaly
) -> None:
    jira = JiraClient(connection(sandbox.url, label="dq-desk"), Platform())
    try:
        with pytest.raises(ValidationError) as caught:
            await jira.create_ticket(anomaly, {"labels": ["DQ-Desk"]})
        ticket = await jira.create_ticket(anomaly, {"labels": ["anomaly-desks", "my-anomaly-1"]})
    finally:
        await jira.aclose()
    assert "'DQ-Desk' cannot be set" in caught.value.field_errors["labels"]
    (issue,) = search(sandbox, f"key = {ticket.key}")
    assert issue["fields"]["labels"] == ["anomaly-desks", "my-anomaly-1", "dq-desk", "anomaly-4711"]


async def test_other_labels_go_with_the_desks_own_marks(
    client: JiraClient, sandbox: ThreadedServer, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(anomaly, {"labels": "finance, month end, \x00, led\x1bger"})
    (issue,) = search(sandbox, f"key = {ticket.key}")
    assert issue["fields"]["labels"] == [
        "finance",
        "month-end",
        "ledger",
        "anomaly-desk",
        "anomaly-4711",
    ]
    assert [t.key for t in await client.find_created(4711)] == [ticket.key]


async def test_a_label_that_is_not_a_word_is_refused(
    client: JiraClient, sandbox: ThreadedServer, anomaly: Anomaly
) -> None:
    before = issue_count(sandbox)
    with pytest.raises(ValidationError) as caught:
        await client.create_ticket(anomaly, {"labels": ["ok", {"a": 1}]})
    assert caught.value.field_errors == {
        "labels": "labels are words, not lists, objects or true/false"
    }
    assert issue_count(sandbox) == before


# -- through the receiver: the operator's 422 ----------------------------------------------------


@pytest.fixture
def api(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """A receiver whose Jira connection is the sandbox's DQ project, anomaly 10260 stored."""
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    with httpx.Client(base_url=receiver.url, timeout=30) as http:
        body = (FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes()
        stored = http.post(
            "/webhooks/qualytics", content=body, headers={"content-type": "application/json"}
        )
        assert stored.status_code == 200, stored.text
        yield http
    receiver.stop()


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"summary": ["a"]}, "fields.summary"),
        ({"summary": "s", "description": {"type": "doc"}}, "fields.description"),
        ({"summary": "s", "labels": "anomaly-99601"}, "fields.labels"),
        ({"summary": "s", "labels": ["anomaly-desk"]}, "fields.labels"),
    ],
)
def test_the_operator_gets_a_422_on_the_field_and_nothing_is_created(
    api: httpx.Client, sandbox: ThreadedServer, fields: dict[str, Any], path: str
) -> None:
    before = issue_count(sandbox)
    answer = api.post("/api/anomalies/10260/tickets", json={"connection": "jira", "fields": fields})
    assert answer.status_code == 422, answer.text
    assert [e["path"] for e in answer.json()["errors"]] == [path]
    assert issue_count(sandbox) == before
    assert api.get("/api/anomalies/10260").json()["links"] == []


async def test_control_characters_leave_a_custom_labels_field(
    fin: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await fin.create_ticket(anomaly, {REGION: "EMEA", TAGS: ["\x00", "month\tend\x07"]})
    stored = emulator.find(ticket.key)
    assert stored is not None
    assert stored.custom[TAGS] == ["month-end"]
