"""The sandbox's controls of its platform emulator, over HTTP: what the demo steers it with.

``POST /_sandbox/platform/anomalies`` adds anomalies (a known id is left as it is: idempotent),
``GET /_sandbox/platform/writes`` lists the write calls the platform accepted. Neither needs the
platform's token, and faults never touch them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anomaly_desk.sandbox.platform import DEFAULT_TOKEN, SEED_START_ID
from tests.support import ThreadedServer

ADD = "/_sandbox/platform/anomalies"
WRITES = "/_sandbox/platform/writes"


@pytest.fixture
def control(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """No credentials: the controls are the sandbox's, not the platform's API."""
    with httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


@pytest.fixture
def api(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=10) as http:
        yield http


def test_added_anomalies_are_served_by_the_api_with_what_was_given(
    control: httpx.Client, api: httpx.Client
) -> None:
    answer = control.post(
        ADD,
        json=[
            {
                "id": 10240,
                "status": "Active",
                "type": "record",
                "weight": 70,
                "message": "currency has 2 unexpected values (XBT, ???)",
                "datastore": {"id": 12, "name": "warehouse_prod"},
                "container": {"id": 303, "name": "payments"},
                "fields": ["currency"],
            },
            {"id": 10261, "status": "Acknowledged"},
        ],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"added": [10240, 10261], "existing": []}

    full = api.get("/api/anomalies/10240").json()
    assert full["status"] == "Active"
    assert full["type"] == "record"
    assert full["weight"] == 70
    assert full["message"] == "currency has 2 unexpected values (XBT, ???)"
    assert full["datastore"] == {"id": 12, "name": "warehouse_prod"}
    assert full["container"] == {"id": 303, "name": "payments"}
    assert full["fields"] == [{"name": "currency"}]
    assert api.get("/api/anomalies/10261").json()["status"] == "Acknowledged"
    # open anomalies are listed with the seeded ones
    assert api.get("/api/anomalies", params={"size": 100}).json()["total"] == 196 + 2


def test_adding_again_leaves_a_known_anomaly_as_it_is(
    control: httpx.Client, api: httpx.Client
) -> None:
    items = [{"id": 10233, "status": "Active"}]
    assert control.post(ADD, json=items).json() == {"added": [10233], "existing": []}
    api.put("/api/anomalies/10233", json={"status": "Acknowledged"}).raise_for_status()

    again = control.post(ADD, json=[*items, {"id": 10234, "status": "Active"}])
    assert again.json() == {"added": [10234], "existing": [10233]}
    # its status moved on in the platform, and stays moved on
    assert api.get("/api/anomalies/10233").json()["status"] == "Acknowledged"
    # a seeded anomaly is left alone too
    seeded = api.get(f"/api/anomalies/{SEED_START_ID}").json()
    answer = control.post(ADD, json=[{"id": SEED_START_ID, "status": "Discarded"}])
    assert answer.json() == {"added": [], "existing": [SEED_START_ID]}
    assert api.get(f"/api/anomalies/{SEED_START_ID}").json() == seeded


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"id": 1, "status": "Active"}, "JSON list"),
        ([{"status": "Active"}], "id must be an integer"),
        ([{"id": True, "status": "Active"}], "id must be an integer"),
        ([{"id": 1, "status": "active"}], "status must be one of"),
        ([{"id": 1}], "status must be one of"),
        ([{"id": 1, "status": "Active", "type": "row"}], "type must be one of"),
        ([{"id": 1, "status": "Active", "weight": "high"}], "weight must be a number"),
        ([{"id": 1, "status": "Active", "datastore": "crm"}], "datastore"),
        ([{"id": 1, "status": "Active", "fields": "a,b"}], "fields must be a list"),
        ([{"id": 1, "status": "Active", "colour": "red"}], "unknown key(s) colour"),
        ([{"id": 1, "status": "Active", "created": "yesterday"}], "created must be"),
        (["10231"], "expected an object"),
    ],
)
def test_a_bad_item_refuses_the_whole_list(
    control: httpx.Client, api: httpx.Client, body: object, complaint: str
) -> None:
    items = body if not isinstance(body, list) else [{"id": 2, "status": "Active"}, *body]
    answer = control.post(ADD, json=items)
    assert answer.status_code == 400
    assert complaint in answer.json()["error"]
    assert api.get("/api/anomalies/2").status_code == 404  # nothing was added


def test_a_body_that_is_not_json_is_refused(control: httpx.Client) -> None:
    answer = control.post(ADD, content=b"{nope", headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert "not JSON" in answer.json()["error"]


def test_the_accepted_writes_of_one_anomaly_in_order(
    control: httpx.Client, api: httpx.Client
) -> None:
    control.post(ADD, json=[{"id": 10233, "status": "Active"}, {"id": 10240, "status": "Active"}])
    api.put("/api/anomalies/10233", json={"status": "Acknowledged"}).raise_for_status()
    api.post("/api/comments", json={"message": "Zoë is on it", "anomaly_id": 10233})
    api.post("/api/comments", json={"message": "other", "anomaly_id": 10240})
    api.delete("/api/anomalies/10233", params={"archive": "true", "status": "Resolved"})
    # refused: not accepted, so not listed
    assert api.post("/api/comments", json={"message": "late", "anomaly_id": 10233}).status_code == (
        409
    )
    assert api.put("/api/anomalies/10233", json={"status": "Active"}).status_code == 422

    items: list[dict[str, Any]] = control.get(WRITES, params={"anomaly_id": 10233}).json()["items"]
    assert [(c["method"], c["path"], c["query"], c["body"], c["status"]) for c in items] == [
        ("PUT", "/api/anomalies/10233", {}, {"status": "Acknowledged"}, 200),
        ("POST", "/api/comments", {}, {"message": "Zoë is on it", "anomaly_id": 10233}, 201),
        ("DELETE", "/api/anomalies/10233", {"archive": "true", "status": "Resolved"}, None, 200),
    ]
    assert all(c["anomaly_id"] == 10233 for c in items)
    assert [c["at"] for c in items] == sorted(c["at"] for c in items)
    assert all(c["at"].endswith("Z") for c in items)

    everything = control.get(WRITES).json()["items"]
    assert [c["anomaly_id"] for c in everything] == [10233, 10233, 10240, 10233]
    assert control.get(WRITES, params={"anomaly_id": 999}).json() == {"items": []}
    assert control.get(WRITES, params={"anomaly_id": "x"}).status_code == 400


def test_the_controls_need_no_token_and_ignore_faults(
    sandbox: ThreadedServer, control: httpx.Client, api: httpx.Client
) -> None:
    control.post("/_sandbox/faults", json={"fail_rate": 1.0}).raise_for_status()
    assert api.get("/api/anomalies").status_code == 503  # the platform's API is failing
    assert control.post(ADD, json=[{"id": 3, "status": "Active"}]).status_code == 200
    assert control.get(WRITES).status_code == 200


def test_reset_forgets_added_anomalies(control: httpx.Client, api: httpx.Client) -> None:
    control.post(ADD, json=[{"id": 10231, "status": "Active"}]).raise_for_status()
    api.put("/api/anomalies/10231", json={"status": "Acknowledged"}).raise_for_status()
    control.post("/_sandbox/reset").raise_for_status()
    assert api.get("/api/anomalies/10231").status_code == 404
    assert control.get(WRITES).json() == {"items": []}
    assert control.post(ADD, json=[{"id": 10231, "status": "Active"}]).json()["added"] == [10231]
