"""Over loopback: a connection's templates make the ticket's summary and description, and its
status and comment notes; an over-long title is truncated with a marker, never refused."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_desk.core.formatting.adf import adf_to_text
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer

TITLE = (
    "[{{ anomaly.datastore.name }}] {{ anomaly.container.name }}:"
    " {{ anomaly.failed_checks[0].message if anomaly.failed_checks else anomaly.message }}"
)
DESCRIPTION = (
    "{{ anomaly.message }} ({{ anomaly.anomalous_records_count }} records)\n\n"
    "Tags: {{ anomaly.global_tags }}\nOpen it in {{ platform.name }}: {{ anomaly.url }}\n"
    "{{ '*bold* [click|https://evil.example] <b>x</b>' }}"
)
STATUS_NOTE = "{{ platform.name }}: {{ status }} by {{ author or 'the platform' }} on {{ ticket }}"
COMMENT_NOTE = "{{ author or 'Someone' }} on {{ platform.name }}: {{ comment }}"
LONG_TITLE = "{% for i in range(35) %}{{ anomaly.id }}-{{ i }} {% endfor %}"  # 304 characters


def inline(**templates: str) -> str:
    """``templates = {…}`` as one TOML line (write_config adds keys after it)."""
    return f"templates = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in templates.items())} }}"


@pytest.fixture
def desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    both = inline(
        title=TITLE, description=DESCRIPTION, status_note=STATUS_NOTE, comment_note=COMMENT_NOTE
    )
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, jira=both, servicenow=both)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        yield Desk(receiver, sandbox, api, tmp_path / "data", config)
    finally:
        api.close()
        receiver.stop()


@pytest.fixture
def templated(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Callable[..., Desk]]:
    """A receiver whose two connections have the given templates."""
    started: list[Desk] = []

    def start(**templates: str) -> Desk:
        data = tmp_path / f"data-{len(started)}"
        config = write_config(
            tmp_path / f"templated-{len(started)}.toml",
            sandbox.url,
            jira=inline(**templates),
            servicenow=inline(**templates),
        )
        receiver = start_receiver(config, data, ENV)
        api = httpx.Client(base_url=receiver.url, timeout=30)
        started.append(Desk(receiver, sandbox, api, data, config))
        return started[-1]

    yield start
    for desk in started:
        desk.api.close()
        desk.receiver.stop()


def create(desk: Desk, connection: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    response = desk.api.post(
        "/api/anomalies/10231/tickets", json={"connection": connection, "fields": fields or {}}
    )
    assert response.status_code == 201, response.text
    link: dict[str, Any] = response.json()
    return link


def text_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "text":
            yield node
        for child in node.get("content", []):
            yield from text_nodes(child)


def summary_and_description(desk: Desk, link: dict[str, Any]) -> tuple[str, str]:
    if link["provider"] == "jira":
        issue = desk.jira_issue(link["ticket_key"])["fields"]
        return issue["summary"], adf_to_text(issue["description"])
    incident = desk.incident(link["ticket_id"])
    return incident["short_description"], incident["description"]


@pytest.mark.parametrize("connection", ["jira", "servicenow"])
def test_the_ticket_s_summary_and_description_are_the_rendered_templates(
    desk: Desk, connection: str
) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    link = create(desk, connection)  # no summary in the form: the template's title
    summary, description = summary_and_description(desk, link)
    assert summary == "[warehouse_prod] orders: customer_id must never be null"
    words = " ".join(description.split())  # Jira's paragraphs read back one per line
    # markup in a template's output is text: no bold, no link to evil.example, no HTML
    assert "*bold* [click|https://evil.example] <b>x</b>" in words
    if connection == "jira":
        adf = desk.jira_issue(link["ticket_key"])["fields"]["description"]
        assert '"strong"' not in json.dumps(adf)
        # a bare URL becomes a link showing itself; no text can disguise one
        for node in text_nodes(adf):
            for mark in node.get("marks", []):
                assert (mark["type"], mark["attrs"]["href"]) == ("link", node["text"]), node
    assert (
        "customer_id is null in 1,204 records (1204 records) Tags: finance "
        "Open it in Qualytics: https://acme.qualytics.io/anomalies/10231"
    ) in words, description


@pytest.mark.parametrize(
    ("connection", "field"), [("jira", "summary"), ("servicenow", "short_description")]
)
def test_a_summary_the_operator_types_wins_over_the_template(
    desk: Desk, connection: str, field: str
) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    link = create(desk, connection, {field: "Typed by the operator"})
    summary, description = summary_and_description(desk, link)
    assert summary == "Typed by the operator"
    assert "Tags: finance" in description  # the description template still applies


@pytest.mark.parametrize(
    ("connection", "field"), [("jira", "summary"), ("servicenow", "short_description")]
)
def test_the_dashboard_form_is_prefilled_with_the_template_s_title(
    desk: Desk, connection: str, field: str
) -> None:
    """The form sends a summary (which wins), so the template's title must be its default."""
    desk.post_webhook("01-flow-anomalies-detected.json")
    form = desk.api.get(f"/api/connections/{connection}/form", params={"anomaly": 10231})
    assert form.status_code == 200, form.text
    defaults = {spec["id"]: spec.get("default") for spec in form.json()["fields"]}
    assert defaults[field] == "[warehouse_prod] orders: customer_id must never be null"
    plain = desk.api.get(f"/api/connections/{connection}/form").json()
    assert {spec["id"]: spec.get("default") for spec in plain["fields"]}[field] != defaults[field]
    bad = desk.api.get(f"/api/connections/{connection}/form", params={"anomaly": "x"})
    assert bad.status_code == 400
    missing = desk.api.get(f"/api/connections/{connection}/form", params={"anomaly": 999999})
    assert missing.status_code == 404


@pytest.mark.parametrize("connection", ["jira", "servicenow"])
def test_status_and_comment_notes_are_rendered_once_and_delivered(
    desk: Desk, connection: str
) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    link = create(desk, connection)
    assert desk.api.post("/api/anomalies/10231/acknowledge").status_code == 200
    comment = desk.api.post("/api/anomalies/10231/comments", json={"text": "Rerun tonight"})
    assert comment.status_code == 201
    desk.wait_idle()
    key = link["ticket_key"]
    expected = [
        f"Qualytics: Acknowledged by the platform on {key}",
        "Someone on Qualytics: Rerun tonight",
    ]
    assert desk.notes(link) == expected
    # the job holds the rendered text: a retry compares and matches what was rendered then
    jobs = desk.api.get("/api/sync-jobs").json()
    rows = jobs["items"] if isinstance(jobs, dict) else jobs
    assert sorted(job["text"] for job in rows if job["connection"] == connection) == sorted(
        expected
    )


@pytest.mark.parametrize(("connection", "limit"), [("jira", 255), ("servicenow", 160)])
def test_an_over_long_rendered_title_is_truncated_with_a_marker(
    templated: Callable[..., Desk], connection: str, limit: int
) -> None:
    desk = templated(title=LONG_TITLE)
    desk.post_webhook("01-flow-anomalies-detected.json")
    link = create(desk, connection)  # created, not refused
    summary, _ = summary_and_description(desk, link)
    assert len(summary) <= limit
    assert summary.startswith("10231-0 10231-1 10231-2")
    assert re.search(r"…( \[truncated\])?$", summary), summary  # cut short, and marked as cut


@pytest.mark.parametrize("connection", ["jira", "servicenow"])
def test_a_template_that_loops_forever_does_not_hang_the_receiver(
    templated: Callable[..., Desk], connection: str
) -> None:
    """``range`` is budgeted: the render fails at once, the ticket gets the default title and
    the anomaly block, and the create succeeds."""
    desk = templated(
        title="{% for i in range(10**9) %}x{% endfor %}",
        description="{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    )
    desk.post_webhook("01-flow-anomalies-detected.json")
    started = time.perf_counter()
    link = create(desk, connection)
    assert time.perf_counter() - started < 5
    summary, description = summary_and_description(desk, link)
    assert summary == "Qualytics anomaly 10231: customer_id is null in 1,204 records"
    assert "Anomaly ID: 10231" in description  # the anomaly block
    assert desk.api.get("/healthz").status_code == 200
