"""A receiver and the sandbox, both real servers on loopback, configured like a user would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from anomaly_desk.core.config import load_settings
from anomaly_desk.core.formatting.adf import adf_to_text
from anomaly_desk.core.journal import StoreError
from anomaly_desk.receiver.app import create_app
from tests.support import FIXTURES, ThreadedServer, free_port

ENV = {"JIRA_TOKEN": "demo-token", "SNOW_PASSWORD": "demo", "PLATFORM_TOKEN": "demo-platform-token"}


# A rule that matches nothing, for the tests that only need one to exist (pause, resume, events)
INERT_RULE = """
[[rules]]
name = "inert"
match = { datastores = ["no-such-datastore"] }
action = { connection = "jira" }
"""


def status_note(status: str) -> str:
    """The pattern of a status note: its timestamp is the moment of the change."""
    return r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\] Qualytics Anomaly Status: " + status + "$"


def write_config(
    path: Path,
    sandbox_url: str,
    platform: bool = False,
    jira: str = "",
    servicenow: str = "",
    rules: str = "",
    **sync: float,
) -> Path:
    """Jira and ServiceNow on the sandbox; with ``platform``, the platform's API too (the
    sandbox's emulator, token from PLATFORM_TOKEN: write-back and enrichment on)."""
    sync_lines = "\n".join(
        f"{k} = {v}"
        for k, v in {
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.4,
            "refresh_interval_s": 0,
            **sync,
        }.items()
    )
    # no polling unless a test asks: a poll's requests would take faults meant for a note
    jira = jira if "poll_s" in jira else f"{jira}\npoll_s = 0"
    servicenow = servicenow if "poll_s" in servicenow else f"{servicenow}\npoll_s = 0"
    platform_lines = (
        f'url = "{sandbox_url}"\ntoken_env = "PLATFORM_TOKEN"'
        if platform
        else 'url = "https://acme.qualytics.io"'
    )
    path.write_text(f"""
[platform]
name = "Qualytics"
{platform_lines}

[sync]
{sync_lines}

[[connections]]
name = "jira"
provider = "jira"
url = "{sandbox_url}"
email = "demo@example.com"
token_env = "JIRA_TOKEN"
project = "DQ"
issue_type = "Task"
timeout = 2
{jira}

[[connections]]
name = "servicenow"
provider = "servicenow"
url = "{sandbox_url}"
username = "admin"
password_env = "SNOW_PASSWORD"
timeout = 2
{servicenow}
{rules}
""")
    return path


@dataclass
class Desk:
    """The receiver under test, the sandbox behind it, and what a test needs to look at both."""

    receiver: ThreadedServer
    sandbox: ThreadedServer
    api: httpx.Client
    data_dir: Path
    config: Path
    started: list[ThreadedServer] = field(default_factory=list)

    @property
    def faults(self) -> Any:
        return self.sandbox.app.state.faults  # type: ignore[attr-defined]

    def post_webhook(self, name: str) -> httpx.Response:
        body = (FIXTURES / "webhooks" / name).read_bytes()
        response = self.api.post(
            "/webhooks/qualytics", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text
        return response

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Until the worker has nothing pending or in flight. First, everything committed so
        far is made durable: a change is readable a moment before its jobs are queued."""
        worker = self.receiver.app.state.worker
        store = self.receiver.app.state.store
        if self.receiver.loop is not None:
            with contextlib.suppress(StoreError):  # a full disk: the worker has to wait anyway
                asyncio.run_coroutine_threadsafe(store.barrier(), self.receiver.loop).result(10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.receiver.call(worker.idle):
                return
            time.sleep(0.05)
        raise AssertionError(
            f"sync did not settle within {timeout}s: {self.api.get('/api/sync-jobs').json()}"
        )

    # -- reading tickets back through the providers' own APIs --------------------------------

    def jira(self) -> httpx.Client:
        return httpx.Client(base_url=self.sandbox.url, auth=("demo@example.com", "demo-token"))

    def snow(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.sandbox.url,
            auth=("admin", "demo"),
            headers={"accept": "application/json"},
        )

    def jira_issue(self, key: str) -> dict[str, Any]:
        with self.jira() as c:
            return c.get(f"/rest/api/3/issue/{key}").raise_for_status().json()

    def jira_notes(self, key: str) -> list[str]:
        with self.jira() as c:
            page = (
                c.get(f"/rest/api/3/issue/{key}/comment", params={"orderBy": "created"})
                .raise_for_status()
                .json()
            )
        return [adf_to_text(comment["body"]).strip() for comment in page["comments"]]

    def incident(self, sys_id: str) -> dict[str, Any]:
        with self.snow() as c:
            return c.get(f"/api/now/table/incident/{sys_id}").raise_for_status().json()["result"]

    def snow_notes(self, sys_id: str) -> list[str]:
        with self.snow() as c:
            rows = (
                c.get(
                    "/api/now/table/sys_journal_field",
                    params={
                        "sysparm_query": f"element_id={sys_id}^element=work_notes^ORDERBYsys_created_on",
                    },
                )
                .raise_for_status()
                .json()["result"]
            )
        return [row["value"].strip() for row in rows]

    def notes(self, link: dict[str, Any]) -> list[str]:
        if link["provider"] == "jira":
            return self.jira_notes(link["ticket_key"])
        return self.snow_notes(link["ticket_id"])


def start_receiver(
    config: Path, data_dir: Path, env: dict[str, str], port: int = 0
) -> ThreadedServer:
    settings = load_settings(config, overrides={"data_dir": data_dir}, env=env)
    server = ThreadedServer(create_app(settings), port=port).start()
    return server


@pytest.fixture
def desk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    env = Desk(receiver, sandbox, api, tmp_path / "data", config)
    try:
        yield env
    finally:
        api.close()
        receiver.stop()


@pytest.fixture
def pdesk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """A receiver with the platform's API configured: write-back and enrichment on."""
    config = write_config(
        tmp_path / "anomaly-desk-platform.toml", sandbox.url, platform=True, rules=INERT_RULE
    )
    data = tmp_path / "platform-data"  # beside a `desk` a test may also use
    receiver = start_receiver(config, data, ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        yield Desk(receiver, sandbox, api, data, config)
    finally:
        api.close()
        receiver.stop()


@pytest.fixture
def restartable_sandbox() -> Callable[..., ThreadedServer]:
    """A sandbox whose app (and so its state) survives a stop and start on the same port."""
    from anomaly_desk.sandbox.app import create_app as sandbox_app

    app = sandbox_app()
    port = free_port()

    def start() -> ThreadedServer:
        server = ThreadedServer(app, port=port).start()
        server.app = app  # type: ignore[attr-defined]
        return server

    return start
