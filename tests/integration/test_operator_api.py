"""The operator API: precise refusals, live events, and a token when exposed."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import httpx
import pytest

from anomaly_desk.core.config import load_settings
from anomaly_desk.receiver.app import create_app
from tests.integration.conftest import Desk
from tests.support import ThreadedServer


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("post", "/api/anomalies/999/acknowledge", None, 404, "no anomaly with id 999"),
        ("post", "/api/anomalies/999/comments", {"text": "x"}, 404, "no anomaly with id 999"),
        (
            "post",
            "/api/anomalies/10260/tickets",
            {"connection": "github", "fields": {"summary": "x"}},
            422,
            "unknown connection 'github'",
        ),
        (
            "post",
            "/api/anomalies/10260/tickets",
            {"connection": "jira", "fields": {}},
            422,
            "fields.summary is required",
        ),
        (
            "post",
            "/api/anomalies/10260/tickets",
            {"connection": "servicenow", "fields": {"description": "x"}},
            422,
            "fields.short_description is required",
        ),
        (
            "post",
            "/api/anomalies/10260/tickets",
            {"fields": {"summary": "x"}},
            422,
            "connection: Field required",
        ),
        (
            "post",
            "/api/anomalies/10260/links",
            {"connection": "jira", "ticket": "DQ-999"},
            422,
            "Issue does not exist",
        ),
        (
            "post",
            "/api/anomalies/10260/links",
            {"connection": "servicenow", "ticket": "INC0099999"},
            422,
            "INC0099999",
        ),
        (
            "post",
            "/api/anomalies/10260/archive",
            {"status": "Acknowledged"},
            422,
            "cannot archive as Acknowledged",
        ),
        (
            "post",
            "/api/anomalies/10260/archive",
            {"status": "Gone"},
            422,
            "status: Input should be",
        ),
        (
            "post",
            "/api/anomalies/10260/comments",
            {"text": ""},
            422,
            "text: String should have at least 1 character",
        ),
        (
            "post",
            "/api/anomalies/10260/comments",
            {"text": "x", "extra": 1},
            422,
            "extra: Extra inputs are not permitted",
        ),
        ("delete", "/api/anomalies/10260/links/nope", None, 404, "has no link nope"),
        ("post", "/api/sync-jobs/4242/retry", None, 404, "no sync job 4242"),
        ("get", "/api/connections/nope/search?q=x", None, 422, "unknown connection 'nope'"),
    ],
)
def test_bad_input_is_refused_precisely(
    desk: Desk, method: str, path: str, body: object, status: int, says: str
) -> None:
    desk.post_webhook("04-api-record-anomaly.json")
    before = desk.api.get("/api/anomalies/10260").json()
    response = desk.api.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"], response.json()
    assert desk.api.get("/api/anomalies/10260").json() == before  # nothing changed


def test_non_json_bodies_are_refused(desk: Desk) -> None:
    desk.post_webhook("04-api-record-anomaly.json")
    assert (
        desk.api.post(
            "/api/anomalies/10260/comments", content=b"hi", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert (
        desk.api.post(
            "/api/anomalies/10260/comments",
            content=b"{",
            headers={"content-type": "application/json"},
        ).status_code
        == 400
    )
    assert desk.api.post("/api/anomalies/10260/acknowledge").status_code == 200
    again = desk.api.post("/api/anomalies/10260/acknowledge")
    assert again.status_code == 409
    assert "already Acknowledged" in again.json()["detail"]


def test_search_options_and_connections(desk: Desk) -> None:
    desk.post_webhook("04-api-record-anomaly.json")
    created = desk.api.post(
        "/api/anomalies/10260/tickets",
        json={"connection": "servicenow", "fields": {"short_description": "Region mapping broken"}},
    ).json()
    found = desk.api.get(
        "/api/connections/servicenow/search", params={"q": "Region mapping"}
    ).json()["items"]
    assert [t["key"] for t in found] == [created["ticket_key"]]
    assert found[0]["state"] == "New"
    jira = desk.api.get("/api/connections/jira/options").json()
    assert [o["value"] for o in jira["priority"]] == ["Highest", "High", "Medium", "Low", "Lowest"]
    snow = desk.api.get("/api/connections/servicenow/options").json()
    assert {"category", "urgency", "impact", "priority"} <= set(snow)
    health = desk.api.post("/api/connections/check").json()
    assert health["jira"]["ok"] is True
    assert health["servicenow"]["ok"] is True
    names = [c["name"] for c in desk.api.get("/api/connections").json()["items"]]
    assert names == ["jira", "servicenow"]


def test_events_stream_live(desk: Desk) -> None:
    seen: list[tuple[str, dict[str, object]]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{desk.receiver.url}/api/events", timeout=30) as response:
            event = None
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    ready.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event:
                    seen.append((event, json.loads(line[6:])))
                    if event == "sync.attempt":
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    desk.post_webhook("05-api-shape-anomaly.json")
    desk.api.post(
        "/api/anomalies/10261/tickets", json={"connection": "jira", "fields": {"summary": "live"}}
    )
    desk.api.post("/api/anomalies/10261/comments", json={"text": "live"})
    thread.join(20)
    kinds = [kind for kind, _ in seen]
    assert kinds[:3] == ["anomaly.created", "link.created", "anomaly.updated"], kinds
    # rows, as the list shows them: a dashboard updates its table from the event alone
    created, linked, updated = (data for _, data in seen[:3])
    key = linked["link"]["ticket_key"]
    assert (created["id"], created["tickets"]) == (10261, [])
    assert linked["anomaly"]["tickets"] == [key]
    assert (updated["id"], updated["change"], updated["tickets"]) == (10261, "comment", [key])
    assert "history" not in updated
    assert kinds[-1] == "sync.attempt"
    assert seen[-1][1]["outcome"] == "done"


def test_an_exposed_receiver_wants_its_token(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"data_dir": tmp_path, "host": "0.0.0.0"},
        env={"ANOMALY_DESK_WEBHOOK_SECRET": "s"},
    )
    app = create_app(settings)  # bound to loopback here; the settings say it is exposed
    token_file = tmp_path / "operator-token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token = token_file.read_text().strip()
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url) as client:
        refused = client.get("/api/anomalies")
        assert refused.status_code == 401
        assert token not in refused.text
        assert (
            client.get("/api/anomalies", headers={"authorization": "Bearer nope"}).status_code
            == 401
        )
        assert (
            client.get("/api/anomalies", headers={"authorization": f"Bearer {token}"}).status_code
            == 200
        )
        assert client.get("/healthz").status_code == 200
    assert create_app(settings) is not None
    assert token_file.read_text().strip() == token  # made once, kept
