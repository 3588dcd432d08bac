"""``SIGHUP`` to ``anomaly-desk serve``: the configuration and its Vault secrets read again, in
the same process; a broken configuration is refused and the running one kept."""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.secrets.conftest import Bao
from tests.secrets.test_receiver import JIRA_LOGIN, SNOW_PASSWORD, config_text
from tests.support import ThreadedServer, cli_process, free_port


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sighup_reloads_the_config_in_the_same_process(
    tmp_path: Path, sandbox: ThreadedServer, bao: Bao
) -> None:
    path = bao.path()
    token = f"sighup-{secrets.token_hex(8)}"  # the integration's Jira token, in Vault only
    jira_site = sandbox.app.state.jira  # type: ignore[attr-defined]
    next(u for u in jira_site.users if u.email == JIRA_LOGIN).token = token
    bao.put(f"{path}/jira", api_token=token)
    bao.put(f"{path}/servicenow", password=SNOW_PASSWORD)
    config = tmp_path / "anomaly-desk.toml"
    config.write_text(config_text(sandbox.url, path))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    with (
        cli_process(*args, "--port", str(port), url=f"{url}/healthz", env=bao.env()) as proc,
        httpx.Client(base_url=url, timeout=10) as api,
    ):

        def jira() -> dict[str, Any]:
            items = api.get("/api/connections").json()["items"]
            return next(item for item in items if item["name"] == "jira")

        def logged() -> str:
            log: Path = proc.log  # type: ignore[attr-defined]
            return log.read_text(errors="replace")

        assert jira()["project"] == "DQ"
        wait_for(lambda: (jira()["health"] or {}).get("ok") is True)  # Vault's token works

        config.write_text(config_text(sandbox.url, path, project="TM"))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: jira()["project"] == "TM")
        assert proc.poll() is None  # the same process, still serving
        wait_for(lambda: "reload: changed: jira (project)" in logged())

        config.write_text(config_text(sandbox.url, path).replace("#api_token", "#gone"))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused, the running configuration stays" in logged())
        assert f"secret/{path}/jira#gone: the secret secret/{path}/jira has no key" in logged()
        assert jira()["project"] == "TM"
        assert proc.poll() is None

        text = logged()
        for secret in (token, bao.token):
            assert secret not in text
