"""The platform connection over the wire: import, enrichment and write-back, against the
sandbox's emulator of the platform's API (its own rules: 409 on archived, 422, bearer tokens).

Every promise is attacked: an import cut by kill -9 resumes without doubling; write-back goes
through a platform outage and a kill -9 mid-write, and each change arrives exactly once, in
order; changes that came from the platform are never echoed back; a bad token is a dead job with
the platform's words until a person retries it after fixing it; the token is nowhere.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_desk.sandbox.faults import PLATFORM_PATHS
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import FIXTURES, ThreadedServer, cli_process, free_port, wait_for

TOKEN = ENV["PLATFORM_TOKEN"]


@pytest.fixture
def platform(sandbox: ThreadedServer) -> Any:
    return sandbox.app.state.platform  # type: ignore[attr-defined]


def platform_writes(platform: Any, anomaly_id: int) -> list[tuple[str, str]]:
    """What reached the platform for this anomaly and was accepted, in order."""
    found = []
    for call in platform.writes(anomaly_id, ok=True):
        if call.method == "POST":
            found.append(("comment", call.body["message"]))
        elif call.method == "PUT":
            found.append(("status", call.body["status"]))
        else:
            found.append(("status", call.query["status"]))
    return found


def seed_fixture_anomaly(platform: Any, anomaly_id: int, **more: Any) -> None:
    """The platform knows the anomaly the webhook fixtures describe (its id, open)."""
    platform.add(id=anomaly_id, status="Active", **more)


# -- import -------------------------------------------------------------------------------


def test_import_pages_through_every_anomaly_and_says_so_in_the_history(
    pdesk: Desk, platform: Any
) -> None:
    api = pdesk.api
    started = api.post("/api/import", json={"archived": True})
    assert started.status_code == 202, started.text
    wait_for(lambda: api.get("/api/import").json()["done"], "the import")
    status = api.get("/api/import").json()
    assert status == {**status, "pages": 3, "total": 300, "created": 300, "done": True}
    listed = api.get("/api/anomalies", params={"status": "all", "limit": 500}).json()["items"]
    assert len(listed) == 300
    archived = api.get("/api/anomalies", params={"status": "archived", "limit": 500}).json()
    assert len(archived["items"]) == sum(
        1 for a in platform.anomalies.values() if a.status not in ("Active", "Acknowledged")
    )
    one = api.get(f"/api/anomalies/{min(platform.anomalies)}").json()
    assert [h["kind"] for h in one["history"]] == ["imported"]
    assert platform.writes(None) == []  # an import writes nothing back
    # again: nothing new, nothing doubled
    api.post("/api/import", json={"archived": True})
    wait_for(lambda: api.get("/api/import").json()["done"], "the second import")
    again = api.get("/api/import").json()
    assert (again["created"], again["unchanged"]) == (0, 300)


def test_an_import_cut_by_kill_9_resumes_where_it_stopped(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, platform=True)
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "--port", str(port), "--data-dir", str(data), "--config", str(config))
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    faults.update({"latency_ms": 400, "path_prefix": PLATFORM_PATHS})  # a page takes a while
    try:
        with cli_process(*args, url=f"{url}/healthz", env=ENV) as proc:
            with httpx.Client(base_url=url, timeout=30) as api:
                assert api.post("/api/import", json={"archived": True}).status_code == 202
                wait_for(lambda: api.get("/api/import").json()["page"] >= 1, "a first page")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        faults.update({"latency_ms": 0})
        with (
            cli_process(*args, url=f"{url}/healthz", env=ENV),
            httpx.Client(base_url=url, timeout=30) as api,
        ):
            answer = api.get("/api/import")
            assert answer.status_code == 200, answer.text
            cut = answer.json()
            assert not cut["done"]
            assert 1 <= cut["page"] < 3
            assert api.post("/api/import", json={"archived": True}).status_code == 202
            wait_for(lambda: api.get("/api/import").json()["done"], "the resumed import")
            done = api.get("/api/import").json()
            assert done["resumed_from"] == cut["page"] + 1
            assert done["created"] == 300
            items = api.get("/api/anomalies", params={"status": "all", "limit": 500}).json()
            assert len(items["items"]) == 300
            for anomaly_id in (min(platform.anomalies), max(platform.anomalies)):
                history = api.get(f"/api/anomalies/{anomaly_id}").json()["history"]
                assert [h["kind"] for h in history] == ["imported"]  # stored once
    finally:
        faults.reset()


def test_the_import_command_shows_progress_and_resumes(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    import os
    import subprocess
    import sys

    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, platform=True)
    command = [sys.executable, "-m", "anomaly_desk", "import", "--config", str(config)]
    command += ["--data-dir", str(tmp_path / "data")]
    env = {**os.environ, **ENV}
    bad = subprocess.run(
        command, env={**env, "PLATFORM_TOKEN": "nope-nope-nope"}, capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "401" in bad.stderr
    assert "resume" in bad.stderr
    assert "nope-nope-nope" not in bad.stderr + bad.stdout
    good = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    assert "imported 196 anomalies in 2 pages: 196 new" in good.stdout  # open ones by default


# -- write-back -------------------------------------------------------------------------------


def test_acknowledge_comment_and_archive_reach_the_platform_once_each_in_order(
    pdesk: Desk, platform: Any
) -> None:
    seed_fixture_anomaly(platform, 10260)
    pdesk.post_webhook("04-api-record-anomaly.json")
    api = pdesk.api
    assert api.post("/api/anomalies/10260/acknowledge").status_code == 200
    api.post("/api/anomalies/10260/comments", json={"text": "same words"})
    api.post("/api/anomalies/10260/comments", json={"text": "same words"})  # twice: two comments
    archived = api.post(
        "/api/anomalies/10260/archive", json={"status": "Resolved", "comment": "fixed upstream"}
    )
    assert archived.status_code == 200
    pdesk.wait_idle()
    assert platform_writes(platform, 10260) == [
        ("status", "Acknowledged"),
        ("comment", "same words"),
        ("comment", "same words"),
        ("comment", "fixed upstream"),  # before the archive: the platform refuses it after
        ("status", "Resolved"),
    ]
    assert platform.anomalies[10260].status == "Resolved"
    detail = api.get("/api/anomalies/10260").json()
    assert detail["platform_notes"] == {**detail["platform_notes"], "delivered": 5, "dead": 0}


def test_write_back_survives_a_platform_outage_and_a_kill_9_without_doubling(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    seed_fixture_anomaly(platform, 10260)
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, platform=True)
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "--port", str(port), "--data-dir", str(data), "--config", str(config))
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    texts = [f"note {i}" for i in range(6)]
    try:
        with cli_process(*args, url=f"{url}/healthz", env=ENV) as proc:
            api = httpx.Client(base_url=url, timeout=30)
            body = (FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes()
            api.post(
                "/webhooks/qualytics", content=body, headers={"content-type": "application/json"}
            )
            faults.update({"fail_rate": 1.0, "path_prefix": PLATFORM_PATHS})  # the platform down
            assert api.post("/api/anomalies/10260/acknowledge").status_code == 200
            for text in texts[:3]:
                api.post("/api/anomalies/10260/comments", json={"text": text})
            time.sleep(0.5)  # attempts fail and back off
            faults.update({"fail_rate": 0.0, "latency_ms": 300})  # back, slow: writes in flight
            for text in texts[3:]:
                api.post("/api/anomalies/10260/comments", json={"text": text})
            time.sleep(0.6)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            api.close()
        faults.update({"latency_ms": 0})
        with (
            cli_process(*args, url=f"{url}/healthz", env=ENV),
            httpx.Client(base_url=url, timeout=30) as api,
        ):

            def delivered() -> bool:
                jobs = api.get("/api/sync-jobs", params={"anomaly_id": 10260}).json()["items"]
                return all(j["state"] == "done" for j in jobs) and len(jobs) == 7

            wait_for(delivered, "every platform job done")
        expected = [("status", "Acknowledged"), *(("comment", t) for t in texts)]
        assert platform_writes(platform, 10260) == expected
    finally:
        faults.reset()


def test_changes_from_the_platform_are_never_written_back(pdesk: Desk, platform: Any) -> None:
    seed_fixture_anomaly(platform, 10231)
    pdesk.post_webhook("01-flow-anomalies-detected.json")
    pdesk.post_webhook("08-flow-status-acknowledged.json")  # the platform says Acknowledged
    pdesk.wait_idle()
    assert pdesk.api.get("/api/anomalies/10231").json()["status"] == "Acknowledged"
    api = pdesk.api
    api.post("/api/import", json={})
    wait_for(lambda: api.get("/api/import").json()["done"], "the import")
    pdesk.wait_idle()
    assert platform.writes(None) == []
    jobs = api.get("/api/sync-jobs").json()["items"]
    assert [j for j in jobs if j["connection"] == "platform" and j["kind"] != "enrich"] == []


def test_a_bad_token_is_a_dead_job_with_the_platforms_words_and_a_retry_after_the_fix_works(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    seed_fixture_anomaly(platform, 10260)
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, platform=True)
    data = tmp_path / "data"
    bad_env = {**ENV, "PLATFORM_TOKEN": "expired-platform-token"}
    receiver = start_receiver(config, data, bad_env)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    desk = Desk(receiver, sandbox, api, data, config)
    try:
        desk.post_webhook("04-api-record-anomaly.json")
        assert api.post("/api/anomalies/10260/acknowledge").status_code == 200
        desk.wait_idle()
        dead = api.get("/api/sync-jobs", params={"state": "dead"}).json()["items"]
        platform_dead = [j for j in dead if j["connection"] == "platform"]
        assert [j["kind"] for j in platform_dead] == ["status"]
        assert "401" in platform_dead[0]["last_error"]
        assert "expired-platform-token" not in api.get("/api/sync-log").text
        detail = api.get("/api/anomalies/10260").json()
        assert detail["platform_notes"]["dead"] == 1
    finally:
        api.close()
        receiver.stop()
    receiver = start_receiver(config, data, ENV)  # the token is fixed
    api = httpx.Client(base_url=receiver.url, timeout=30)
    desk = Desk(receiver, sandbox, api, data, config)
    try:
        assert platform_writes(platform, 10260) == []  # nothing moves until a person retries
        assert api.post(f"/api/sync-jobs/{platform_dead[0]['id']}/retry").status_code == 200
        desk.wait_idle()
        assert platform_writes(platform, 10260) == [("status", "Acknowledged")]
    finally:
        api.close()
        receiver.stop()


def test_a_thin_webhook_anomaly_is_enriched_off_the_hot_path(pdesk: Desk, platform: Any) -> None:
    seed_fixture_anomaly(platform, 91001, weight=42, message="full text from the platform")
    thin = {"id": 91001, "status": "Active"}  # no checks, no weight
    answer = pdesk.api.post("/webhooks/qualytics", json=thin)
    assert answer.status_code == 200
    pdesk.wait_idle()
    doc = pdesk.api.get("/api/anomalies/91001").json()
    assert doc["weight"] == 42
    assert doc["failed_checks"]  # completed from the platform
    enriched = [h for h in doc["history"] if h["kind"] == "enriched"]
    assert len(enriched) == 1
    assert "weight" in enriched[0]["fields"]
    assert platform.writes(None) == []  # reading is all enrichment does


def test_the_token_is_in_no_log_response_or_stored_file(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    seed_fixture_anomaly(platform, 10260)
    secret = "s3cret-platform-token-value-7f3a"
    platform.token = secret
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, platform=True)
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "--port", str(port), "--data-dir", str(data), "--config", str(config))
    answers: list[str] = []
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    try:
        with (
            cli_process(*args, url=f"{url}/healthz", env={**ENV, "PLATFORM_TOKEN": secret}) as p,
            httpx.Client(base_url=url, timeout=30) as api,
        ):
            body = (FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes()
            headers = {"content-type": "application/json"}
            answers.append(api.post("/webhooks/qualytics", content=body, headers=headers).text)
            answers.append(api.post("/api/anomalies/10260/acknowledge").text)
            answers.append(api.post("/api/import", json={}).text)
            wait_for(lambda: api.get("/api/import").json()["done"], "the import")
            faults.update({"force_status": 401, "force_count": 1, "path_prefix": PLATFORM_PATHS})
            answers.append(api.post("/api/anomalies/10260/comments", json={"text": "x"}).text)
            time.sleep(1.0)
            for path in ("/api/sync-log", "/api/sync-jobs", "/api/import", "/api/connections"):
                answers.append(api.get(path).text)
            answers.append(api.get("/api/anomalies/10260").text)
            log = Path(p.log).read_text()  # type: ignore[attr-defined]
        stored = [f.read_bytes().decode("utf-8", "replace") for f in data.iterdir() if f.is_file()]
        for text in (*answers, log, *stored):
            assert secret not in text
        assert "import" in log  # the log was written (the check above read something)
    finally:
        faults.reset()
        platform.token = TOKEN


def test_serve_imports_the_open_anomalies_at_start_when_asked(
    tmp_path: Path, sandbox: ThreadedServer, platform: Any
) -> None:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, platform=True)
    config.write_text(config.read_text().replace("[sync]", "import_on_start = true\n\n[sync]", 1))
    receiver = start_receiver(config, tmp_path / "data", ENV)
    try:
        with httpx.Client(base_url=receiver.url, timeout=30) as api:
            wait_for(lambda: api.get("/api/import").status_code == 200, "an import")
            wait_for(lambda: api.get("/api/import").json()["done"], "the import")
            opened = sum(1 for a in platform.anomalies.values() if not a.archived)
            assert api.get("/api/import").json()["created"] == opened
            assert api.get("/healthz").json()["anomalies"] == opened
    finally:
        receiver.stop()


def test_the_detail_says_in_sync_links_to_the_platform_and_the_import_says_when_it_runs(
    pdesk: Desk, platform: Any
) -> None:
    pdesk.post_webhook("07-api-non-ascii.json")  # 10280: the payload has no link of its own
    detail = pdesk.api.get("/api/anomalies/10280").json()
    zero = {"delivered": 0, "pending": 0, "held": 0, "dead": 0, "cancelled": 0}
    assert detail["platform_notes"] == zero  # write-back on, nothing to write: in sync
    assert detail["url"] == f"{pdesk.sandbox.url}/anomalies/10280"
    started = pdesk.api.post("/api/import", json={}).json()
    assert started["running"] is True
    wait_for(lambda: pdesk.api.get("/api/import").json()["done"], "the import")
    assert pdesk.api.get("/api/import").json()["running"] is False


def test_a_connection_may_not_be_named_platform(tmp_path: Path, sandbox: ThreadedServer) -> None:
    from anomaly_desk.core.config import ConfigError, load_settings

    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    config.write_text(config.read_text().replace('name = "jira"', 'name = "platform"'))
    with pytest.raises(ConfigError, match="platform"):
        load_settings(config, env=ENV)


def test_enriching_an_anomaly_the_platform_does_not_know_is_done_not_dead(pdesk: Desk) -> None:
    answer = pdesk.api.post("/webhooks/qualytics", json={"id": 93001, "status": "Active"})
    assert answer.status_code == 200
    pdesk.wait_idle()
    jobs = pdesk.api.get("/api/sync-jobs", params={"anomaly_id": 93001}).json()["items"]
    assert [(j["kind"], j["state"]) for j in jobs] == [("enrich", "done")]
    log = pdesk.api.get("/api/sync-log").json()["items"]
    assert any("no anomaly 93001" in (e["message"] or "") for e in log)
