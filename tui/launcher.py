"""``anomaly-desk`` / ``anomaly-desk dashboard``: attach to a receiver, or start one and stop it.

When nothing answers at the URL (and it is a loopback address), the receiver runs as a child
process on the chosen data directory, its output in a log file; if it fails to start, the tail of
that log is the error the user sees (a locked data directory names the process that holds it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

DEFAULT_URL = "http://127.0.0.1:8787"
START_TIMEOUT_S = 60.0  # a large store takes a few seconds to load


def probe(url: str) -> bool | None:
    """True: a receiver answers; False: nothing listens; None: something else answers."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/healthz", timeout=2.0)
    except httpx.TransportError:
        return False
    if response.status_code == 200 and "by_status" in response.text:
        return True
    return None


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class ChildReceiver:
    """``python -m anomaly_desk serve`` for the dashboard's lifetime."""

    def __init__(
        self, url: str, data_dir: Path | None, config: Path | None, log: Path | None = None
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.port = parts.port or 80
        self.host = parts.hostname or "127.0.0.1"
        self.data_dir = data_dir
        self.config = config
        self.log = log or Path(tempfile.gettempdir()) / f"anomaly-desk-receiver-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "anomaly_desk", "serve", "--host", self.host]
        cmd += ["--port", str(self.port)]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd

    def start(self, timeout: float = START_TIMEOUT_S) -> str | None:
        """Start and wait for ``/healthz``; an error message when it did not come up."""
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return self._failure(f"the receiver exited with status {code}")
            if probe(self.url):
                return None
            time.sleep(0.1)
        self.stop()
        return self._failure(f"the receiver did not answer at {self.url} within {timeout:.0f}s")

    def _failure(self, what: str) -> str:
        tail = _tail(self.log)
        hint = ""
        if "in use by another" in tail:
            hint = "\nThe data directory is locked by another anomaly-desk process (see above)."
        return f"{what}; its log ({self.log}):\n{tail}{hint}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main(args: argparse.Namespace) -> int:
    url = (getattr(args, "url", None) or os.environ.get("ANOMALY_DESK_URL") or DEFAULT_URL).rstrip(
        "/"
    )
    token = getattr(args, "token", None) or os.environ.get("ANOMALY_DESK_TOKEN")
    found = probe(url)
    if found is None:
        print(
            f"anomaly-desk: {url} answers, but it is not an Anomaly Desk receiver", file=sys.stderr
        )
        return 1
    child: ChildReceiver | None = None
    if not found:
        host = urlsplit(url).hostname or ""
        if not _is_loopback(host):
            print(f"anomaly-desk: no receiver answers at {url}", file=sys.stderr)
            return 1
        child = ChildReceiver(url, getattr(args, "data_dir", None), getattr(args, "config", None))
        print(f"anomaly-desk: starting a receiver on {url} …", file=sys.stderr, flush=True)
        error = child.start()
        if error:
            print(f"anomaly-desk: {error}", file=sys.stderr)
            return 1
    from anomaly_desk.tui.app import (
        run_dashboard,  # Textual loads only once there is something to show
    )

    try:
        return run_dashboard(url, token)
    finally:
        if child is not None:
            child.stop()
