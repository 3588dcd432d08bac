"""A full disk: nothing refused is visible, health says so, the API answers 503 problems, the
worker backs off instead of spinning, and everything resumes by itself once space is freed."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import httpx

from anomaly_desk.core.formatting.adf import adf_to_text
from anomaly_desk.core.formatting.notes import comment_note
from tests.integration.conftest import ENV, start_receiver, write_config
from tests.support import ThreadedServer, fill


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_a_full_disk_degrades_cleanly_and_recovers_by_itself(
    small_disk: Path, tmp_path: Path, sandbox: ThreadedServer
) -> None:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    receiver = start_receiver(config, small_disk / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    try:
        body = {"id": 95001, "status": "Active", "message": "disk test"}
        assert api.post("/webhooks/qualytics", json=body).status_code == 200
        link = api.post(
            "/api/anomalies/95001/tickets",
            json={"connection": "jira", "fields": {"summary": "disk test"}},
        ).json()
        faults.update({"fail_rate": 1.0})  # Jira down: the note waits, retried with backoff
        assert api.post("/api/anomalies/95001/comments", json={"text": "before"}).status_code == 201

        filler = fill(small_disk)
        big = {"id": 95002, "status": "Active", "message": "x" * 16384}  # past the file's page
        refused = api.post("/webhooks/qualytics", json=big)
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert api.get("/api/anomalies/95002").status_code == 404  # never ahead of the disk

        health = api.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert "No space left" in health.json()["reason"]
        for action, payload in [("acknowledge", None), ("comments", {"text": "during"})]:
            response = api.post(f"/api/anomalies/95001/{action}", json=payload)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"]
        doc = api.get("/api/anomalies/95001").json()
        assert doc["status"] == "Active"
        assert [c["text"] for c in doc["comments"]] == ["before"]

        faults.update({"fail_rate": 0.0})  # Jira is back, the disk is not: the worker must wait
        spent = cpu_seconds()
        time.sleep(2.0)
        spent = cpu_seconds() - spent
        print(f"CPU while the disk is full with a note pending: {spent:.2f} s in 2 s")
        assert spent < 0.6, "the worker spins instead of backing off"

        filler.unlink()
        deadline = time.monotonic() + 10
        while api.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "writes did not resume after space was freed"
            time.sleep(0.1)
        assert api.post("/webhooks/qualytics", json={"id": 95003}).status_code == 200
        deadline = time.monotonic() + 15
        while api.get("/api/sync-jobs", params={"state": "pending"}).json()["items"]:
            assert time.monotonic() < deadline, "the pending note was not delivered"
            time.sleep(0.1)
        with httpx.Client(base_url=sandbox.url, auth=("demo@example.com", "demo-token")) as jira:
            comments = jira.get(f"/rest/api/3/issue/{link['ticket_key']}/comment").json()
        texts = [adf_to_text(c["body"]).strip() for c in comments["comments"]]
        assert texts.count(comment_note("before", "Qualytics")) == 1, texts
    finally:
        api.close()
        receiver.stop()
