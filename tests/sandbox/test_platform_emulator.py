"""The data-quality platform emulator answers like the platform's API, over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from anomaly_desk.sandbox.faults import JIRA_PATHS, PLATFORM_PATHS, Faults
from anomaly_desk.sandbox.platform import (
    DEFAULT_TOKEN,
    READ_ONLY_TOKEN,
    PlatformEmulator,
    seed_anomalies,
)
from anomaly_desk.sandbox.server import banner
from tests.support import FIXTURES, ThreadedServer

ANOMALIES = "/api/anomalies"
COMMENTS = "/api/comments"
JIRA_MYSELF = "/rest/api/3/myself"
JIRA_AUTH = ("demo@example.com", "demo-token")
SN_INCIDENTS = "/api/now/table/incident"
SN_AUTH = ("admin", "demo")
ARCHIVED = {"Resolved", "Duplicate", "Invalid", "Discarded"}
DAY = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def platform_of(sandbox: ThreadedServer) -> PlatformEmulator:
    return sandbox.app.state.platform  # type: ignore[attr-defined, no-any-return]


def faults_of(sandbox: ThreadedServer) -> Faults:
    return sandbox.app.state.faults  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def api(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """A client of the platform with the seeded read-write token."""
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=10) as http:
        yield http


@pytest.fixture
def platform(sandbox: ThreadedServer) -> PlatformEmulator:
    return platform_of(sandbox)


@pytest.fixture
def small(platform: PlatformEmulator) -> PlatformEmulator:
    """Seven known anomalies a day apart, 1001 the oldest: five open, two archived."""
    platform.clear()
    statuses = ["Active", "Acknowledged", "Resolved", "Active", "Invalid", "Active", "Active"]
    for offset, status in enumerate(statuses):
        platform.add(
            1001 + offset,
            status=status,
            created=DAY + timedelta(days=offset),
            datastore=(12, "warehouse_prod") if offset % 2 else (14, "crm_replica"),
            container=(300 + offset % 3, f"table_{offset % 3}"),
            tags=["finance"] if offset < 3 else [],
        )
    return platform


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def locs(response: httpx.Response) -> list[list[Any]]:
    """The ``loc`` of each validation error of a 422 (FastAPI's body)."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    assert all(item["msg"] and item["type"] for item in detail)
    return [item["loc"] for item in detail]


# -- authentication ---------------------------------------------------------------------------


def test_a_missing_or_wrong_token_is_401_with_a_detail(sandbox: ThreadedServer) -> None:
    before = platform_of(sandbox).anomalies[20001].status
    with httpx.Client(base_url=sandbox.url) as http:
        missing = http.get(ANOMALIES)
        wrong = http.get(ANOMALIES, headers={"Authorization": "Bearer nope"})
        basic = http.get(ANOMALIES, auth=JIRA_AUTH)
        write = http.put(f"{ANOMALIES}/20001", json={"status": "Acknowledged"})
    for response in (missing, wrong, basic, write):
        assert response.status_code == 401
        assert isinstance(response.json()["detail"], str)
        assert response.headers["www-authenticate"] == "Bearer"
    assert platform_of(sandbox).anomalies[20001].status == before


def test_a_read_only_token_reads_but_every_write_is_403(
    sandbox: ThreadedServer, platform: PlatformEmulator
) -> None:
    active = next(a.id for a in platform.anomalies.values() if a.status == "Active")
    headers = {"Authorization": f"Bearer {READ_ONLY_TOKEN}"}
    with httpx.Client(base_url=sandbox.url, headers=headers) as http:
        assert http.get(ANOMALIES).status_code == 200
        assert http.get(f"{ANOMALIES}/{active}").status_code == 200
        writes = [
            http.put(f"{ANOMALIES}/{active}", json={"status": "Acknowledged"}),
            http.delete(f"{ANOMALIES}/{active}", params={"archive": "true", "status": "Resolved"}),
            http.post(COMMENTS, json={"message": "hi", "anomaly_id": active}),
        ]
    for response in writes:
        assert response.status_code == 403
        assert "read-only" in response.json()["detail"]
    assert platform.anomalies[active].status == "Active"
    assert platform.comments == []
    assert [c.status for c in platform.writes(active)] == [403, 403, 403]


def test_the_accepted_tokens_are_configurable(
    sandbox: ThreadedServer, platform: PlatformEmulator
) -> None:
    platform.token = "rotated"
    platform.read_only_tokens = {"viewer-2"}
    with httpx.Client(base_url=sandbox.url) as http:
        old = http.get(ANOMALIES, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
        new = http.get(ANOMALIES, headers={"Authorization": "Bearer rotated"})
        viewer = http.get(ANOMALIES, headers={"Authorization": "Bearer viewer-2"})
        comment = http.post(
            COMMENTS,
            json={"message": "x", "anomaly_id": 20001},
            headers={"Authorization": "Bearer viewer-2"},
        )
    assert (old.status_code, new.status_code, viewer.status_code) == (401, 200, 200)
    assert comment.status_code == 403
    assert PlatformEmulator(token="t").user_for(DEFAULT_TOKEN) is None


# -- the seed -----------------------------------------------------------------------------------


def fixture_ids() -> set[int]:
    found: set[int] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("id"), int) and ("status" in value or "message" in value):
                found.add(value["id"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in sorted((FIXTURES / "webhooks").glob("*.json")):
        walk(json.loads(path.read_text()))
    return found


def test_the_default_seed_is_mixed_deterministic_and_clear_of_the_fixtures(
    api: httpx.Client, platform: PlatformEmulator
) -> None:
    seeded = platform.anomalies
    assert sorted(seeded) == list(range(20001, 20301))
    assert fixture_ids()
    assert not fixture_ids() & set(seeded)
    statuses = {a.status for a in seeded.values()}
    assert statuses == {"Active", "Acknowledged"} | ARCHIVED
    assert {type(a.weight) for a in seeded.values()} == {int, float}
    assert {a.type for a in seeded.values()} == {"record", "shape"}
    assert len({a.datastore.id for a in seeded.values()}) >= 3
    assert len({a.container.id for a in seeded.values()}) >= 6
    created = [a.created for a in seeded.values()]
    assert max(created) - min(created) > timedelta(days=30)
    again = [(a.id, a.status, a.weight, a.created, a.message) for a in seed_anomalies(300)]
    assert again == [(a.id, a.status, a.weight, a.created, a.message) for a in seeded.values()]
    # what the API says matches: archived ones are left out by default
    open_count = sum(a.status not in ARCHIVED for a in seeded.values())
    assert api.get(ANOMALIES).json()["total"] == open_count
    assert api.get(ANOMALIES, params={"archived": "include"}).json()["total"] == 300


def test_seed_and_add_steer_the_world(api: httpx.Client, platform: PlatformEmulator) -> None:
    made = platform.seed(12, start_id=500)
    assert [a.id for a in made] == list(range(500, 512))
    assert api.get(ANOMALIES, params={"archived": "include"}).json()["total"] == 12
    added = platform.add(status="Acknowledged", weight=2.5, tags=["pii"])
    assert added.id == 512
    body = api.get(f"{ANOMALIES}/512").json()
    assert (body["status"], body["weight"], body["global_tags"]) == (
        "Acknowledged",
        2.5,
        [{"name": "pii"}],
    )
    with pytest.raises(ValueError, match="exists"):
        platform.add(512)
    with pytest.raises(ValueError, match="status"):
        platform.add(status="Closed")


# -- reads ----------------------------------------------------------------------------------------


def test_one_anomaly_in_full(api: httpx.Client, platform: PlatformEmulator) -> None:
    anomaly = platform.add(
        4242,
        created=datetime(2026, 11, 20, 8, 15, 42, 123000, tzinfo=UTC),
        fields=["customer_id", "amount"],
        rule_type="notNull",
        check_id=9001,
        tags=["finance"],
        message="customer_id is null in 1,204 records",
        anomalous_records_count=1204,
    )
    response = api.get(f"{ANOMALIES}/4242")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"] == 4242
    assert body["uuid"] == anomaly.uuid
    assert (body["type"], body["status"], body["weight"]) == ("record", "Active", 50)
    assert body["created"] == "2026-11-20T08:15:42.123Z"
    assert body["datastore"] == {"id": 12, "name": "warehouse_prod"}
    assert body["container"] == {"id": 301, "name": "orders"}
    assert body["fields"] == [{"name": "customer_id"}, {"name": "amount"}]
    assert body["message"] == "customer_id is null in 1,204 records"
    check = body["failed_checks"][0]["quality_check"]
    assert (check["id"], check["rule_type"]) == (9001, "notNull")
    assert body["global_tags"] == [{"name": "finance"}]
    assert body["anomalous_records_count"] == 1204
    assert isinstance(body["fingerprint"], int)
    assert "description" in body


def test_seeded_anomalies_render_with_z_times_and_named_objects(api: httpx.Client) -> None:
    items = api.get(ANOMALIES, params={"archived": "include", "size": 100}).json()["items"]
    for item in items:
        assert item["created"].endswith("Z")
        datetime.fromisoformat(item["created"])
        assert all(set(field) == {"name"} for field in item["fields"])
        assert all("name" in tag for tag in item["global_tags"])
        assert item["failed_checks"][0]["quality_check"]["rule_type"]
        assert item["type"] in {"record", "shape"}


def test_an_unknown_anomaly_is_404_and_a_bad_id_422(api: httpx.Client) -> None:
    missing = api.get(f"{ANOMALIES}/10231")  # a fixture's id: not on the platform
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Anomaly not found"}
    assert locs(api.get(f"{ANOMALIES}/abc")) == [["path", "anomaly_id"]]
    other = api.get("/api/not-a-thing")
    assert (other.status_code, other.json()) == (404, {"detail": "Not Found"})
    wrong_method = api.patch(f"{ANOMALIES}/20001", json={})
    assert (wrong_method.status_code, wrong_method.json()) == (
        405,
        {"detail": "Method Not Allowed"},
    )


def test_paging_with_total(api: httpx.Client, small: PlatformEmulator) -> None:
    pages = [api.get(ANOMALIES, params={"size": 2, "page": page}).json() for page in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [5, 5, 5, 5]
    assert [(p["page"], p["size"]) for p in pages] == [(1, 2), (2, 2), (3, 2), (4, 2)]
    seen = [item["id"] for p in pages for item in p["items"]]
    assert seen == [1007, 1006, 1004, 1002, 1001]  # newest first, archived left out
    assert pages[3]["items"] == []
    default = api.get(ANOMALIES).json()
    assert (default["page"], default["size"], default["total"]) == (1, 50, 5)
    oldest_first = ids(api.get(ANOMALIES, params={"sort_created": "asc"}))
    assert oldest_first == [1001, 1002, 1004, 1006, 1007]


def test_paging_limits_are_422(api: httpx.Client, small: PlatformEmulator) -> None:
    too_big = api.get(ANOMALIES, params={"size": 101})
    assert locs(too_big) == [["query", "size"]]
    assert "100" in too_big.json()["detail"][0]["msg"]
    assert api.get(ANOMALIES, params={"size": 100}).status_code == 200
    assert locs(api.get(ANOMALIES, params={"page": 0})) == [["query", "page"]]
    assert locs(api.get(ANOMALIES, params={"size": "ten"})) == [["query", "size"]]
    assert locs(api.get(ANOMALIES, params={"sort_created": "newest"})) == [
        ["query", "sort_created"]
    ]


def test_paging_the_whole_seed_sees_each_anomaly_once(
    api: httpx.Client, platform: PlatformEmulator
) -> None:
    seen: list[int] = []
    page = 1
    while True:
        body = api.get(ANOMALIES, params={"archived": "include", "size": 100, "page": page}).json()
        assert body["total"] == 300
        if not body["items"]:
            break
        seen += [item["id"] for item in body["items"]]
        page += 1
    assert page == 4
    assert sorted(seen) == sorted(platform.anomalies)
    created = [platform.anomalies[i].created for i in seen]
    assert created == sorted(created, reverse=True)


def test_the_archived_filter(api: httpx.Client, small: PlatformEmulator) -> None:
    assert ids(api.get(ANOMALIES)) == [1007, 1006, 1004, 1002, 1001]
    assert ids(api.get(ANOMALIES, params={"archived": "only"})) == [1005, 1003]
    assert ids(api.get(ANOMALIES, params={"archived": "include"})) == list(range(1007, 1000, -1))
    assert locs(api.get(ANOMALIES, params={"archived": "yes"})) == [["query", "archived"]]


def test_the_status_filter_is_exact_and_meets_the_archived_filter(
    api: httpx.Client, small: PlatformEmulator
) -> None:
    assert ids(api.get(ANOMALIES, params={"status": "Acknowledged"})) == [1002]
    assert ids(api.get(ANOMALIES, params={"status": "Active"})) == [1007, 1006, 1004, 1001]
    # an archived status finds nothing while archived anomalies are left out
    assert ids(api.get(ANOMALIES, params={"status": "Resolved"})) == []
    resolved = {"status": "Resolved", "archived": "include"}
    assert ids(api.get(ANOMALIES, params=resolved)) == [1003]
    both = [("status", "Invalid"), ("status", "Acknowledged"), ("archived", "include")]
    assert ids(api.get(ANOMALIES, params=both)) == [1005, 1002]
    assert locs(api.get(ANOMALIES, params={"status": "active"})) == [["query", "status", 0]]


def test_datastore_container_tag_and_date_filters(
    api: httpx.Client, small: PlatformEmulator
) -> None:
    assert ids(api.get(ANOMALIES, params={"datastore": 12})) == [1006, 1004, 1002]
    assert ids(api.get(ANOMALIES, params={"container": 300})) == [1007, 1004, 1001]
    assert ids(api.get(ANOMALIES, params={"datastore": 14, "container": 300})) == [1007, 1001]
    assert ids(api.get(ANOMALIES, params={"tag": "finance"})) == [1002, 1001]
    assert ids(api.get(ANOMALIES, params={"tag": "nope"})) == []
    # dates bound whole days (end inclusive); date-times are exact
    days = {"start_date": "2026-11-02", "end_date": "2026-11-04"}
    assert ids(api.get(ANOMALIES, params=days)) == [1004, 1002]
    exact = {"start_date": "2026-11-02T12:00:00Z", "end_date": "2026-11-04T11:59:59Z"}
    assert ids(api.get(ANOMALIES, params=exact)) == [1002]
    assert ids(api.get(ANOMALIES, params={"end_date": "2026-11-01"})) == [1001]
    assert locs(api.get(ANOMALIES, params={"start_date": "last week"})) == [["query", "start_date"]]
    assert locs(api.get(ANOMALIES, params={"datastore": "warehouse_prod"})) == [
        ["query", "datastore", 0]
    ]


# -- acknowledge ----------------------------------------------------------------------------------


def test_acknowledge_an_active_anomaly_then_again(
    api: httpx.Client, platform: PlatformEmulator
) -> None:
    anomaly = platform.add(status="Active")
    first = api.put(f"{ANOMALIES}/{anomaly.id}", json={"status": "Acknowledged"})
    assert first.status_code == 200
    assert first.json()["status"] == "Acknowledged"
    assert first.json()["id"] == anomaly.id
    again = api.put(f"{ANOMALIES}/{anomaly.id}", json={"status": "Acknowledged"})
    assert again.status_code == 200
    assert platform.anomalies[anomaly.id].status == "Acknowledged"
    calls = platform.writes(anomaly.id)
    assert [(c.method, c.status, c.body) for c in calls] == [
        ("PUT", 200, {"status": "Acknowledged"}),
        ("PUT", 200, {"status": "Acknowledged"}),
    ]
    assert calls[0].token == DEFAULT_TOKEN


@pytest.mark.parametrize("status", sorted(ARCHIVED))
def test_acknowledging_an_archived_anomaly_is_409(
    api: httpx.Client, platform: PlatformEmulator, status: str
) -> None:
    anomaly = platform.add(status=status)
    response = api.put(f"{ANOMALIES}/{anomaly.id}", json={"status": "Acknowledged"})
    assert response.status_code == 409
    assert status in response.json()["detail"]
    assert platform.anomalies[anomaly.id].status == status


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"status": "Resolved"}, ["body", "status"]),
        ({"status": "Active"}, ["body", "status"]),
        ({"status": "acknowledged"}, ["body", "status"]),
        ({"status": 2}, ["body", "status"]),
        ({}, ["body", "status"]),
        ({"status": "Acknowledged", "note": "x"}, ["body", "note"]),
        (["Acknowledged"], ["body"]),
    ],
)
def test_acknowledge_takes_only_the_acknowledged_status(
    api: httpx.Client, platform: PlatformEmulator, body: object, loc: list[str]
) -> None:
    anomaly = platform.add(status="Active")
    response = api.put(f"{ANOMALIES}/{anomaly.id}", json=body)
    assert locs(response) == [loc]
    assert platform.anomalies[anomaly.id].status == "Active"


def test_acknowledge_refuses_bodies_that_are_not_json(
    api: httpx.Client, platform: PlatformEmulator
) -> None:
    url = f"{ANOMALIES}/{platform.add().id}"
    assert locs(api.put(url)) == [["body"]]
    broken = api.put(url, content=b"{status", headers={"content-type": "application/json"})
    assert locs(broken)[0][0] == "body"
    assert broken.json()["detail"][0]["type"] == "json_invalid"
    text = api.put(url, content=b"Acknowledged", headers={"content-type": "text/plain"})
    assert locs(text) == [["body"]]


def test_acknowledge_an_unknown_anomaly_is_404(
    api: httpx.Client, platform: PlatformEmulator
) -> None:
    response = api.put(f"{ANOMALIES}/999999", json={"status": "Acknowledged"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Anomaly not found"}
    assert [(c.anomaly_id, c.status) for c in platform.writes()] == [(999999, 404)]


# -- archive --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(ARCHIVED))
def test_archive_with_each_status(
    api: httpx.Client, platform: PlatformEmulator, status: str
) -> None:
    anomaly = platform.add(status="Acknowledged")
    response = api.delete(f"{ANOMALIES}/{anomaly.id}", params={"archive": "true", "status": status})
    assert response.status_code == 200
    assert response.json()["status"] == status
    assert platform.anomalies[anomaly.id].status == status
    assert anomaly.id not in ids(api.get(ANOMALIES, params={"size": 100}))
    assert anomaly.id in ids(api.get(ANOMALIES, params={"archived": "only", "size": 100}))


def test_archiving_an_archived_anomaly_is_409(
    api: httpx.Client, platform: PlatformEmulator
) -> None:
    anomaly = platform.add(status="Active")
    url = f"{ANOMALIES}/{anomaly.id}"
    assert api.delete(url, params={"archive": "true", "status": "Resolved"}).status_code == 200
    again = api.delete(url, params={"archive": "true", "status": "Duplicate"})
    assert again.status_code == 409
    assert "Resolved" in again.json()["detail"]
    assert platform.anomalies[anomaly.id].status == "Resolved"
    assert [c.status for c in platform.writes(anomaly.id)] == [200, 409]


def test_archive_refuses_a_bad_status_and_a_real_deletion(
    api: httpx.Client, platform: PlatformEmulator
) -> None:
    url = f"{ANOMALIES}/{platform.add(status='Active').id}"
    for status in ("Active", "Acknowledged", "resolved", "Closed"):
        bad = api.delete(url, params={"archive": "true", "status": status})
        assert locs(bad) == [["query", "status"]]
    assert locs(api.delete(url, params={"archive": "true"})) == [["query", "status"]]
    assert locs(api.delete(url, params={"archive": "maybe", "status": "Resolved"})) == [
        ["query", "archive"]
    ]
    for params in ({"status": "Resolved"}, {"archive": "false", "status": "Resolved"}, {}):
        deletion = api.delete(url, params=params)
        assert deletion.status_code == 422
        assert "not emulated" in deletion.json()["detail"]
    assert platform.anomalies[int(url.rsplit("/", 1)[1])].status == "Active"
    missing = api.delete(f"{ANOMALIES}/999999", params={"archive": "true", "status": "Resolved"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Anomaly not found"})


# -- comments -------------------------------------------------------------------------------------


def test_comment_then_list_oldest_first(api: httpx.Client, platform: PlatformEmulator) -> None:
    anomaly = platform.add(status="Acknowledged")
    first = api.post(COMMENTS, json={"message": "Ticket DQ-1 created", "anomaly_id": anomaly.id})
    assert first.status_code == 201
    body = first.json()
    assert set(body) == {"id", "message", "anomaly_id", "created", "user"}
    assert (body["message"], body["anomaly_id"]) == ("Ticket DQ-1 created", anomaly.id)
    assert body["created"].endswith("Z")
    assert body["user"]["name"]
    second = api.post(COMMENTS, json={"message": "Zoë ✓ 東京", "anomaly_id": anomaly.id})
    assert second.status_code == 201
    listed = api.get(f"{ANOMALIES}/{anomaly.id}/comments")
    assert listed.status_code == 200
    assert [c["message"] for c in listed.json()] == ["Ticket DQ-1 created", "Zoë ✓ 東京"]
    assert [c["id"] for c in listed.json()] == [body["id"], second.json()["id"]]
    assert api.get(f"{ANOMALIES}/20001/comments").json() == []
    assert api.get(f"{ANOMALIES}/999999/comments").status_code == 404
    # exactly once: two accepted writes, each logged once
    assert [c.status for c in platform.writes(anomaly.id, ok=True)] == [201, 201]
    assert [c.message for c in platform.comments_of(anomaly.id)] == [
        "Ticket DQ-1 created",
        "Zoë ✓ 東京",
    ]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"message": "", "anomaly_id": 20001}, ["body", "message"]),
        ({"message": "   ", "anomaly_id": 20001}, ["body", "message"]),
        ({"message": None, "anomaly_id": 20001}, ["body", "message"]),
        ({"anomaly_id": 20001}, ["body", "message"]),
        ({"message": "hi"}, ["body", "anomaly_id"]),
        ({"message": "hi", "anomaly_id": "x"}, ["body", "anomaly_id"]),
        ({"text": "hi", "message": "hi", "anomaly_id": 20001}, ["body", "text"]),
    ],
)
def test_a_comment_needs_a_message_and_an_anomaly_id(
    api: httpx.Client, platform: PlatformEmulator, body: dict[str, Any], loc: list[str]
) -> None:
    assert locs(api.post(COMMENTS, json=body)) == [loc]
    assert platform.comments == []


def test_a_comment_on_an_unknown_or_archived_anomaly_is_refused(
    api: httpx.Client, platform: PlatformEmulator
) -> None:
    unknown = api.post(COMMENTS, json={"message": "hi", "anomaly_id": 999999})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Anomaly not found"})
    archived = platform.add(status="Discarded")
    refused = api.post(COMMENTS, json={"message": "hi", "anomaly_id": archived.id})
    assert refused.status_code == 409
    assert "archived" in refused.json()["detail"]
    assert platform.comments == []
    assert api.get(f"{ANOMALIES}/{archived.id}/comments").json() == []


# -- the anomaly page -----------------------------------------------------------------------------


def test_the_anomaly_link_opens_a_page(sandbox: ThreadedServer, platform: PlatformEmulator) -> None:
    anomaly = platform.add(message="amount <out of range>")
    page = httpx.get(f"{sandbox.url}/anomalies/{anomaly.id}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"Anomaly {anomaly.id}" in page.text
    assert "amount &lt;out of range&gt;" in page.text
    assert httpx.get(f"{sandbox.url}/anomalies/999999").status_code == 404


# -- reset, faults, banner ------------------------------------------------------------------------


def test_reset_restores_the_seed_tokens_and_an_empty_log(
    sandbox: ThreadedServer, api: httpx.Client, platform: PlatformEmulator
) -> None:
    active = next(a.id for a in platform.anomalies.values() if a.status == "Active")
    assert api.put(f"{ANOMALIES}/{active}", json={"status": "Acknowledged"}).status_code == 200
    assert api.post(COMMENTS, json={"message": "x", "anomaly_id": active}).status_code == 201
    platform.token = "changed"
    platform.add(1)
    httpx.post(f"{sandbox.url}/_sandbox/reset").raise_for_status()
    assert platform.anomalies[active].status == "Active"
    assert 1 not in platform.anomalies
    assert len(platform.anomalies) == 300
    assert (platform.comments, platform.calls) == ([], [])
    assert platform.token == DEFAULT_TOKEN


def test_faults_on_the_platform_paths_leave_jira_and_servicenow_working(
    sandbox: ThreadedServer, api: httpx.Client
) -> None:
    faults_of(sandbox).update(
        {"force_status": 503, "force_count": 100, "path_prefix": PLATFORM_PATHS}
    )
    listed = api.get(ANOMALIES)
    assert listed.status_code == 503
    assert listed.json() == {"detail": "Service Unavailable"}
    comment = api.post(COMMENTS, json={"message": "x", "anomaly_id": 20001})
    assert comment.status_code == 503
    assert platform_of(sandbox).calls == []  # refused before it reached the platform
    assert httpx.get(f"{sandbox.url}{JIRA_MYSELF}", auth=JIRA_AUTH).status_code == 200
    assert httpx.get(f"{sandbox.url}{SN_INCIDENTS}", auth=SN_AUTH).status_code == 200
    assert faults_of(sandbox).force_count == 98  # only the platform's requests used it up


def test_faults_on_jira_only_leave_the_platform_working(
    sandbox: ThreadedServer, api: httpx.Client
) -> None:
    with httpx.Client(base_url=sandbox.url) as control:
        changed = control.post(
            "/_sandbox/faults", json={"fail_rate": 1.0, "path_prefix": JIRA_PATHS}
        )
        assert changed.status_code == 200
        assert changed.json()["path_prefix"] == "/rest/api"
        jira = httpx.get(f"{sandbox.url}{JIRA_MYSELF}", auth=JIRA_AUTH)
        assert jira.status_code == 503
        assert jira.json() == {"errorMessages": ["Service Unavailable"], "errors": {}}
        assert api.get(ANOMALIES).status_code == 200
        assert api.put(f"{ANOMALIES}/20001", json={"status": "Acknowledged"}).status_code in (
            200,
            409,
        )
        refused = control.post("/_sandbox/faults", json={"path_prefix": "rest/api"})
        assert refused.status_code == 400
        assert "path_prefix" in refused.json()["error"]
        assert control.post("/_sandbox/reset").json()["path_prefix"] is None
    assert httpx.get(f"{sandbox.url}{JIRA_MYSELF}", auth=JIRA_AUTH).status_code == 200


def test_path_prefix_unset_keeps_faults_on_every_path(
    sandbox: ThreadedServer, api: httpx.Client
) -> None:
    faults_of(sandbox).update({"fail_rate": 1.0})
    assert api.get(ANOMALIES).status_code == 503
    assert httpx.get(f"{sandbox.url}{JIRA_MYSELF}", auth=JIRA_AUTH).status_code == 503
    faults_of(sandbox).update({"path_prefix": ["/api/comments", "/rest/api"]})
    assert faults_of(sandbox).path_prefix == "/api/comments,/rest/api"
    assert api.get(ANOMALIES).status_code == 200
    assert api.post(COMMENTS, json={"message": "x", "anomaly_id": 20001}).status_code == 503
    with pytest.raises(ValueError, match="path_prefix"):
        faults_of(sandbox).update({"path_prefix": 3})


def test_platform_rate_limit_answers_429_with_retry_after(
    sandbox: ThreadedServer, api: httpx.Client
) -> None:
    faults_of(sandbox).update({"rate_limit": 1, "path_prefix": PLATFORM_PATHS})
    responses = [api.get(ANOMALIES, params={"size": 1}) for _ in range(3)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json() == {"detail": "Rate limit exceeded"}


def test_the_banner_names_the_platform_api_and_its_token() -> None:
    text = banner("http://127.0.0.1:8788", None, Faults())
    assert "http://127.0.0.1:8788/api/anomalies" in text
    assert f"Bearer {DEFAULT_TOKEN}" in text
    assert READ_ONLY_TOKEN in text
    assert "custom-token" in banner("http://x", None, Faults(), "custom-token")
