"""``GET /api/schema``: every view's JSON schema, and real answers and events that fit it.

The views (``core/views.py``) are what the receiver serialises from and what the dashboard parses
into; the schema is served from them. Here every route and every event is driven for real and
what came over the wire is checked against the schema the receiver itself serves.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from starlette.routing import Route

from anomaly_desk.core import views
from tests.integration.conftest import Desk

UNTYPED = {"/api/events", "/api/schema"}  # a stream of events (each typed), the schema itself


@pytest.fixture
def schema(desk: Desk) -> dict[str, Any]:
    response = desk.api.get("/api/schema")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


def fits(schema: dict[str, Any], ref: dict[str, Any], data: Any) -> None:
    """``data`` validates against ``ref`` (a ``$ref`` into the schema's ``$defs``)."""
    validator = Draft202012Validator({"$defs": schema["$defs"], **ref})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, errors


def answer(schema: dict[str, Any], route: str, response: httpx.Response, status: int = 200) -> Any:
    """The JSON of ``response``, checked against the view ``route`` answers with."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    fits(schema, schema["responses"][route], body)
    return body


def routes(desk: Desk) -> set[str]:
    """``METHOD /path/{param}`` of every route the receiver answers with a view."""
    found = set()
    for route in desk.receiver.app.routes:
        assert isinstance(route, Route)
        if route.path in UNTYPED:
            continue
        path = re.sub(r":\w+}", "}", route.path)
        found |= {f"{method} {path}" for method in route.methods or () if method != "HEAD"}
    return found


def test_the_schema_has_every_view_every_route_and_every_event(
    desk: Desk, schema: dict[str, Any]
) -> None:
    Draft202012Validator.check_schema(schema)
    declared = {
        name
        for name, obj in vars(views).items()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == views.__name__
        and name.isidentifier()
        and not name.startswith("_")
        and obj is not views.View
    }
    assert len(declared) > 30
    assert declared <= set(schema["$defs"])  # every view, nested ones too
    assert set(schema["responses"]) == routes(desk)
    assert set(schema["events"]) == set(views.EVENT_VIEWS)
    for ref in [*schema["responses"].values(), *schema["events"].values(), schema["errors"]]:
        assert ref["$ref"].removeprefix("#/$defs/") in schema["$defs"]


def test_real_answers_fit_their_views(desk: Desk, schema: dict[str, Any]) -> None:
    api = desk.api
    anomaly = "/api/anomalies/{anomaly_id}"

    def check(route: str, response: httpx.Response, status: int = 200) -> Any:
        return answer(schema, route, response, status)

    check("POST /webhooks/qualytics", desk.post_webhook("01-flow-anomalies-detected.json"))
    kept_aside = api.post(
        "/webhooks/qualytics", json=[{"id": 91001, "status": "Snoozed"}, {"x": 1}]
    )
    assert check("POST /webhooks/qualytics", kept_aside)["quarantined"] == [
        {"path": "[1]", "reason": "id: missing"}
    ]
    check("GET /healthz", api.get("/healthz"))

    rows = check("GET /api/anomalies", api.get("/api/anomalies", params={"limit": 2}))
    assert rows["next_cursor"]
    assert set(rows["items"][0]) == set(views.AnomalySummary.model_fields)  # a row, not a doc
    assert check(f"GET {anomaly}", api.get("/api/anomalies/10231"))["history"]
    check(f"GET {anomaly}", api.get("/api/anomalies/91001"))  # a status kept as sent

    comment = {"text": "seen"}
    check(f"POST {anomaly}/comments", api.post("/api/anomalies/10231/comments", json=comment), 201)
    ticket = {"connection": "jira", "fields": {"summary": "nulls"}}
    link = check(
        f"POST {anomaly}/tickets", api.post("/api/anomalies/10231/tickets", json=ticket), 201
    )
    same = {"connection": "jira", "ticket": link["ticket_key"]}
    check(f"POST {anomaly}/links", api.post("/api/anomalies/10233/links", json=same), 201)
    check(f"POST {anomaly}/refresh", api.post("/api/anomalies/10231/refresh"))
    desk.wait_idle()

    desk.faults.update({"force_status": 401, "force_count": 5})  # the next note dies
    check(f"POST {anomaly}/acknowledge", api.post("/api/anomalies/10233/acknowledge"))
    desk.wait_idle()
    desk.faults.reset()
    resolved = {"status": "Resolved"}
    check(f"POST {anomaly}/archive", api.post("/api/anomalies/10231/archive", json=resolved))
    dead = check("GET /api/sync-jobs", api.get("/api/sync-jobs", params={"state": "dead"}))
    assert dead["items"]
    retry = f"/api/sync-jobs/{dead['items'][0]['id']}/retry"
    check("POST /api/sync-jobs/{job_id}/retry", api.post(retry))
    desk.wait_idle()
    check("GET /api/sync-jobs", api.get("/api/sync-jobs"))
    log = check("GET /api/sync-log", api.get("/api/sync-log"))
    assert {entry["outcome"] for entry in log["items"]} >= {"done", "dead"}
    unlink = api.delete(f"/api/anomalies/10231/links/{link['id']}")
    check(f"DELETE {anomaly}/links/{{link_id}}", unlink)

    check("GET /api/connections", api.get("/api/connections"))
    check("POST /api/connections/check", api.post("/api/connections/check"))
    found = api.get("/api/connections/jira/search", params={"q": "nulls"})
    assert check("GET /api/connections/{name}/search", found)["items"]
    options = api.get("/api/connections/servicenow/options")
    check("GET /api/connections/{name}/options", options)
    quarantine = check("GET /api/quarantine", api.get("/api/quarantine"))
    assert quarantine["items"][0]["raw"] == {"x": 1}

    for refused in (
        api.get("/api/anomalies/999"),
        api.post("/api/anomalies/10233/comments", json={"text": ""}),
        api.get("/api/anomalies", params={"cursor": "!"}),
    ):
        assert refused.headers["content-type"] == "application/problem+json"
        fits(schema, schema["errors"], refused.json())


def test_every_event_fits_its_view(pdesk: Desk, schema: dict[str, Any]) -> None:
    desk = pdesk  # with the platform's API: import.progress too
    seen: list[tuple[str, Any]] = []
    ready = threading.Event()
    done = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{desk.receiver.url}/api/events", timeout=30) as response:
            kind = None
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    ready.set()
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    seen.append((kind, json.loads(line[6:])))
                    if kind == "link.removed":
                        done.set()
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    desk.post_webhook("05-api-shape-anomaly.json")
    desk.api.post("/webhooks/qualytics", json=[{"x": 1}, {"id": 91002}])
    link = desk.api.post(
        "/api/anomalies/10261/tickets", json={"connection": "jira", "fields": {"summary": "live"}}
    ).json()
    desk.api.post("/api/anomalies/10261/comments", json={"text": "live"})
    desk.wait_idle()
    desk.faults.update({"force_status": 401, "force_count": 1})  # connection.health: jira down
    desk.api.post("/api/anomalies/10261/comments", json={"text": "refused"})
    desk.wait_idle()
    desk.api.post("/api/import", json={})
    deadline = time.monotonic() + 20
    while not desk.api.get("/api/import").json()["done"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    desk.api.post("/api/anomalies/10261/refresh")
    assert desk.api.post("/api/rules/inert/pause").status_code == 200  # rule.changed
    compactor = desk.receiver.app.state.compactor  # anomalies.compacted: archived is old now
    compactor.settings = compactor.settings.model_copy(update={"archive_after_days": 0})
    check = {"check_id": 1, "rule_type": "notNull", "fields": ["a"], "message": "x"}
    gone = {"id": 91003, "status": "Resolved", "weight": 5, "container": {"id": 1, "name": "t"}}
    desk.api.post("/webhooks/qualytics", json=[{**gone, "failed_checks": [check]}])  # not thin
    assert desk.api.post("/api/compact").json()["moved"] >= 1
    desk.api.delete(f"/api/anomalies/10261/links/{link['id']}")
    assert done.wait(20)

    kinds = {kind for kind, _ in seen}
    assert kinds >= set(views.EVENT_VIEWS) - {"stream.lagged"}, kinds
    for kind, data in seen:
        fits(schema, schema["events"][kind], data)
    updated = next(data for kind, data in seen if kind == "anomaly.updated")
    assert set(updated) == {*views.AnomalySummary.model_fields, "change"}  # the whole row
    removed = next(data for kind, data in seen if kind == "link.removed")
    assert removed["anomaly"]["id"] == 10261
    assert removed["anomaly"]["tickets"] == []  # the row as it is after the unlink
