"""``anomaly-desk check`` tests the platform's API too, when ``[platform]`` has a URL and a token."""

from __future__ import annotations

import io
import re
from pathlib import Path

from anomaly_desk.check import report
from anomaly_desk.core.config import load_settings
from anomaly_desk.sandbox.platform import PlatformEmulator
from tests.platform.conftest import SANDBOX_TOKEN
from tests.support import ThreadedServer, free_port
from tests.test_check import run_check

JIRA_TOKEN = "demo-token"


def config(path: Path, platform_url: str, jira_url: str | None = None, extra: str = "") -> Path:
    jira = (
        f'\n[[connections]]\nname = "jira"\nprovider = "jira"\nurl = "{jira_url}"\n'
        'email = "demo@example.com"\ntoken_env = "CHECK_JIRA_TOKEN"\n'
        if jira_url
        else ""
    )
    path.write_text(
        f'[platform]\nname = "Qualytics"\nurl = "{platform_url}"\n{extra}{jira}', encoding="utf-8"
    )
    return path


def check(path: Path, env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    status = report(load_settings(path, env=env), timeout=5, out=out)
    return status, out.getvalue()


def open_count(sandbox: ThreadedServer) -> int:
    emulator: PlatformEmulator = sandbox.app.state.platform  # type: ignore[attr-defined]
    return sum(1 for a in emulator.anomalies.values() if not a.archived)


def test_the_platform_is_checked_with_its_token(sandbox: ThreadedServer, tmp_path: Path) -> None:
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, 'token_env = "QT"\n')
    env = {"QT": SANDBOX_TOKEN, "CHECK_JIRA_TOKEN": JIRA_TOKEN}
    result = run_check("--config", str(path), env=env, data_dir=tmp_path / "data")

    assert result.returncode == 0, result.stdout + result.stderr
    url = re.escape(sandbox.url)
    assert re.search(
        rf"^ok +Qualytics +\(platform\) +{url}  {open_count(sandbox)} open anomalies  \d+ ms$",
        result.stdout,
        re.M,
    ), result.stdout
    assert re.search(r"^ok +jira +\(jira\) ", result.stdout, re.M)
    lines = result.stdout.splitlines()
    assert (
        f"platform  Qualytics  {sandbox.url}  API: on  write-back: on  import on start: off"
        in lines
    )
    assert lines[-1] == "1 connection and the platform: all ok"
    assert SANDBOX_TOKEN not in result.stdout + result.stderr


def test_a_wrong_token_fails_the_platform_line_and_the_exit_status(
    sandbox: ThreadedServer, tmp_path: Path
) -> None:
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, 'token_env = "QT"\n')
    wrong = "not-the-platform-token-3e"
    status, out = check(path, {"QT": wrong, "CHECK_JIRA_TOKEN": JIRA_TOKEN})

    assert status == 1, out
    assert re.search(
        rf"^FAIL +Qualytics +\(platform\) +{re.escape(sandbox.url)}  "
        r"auth: Invalid or expired token \(HTTP 401\)$",
        out,
        re.M,
    ), out
    assert re.search(r"^ok +jira ", out, re.M)
    assert out.splitlines()[-1] == "1 connection and the platform: 1 ok, 1 failed (Qualytics)"
    assert wrong not in out


def test_an_unreachable_platform_is_unavailable(sandbox: ThreadedServer, tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    path = config(tmp_path / "anomaly-desk.toml", nobody, sandbox.url, 'token_env = "QT"\n')
    status, out = check(path, {"QT": SANDBOX_TOKEN, "CHECK_JIRA_TOKEN": JIRA_TOKEN})

    assert status == 1, out
    assert re.search(
        rf"^FAIL +Qualytics +\(platform\) +{re.escape(nobody)}  unavailable: cannot connect",
        out,
        re.M,
    ), out


def test_without_a_token_the_platform_is_not_called(
    sandbox: ThreadedServer, tmp_path: Path
) -> None:
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url)
    status, out = check(path, {"CHECK_JIRA_TOKEN": JIRA_TOKEN})

    assert status == 0, out
    assert f"platform  Qualytics  {sandbox.url}  API: off (no token)" in out.splitlines()
    assert "(platform)" not in out
    assert out.splitlines()[-1] == "1 connection: all ok"


def test_write_back_off_is_shown(sandbox: ThreadedServer, tmp_path: Path) -> None:
    extra = 'token_env = "QT"\nwrite_back = false\nimport_on_start = true\n'
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, extra)
    status, out = check(path, {"QT": SANDBOX_TOKEN, "CHECK_JIRA_TOKEN": JIRA_TOKEN})

    assert status == 0, out
    assert "API: on  write-back: off  import on start: on" in out


def test_a_platform_without_connections_is_checked_but_still_exits_1(
    sandbox: ThreadedServer, tmp_path: Path
) -> None:
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, extra='token_env = "QT"\n')
    status, out = check(path, {"QT": SANDBOX_TOKEN})

    assert status == 1, out
    assert re.search(r"^ok +Qualytics +\(platform\) ", out, re.M), out
    assert "no connections configured" in out
