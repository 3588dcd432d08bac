"""Odd but usable deliveries are kept; only what cannot be keyed is set aside, never its siblings.

Each case here was a 422 for the whole envelope before: the sender retried forever and the
anomaly's siblings never arrived.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.receiver.conftest import snapshot_dir
from tests.support import ThreadedServer

JSON = {"content-type": "application/json"}


def envelope(*anomalies: object, **trigger: str) -> dict[str, object]:
    return {
        "event": "qualytics.flow.triggered",
        "trigger": {"type": "anomaly", **trigger},
        "context": {"anomalies": list(anomalies)},
    }


@pytest.mark.parametrize(
    ("item", "field", "stored", "as_sent"),
    [
        ({"type": "row"}, "type", "row", None),  # unknown type: kept as given
        ({"type": "RecordAnomaly"}, "type", "record", "RecordAnomaly"),  # maps to a category
        ({"weight": 12.5}, "weight", 12.5, None),  # the platform types weight float|int
        ({"weight": "heavy"}, "weight", None, "heavy"),
        ({"status": "Snoozed"}, "status", "Snoozed", None),  # a status we do not know yet
        ({"message": {"en": "x"}}, "message", '{"en":"x"}', {"en": "x"}),
        ({"message": 42}, "message", "42", 42),
        (
            {"created": "01/15/2026 10:30:00"},
            "created",
            "2026-01-15T10:30:00Z",
            "01/15/2026 10:30:00",
        ),
        ({"created": "Thu, 15 Jan 2026 10:30:00 GMT"}, "created", "2026-01-15T10:30:00Z", ...),
        ({"created": "sometime"}, "created", None, "sometime"),
        ({"global_tags": [{"name": "finance"}, {"color": "red"}]}, "global_tags", ["finance"], ...),
        ({"fields": [1, None, "amount"]}, "fields", ["1", "amount"], [1, None, "amount"]),
        ({"id": "77001"}, "id", 77001, None),  # a digit string is the same id
    ],
)
def test_odd_values_are_kept_as_sent_and_siblings_stored(
    client: httpx.Client, item: dict[str, object], field: str, stored: object, as_sent: object
) -> None:
    odd = {"id": 77001, **item}
    sibling = {"id": 77002, "message": "a plain sibling"}
    response = client.post("/webhooks/qualytics", json=envelope(odd, sibling))
    assert response.status_code == 200, response.text
    assert sorted(response.json()["created"]) == [77001, 77002]
    doc = client.get("/api/anomalies/77001").json()
    assert doc.get(field) == stored
    if as_sent is ...:
        as_sent = item[field]
    assert (doc.get("odd") or {}).get(field) == as_sent
    assert client.get("/api/anomalies/77002").json()["message"] == "a plain sibling"


def test_an_unknown_status_is_open_and_can_be_acted_on(client: httpx.Client) -> None:
    client.post("/webhooks/qualytics", json={"id": 77010, "status": "Snoozed"})
    open_ids = [a["id"] for a in client.get("/api/anomalies").json()["items"]]
    assert 77010 in open_ids  # never hidden from the default view
    named = client.get("/api/anomalies", params={"status": "snoozed"}).json()["items"]
    assert [a["id"] for a in named] == [77010]
    response = client.post("/api/anomalies/77010/acknowledge")
    assert response.status_code == 200, response.text
    assert response.json()["history"][-1]["from"] == "Snoozed"


def test_an_item_without_a_usable_id_is_quarantined_and_its_siblings_stored(
    client: httpx.Client,
) -> None:
    body = envelope({"id": 77020}, {"name": "no id"}, {"id": -3}, "not an object", {"id": 77021})
    response = client.post("/webhooks/qualytics", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["created"] == [77020, 77021]
    reasons = {q["path"]: q["reason"] for q in result["quarantined"]}
    assert reasons == {
        "context.anomalies[1]": "id: missing",
        "context.anomalies[2]": "id: -3 is outside 1..9223372036854775807",
        "context.anomalies[3]": "expected an anomaly object, got str",
    }
    items = client.get("/api/quarantine").json()["items"]
    assert sorted(orjson.dumps(i["raw"]) for i in items) == sorted(
        orjson.dumps(raw) for raw in ({"name": "no id"}, {"id": -3}, "not an object")
    )
    assert {i["reason"] for i in items} == set(reasons.values())
    # a redelivery of the same body quarantines nothing twice
    client.post("/webhooks/qualytics", json=body)
    assert len(client.get("/api/quarantine").json()["items"]) == 3


def test_a_bom_and_lone_surrogates_never_cost_a_delivery(
    client: httpx.Client, receiver: ThreadedServer
) -> None:
    body = (
        b'\xef\xbb\xbf{"id": 77030, "message": "broken \\ud800 pair", "container": "caf\xc3\xa9"}'
    )
    response = client.post("/webhooks/qualytics", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    doc = client.get("/api/anomalies/77030").json()
    assert doc["message"] == "broken \ufffd pair"
    assert doc["container"]["name"] == "café"
    bad_bytes = b'{"id": 77031, "message": "latin-1 \xe9 byte"}'  # not UTF-8, no charset said
    assert client.post("/webhooks/qualytics", content=bad_bytes, headers=JSON).status_code == 200
    assert client.get("/api/anomalies/77031").json()["message"] == "latin-1 \ufffd byte"
    # and the journal is still readable: the receiver restarts with both
    assert snapshot_dir(receiver.data_dir)  # type: ignore[attr-defined]


def test_odd_values_survive_a_restart(start_receiver, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "restart"
    server = start_receiver({}, data_dir=data)
    body = {"id": 77040, "weight": "heavy", "status": "Snoozed", "type": "row"}
    assert httpx.post(f"{server.url}/webhooks/qualytics", json=body).status_code == 200
    server.stop()
    again = start_receiver({}, data_dir=data)
    doc = httpx.get(f"{again.url}/api/anomalies/77040").json()
    assert (doc["status"], doc["type"], doc["odd"]) == ("Snoozed", "row", {"weight": "heavy"})
