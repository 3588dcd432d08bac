"""The operator as reporter (or watcher), and the user search of assignee fields.

The sandbox's Jira has Dana (one active account, plus an old deactivated one with the same
email), Sam (two active accounts, one email), project DQ whose screen has ``reporter`` and OPS
whose screen does not (a create naming it is refused).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.errors import ValidationError
from anomaly_desk.core.providers.jira import JiraClient
from anomaly_desk.sandbox.jira import JiraEmulator
from anomaly_desk.sandbox.jira_data import INTEGRATION_ACCOUNT
from tests.integration.conftest import ENV, start_receiver, write_config
from tests.jira.conftest import EMAIL, TOKEN, connection
from tests.support import ThreadedServer

DANA = "712020:8c1f4e2a-6b3d-4a5e-9f70-2d4c6b8a0e13"
DANA_OLD = "5c9e1a7b3d2f4e6a8b0c1d2e"
NOT_SETTABLE = "Field 'reporter' cannot be set. It is not on the appropriate screen, or unknown."


@pytest.fixture
async def ops(sandbox: ThreadedServer) -> AsyncIterator[JiraClient]:
    jira = JiraClient(connection(sandbox.url, project="OPS"), Platform())
    yield jira
    await jira.aclose()


def watchers(emulator: JiraEmulator, key: str) -> list[str]:
    issue = emulator.find(key)
    assert issue is not None
    return [w.account_id for w in issue.watchers]


def reporter(emulator: JiraEmulator, key: str) -> str:
    issue = emulator.find(key)
    assert issue is not None
    return issue.reporter.account_id


async def test_the_operator_is_the_reporter_where_the_screen_has_one(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(anomaly, {}, operator_email="Dana@Example.com")
    assert ticket.warnings == ()
    assert reporter(emulator, ticket.key) == DANA  # the deactivated twin is not a match
    assert DANA in watchers(emulator, ticket.key)  # Jira's reporter autowatch, not ours


async def test_an_explicit_reporter_wins_over_the_operator(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(
        anomaly, {"reporter": "sam park (contractor)"}, operator_email="dana@example.com"
    )
    assert ticket.warnings == ()
    assert reporter(emulator, ticket.key) == "712020:9e7c5a3b-2d4f-4a6b-8e0c-1f3a5b7c9d35"


async def test_without_a_reporter_field_the_operator_watches(
    ops: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await ops.create_ticket(anomaly, {}, operator_email="dana@example.com")
    assert ticket.key.startswith("OPS-")
    assert ticket.warnings == (
        "reporter is not settable in OPS; dana@example.com added as a watcher",
    )
    assert reporter(emulator, ticket.key) == INTEGRATION_ACCOUNT
    assert watchers(emulator, ticket.key) == [INTEGRATION_ACCOUNT, DANA]


async def test_ops_refuses_a_reporter_with_jiras_words(ops: JiraClient, anomaly: Anomaly) -> None:
    with pytest.raises(ValidationError) as caught:
        await ops.create_ticket(anomaly, {"reporter": DANA})
    assert caught.value.field_errors == {"reporter": NOT_SETTABLE}


async def test_a_failed_watcher_add_is_a_warning_not_a_failed_create(
    sandbox: ThreadedServer, ops: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    faults.update(
        {"force_status": 500, "force_count": 1, "path_prefix": "/rest/api/3/issue/OPS-1/watchers"}
    )
    ticket = await ops.create_ticket(anomaly, {}, operator_email="dana@example.com")
    assert ticket.key == "OPS-1"
    assert len(ticket.warnings) == 1
    assert ticket.warnings[0].startswith(
        "reporter is not settable in OPS; dana@example.com could not be added as a watcher: "
    )
    assert "HTTP 500" in ticket.warnings[0]
    assert watchers(emulator, ticket.key) == [INTEGRATION_ACCOUNT]


@pytest.mark.parametrize("project", ["DQ", "OPS"])
async def test_two_accounts_with_the_email_set_neither(
    sandbox: ThreadedServer, emulator: JiraEmulator, anomaly: Anomaly, project: str
) -> None:
    jira = JiraClient(connection(sandbox.url, project=project), Platform())
    try:
        ticket = await jira.create_ticket(anomaly, {}, operator_email="sam@example.com")
    finally:
        await jira.aclose()
    assert ticket.warnings == ("reporter not set: 2 Jira accounts have sam@example.com",)
    assert reporter(emulator, ticket.key) == INTEGRATION_ACCOUNT
    assert watchers(emulator, ticket.key) == [INTEGRATION_ACCOUNT]


async def test_no_account_with_the_email_sets_neither(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(anomaly, {}, operator_email="nobody@example.com")
    assert ticket.warnings == ("reporter not set: no active Jira account has nobody@example.com",)
    assert reporter(emulator, ticket.key) == INTEGRATION_ACCOUNT


async def test_without_an_operator_email_nothing_is_looked_up(
    client: JiraClient, emulator: JiraEmulator, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(anomaly, {})
    assert ticket.warnings == ()
    assert reporter(emulator, ticket.key) == INTEGRATION_ACCOUNT


async def test_find_users_searches_people_live(client: JiraClient) -> None:
    sams = await client.find_users("sam")
    assert [(u.name, u.email) for u in sams] == [
        ("Sam Park", "sam@example.com"),
        ("Sam Park (contractor)", "sam@example.com"),
    ]
    danas = await client.find_users("dana@example.com")
    assert [u.id for u in danas] == [DANA]  # deactivated accounts are left out
    assert await client.find_users("  ") == []
    assert len(await client.find_users("s", limit=1)) == 1
    # the service account is an app, not a person
    assert await client.find_users("desk-service") == []


async def test_watchers_endpoints_answer_like_jira(
    sandbox: ThreadedServer, client: JiraClient, anomaly: Anomaly
) -> None:
    ticket = await client.create_ticket(anomaly, {})
    async with httpx.AsyncClient(base_url=sandbox.url, auth=(EMAIL, TOKEN)) as http:
        path = f"/rest/api/3/issue/{ticket.key}/watchers"
        added = await http.post(path, json=DANA)
        assert added.status_code == 204
        unknown = await http.post(path, json=DANA_OLD)  # deactivated
        assert unknown.status_code == 404
        not_a_string = await http.post(path, json={"accountId": DANA})
        assert not_a_string.status_code == 400
        listed = (await http.get(path)).json()
        assert listed["watchCount"] == 2
        assert listed["isWatching"] is True
        assert [w["accountId"] for w in listed["watchers"]] == [INTEGRATION_ACCOUNT, DANA]
        issue = (await http.get(f"/rest/api/3/issue/{ticket.key}")).json()
        assert issue["fields"]["watches"]["watchCount"] == 2
        removed = await http.delete(path, params={"accountId": DANA})
        assert removed.status_code == 204
        assert (await http.get(path)).json()["watchCount"] == 1


def test_the_create_answer_carries_the_warnings(tmp_path: Path, sandbox: ThreadedServer) -> None:
    """Through the receiver: POST /api/anomalies/{id}/tickets answers with the link and what
    the create could not do; the stored link does not keep the warnings."""
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    try:
        with httpx.Client(base_url=receiver.url, timeout=30) as api:
            body = Path(__file__).parents[2] / "fixtures/webhooks/01-flow-anomalies-detected.json"
            delivered = api.post(
                "/webhooks/qualytics",
                content=body.read_bytes(),
                headers={"content-type": "application/json"},
            )
            assert delivered.status_code == 200, delivered.text
            created = api.post(
                "/api/anomalies/10231/tickets",
                json={
                    "connection": "jira",
                    "fields": {"project": "OPS", "summary": "Loader ran twice"},
                    "as": "dana@example.com",
                },
            )
            assert created.status_code == 201, created.text
            link = created.json()
            assert link["ticket_key"].startswith("OPS-")
            assert link["warnings"] == [
                "reporter is not settable in OPS; dana@example.com added as a watcher"
            ]
            detail = api.get("/api/anomalies/10231").json()
            assert detail["links"][0].get("warnings") is None
    finally:
        receiver.stop()


async def test_a_reporter_on_the_screen_but_refused_falls_back_to_a_watcher(
    anomaly: Anomaly,
) -> None:
    """createmeta lists ``reporter`` yet the create refuses it (no Modify Reporter permission):
    the issue is created again without it (a 400 created nothing) and the operator watches.
    The sandbox ties the two together, so a MockTransport plays this Jira."""
    creates: list[dict[str, object]] = []
    watched: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/issue/createmeta/DQ/issuetypes"):
            return httpx.Response(
                200, json={"total": 1, "issueTypes": [{"id": "1", "name": "Task"}]}
            )
        if path.endswith("/issue/createmeta/DQ/issuetypes/1"):
            reporter = {"fieldId": "reporter", "name": "Reporter", "schema": {"type": "user"}}
            return httpx.Response(200, json={"total": 1, "fields": [reporter]})
        if path.endswith("/user/search"):
            return httpx.Response(
                200, json=[{"accountId": DANA, "emailAddress": "dana@example.com"}]
            )
        if path.endswith("/rest/api/3/issue") and request.method == "POST":
            fields = json.loads(request.content)["fields"]
            creates.append(fields)
            if "reporter" in fields:
                refusal = {
                    "errorMessages": [],
                    "errors": {"reporter": "You do not have permission."},
                }
                return httpx.Response(400, json=refusal)
            return httpx.Response(201, json={"id": "10000", "key": "DQ-1"})
        if path.endswith("/issue/DQ-1/watchers"):
            watched.append(json.loads(request.content))
            return httpx.Response(204)
        return httpx.Response(200, json={"id": "10000", "key": "DQ-1", "fields": {"summary": "s"}})

    jira = JiraClient(
        connection("https://acme.atlassian.net"), transport=httpx.MockTransport(handler)
    )
    try:
        ticket = await jira.create_ticket(anomaly, {}, operator_email="dana@example.com")
    finally:
        await jira.aclose()
    assert [("reporter" in fields) for fields in creates] == [True, False]
    assert watched == [DANA]
    assert ticket.warnings == (
        "reporter is not settable in DQ; dana@example.com added as a watcher",
    )
