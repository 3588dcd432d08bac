"""Comments and history name the operator (config ``operator``, else the OS user), and the notes
sent to tickets may name them too (``sync.name_operator``)."""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer


def desk_with(tmp_path: Path, sandbox: ThreadedServer, top: str, sync: str) -> Desk:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    text = config.read_text().replace("[sync]\n", f"[sync]\n{sync}\n")
    config.write_text(f"{top}\n{text}")
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    return Desk(receiver, sandbox, api, tmp_path / "data", config)


@pytest.fixture
def named(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    desk = desk_with(tmp_path, sandbox, 'operator = "ana"', "name_operator = true")
    try:
        yield desk
    finally:
        desk.api.close()
        desk.receiver.stop()


def test_the_operator_is_named_in_comments_history_and_notes(named: Desk) -> None:
    named.post_webhook("01-flow-anomalies-detected.json")
    api = named.api
    link = api.post(
        "/api/anomalies/10231/tickets", json={"connection": "jira", "fields": {"summary": "a"}}
    ).json()
    api.post("/api/anomalies/10231/comments", json={"text": "looking [now]"})
    api.post("/api/anomalies/10231/acknowledge")
    named.wait_idle()
    doc = api.get("/api/anomalies/10231").json()
    assert [c["by"] for c in doc["comments"]] == ["ana"]
    mine = [h for h in doc["history"] if h["kind"] in ("comment", "status")]
    assert [h["by"] for h in mine] == ["ana", "ana"]
    notes = named.jira_notes(link["ticket_key"])
    assert "Comment from Qualytics (ana): looking [now]" in notes
    assert any(re.search(r"Anomaly Status: Acknowledged \(ana\)$", n) for n in notes), notes


def test_by_default_the_os_user_and_notes_as_before(desk: Desk) -> None:
    desk.post_webhook("01-flow-anomalies-detected.json")
    api = desk.api
    link = api.post(
        "/api/anomalies/10231/tickets", json={"connection": "jira", "fields": {"summary": "a"}}
    ).json()
    api.post("/api/anomalies/10231/comments", json={"text": "hello"})
    desk.wait_idle()
    doc = api.get("/api/anomalies/10231").json()
    assert [c["by"] for c in doc["comments"]] == [getpass.getuser()]
    assert "Comment from Qualytics: hello" in desk.jira_notes(link["ticket_key"])


def test_a_blank_operator_name_is_refused_clearly(tmp_path: Path, sandbox: ThreadedServer) -> None:
    from anomaly_desk.core.config import ConfigError, load_settings

    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    config.write_text('operator = ""\n' + config.read_text())
    with pytest.raises(ConfigError, match="operator"):
        load_settings(config, env=ENV)
