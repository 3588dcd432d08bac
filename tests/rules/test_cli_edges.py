"""``anomaly-desk rules test`` reads regular files only, and no more than the receiver would take.

A FIFO named ``*.json`` used to hang the command forever (no writer ever comes), and a device
named on the command line was reported as "no such file or directory". The command runs as a
child process with a timeout: a hang fails the test instead of hanging the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import write_config
from tests.support import FIXTURES, ROOT

GOOD = FIXTURES / "webhooks" / "01-flow-anomalies-detected.json"
RULE = """
[[rules]]
name = "warehouse"
match = { datastores = ["warehouse_prod"] }
action = { connection = "jira" }

[receiver]
max_body_bytes = 65536
"""


def rules_test(tmp_path: Path, *paths: Path) -> tuple[int, str, float]:
    """The command's exit status, its output (both streams), and how long it took."""
    config = write_config(tmp_path / "anomaly-desk.toml", "http://127.0.0.1:9", rules=RULE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_DESK_")}
    command = [sys.executable, "-m", "anomaly_desk", "rules", "test", "--config", str(config)]
    started = time.monotonic()
    done = subprocess.run(
        [*command, *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.fixture
def payloads(tmp_path: Path) -> Path:
    """A directory of ``*.json``: a payload, a FIFO, a directory, one too large, a link to the
    payload, and a file not named ``*.json`` (not read)."""
    folder = tmp_path / "payloads"
    folder.mkdir()
    shutil.copy(GOOD, folder / "01-good.json")
    os.mkfifo(folder / "02-pipe.json")
    (folder / "03-folder.json").mkdir()
    (folder / "04-big.json").write_bytes(b'{"items": [' + b" " * 70_000 + b"]}")
    (folder / "05-link.json").symlink_to(folder / "01-good.json")
    os.mkfifo(folder / "06-pipe.txt")
    return folder


def test_a_fifo_directory_or_oversized_file_is_skipped_and_the_rest_is_read(
    tmp_path: Path, payloads: Path
) -> None:
    status, output, took = rules_test(tmp_path, payloads)
    assert status == 1, output  # as for a payload that cannot be read
    assert took < 20, took
    assert f"{payloads / '02-pipe.json'}: not a regular file (a FIFO); skipped" in output
    assert f"{payloads / '03-folder.json'}: not a regular file (a directory); skipped" in output
    assert f"{payloads / '04-big.json'}: larger than max_body_bytes = 65536" in output
    assert "== 01-good.json" in output
    assert "== 05-link.json" in output  # a link to a regular file is that file
    assert "rule 'warehouse': create a ticket on jira" in output
    assert "06-pipe.txt" not in output


def test_a_fifo_named_on_the_command_line_is_not_waited_for(tmp_path: Path) -> None:
    pipe = tmp_path / "named.json"
    os.mkfifo(pipe)
    status, output, took = rules_test(tmp_path, pipe, GOOD)
    assert status == 1, output
    assert took < 20, took
    assert f"{pipe}: not a regular file (a FIFO); skipped" in output
    assert "== 01-flow-anomalies-detected.json" in output


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_a_device_is_named_for_what_it_is(tmp_path: Path) -> None:
    status, output, took = rules_test(tmp_path, Path("/dev/zero"))
    assert status == 1, output
    assert took < 20, took
    assert "/dev/zero: not a regular file (a character device); skipped" in output
    assert "no such file" not in output


def test_a_missing_path_is_still_a_usage_error(tmp_path: Path) -> None:
    status, output, _ = rules_test(tmp_path, tmp_path / "none.json")
    assert status == 2, output
    assert "none.json: no such file or directory" in output


def test_a_payload_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    body = GOOD.read_bytes()
    exact = tmp_path / "exact.json"
    exact.write_bytes(body + b" " * (65536 - len(body)))
    status, output, _ = rules_test(tmp_path, exact)
    assert status == 0, output
    assert "== exact.json" in output
