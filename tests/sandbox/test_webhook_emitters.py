"""The sandbox's webhook emitters: Jira admin webhooks and a ServiceNow Business Rule, posting to
a receiver on loopback, signed, retried, duplicated and shuffled on demand.

Tests steer them through ``POST /_sandbox/webhooks`` and wait on ``GET /_sandbox/webhooks``
(or ``app.state.webhooks.sent`` in process)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anomaly_desk.sandbox.webhooks import WebhookHub
from tests.support import ThreadedServer, wait_for

API = "/rest/api/3"
CONTROL = "/_sandbox/webhooks"
DEMO = ("demo@example.com", "demo-token")
ALICE = ("alice@example.com", "alice-token")
ALICE_ID = "5b10a2844c20165700ede21f"
SECRET = "hook-secret-0f3a"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint that records what arrives and answers the planned statuses."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.received.append(Received(request.url.path, dict(request.headers), body))
            status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hooks = Receiver()
    app = Starlette(routes=[Route("/hooks/{name}", hooks.endpoint, methods=["POST"])])
    with ThreadedServer(app) as server:
        hooks.url = server.url
        yield hooks


@pytest.fixture
def control(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        yield client


@pytest.fixture
def demo(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, auth=DEMO, timeout=10) as client:
        yield client


def hub_of(sandbox: ThreadedServer) -> WebhookHub:
    return sandbox.app.state.webhooks  # type: ignore[attr-defined, no-any-return]


def configure(control: httpx.Client, receiver: Receiver, **settings: Any) -> dict[str, Any]:
    body = {
        "jira": {"url": f"{receiver.url}/hooks/jira", "secret": SECRET},
        "servicenow": {"url": f"{receiver.url}/hooks/snow", "secret": SECRET},
        **settings,
    }
    answer = control.post(CONTROL, json=body)
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def new_issue(client: httpx.Client, project: str = "DQ") -> str:
    fields = {"project": {"key": project}, "issuetype": {"name": "Task"}, "summary": "hooked"}
    answer = client.post(f"{API}/issue", json={"fields": fields})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


def settled(control: httpx.Client) -> dict[str, Any]:
    """The control route's state once nothing is pending any more."""
    state: dict[str, Any] = {}

    def idle() -> bool:
        state.update(control.get(CONTROL).json())
        return state["pending"] == 0

    wait_for(idle, "the webhook deliveries", timeout=10)
    return state


# -- off by default, configured through the control route ----------------------------------------


def test_nothing_is_sent_until_configured_and_bad_settings_are_refused(
    control: httpx.Client, demo: httpx.Client, receiver: Receiver, sandbox: ThreadedServer
) -> None:
    state = control.get(CONTROL).json()
    assert (state["jira"], state["servicenow"], state["deliveries"]) == (None, None, [])
    new_issue(demo)
    for bad in (
        {"jira": {"secret": "no url"}},
        {"jira": {"url": "ftp://x"}},
        {"jira": {"url": "http://x", "events": ["jira:issue_deleted"]}},
        {"servicenow": {"url": "http://x", "jql": "project = DQ"}},
        {"retry_on_failure": -1},
        {"duplicate": "yes"},
        {"volume": 11},
    ):
        answer = control.post(CONTROL, json=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]
    state = configure(control, receiver, retry_on_failure=2)
    assert state["jira"]["events"] == ["comment_created", "jira:issue_updated"]
    assert state["servicenow"]["events"] == ["incident.insert", "incident.update"]
    assert state["retry_on_failure"] == 2
    assert receiver.received == []
    # a reset of the sandbox turns them off again
    httpx.post(f"{sandbox.url}/_sandbox/reset", timeout=10).raise_for_status()
    assert control.get(CONTROL).json()["jira"] is None
    configure(control, receiver)
    assert control.delete(CONTROL).json()["servicenow"] is None


# -- Jira ----------------------------------------------------------------------------------------


def test_jira_issue_updated_and_comment_created_are_signed_and_shaped_like_jiras(
    control: httpx.Client, demo: httpx.Client, receiver: Receiver, sandbox: ThreadedServer
) -> None:
    key = new_issue(demo)
    configure(control, receiver)
    with httpx.Client(base_url=sandbox.url, auth=ALICE, timeout=10) as alice:
        offered = alice.get(f"{API}/issue/{key}/transitions").json()["transitions"]
        done = next(t["id"] for t in offered if t["name"] == "Done")
        moved = alice.post(
            f"{API}/issue/{key}/transitions",
            json={
                "transition": {"id": done},
                "fields": {"resolution": {"name": "Done"}},
                "update": {"comment": [{"add": {"body": adf("fixed the loader")}}]},
            },
        )
        assert moved.status_code == 204
    state = settled(control)
    events = [d["event"] for d in state["deliveries"]]
    assert events == ["jira:issue_updated", "comment_created"]
    hooks = receiver.at("/hooks/jira")
    assert len(hooks) == 2
    for hook in hooks:
        assert hook.headers["x-hub-signature"] == signed(hook.body)
        assert hook.headers["x-atlassian-webhook-flow"] == "Primary"
        assert "x-atlassian-webhook-retry" not in hook.headers
        assert hook.headers["content-type"].startswith("application/json")
    identifiers = {h.headers["x-atlassian-webhook-identifier"] for h in hooks}
    assert len(identifiers) == 2  # one per event
    updated, commented = (h.json() for h in hooks)
    assert updated["webhookEvent"] == "jira:issue_updated"
    assert updated["issue_event_type_name"] == "issue_generic"
    assert updated["user"]["accountId"] == ALICE_ID
    assert "emailAddress" not in updated["user"]
    assert updated["issue"]["key"] == key
    assert updated["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
    assert updated["issue"]["fields"]["resolution"]["name"] == "Done"
    assert [
        (i["field"], i["fromString"], i["toString"]) for i in updated["changelog"]["items"]
    ] == [
        ("status", "To Do", "Done"),
        ("resolution", None, "Done"),
    ]
    assert updated["comment"]["body"] == "fixed the loader"  # v2-shaped: a wiki string
    assert isinstance(updated["timestamp"], int)
    assert commented["webhookEvent"] == "comment_created"
    assert commented["comment"]["author"]["accountId"] == ALICE_ID
    assert commented["comment"]["body"] == "fixed the loader"
    assert commented["issue"]["key"] == key
    assert "user" not in commented


def test_jira_comments_edits_events_and_jql_filter(
    control: httpx.Client, demo: httpx.Client, receiver: Receiver
) -> None:
    dq, tm = new_issue(demo), new_issue(demo, "TM")
    jira = {
        "url": f"{receiver.url}/hooks/jira",
        "events": ["jira:issue_created", "jira:issue_updated", "comment_created"],
        "jql": "project = DQ",
    }
    assert control.post(CONTROL, json={"jira": jira}).status_code == 200
    for key in (dq, tm):
        made = demo.post(f"{API}/issue/{key}/comment", json={"body": adf(f"note on {key}")})
        assert made.status_code == 201
    edited = demo.put(
        f"{API}/issue/{dq}",
        json={"fields": {"summary": "renamed"}, "historyMetadata": {"type": "anomaly-desk"}},
    )
    assert edited.status_code == 204
    created = new_issue(demo)
    state = settled(control)
    hooks = [h.json() for h in receiver.at("/hooks/jira")]
    assert "x-hub-signature" not in receiver.at("/hooks/jira")[0].headers  # no secret, no sign
    assert [(h["webhookEvent"], h.get("issue_event_type_name")) for h in hooks] == [
        ("jira:issue_updated", "issue_commented"),
        ("comment_created", None),
        ("jira:issue_updated", "issue_updated"),
        ("jira:issue_created", "issue_created"),
    ]
    assert {h["issue"]["key"] for h in hooks} == {dq, created}  # TM filtered out
    assert "changelog" not in hooks[0]
    assert hooks[0]["comment"]["body"] == f"note on {dq}"
    assert hooks[2]["changelog"]["items"][0]["toString"] == "renamed"
    assert [d["status"] for d in state["deliveries"]] == [200, 200, 200, 200]
    assert state["deliveries"][0]["body"]["webhookEvent"] == "jira:issue_updated"


def test_failed_deliveries_are_retried_with_the_same_identifier(
    control: httpx.Client, demo: httpx.Client, receiver: Receiver
) -> None:
    key = new_issue(demo)
    jira = {"url": f"{receiver.url}/hooks/jira", "secret": SECRET, "events": ["jira:issue_updated"]}
    configure(control, receiver, jira=jira, retry_on_failure=2, retry_delay_ms=20)
    receiver.statuses = [500, 503]  # the first two attempts fail
    assert demo.post(f"{API}/issue/{key}/comment", json={"body": adf("x")}).status_code == 201
    state = settled(control)
    first = [d for d in state["deliveries"] if d["event"] == "jira:issue_updated"]
    assert [(d["attempt"], d["status"]) for d in first] == [(0, 500), (1, 503), (2, 200)]
    hooks = [
        h for h in receiver.at("/hooks/jira") if h.json()["webhookEvent"] == "jira:issue_updated"
    ]
    assert len({h.headers["x-atlassian-webhook-identifier"] for h in hooks}) == 1
    assert [h.headers.get("x-atlassian-webhook-retry") for h in hooks] == [None, "1", "2"]
    assert [h.headers["x-atlassian-webhook-flow"] for h in hooks] == ["Primary", "Retry", "Retry"]
    assert len({h.body for h in hooks}) == 1  # the same bytes, the same signature
    # gives up after retry_on_failure retries
    receiver.statuses = [500] * 10
    configure(control, receiver, jira=jira, retry_on_failure=1, retry_delay_ms=10)
    assert demo.put(f"{API}/issue/{key}", json={"fields": {"summary": "y"}}).status_code == 204
    state = settled(control)
    last = [d for d in state["deliveries"] if d["body"].get("changelog")]
    assert [(d["attempt"], d["status"]) for d in last] == [(0, 500), (1, 500)]


def test_unreachable_receivers_are_recorded_as_errors(
    control: httpx.Client, demo: httpx.Client
) -> None:
    closed = "http://127.0.0.1:9/hooks"  # discard port: nothing listens
    assert control.post(CONTROL, json={"jira": {"url": closed}, "retry_on_failure": 1}).is_success
    key = new_issue(demo)
    assert demo.post(f"{API}/issue/{key}/comment", json={"body": adf("x")}).status_code == 201
    state = settled(control)
    assert state["deliveries"]
    assert all(d["status"] is None and d["error"] for d in state["deliveries"])


def test_duplicates_and_shuffled_order(
    control: httpx.Client, demo: httpx.Client, receiver: Receiver, sandbox: ThreadedServer
) -> None:
    key = new_issue(demo)
    configure(control, receiver, duplicate=True)
    assert demo.post(f"{API}/issue/{key}/comment", json={"body": adf("twice")}).status_code == 201
    settled(control)
    hooks = receiver.at("/hooks/jira")
    assert len(hooks) == 4  # issue_updated and comment_created, each twice
    by_identifier: dict[str, list[bytes]] = {}
    for hook in hooks:
        by_identifier.setdefault(hook.headers["x-atlassian-webhook-identifier"], []).append(
            hook.body
        )
    assert [len(set(b)) for b in by_identifier.values()] == [1, 1]
    assert [len(b) for b in by_identifier.values()] == [2, 2]

    receiver.received.clear()
    before = len(hub_of(sandbox).sent)
    configure(control, receiver, duplicate=False, shuffle=True, shuffle_window_ms=300, seed=7)
    for n in range(4):
        answer = demo.put(f"{API}/issue/{key}", json={"fields": {"summary": f"edit {n}"}})
        assert answer.status_code == 204
    settled(control)
    order = [h.json()["changelog"]["items"][0]["toString"] for h in receiver.at("/hooks/jira")]
    assert sorted(order) == [f"edit {n}" for n in range(4)]
    assert order != [f"edit {n}" for n in range(4)]  # out of order
    assert len(hub_of(sandbox).sent) == before + 4


# -- ServiceNow ----------------------------------------------------------------------------------


def test_servicenow_business_rule_posts_signed_hints(
    control: httpx.Client, receiver: Receiver, sandbox: ThreadedServer
) -> None:
    configure(control, receiver)
    with (
        httpx.Client(base_url=sandbox.url, auth=("admin", "demo"), timeout=10) as admin,
        httpx.Client(base_url=sandbox.url, auth=("bob.martin", "demo"), timeout=10) as bob,
    ):
        made = admin.post("/api/now/table/incident", json={"short_description": "late feed"})
        sys_id = made.json()["result"]["sys_id"]
        assert bob.patch(f"/api/now/table/incident/{sys_id}", json={"comments": "on it"}).is_success
        refused = bob.patch(f"/api/now/table/incident/{sys_id}", json={"state": "6"})
        assert refused.status_code == 403  # nothing saved: nothing sent
        admin.post("/api/now/table/sys_user_group", json={"name": "Ops"})  # not an incident
    settled(control)
    hooks = receiver.at("/hooks/snow")
    assert [h.json() for h in hooks] == [
        {"sys_id": sys_id, "table": "incident", "operation": "insert"},
        {"sys_id": sys_id, "table": "incident", "operation": "update"},
    ]
    for hook in hooks:
        assert hook.headers["x-snow-signature"] == signed(hook.body)
        assert "x-atlassian-webhook-identifier" not in hook.headers
    assert receiver.at("/hooks/jira") == []
    only_updates = {
        "servicenow": {"url": f"{receiver.url}/hooks/snow", "events": ["incident.update"]}
    }
    assert control.post(CONTROL, json=only_updates).is_success
