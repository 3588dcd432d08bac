"""Outages, rate limits, bad credentials and crashes: every note arrives exactly once, in order."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.conftest import ENV, Desk, start_receiver, status_note, write_config
from tests.support import FIXTURES, ThreadedServer, cli_process, free_port, wait_for


def comments(n: int) -> list[str]:
    return [f"update {i}" for i in range(1, n + 1)]


def expect_comments(texts: list[str]) -> list[str]:
    return [re.escape(f"Comment from Qualytics: {t}") for t in texts]


def assert_notes(notes: list[str], patterns: list[str]) -> None:
    assert len(notes) == len(patterns), notes
    for pattern, note in zip(patterns, notes, strict=True):
        assert re.match(pattern, note), (pattern, note)


def test_provider_down_then_back_delivers_each_note_once_in_order(
    tmp_path: Path, restartable_sandbox: Callable[[], ThreadedServer]
) -> None:
    sandbox = restartable_sandbox()
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        api.post(
            "/webhooks/qualytics",
            content=(FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes(),
            headers={"content-type": "application/json"},
        )
        jira = api.post(
            "/api/anomalies/10260/tickets", json={"connection": "jira", "fields": {"summary": "x"}}
        ).json()
        snow = api.post(
            "/api/anomalies/10260/tickets",
            json={"connection": "servicenow", "fields": {"short_description": "x"}},
        ).json()
        sandbox.stop()  # both providers down
        api.post("/api/anomalies/10260/acknowledge")
        for text in comments(3):
            assert api.post("/api/anomalies/10260/comments", json={"text": text}).status_code == 201
        deadline = time.monotonic() + 10
        while not any(e["outcome"] == "retry" for e in api.get("/api/sync-log").json()["items"]):
            assert time.monotonic() < deadline, "no retry was logged while the providers were down"
            time.sleep(0.05)
        retry = next(e for e in api.get("/api/sync-log").json()["items"] if e["outcome"] == "retry")
        assert "cannot connect" in retry["message"]
        assert "next try in" in retry["message"]

        sandbox = restartable_sandbox()  # back, with its state
        env = Desk(receiver, sandbox, api, tmp_path / "data", config)
        env.wait_idle(30)
        expected = [status_note("Acknowledged"), *expect_comments(comments(3))]
        assert_notes(env.notes(jira), expected)
        assert_notes(env.notes(snow), expected)
        jobs = api.get("/api/sync-jobs").json()["items"]
        assert [j["state"] for j in jobs] == ["done"] * 8
    finally:
        api.close()
        receiver.stop()
        sandbox.stop()


def test_rate_limit_honours_retry_after(desk: Desk) -> None:
    desk.post_webhook("05-api-shape-anomaly.json")
    link = desk.api.post(
        "/api/anomalies/10261/tickets",
        json={"connection": "servicenow", "fields": {"short_description": "p"}},
    ).json()
    desk.faults.update({"force_status": 429, "force_count": 1})
    posted = time.monotonic()
    desk.api.post("/api/anomalies/10261/comments", json={"text": "after the limit"})
    desk.wait_idle()
    waited = time.monotonic() - posted
    log = desk.api.get("/api/sync-log").json()["items"]
    assert [e["outcome"] for e in log] == ["retry", "done"]
    assert "Retry-After" not in log[0]["message"]  # the provider's words, then ours:
    assert re.search(r"next try in 1\.0s", log[0]["message"]), log[0]["message"]
    assert waited >= 1.0  # the sandbox said Retry-After: 1, and it was honoured
    assert_notes(desk.notes(link), expect_comments(["after the limit"]))


def test_401_goes_dead_and_retry_after_fixing_the_credential_delivers(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    data = tmp_path / "data"
    port = free_port()
    receiver = start_receiver(config, data, {**ENV, "JIRA_TOKEN": "expired-token"}, port=port)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    with httpx.Client(base_url=sandbox.url, auth=("demo@example.com", "demo-token")) as jira:
        key = jira.post(
            "/rest/api/3/issue",
            json={
                "fields": {
                    "project": {"key": "DQ"},
                    "issuetype": {"name": "Task"},
                    "summary": "existing",
                }
            },
        ).json()["key"]
    try:
        api.post(
            "/webhooks/qualytics",
            content=(FIXTURES / "webhooks" / "05-api-shape-anomaly.json").read_bytes(),
            headers={"content-type": "application/json"},
        )
        linked = api.post("/api/anomalies/10261/links", json={"connection": "jira", "ticket": key})
        assert linked.status_code == 502  # reading the issue to link it already fails
        assert "401" in linked.json()["detail"]
    finally:
        receiver.stop()
    # link with a good credential, then break it and queue notes
    receiver = start_receiver(config, data, ENV, port=port)
    link = httpx.post(
        f"{receiver.url}/api/anomalies/10261/links", json={"connection": "jira", "ticket": key}
    ).json()
    receiver.stop()
    receiver = start_receiver(config, data, {**ENV, "JIRA_TOKEN": "expired-token"}, port=port)
    env = Desk(receiver, sandbox, api, data, config)
    try:
        api.post("/api/anomalies/10261/comments", json={"text": "first"})
        api.post("/api/anomalies/10261/comments", json={"text": "second"})
        env.wait_idle()
        jobs = api.get("/api/sync-jobs").json()["items"]
        assert [j["state"] for j in jobs] == [
            "dead",
            "pending",
        ]  # the second waits behind the first
        assert "401" in jobs[0]["last_error"]
        assert "Client must be authenticated" in jobs[0]["last_error"]
        dead = api.get("/api/sync-log").json()["items"]
        assert [e["outcome"] for e in dead] == ["dead"]
    finally:
        receiver.stop()
    receiver = start_receiver(config, data, ENV, port=port)  # the credential is fixed
    env = Desk(receiver, sandbox, api, data, config)
    try:
        env.wait_idle()
        assert env.jira_notes(key) == []  # nothing moves until a person retries
        retried = api.post(f"/api/sync-jobs/{jobs[0]['id']}/retry")
        assert retried.status_code == 200
        assert retried.json()["state"] == "pending"
        env.wait_idle()
        assert_notes(env.jira_notes(key), expect_comments(["first", "second"]))
        first_job = [
            e for e in api.get("/api/sync-log").json()["items"] if e["job_id"] == jobs[0]["id"]
        ]
        # the retry is the job's second attempt, not a new "try 1"
        assert [(e["attempt"], e["outcome"]) for e in first_job] == [(1, "dead"), (2, "done")]
        assert api.post(f"/api/sync-jobs/{jobs[0]['id']}/retry").status_code == 409  # done now
        assert link["ticket_key"] == key
    finally:
        api.close()
        receiver.stop()


def test_kill_9_with_jobs_pending_delivers_each_note_once(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "--port", str(port), "--data-dir", str(data), "--config", str(config))
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    texts = comments(12)
    with cli_process(*args, url=f"{url}/healthz", env=ENV) as proc:
        api = httpx.Client(base_url=url, timeout=30)
        api.post(
            "/webhooks/qualytics",
            content=(FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes(),
            headers={"content-type": "application/json"},
        )
        links = [
            api.post(
                "/api/anomalies/10260/tickets", json={"connection": c, "fields": {f: "crash test"}}
            ).json()
            for c, f in (("jira", "summary"), ("servicenow", "short_description"))
        ]
        # the sandbox holds each write 0.5 s (under the connection's 2 s timeout): the note in
        # flight at the kill lands after the restarted receiver is up, and must not be resent
        faults.update({"latency_ms": 500})
        held = faults.writes_held
        for text in texts:
            assert api.post("/api/anomalies/10260/comments", json={"text": text}).status_code == 201
        wait_for(lambda: faults.writes_held > held, "a note on its way to a ticket")
        proc.send_signal(signal.SIGKILL)  # while the sandbox holds it: surely in flight
        proc.wait(10)
        api.close()
    faults.update({"latency_ms": 0})
    with cli_process(*args, url=f"{url}/healthz", env=ENV):
        env = Desk(None, sandbox, httpx.Client(base_url=url, timeout=30), data, config)  # type: ignore[arg-type]
        deadline = time.monotonic() + 30
        while any(j["state"] != "done" for j in env.api.get("/api/sync-jobs").json()["items"]):
            assert time.monotonic() < deadline, env.api.get("/api/sync-jobs").json()
            time.sleep(0.1)
        for link in links:
            assert_notes(env.notes(link), expect_comments(texts))
        log = env.api.get("/api/sync-log", params={"limit": 500}).json()["items"]
        # a note was in flight at the kill: after the restart its ticket was checked before any resend
        recovered = [
            e
            for e in log
            if "already on the ticket" in (e["message"] or "")
            or "checked the ticket" in (e["message"] or "")
        ]
        assert recovered, [e["message"] for e in log]
        env.api.close()


def test_a_note_whose_answer_timed_out_is_not_sent_twice(desk: Desk) -> None:
    """The write reached the provider but its answer did not reach us: look before resending."""
    desk.post_webhook("05-api-shape-anomaly.json")
    link = desk.api.post(
        "/api/anomalies/10261/tickets", json={"connection": "jira", "fields": {"summary": "slow"}}
    ).json()
    desk.faults.update({"latency_ms": 2600})  # longer than the connection's 2 s timeout
    desk.api.post("/api/anomalies/10261/comments", json={"text": "exactly once"})
    deadline = time.monotonic() + 10
    while not desk.api.get("/api/sync-log").json()["items"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first = desk.api.get("/api/sync-log").json()["items"][0]
    assert first["outcome"] == "retry"
    assert "no answer" in first["message"]
    time.sleep(1.0)  # the sandbox finishes the write it was given
    desk.faults.update({"latency_ms": 0})
    desk.wait_idle()
    assert_notes(desk.jira_notes(link["ticket_key"]), expect_comments(["exactly once"]))
    last = desk.api.get("/api/sync-log").json()["items"][-1]
    assert last["outcome"] == "done"
    assert "already on the ticket" in last["message"]


def test_a_saturated_worker_keeps_delivering(tmp_path: Path, sandbox: ThreadedServer) -> None:
    """With one delivery at a time, each finished note must start the next (a lost wake-up hangs)."""
    config = write_config(
        tmp_path / "anomaly-desk.toml", sandbox.url, concurrency=1, per_connection=1
    )
    receiver = start_receiver(config, tmp_path / "data", ENV)
    env = Desk(
        receiver,
        sandbox,
        httpx.Client(base_url=receiver.url, timeout=30),
        tmp_path / "data",
        config,
    )
    try:
        env.post_webhook("06-api-list-archived.json")
        links = [
            env.api.post(
                f"/api/anomalies/{i}/tickets",
                json={"connection": "jira", "fields": {"summary": f"t{i}"}},
            ).json()
            for i in (10270, 10271, 10272)
        ]
        for i in (10270, 10271, 10272):
            env.api.post(f"/api/anomalies/{i}/comments", json={"text": "one"})
            env.api.post(f"/api/anomalies/{i}/comments", json={"text": "two"})
        env.wait_idle(15)
        for link in links:
            assert_notes(env.notes(link), expect_comments(["one", "two"]))
    finally:
        env.api.close()
        receiver.stop()
