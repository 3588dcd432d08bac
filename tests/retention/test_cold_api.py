"""The cold archive over HTTP, against a real receiver: compacted anomalies are found by id and
by a search that includes the archive (marked cold), come back on a reopening webhook or an
operator's action with their history and comments, and ``anomaly-desk compact`` works on its own
data directory or through the receiver that holds it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_desk.core.store import Store
from tests.retention.support import mixed, seed
from tests.support import ROOT, ThreadedServer

SECRET = "retention-secret"
ENV = {
    "ANOMALY_DESK_WEBHOOK_SECRET": SECRET,
    "ANOMALY_DESK_RETENTION__ARCHIVE_AFTER_DAYS": "0",  # archived a moment ago is old enough
}


def anomaly(i: int, status: str, message: str = "") -> dict[str, Any]:
    return {
        "id": i,
        "type": "record",
        "status": status,
        "weight": 10,
        "container": {"id": 4, "name": "orders"},
        "fields": ["amount"],
        "message": message or f"amount out of range in {i} records",
        "created": f"2026-11-{10 + i % 10}T08:00:00Z",
    }


@pytest.fixture
def api(start_receiver: Callable[..., ThreadedServer]) -> Iterator[httpx.Client]:
    receiver = start_receiver(ENV)
    with httpx.Client(base_url=receiver.url, timeout=60) as client:
        client.receiver = receiver  # type: ignore[attr-defined]
        yield client


def send(api: httpx.Client, *anomalies: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(
        "/webhooks/qualytics", json=list(anomalies), headers={"x-qualytics-secret": SECRET}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def compact(api: httpx.Client) -> dict[str, Any]:
    answer = api.post("/api/compact")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


def test_compacted_anomalies_are_found_by_id_and_by_a_search_of_the_archive(
    api: httpx.Client,
) -> None:
    send(api, *(anomaly(i, "Resolved") for i in range(1, 6)))
    send(api, anomaly(6, "Active"), anomaly(7, "Discarded", "the needle is here"))
    report = compact(api)
    assert report["moved"] == 6
    assert report["hot"] == 1
    assert report["cold"] == 6
    assert report["months"]
    assert report["not_run"] is None

    detail = api.get("/api/anomalies/7")
    assert detail.status_code == 200
    assert detail.json()["cold"] is True
    assert detail.json()["message"] == "the needle is here"
    assert api.get("/api/anomalies/6").json().get("cold", False) is False  # hot
    assert api.get("/api/anomalies/99").status_code == 404

    hot_only = api.get("/api/anomalies", params={"status": "all", "q": "needle"}).json()
    assert hot_only["items"] == []  # the hot list does not scan the archive
    both = api.get("/api/anomalies", params={"status": "all", "q": "needle", "archive": "1"})
    assert both.status_code == 200
    assert [(item["id"], item["cold"]) for item in both.json()["items"]] == [(7, True)]

    everything = api.get("/api/anomalies", params={"status": "all", "archive": "1", "limit": 3})
    first = everything.json()
    assert len(first["items"]) == 3
    assert first["next_cursor"]
    rest = api.get(
        "/api/anomalies",
        params={"status": "all", "archive": "1", "limit": 3, "cursor": first["next_cursor"]},
    ).json()
    listed = ids(first) + ids(rest)
    while rest["next_cursor"]:
        rest = api.get(
            "/api/anomalies",
            params={"status": "all", "archive": "1", "limit": 3, "cursor": rest["next_cursor"]},
        ).json()
        listed += ids(rest)
    assert sorted(listed) == [1, 2, 3, 4, 5, 6, 7]  # each once, hot and cold, paged
    bad = api.get("/api/anomalies", params={"archive": "maybe"})
    assert bad.status_code == 400
    assert "archive" in bad.json()["detail"]


def test_a_reopening_webhook_restores_the_anomaly_with_its_history_and_comments(
    api: httpx.Client,
) -> None:
    send(api, anomaly(10, "Active"))
    commented = api.post("/api/anomalies/10/comments", json={"text": "looked into it"})
    assert commented.status_code == 201, commented.text
    send(api, anomaly(10, "Resolved"))  # the platform archives it
    before = api.get("/api/anomalies/10").json()
    assert compact(api)["moved"] == 1
    assert api.get("/api/anomalies/10").json()["cold"] is True

    result = send(api, anomaly(10, "Active"))  # the platform reopens it
    assert result["status_changed"] == [10]
    after = api.get("/api/anomalies/10").json()
    assert after["status"] == "Active"
    assert after.get("cold", False) is False
    assert [c["text"] for c in after["comments"]] == ["looked into it"]
    assert after["history"][: len(before["history"])] == before["history"]  # kept, and grown
    assert after["history"][-1]["kind"] == "status"
    assert after["history"][-1]["to"] == "Active"
    assert ids(api.get("/api/anomalies", params={"status": "open"}).json()) == [10]
    found = api.get("/api/anomalies", params={"status": "all", "archive": "1"}).json()
    assert [(item["id"], item.get("cold", False)) for item in found["items"]] == [(10, False)]
    assert compact(api)["cold"] == 0  # not in the archive's current view any more


def test_an_unchanged_redelivery_leaves_it_cold_and_an_action_brings_it_back(
    api: httpx.Client,
) -> None:
    send(api, anomaly(20, "Invalid"))
    compact(api)
    result = send(api, anomaly(20, "Invalid"))  # nothing new: no reason to warm it up
    assert result["unchanged"] == [20]
    assert api.get("/api/anomalies/20").json()["cold"] is True
    commented = api.post("/api/anomalies/20/comments", json={"text": "why was this invalid?"})
    assert commented.status_code == 201, commented.text
    detail = api.get("/api/anomalies/20").json()
    assert detail.get("cold", False) is False
    assert detail["status"] == "Invalid"
    assert [c["text"] for c in detail["comments"]] == ["why was this invalid?"]


def test_compact_is_an_operator_write_behind_the_origin_guard(api: httpx.Client) -> None:
    foreign = api.post("/api/compact", headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    again = api.post("/api/compact")
    assert again.status_code == 200
    assert again.json()["moved"] == 0


def test_the_command_compacts_through_the_receiver_that_holds_the_directory(
    api: httpx.Client,
) -> None:
    send(api, anomaly(30, "Duplicate"), anomaly(31, "Active"))
    receiver = api.receiver  # type: ignore[attr-defined]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "anomaly_desk",
            "compact",
            "--data-dir",
            str(receiver.data_dir),
            "--url",
            receiver.url,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "ANOMALY_DESK_RETENTION__ARCHIVE_AFTER_DAYS": "0"},
    )
    assert done.returncode == 0, done.stderr
    assert "compacting through it" in done.stderr
    assert done.stdout.startswith(
        "moved 1 anomaly to the cold archive (1 month); hot store now 1"
    )
    assert api.get("/api/anomalies/30").json()["cold"] is True


def test_the_command_compacts_a_data_directory_no_receiver_holds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data, mixed(500))
    done = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", "compact", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(
        "moved 400 anomalies to the cold archive (3 months); hot store now 100, cold archive 400"
    )
    assert "400 / 400 archived anomalies looked at" in done.stderr
    store = Store(data).open()
    try:
        assert store.count() == 100
        assert store.cold_row(1) is not None
    finally:
        store.close_sync()


def test_compact_help_explains_what_moves_and_what_is_kept() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", "compact", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for words in (
        "archive_after_days",
        "delete_after_days",
        "Nothing is deleted unless",
        "compact_every_h",
        "kill -9",
        "POST /api/compact",
        "--data-dir",
    ):
        assert words in text, words


def test_the_command_needs_no_ticketing_secret(tmp_path: Path) -> None:
    """A maintenance job on the data directory: the connections' tokens may not be set there."""
    data = tmp_path / "data"
    seed(data, mixed(50))
    config = tmp_path / "anomaly-desk.toml"
    config.write_text(
        '[[connections]]\nname = "jira"\nprovider = "jira"\nurl = "https://acme.atlassian.net"\n'
        'email = "bot@acme.com"\ntoken_env = "JIRA_TOKEN_NOT_SET_HERE"\n',
        encoding="utf-8",
    )
    command = ["compact", "--data-dir", str(data), "--config", str(config)]
    done = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", *command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("moved 40 anomalies to the cold archive")


def test_an_unreadable_cold_record_never_refuses_the_delivery(api: httpx.Client) -> None:
    """A damaged month file: the webhook for a cold anomaly in it is still stored (the platform
    would retry a refused delivery forever); the rest of the envelope too."""
    send(api, anomaly(40, "Resolved"))
    assert compact(api)["moved"] == 1
    receiver = api.receiver  # type: ignore[attr-defined]
    (month,) = (Path(receiver.data_dir) / "archive").glob("*.jsonl.gz")
    raw = bytearray(month.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 16] = b"\xff" * 16  # inside the compressed data
    month.write_bytes(bytes(raw))
    answer = api.post(
        "/webhooks/qualytics",
        json=[anomaly(40, "Active"), anomaly(41, "Active")],
        headers={"x-qualytics-secret": SECRET},
    )
    assert answer.status_code == 200, answer.text
    assert api.get("/api/anomalies/40").json()["status"] == "Active"
    assert api.get("/api/anomalies/41").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/anomalies?limit=²",
        "/api/connections/jira/form?anomaly=²",
        "/api/connections/jira/users?q=a&limit=²",
        "/api/sync-log?limit=³",
    ],
)
def test_unicode_digits_are_a_bad_request_not_a_crash(api: httpx.Client, path: str) -> None:
    answer = api.get(path)
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
