"""``anomaly-desk check`` against the real sandbox on loopback, and the provider factory."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anomaly_desk.check import report
from anomaly_desk.core.config import load_settings
from anomaly_desk.core.connections import JiraConnection, Platform, ServiceNowConnection
from anomaly_desk.core.providers import make_provider
from anomaly_desk.core.providers.jira import JiraClient
from anomaly_desk.core.providers.servicenow import ServiceNowClient
from tests.support import ROOT, ThreadedServer, free_port

JIRA_TOKEN, SNOW_PASSWORD = "demo-token", "demo"
HOOK_SECRET = "hook-secret-5b7e21c0"


def config(path: Path, jira_url: str, snow_url: str, extra: str = "") -> Path:
    path.write_text(
        f"""
[platform]
name = "Qualytics"
url = "https://acme.qualytics.io"

[[connections]]
name = "jira"
provider = "jira"
url = "{jira_url}"
email = "demo@example.com"
token_env = "CHECK_JIRA_TOKEN"
project = "DQ"
issue_type = "Task"

[[connections]]
name = "servicenow"
provider = "servicenow"
url = "{snow_url}"
username = "admin"
password_env = "CHECK_SNOW_PASSWORD"
{extra}""",
        encoding="utf-8",
    )
    return path


def run_check(
    *args: str, env: dict[str, str] | None = None, data_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m anomaly_desk check ARGS`` in a clean environment (no stray ANOMALY_DESK_*)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_DESK_")}
    if data_dir is not None:
        base["ANOMALY_DESK_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "anomaly_desk", "check", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def secrets(password: str = SNOW_PASSWORD) -> dict[str, str]:
    return {"CHECK_JIRA_TOKEN": JIRA_TOKEN, "CHECK_SNOW_PASSWORD": password}


def test_all_connections_ok_against_the_sandbox(sandbox: ThreadedServer, tmp_path: Path) -> None:
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url)
    env = {**secrets(), "ANOMALY_DESK_WEBHOOK_SECRET": HOOK_SECRET}
    result = run_check("--config", str(path), env=env, data_dir=tmp_path / "data")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    url = re.escape(sandbox.url)
    assert re.search(
        rf"^ok +jira +\(jira\) +{url}  as demo@example\.com  \d+ ms$", result.stdout, re.M
    )
    assert re.search(
        rf"^ok +servicenow +\(servicenow\) +{url}  as admin  \d+ ms$", result.stdout, re.M
    )
    assert f"config    {path}" in lines
    assert f"receiver  http://127.0.0.1:8787  data: {tmp_path / 'data'}  webhook auth: on" in lines
    assert lines[-1] == "2 connections: all ok"
    assert result.stderr == ""
    for secret in (JIRA_TOKEN, HOOK_SECRET):
        assert secret not in result.stdout


def test_wrong_password_fails_that_connection_only(sandbox: ThreadedServer, tmp_path: Path) -> None:
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url)
    wrong = "not-the-password-42"
    result = run_check("--config", str(path), env=secrets(wrong), data_dir=tmp_path / "data")

    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^ok +jira +\(jira\) ", result.stdout, re.M)
    fail = re.search(r"^FAIL +servicenow +\(servicenow\) +(.*)$", result.stdout, re.M)
    assert fail is not None, result.stdout
    assert fail.group(1).startswith(f"{sandbox.url}  auth: User Not Authenticated")
    assert fail.group(1).endswith("(HTTP 401)")
    assert result.stdout.splitlines()[-1] == "2 connections: 1 ok, 1 failed (servicenow)"
    assert wrong not in result.stdout + result.stderr


def test_unreachable_url_fails_as_unavailable(sandbox: ThreadedServer, tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    path = config(tmp_path / "anomaly-desk.toml", nobody, sandbox.url)
    result = run_check("--config", str(path), env=secrets(), data_dir=tmp_path / "data")

    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(
        rf"^FAIL +jira +\(jira\) +{re.escape(nobody)}  unavailable: cannot connect",
        result.stdout,
        re.M,
    )
    assert re.search(r"^ok +servicenow ", result.stdout, re.M)
    assert result.stdout.splitlines()[-1] == "2 connections: 1 ok, 1 failed (jira)"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers: only a timeout ends the wait."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_silent_server_is_cut_off_by_the_timeout(
    sandbox: ThreadedServer, silent_server: str, tmp_path: Path
) -> None:
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, silent_server)
    started = time.monotonic()
    result = run_check(
        "--config", str(path), "--timeout", "1", env=secrets(), data_dir=tmp_path / "data"
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(
        r"^FAIL +servicenow +\(servicenow\) +\S+  unavailable: no answer within 1 s$",
        result.stdout,
        re.M,
    )
    assert re.search(r"^ok +jira ", result.stdout, re.M)
    assert elapsed < 10  # the connection's own 20 s timeout did not decide it


def test_connections_are_checked_concurrently(sandbox: ThreadedServer, tmp_path: Path) -> None:
    """Four connections behind 600 ms of latency finish in about one latency, not four."""
    sandbox.app.state.faults.latency_ms = 600  # type: ignore[attr-defined]
    extra = "".join(
        f'\n[[connections]]\nname = "{kind}-{n}"\nprovider = "{kind}"\nurl = "{sandbox.url}"\n'
        + (
            'email = "demo@example.com"\ntoken_env = "CHECK_JIRA_TOKEN"\n'
            if kind == "jira"
            else 'username = "admin"\npassword_env = "CHECK_SNOW_PASSWORD"\n'
        )
        for n, kind in enumerate(("jira", "servicenow"), start=2)
    )
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, extra)
    settings = load_settings(path, env=secrets())
    out = io.StringIO()
    started = time.monotonic()
    status = report(settings, timeout=10, out=out)
    elapsed = time.monotonic() - started

    assert status == 0, out.getvalue()
    assert len(re.findall(r"^ok ", out.getvalue(), re.M)) == 4
    assert elapsed < 1.8, f"took {elapsed:.2f} s: not concurrent"


def test_invalid_config_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(
        '[[connections]]\nname = "jira"\nprovider = "jira"\nurl = "https://x"\n'
        'email = "a@b.c"\ntokn_env = "T"\n',
        encoding="utf-8",
    )
    result = run_check("--config", str(path))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"anomaly-desk check: {path}: connections[0].tokn_env: Extra inputs are not permitted "
        "(did you mean 'token_env'?)"
    ]


def test_missing_secret_exits_2_naming_the_variable(tmp_path: Path) -> None:
    path = config(tmp_path / "anomaly-desk.toml", "https://a.example", "https://b.example")
    result = run_check("--config", str(path), env={"CHECK_JIRA_TOKEN": JIRA_TOKEN})

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"anomaly-desk check: {path}: connections[1] (servicenow): password_env: "
        "environment variable CHECK_SNOW_PASSWORD is unset or empty"
    )
    assert JIRA_TOKEN not in result.stderr


def test_no_connections_configured_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text('[platform]\nname = "Qualytics"\n', encoding="utf-8")
    result = run_check("--config", str(path), data_dir=tmp_path / "data")

    assert result.returncode == 1
    assert "no connections configured" in result.stdout
    assert "webhook auth: off" in result.stdout


def test_check_help_explains_what_it_does() -> None:
    result = run_check("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for needle in (
        "--config FILE",
        "--timeout SECONDS",
        "/rest/api/3/myself",
        "sysparm_limit=1",
        "Exit status: 0 every connection works; 1 a connection failed or none is configured; "
        "2 the configuration is invalid.",
    ):
        assert needle in text
    top = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "validate the configuration and test every connection" in top.stdout


async def test_make_provider_builds_the_client_for_each_provider() -> None:
    platform = Platform(name="Qualytics")
    jira = make_provider(
        JiraConnection(name="j", url="https://acme.atlassian.net", email="a@b.c"), platform
    )
    snow = make_provider(
        ServiceNowConnection(name="s", url="https://acme.service-now.com", username="u"), platform
    )
    try:
        assert isinstance(jira, JiraClient)
        assert (jira.name, jira.kind) == ("j", "jira")
        assert isinstance(snow, ServiceNowClient)
        assert (snow.name, snow.kind) == ("s", "servicenow")
    finally:
        await jira.aclose()
        await snow.aclose()


FIN = """
[[connections]]
name = "fin"
provider = "jira"
url = "{url}"
email = "demo@example.com"
token_env = "CHECK_JIRA_TOKEN"
project = "FIN"
issue_type = "Bug"
"""
DOOMED = """
[[rules]]
name = "no such type"
match = {{ datastores = ["warehouse_prod"] }}
action = {{ connection = "jira", issue_type = "Nonesuch" }}

[[rules]]
name = "fin without its region"
match = {{ datastores = ["warehouse_prod"] }}
action = {{ connection = "fin" }}
"""
FINE = """
[[rules]]
name = "fin with its region"
match = {{ datastores = ["warehouse_prod"] }}
action = {{ connection = "fin", fields = {{ customfield_10050 = "EMEA" }} }}
"""


def test_a_jira_rule_that_can_only_fail_fails_check(
    sandbox: ThreadedServer, tmp_path: Path
) -> None:
    extra = FIN.format(url=sandbox.url) + DOOMED.format() + FINE.format()
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, extra)
    result = run_check("--config", str(path), env=secrets(), data_dir=tmp_path / "data")
    assert result.returncode == 1, result.stdout + result.stderr
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2, result.stdout
    assert "rule 'no such type': DQ has no issue type 'Nonesuch'" in fails[0]
    assert "rule 'fin without its region'" in fails[1]
    assert "Region (customfield_10050)" in fails[1]
    assert result.stdout.splitlines()[-1].endswith("2 rules can only fail (above)")
    good = config(
        tmp_path / "good.toml",
        sandbox.url,
        sandbox.url,
        FIN.format(url=sandbox.url) + FINE.format(),
    )
    fine = run_check("--config", str(good), env=secrets(), data_dir=tmp_path / "data")
    assert fine.returncode == 0, fine.stdout + fine.stderr
