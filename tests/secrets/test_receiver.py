"""A receiver on loopback, the sandbox behind it, its secrets in a real OpenBao: a rotated
credential is picked up after a 401 without a restart, and ``POST /api/reload`` re-reads the
configuration and the secrets."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_desk.core.config import SettingsLoader, load_settings
from anomaly_desk.receiver.app import create_app
from tests.secrets.conftest import Bao
from tests.support import FIXTURES, ThreadedServer

JIRA_LOGIN = "demo@example.com"
SNOW_PASSWORD = "demo"  # the sandbox's seeded ServiceNow admin password


def config_text(
    sandbox_url: str, path: str, project: str = "DQ", extra: str = "", ttl: float = 3600
) -> str:
    return f"""
[secrets]
vault_ttl_s = {ttl}

[sync]
backoff_base_s = 0.05
backoff_max_s = 0.4
refresh_interval_s = 0
health_check_s = 0

[[connections]]
name = "jira"
provider = "jira"
url = "{sandbox_url}"
email = "{JIRA_LOGIN}"
token_vault = "secret/{path}/jira#api_token"
project = "{project}"
timeout = 5
poll_s = 0

[[connections]]
name = "servicenow"
provider = "servicenow"
url = "{sandbox_url}"
username = "admin"
password_vault = "secret/{path}/servicenow#password"
timeout = 5
poll_s = 0
{extra}
"""


@dataclass
class VaultDesk:
    receiver: ThreadedServer
    sandbox: ThreadedServer
    bao: Bao
    api: httpx.Client
    config: Path
    data_dir: Path
    path: str  # the desk's secrets: secret/<path>/jira, secret/<path>/servicenow
    answers: list[httpx.Response]

    def call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        response = self.api.request(method, url, **kw)
        self.answers.append(response)
        return response

    def write(self, **kw: Any) -> None:
        self.config.write_text(config_text(self.sandbox.url, self.path, **kw))

    def rotate_jira(self, vault: bool = True) -> str:
        """A new API token for the integration's Jira user, and (with ``vault``) in Vault."""
        token = f"rotated-{secrets.token_hex(8)}"
        jira = self.sandbox.app.state.jira  # type: ignore[attr-defined]
        user = next(u for u in jira.users if u.email == JIRA_LOGIN)
        user.token = token
        if vault:
            self.bao.put(f"{self.path}/jira", api_token=token)
        return token

    def wait_idle(self, timeout: float = 20.0) -> None:
        worker = self.receiver.app.state.worker  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
        while not self.receiver.call(worker.idle):
            assert time.monotonic() < deadline, self.api.get("/api/sync-jobs").json()
            time.sleep(0.05)

    def jira_notes(self, key: str, token: str) -> list[str]:
        with httpx.Client(base_url=self.sandbox.url, auth=(JIRA_LOGIN, token)) as c:
            page = c.get(f"/rest/api/3/issue/{key}/comment").raise_for_status().json()
        return [str(comment["body"]) for comment in page["comments"]]

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/sync-jobs").json()["items"])

    def connection(self, name: str) -> dict[str, Any]:
        items = self.call("GET", "/api/connections").json()["items"]
        return next(item for item in items if item["name"] == name)


@contextlib.contextmanager
def running_desk(
    tmp_path: Path,
    sandbox: ThreadedServer,
    bao: Bao,
    more: dict[str, dict[str, str]] | None = None,
    **config: Any,
) -> Iterator[VaultDesk]:
    """A receiver whose Jira token and ServiceNow password are in Vault (``secret/<path>/…``,
    with the secrets of ``more``); ``config`` goes to ``config_text``, with ``{path}`` in
    ``extra`` filled in."""
    path = bao.path()
    bao.put(f"{path}/jira", api_token="demo-token")  # the sandbox's seeded token
    bao.put(f"{path}/servicenow", password=SNOW_PASSWORD)
    for name, data in (more or {}).items():
        bao.put(f"{path}/{name}", **data)
    file = tmp_path / "anomaly-desk.toml"
    extra = str(config.pop("extra", "")).replace("{path}", path)
    file.write_text(config_text(sandbox.url, path, extra=extra, **config))
    data = tmp_path / "data"
    loader = SettingsLoader(file, {"data_dir": data}, bao.env())
    settings = load_settings(file, overrides={"data_dir": data}, env=bao.env())
    receiver = ThreadedServer(create_app(settings, loader=loader)).start()
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        yield VaultDesk(receiver, sandbox, bao, api, file, data, path, [])
    finally:
        api.close()
        receiver.stop()


@pytest.fixture
def vdesk(
    tmp_path: Path, sandbox: ThreadedServer, bao: Bao, caplog: pytest.LogCaptureFixture
) -> Iterator[VaultDesk]:
    caplog.set_level(logging.INFO)
    with running_desk(tmp_path, sandbox, bao) as desk:
        yield desk


def new_ticket(desk: VaultDesk) -> dict[str, Any]:
    body = (FIXTURES / "webhooks" / "05-api-shape-anomaly.json").read_bytes()
    headers = {"content-type": "application/json"}
    hook = desk.call("POST", "/webhooks/qualytics", content=body, headers=headers)
    assert hook.status_code == 200, hook.text
    ticket = {"connection": "jira", "fields": {"summary": "rotation"}}
    created = desk.call("POST", "/api/anomalies/10261/tickets", json=ticket)
    assert created.status_code == 201, created.text
    return dict(created.json())


def assert_nothing_shows(desk: VaultDesk, caplog: pytest.LogCaptureFixture, *values: str) -> None:
    """No secret value in the logs, the API's answers, the data directory or a repr."""
    texts = {"logs": caplog.text, **{f"answer {i}": r.text for i, r in enumerate(desk.answers)}}
    for file in desk.data_dir.rglob("*"):
        if file.is_file():
            texts[str(file)] = file.read_bytes().decode("utf-8", "replace")
    state = desk.receiver.app.state  # type: ignore[attr-defined]
    texts["reprs"] = "\n".join(
        repr(x)
        for x in (state.settings, state.live.loader, state.auth, *state.live.clients.values())
    )
    for secret in (*values, desk.bao.token):
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"a secret shows in {leaks}"


def test_a_rotated_secret_is_read_again_after_a_401_and_the_note_delivered(
    vdesk: VaultDesk, caplog: pytest.LogCaptureFixture
) -> None:
    link = new_ticket(vdesk)
    key = link["ticket_key"]
    new = vdesk.rotate_jira()  # Jira takes only the new token now; Vault has it, the desk not yet

    sent = vdesk.call("POST", "/api/anomalies/10261/comments", json={"text": "after rotation"})
    assert sent.status_code == 201, sent.text
    vdesk.wait_idle()

    assert any("after rotation" in note for note in vdesk.jira_notes(key, new))
    job = next(j for j in vdesk.jobs() if j["kind"] == "comment")
    assert job["state"] == "done", job
    log = vdesk.call("GET", "/api/sync-log").json()["items"]
    entry = next(e for e in log if e["job_id"] == job["id"])
    assert entry["outcome"] == "done"
    assert entry["attempt"] == 1  # one attempt, tried once more inside it
    assert "secrets re-read after it refused them" in entry["message"]
    assert vdesk.connection("jira")["health"]["ok"] is True
    assert "jira refused its credential; re-read from Vault, it changed" in caplog.text
    assert_nothing_shows(vdesk, caplog, new)


def test_a_401_with_nothing_new_in_vault_fails_as_before(
    vdesk: VaultDesk, caplog: pytest.LogCaptureFixture
) -> None:
    new_ticket(vdesk)
    new_ticket(vdesk)  # a second ticket: its own queue, delivered at the same time
    wrong = vdesk.rotate_jira(vault=False)  # rotated in Jira, not in Vault

    vdesk.call("POST", "/api/anomalies/10261/comments", json={"text": "refused"})
    vdesk.wait_idle()

    comments = [j for j in vdesk.jobs() if j["kind"] == "comment"]
    assert [j["state"] for j in comments] == ["dead", "dead"]
    assert all("401" in (j["last_error"] or "") for j in comments), comments
    # read again once for the refused client, not once per job
    assert caplog.text.count("re-read from Vault, it is the same") == 1
    assert vdesk.connection("jira")["health"]["ok"] is False
    assert_nothing_shows(vdesk, caplog, wrong)


def test_post_reload_applies_a_changed_config_and_refuses_a_broken_one(
    vdesk: VaultDesk, caplog: pytest.LogCaptureFixture
) -> None:
    assert vdesk.connection("jira")["project"] == "DQ"
    before = vdesk.receiver.app.state.live.clients["jira"]  # type: ignore[attr-defined]

    vdesk.write(project="TM")
    answer = vdesk.call("POST", "/api/reload")
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["changed"] == {"jira": ["project"]}
    assert view["unchanged"] == ["servicenow"]
    assert view["added"] == view["removed"] == view["restart_needed"] == []
    assert vdesk.connection("jira")["project"] == "TM"
    assert vdesk.receiver.app.state.live.clients["jira"] is not before  # type: ignore[attr-defined]
    link = new_ticket(vdesk)
    assert link["ticket_key"].startswith("TM-")  # the new client creates in the new project

    # broken: the running configuration stays, the error says why
    vdesk.config.write_text("[[connections]\nname = ")
    refused = vdesk.call("POST", "/api/reload")
    assert refused.status_code == 422
    assert "not valid TOML" in refused.json()["detail"]
    assert vdesk.connection("jira")["project"] == "TM"
    vdesk.config.write_text(  # a valid file again, but a secret it names is not in Vault
        config_text(vdesk.sandbox.url, vdesk.path).replace("#api_token", "#api-token")
    )
    refused = vdesk.call("POST", "/api/reload")
    assert refused.status_code == 422
    assert (
        f"token_vault: secret/{vdesk.path}/jira#api-token: the secret" in (refused.json()["detail"])
    )
    assert vdesk.connection("jira")["project"] == "TM"
    assert "reload refused, the running configuration stays" in caplog.text

    # a rotated secret, a new connection, one removed, a change only a restart applies
    new = vdesk.rotate_jira()
    extra = f"""
[[connections]]
name = "jira-ops"
provider = "jira"
url = "{vdesk.sandbox.url}"
email = "{JIRA_LOGIN}"
token_vault = "secret/{vdesk.path}/jira#api_token"
project = "TM"
poll_s = 0
"""
    text = config_text(vdesk.sandbox.url, vdesk.path, project="TM", extra=extra)
    text = text[: text.index('[[connections]]\nname = "servicenow"')] + extra
    vdesk.config.write_text(text.replace("backoff_base_s = 0.05", "backoff_base_s = 0.1"))
    view = vdesk.call("POST", "/api/reload").json()
    assert view["changed"] == {"jira": ["token"]}  # named, never shown
    assert view["added"] == ["jira-ops"]
    assert view["removed"] == ["servicenow"]
    assert view["restart_needed"] == ["sync"]
    names = [c["name"] for c in vdesk.call("GET", "/api/connections").json()["items"]]
    assert names == ["jira", "jira-ops"]
    checks = vdesk.call("POST", "/api/connections/check").json()
    assert checks["jira"]["ok"] is True
    assert checks["jira-ops"]["ok"] is True
    assert_nothing_shows(vdesk, caplog, new)


def test_a_note_in_flight_finishes_on_the_old_client_across_a_reload(vdesk: VaultDesk) -> None:
    link = new_ticket(vdesk)
    faults = vdesk.sandbox.app.state.faults  # type: ignore[attr-defined]
    faults.update({"latency_ms": 1500, "path_prefix": "/rest/api/3/issue"})
    vdesk.call("POST", "/api/anomalies/10261/comments", json={"text": "in flight"})
    deadline = time.monotonic() + 10
    in_flight = {"kind": "comment", "state": "pending", "attempts": 1}  # marked, sent, waiting
    while not any(in_flight.items() <= job.items() for job in vdesk.jobs()):
        assert time.monotonic() < deadline
        time.sleep(0.02)

    vdesk.write(project="TM")
    view = vdesk.call("POST", "/api/reload").json()
    assert view["changed"] == {"jira": ["project"]}
    vdesk.wait_idle()

    faults.update({"latency_ms": 0, "path_prefix": None})
    comment = next(j for j in vdesk.jobs() if j["kind"] == "comment")
    assert comment["state"] == "done", comment
    assert any("in flight" in note for note in vdesk.jira_notes(link["ticket_key"], "demo-token"))


def test_reload_without_a_file_change_changes_nothing(vdesk: VaultDesk) -> None:
    view = vdesk.call("POST", "/api/reload").json()
    assert view["changed"] == {}
    assert view["unchanged"] == ["jira", "servicenow"]
    assert view["source"] == str(vdesk.config)


def test_vault_secrets_are_read_again_every_ttl(
    tmp_path: Path, sandbox: ThreadedServer, bao: Bao, caplog: pytest.LogCaptureFixture
) -> None:
    """The receiver's own webhook secret has no one to refuse it: it is re-read every
    ``vault_ttl_s`` (so are the others), and a rotation shows without a reload."""
    caplog.set_level(logging.INFO)
    first, second = f"hook-{secrets.token_hex(8)}", f"hook-{secrets.token_hex(8)}"
    extra = '[receiver]\nwebhook_secret_vault = "secret/{path}/receiver#webhook_secret"\n'
    body = (FIXTURES / "webhooks" / "05-api-shape-anomaly.json").read_bytes()
    hook = {"receiver": {"webhook_secret": first}}
    with running_desk(tmp_path, sandbox, bao, hook, extra=extra, ttl=0.3) as desk:

        def post(secret: str) -> int:
            headers = {"content-type": "application/json", "x-qualytics-secret": secret}
            return desk.call(
                "POST", "/webhooks/qualytics", content=body, headers=headers
            ).status_code

        assert post(first) == 200
        bao.put(f"{desk.path}/receiver", webhook_secret=second)
        deadline = time.monotonic() + 5
        while post(second) != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert post(first) == 401
        assert "secrets re-read from Vault: receiver: webhook_secret" in caplog.text
        assert_nothing_shows(desk, caplog, first, second)


def test_a_revoked_client_secret_is_a_dead_job_until_a_reload_brings_the_new_one(
    tmp_path: Path, sandbox: ThreadedServer, bao: Bao
) -> None:
    """ServiceNow by OAuth client credentials, the client secret in Vault. The instance's admin
    rotates the secret: notes go dead with the token endpoint's words (the secret is re-read
    once, and Vault still has the old one). The operator puts the new one in Vault and reloads;
    a retry delivers the note once."""
    oauth = """
auth = "oauth_client_credentials"
client_id = "desk-client"
client_secret_vault = "secret/{path}/snow-oauth#client_secret"
"""
    auth = sandbox.app.state.auth  # type: ignore[attr-defined]
    with running_desk(
        tmp_path,
        sandbox,
        bao,
        more={"snow-oauth": {"client_secret": "desk-secret"}},
    ) as desk:
        config = desk.config.read_text().replace(
            'password_vault = "secret/',
            oauth.replace("{path}", desk.path) + 'password_vault = "secret/',
        )
        desk.config.write_text(config)
        assert desk.call("POST", "/api/reload").status_code == 200
        body = (FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes()
        desk.call(
            "POST",
            "/webhooks/qualytics",
            content=body,
            headers={"content-type": "application/json"},
        )
        made = desk.call(
            "POST",
            "/api/anomalies/10260/tickets",
            json={"connection": "servicenow", "fields": {"short_description": "oauth"}},
        )
        assert made.status_code == 201, made.text
        desk.wait_idle()

        client = auth.clients[("servicenow", "desk-client")]
        client.secret = "rotated-by-the-admin"  # the old secret is refused from now on
        auth.expire("servicenow")  # and so are the tokens it got
        desk.call("POST", "/api/anomalies/10260/comments", json={"text": "after rotation"})
        desk.wait_idle()
        dead = [j for j in desk.jobs() if j["state"] == "dead"]
        assert len(dead) == 1
        assert "token request" in dead[0]["last_error"]
        assert "refused" in dead[0]["last_error"]

        desk.bao.put(f"{desk.path}/snow-oauth", client_secret="rotated-by-the-admin")
        reload = desk.call("POST", "/api/reload")
        assert reload.status_code == 200
        assert desk.call("POST", f"/api/sync-jobs/{dead[0]['id']}/retry").status_code == 200
        desk.wait_idle()
        assert all(j["state"] == "done" for j in desk.jobs())
        with httpx.Client(base_url=sandbox.url, auth=("admin", SNOW_PASSWORD)) as snow:
            rows = snow.get(
                "/api/now/table/sys_journal_field",
                params={
                    "sysparm_query": f"element_id={made.json()['ticket_id']}^element=work_notes"
                },
            ).json()["result"]
        assert sum("after rotation" in row["value"] for row in rows) == 1
        for answer in desk.answers:
            assert "rotated-by-the-admin" not in answer.text
            assert "desk-secret" not in answer.text
