"""Values that can only go wrong are refused when the configuration is read, naming the key:
retention that would compact in a loop or compute no date, rules that would match everything or
could not be told apart, a configuration path that is no file. A reload with any of them keeps
the running configuration (over the wire: a real receiver)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from anomaly_desk.core.config import ConfigError, load_settings
from tests.integration.conftest import ENV, start_receiver, write_config
from tests.support import ThreadedServer

RULE = """
[[rules]]
name = "{name}"
match = {{ {match} }}
action = {{ connection = "jira" }}
"""


def config(tmp_path: Path, extra: str) -> Path:
    path = write_config(tmp_path / "desk.toml", "http://127.0.0.1:9")
    with path.open("a", encoding="utf-8") as fh:
        fh.write(extra)
    return path


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("\n[retention]\ncompact_every_h = 1e-9\n", "compact at most every 0.1 h"),
        ("\n[retention]\narchive_after_days = 1000000\n", "archive_after_days"),
        ("\n[retention]\ndelete_after_days = 100000000000000000\n", "delete_after_days"),
        (RULE.format(name="n", match="min_weight = nan"), "min_weight"),
        (RULE.format(name="i", match="min_weight = inf"), "min_weight"),
        (RULE.format(name="s", match="statuses = []"), "statuses"),
        (RULE.format(name="\u200b", match=""), "invisible"),
        (RULE.format(name="..", match=""), "name"),
        (
            RULE.format(name="plant", match="").replace(
                'connection = "jira" }',
                'connection = "jira", fields = { labels = ["Anomaly-99601"] } }',
            ),
            "correlation labels",
        ),
        (
            RULE.format(name="caf\u00e9", match="") + RULE.format(name="cafe\u0301", match=""),
            "duplicate rule name",
        ),
    ],
)
def test_a_value_that_can_only_go_wrong_is_refused_naming_it(
    tmp_path: Path, extra: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(config(tmp_path, extra), env=ENV)
    assert words in str(info.value)


def test_a_configuration_path_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "desk.toml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings(fifo, env=ENV)
    assert time.monotonic() - started < 2


def test_a_reload_from_a_fifo_answers_and_keeps_the_running_configuration(
    tmp_path: Path, sandbox: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():  # a reload reads the process's environment
        monkeypatch.setenv(name, value)
    path = write_config(tmp_path / "desk.toml", sandbox.url)
    receiver = start_receiver(path, tmp_path / "data", ENV)
    try:
        with httpx.Client(base_url=receiver.url, timeout=10) as api:
            path.unlink()
            os.mkfifo(path)  # a reader would wait for a writer forever
            refused = api.post("/api/reload")
            assert refused.status_code == 422, refused.text
            assert "not a regular file" in refused.text
            path.unlink()
            write_config(path, sandbox.url)
            again = api.post("/api/reload")
            assert again.status_code == 200, again.text  # the lock was never held
            assert api.get("/healthz").status_code == 200
    finally:
        receiver.stop()
