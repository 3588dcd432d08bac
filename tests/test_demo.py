"""``anomaly-desk demo --headless``: the newcomer's path, end to end, as a real process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT

BANNER_URL = re.compile(r"^\s+(Sandbox|Receiver)\s+(http://127\.0\.0\.1:\d+)", re.MULTILINE)
DATA_DIR = re.compile(r"^\s+Data\s+(\S+)", re.MULTILINE)
STATUS = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\] Qualytics Anomaly Status: "


def demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "anomaly_desk", "demo", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def urls(output: str) -> dict[str, str]:
    found = dict(BANNER_URL.findall(output))
    assert set(found) == {"Sandbox", "Receiver"}, output
    return found


def assert_stopped(output: str) -> None:
    """Nothing the demo started still answers."""
    for url in urls(output).values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2.0)


def test_headless_demo_shows_every_note_arriving_and_cleans_up() -> None:
    proc = demo("--headless")
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output

    # every fixture accepted by the receiver, with the demo's webhook secret
    assert "200 ×9" in output
    confirmed = re.findall(r"^✓ (\S+)\s+(.+)$", output, re.MULTILINE)
    by_ticket: dict[str, list[str]] = {}
    for key, note in confirmed:
        by_ticket.setdefault(key, []).append(note)
    jira = sorted(k for k in by_ticket if re.fullmatch(r"DQ-\d+", k))
    snow = sorted(k for k in by_ticket if re.fullmatch(r"INC\d{7}", k))
    assert len(jira) == 2, output  # one created, one linked
    assert len(snow) == 2, output
    for key in jira:
        notes = by_ticket[key]
        assert len(notes) == 4, notes
        assert re.fullmatch(STATUS + "Acknowledged", notes[0]), notes
        assert notes[1].startswith("Comment from Qualytics: "), notes
        assert re.fullmatch(STATUS + "(Resolved|Duplicate)", notes[2]), notes
        assert notes[3].startswith("Comment from Qualytics: "), notes
    linked = [k for k in snow if by_ticket[k][0].startswith("Linked to Qualytics anomaly ")]
    assert len(linked) == 1, output  # linking an existing incident leaves a work note
    for key in snow:
        notes = by_ticket[key][1:] if key in linked else by_ticket[key]
        assert len(notes) == 4, notes
        assert re.fullmatch(STATUS + "Acknowledged", notes[0]), notes
        assert re.fullmatch(STATUS + "(Resolved|Duplicate)", notes[2]), notes
    assert "Zoë" in output  # non-ASCII survives the trip through both providers

    assert "== Sync log" in output
    assert len(re.findall(r"^\s+#\d+\s.*\bdone\b", output, re.MULTILINE)) == 16
    assert "Demo tour" in output  # the summary table
    assert "MISSING" not in output
    assert "Demo passed: 17 notes on 4 tickets, each exactly once and in order." in output

    assert_stopped(output)
    data = Path(DATA_DIR.search(output).group(1))  # type: ignore[union-attr]
    assert not data.parent.exists()  # the temporary directory is gone


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_everything_the_demo_started(tmp_path: Path, signum: int) -> None:
    """Ctrl+C or a kill mid-replay (slowed right down): the demo still stops its children."""
    proc = demo("--headless", "--speed", "0.05", "--data-dir", str(tmp_path / "kept"))
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("== Replay"):
                break
        assert any(line.startswith("== Replay") for line in seen), "".join(seen)
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    assert proc.returncode == 128 + signum, output
    name = signal.Signals(signum).name
    assert f"stopped by {name}; everything it started is stopped" in output
    assert_stopped(output)
    assert (tmp_path / "kept").is_dir()  # a data directory the user chose is kept
