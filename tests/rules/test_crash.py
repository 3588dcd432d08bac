"""``kill -9`` of a ``serve`` process mid-replay, several times: every rule ticket exactly once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ENV, Desk
from tests.rules.conftest import (
    EXPECTED_JIRA,
    EXPECTED_SNOW,
    FILES,
    TWO_RULES,
    configure,
    jira_anomalies,
    post,
    snow_anomalies,
)
from tests.support import ThreadedServer, cli_process, free_port

# (files posted, seconds before the kill): at once (jobs just queued), mid-create (the sandbox's
# latency holds the creates in flight), and later (some links and notes under way)
KILLS = ((FILES[:2], 0.05), (FILES[2:5], 0.35), (FILES[5:], 0.8))


@pytest.mark.slow
def test_kill_9_mid_replay_never_loses_or_doubles_a_rules_ticket(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    config = configure(tmp_path, sandbox.url, TWO_RULES)
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "--port", str(port), "--data-dir", str(data), "--config", str(config))
    faults = sandbox.app.state.faults  # type: ignore[attr-defined]
    faults.update({"latency_ms": 250})  # a create is a POST and a read: half a second or more
    for files, delay in KILLS:
        with cli_process(*args, url=f"{url}/healthz", env=ENV) as proc:
            with httpx.Client(base_url=url, timeout=30) as api:
                for path in files:
                    post(api, path)
                time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    faults.update({"latency_ms": 0})
    with cli_process(*args, url=f"{url}/healthz", env=ENV):
        desk = Desk(None, sandbox, httpx.Client(base_url=url, timeout=30), data, config)  # type: ignore[arg-type]
        for path in FILES:  # the whole replay again: nothing new may come of it
            post(desk.api, path)
        deadline = time.monotonic() + 60
        while True:
            jobs = desk.api.get("/api/sync-jobs").json()["items"]
            if jobs and all(job["state"] == "done" for job in jobs):
                break
            assert time.monotonic() < deadline, [j for j in jobs if j["state"] != "done"]
            time.sleep(0.1)
        assert jira_anomalies(sandbox) == sorted(EXPECTED_JIRA)  # a double shows as a repeat
        assert snow_anomalies(sandbox) == sorted(EXPECTED_SNOW)
        links = {
            anomaly_id: desk.api.get(f"/api/anomalies/{anomaly_id}").json()["links"]
            for anomaly_id in (*EXPECTED_JIRA, *EXPECTED_SNOW, 10232)
        }
        assert all(len(found) == 1 for found in links.values()), links
        assert links[10232][0]["ticket_key"] == links[10231][0]["ticket_key"]
        note = "Anomaly 10232 matched rule 'warehouse to Jira' (same container as anomaly 10231)"
        assert desk.jira_notes(links[10231][0]["ticket_key"]).count(note) == 1
        rules = {r["name"]: r for r in desk.api.get("/api/rules").json()["items"]}
        assert (rules["warehouse to Jira"]["created"], rules["warehouse to Jira"]["linked"]) == (
            2,
            1,
        )
        assert rules["crm to ServiceNow"]["created"] == 3
        # the kills caught creates in flight that had landed: found and linked, not made again
        log = desk.api.get("/api/sync-log", params={"limit": 500}).json()["items"]
        recovered = [e for e in log if "an earlier attempt had created it" in (e["message"] or "")]
        assert recovered, [e["message"] for e in log]
        desk.api.close()
