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
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from anomaly_desk.core.processes import (
    ExitedEarly,
    NoAnswer,
    cli_command,
    spawn_cli,
    stop_process,
    tail,
    wait_until_answers,
)

DEFAULT_URL = "http://127.0.0.1:8787"
START_TIMEOUT_S = 60.0  # a large store takes a few seconds to load


def _is_receiver(response: httpx.Response) -> bool:
    """Whether a ``/healthz`` answer is a (healthy) Anomaly Desk receiver's."""
    return response.status_code == 200 and "by_status" in response.text


def probe(url: str) -> bool | None:
    """True: a receiver answers; False: nothing listens; None: something else answers."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/healthz", timeout=2.0)
    except httpx.TransportError:
        return False
    return True if _is_receiver(response) else None


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


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

    def arguments(self) -> list[str]:
        """``serve`` with this receiver's address, data directory and config."""
        args = ["serve", "--host", self.host, "--port", str(self.port)]
        if self.data_dir is not None:
            args += ["--data-dir", str(self.data_dir)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return args

    def command(self) -> list[str]:
        return cli_command(self.arguments())

    def start(self, timeout: float = START_TIMEOUT_S) -> str | None:
        """Start and wait for ``/healthz``; an error message when it did not come up."""
        self.proc = spawn_cli(self.arguments(), self.log)
        try:
            wait_until_answers(
                f"{self.url.rstrip('/')}/healthz",
                timeout=timeout,
                proc=self.proc,
                ready=_is_receiver,
                interval=0.1,
            )
        except ExitedEarly as exc:
            return self._failure(f"the receiver exited with status {exc.returncode}")
        except NoAnswer:
            self.stop()
            return self._failure(f"the receiver did not answer at {self.url} within {timeout:.0f}s")
        return None

    def _failure(self, what: str) -> str:
        log = tail(self.log)
        hint = ""
        if "in use by another" in log:
            hint = "\nThe data directory is locked by another anomaly-desk process (see above)."
        return f"{what}; its log ({self.log}):\n{log}{hint}"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=15)


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
