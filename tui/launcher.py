"""``anomaly-desk`` / ``anomaly-desk dashboard``: attach to a receiver, or start one and stop it.

Which receiver: ``--url``, else ``ANOMALY_DESK_URL``, else the default ``http://127.0.0.1:8787``.
When nothing answers there, a receiver is started only where that is surely what the user
meant: at the default URL, or anywhere on loopback with ``--start``. A URL that was typed out
(a port, a host) and answers nothing is far more often a typo or a receiver that is down than a
request to start a second store there, so it is reported ("nothing answers at URL") instead.

The started receiver runs as a child process on the chosen data directory, its output in a log
file in a private directory of its own (``mkdtemp``: mode 0700, a name nobody can predict; the
file created exclusively, never through a symlink). If it fails to start, the tail of that log
is the error the user sees (a locked data directory names the process that holds it), and the
log is kept; after a clean run it is removed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from anomaly_desk.core.config import ConfigError, load_settings
from anomaly_desk.core.processes import (
    ExitedEarly,
    NoAnswer,
    cli_command,
    stop_process,
    tail,
    wait_until_answers,
)

DEFAULT_URL = "http://127.0.0.1:8787"
START_TIMEOUT_S = 60.0  # a large store takes a few seconds to load
EXIT_FAILED, EXIT_USAGE = 1, 2
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")  # --as: the operator_email setting's shape


class BadUrl(ValueError):
    """A receiver URL the dashboard cannot use; the message is one line for the user."""


def check_url(url: str, source: str = "--url") -> str:
    """``url`` without a trailing slash, or ``BadUrl`` saying what is wrong with it."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        rest = url.split("://")[-1] or "127.0.0.1:8787"
        raise BadUrl(f"{source} {url!r} is not an http(s) URL; write it whole: http://{rest}")
    try:
        parts.port  # noqa: B018 - an invalid port raises here
    except ValueError:
        raise BadUrl(f"{source} {url!r} has an invalid port") from None
    if not parts.hostname:
        raise BadUrl(f"{source} {url!r} names no host")
    return url


def is_default(url: str) -> bool:
    """Whether ``url`` is the default receiver address (the one ``anomaly-desk serve`` binds)."""
    parts, default = urlsplit(url), urlsplit(DEFAULT_URL)
    return (
        parts.scheme == default.scheme
        and parts.hostname == default.hostname
        and (parts.port or 80) == default.port
        and parts.path in ("", "/")
    )


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


def open_log(path: Path, exclusive: bool) -> int:
    """A log file descriptor for writing, never through a symlink (``O_NOFOLLOW``); with
    ``exclusive`` the file must not exist yet (``O_EXCL``), else it is truncated."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_EXCL if exclusive else os.O_TRUNC
    return os.open(path, flags, 0o600)


class ChildReceiver:
    """``python -m anomaly_desk serve`` for the dashboard's lifetime.

    ``log``: where its output goes; by default ``receiver.log`` in a fresh private directory,
    removed by ``cleanup()`` unless the receiver failed (then the user is told to read it).
    """

    def __init__(
        self, url: str, data_dir: Path | None, config: Path | None, log: Path | None = None
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.host = parts.hostname or "127.0.0.1"
        self.data_dir = data_dir
        self.config = config
        self._private: Path | None = None
        if log is None:
            self._private = Path(tempfile.mkdtemp(prefix="anomaly-desk-dashboard-"))
            log = self._private / "receiver.log"
        self.log = log
        self.failed = False
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

    def spawn(self) -> subprocess.Popen[bytes]:
        """The child, stdout and stderr into the log; stdin /dev/null (the terminal is ours)."""
        fd = open_log(self.log, exclusive=self._private is not None)
        try:
            return subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT
            )
        finally:
            os.close(fd)

    def start(self, timeout: float = START_TIMEOUT_S) -> str | None:
        """Start and wait for ``/healthz``; an error message when it did not come up."""
        self.proc = self.spawn()
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
        self.failed = True
        log = tail(self.log)
        hint = ""
        if "in use by another" in log:
            hint = (
                "\nThe data directory is locked by another anomaly-desk process (see above); "
                "attach to it with: anomaly-desk --url URL"
            )
        return f"{what}; its log ({self.log}):\n{log}{hint}"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=15)

    def cleanup(self) -> None:
        """Remove the private log directory, unless the log explains a failure."""
        if self._private is not None and not self.failed:
            shutil.rmtree(self._private, ignore_errors=True)


def _say(message: str) -> None:
    print(f"anomaly-desk: {message}", file=sys.stderr, flush=True)


def _confirm_notes(args: argparse.Namespace) -> bool:
    """``dashboard.confirm_notes`` from the config file (or its variable); asking is the safe
    default when the settings cannot be read (the receiver reports why, if it is ours)."""
    try:
        settings = load_settings(getattr(args, "config", None))
    except ConfigError:
        return True
    return settings.dashboard.confirm_notes


def main(args: argparse.Namespace) -> int:
    given = getattr(args, "url", None)
    raw = given or os.environ.get("ANOMALY_DESK_URL") or DEFAULT_URL
    try:
        url = check_url(raw, "--url" if given else "ANOMALY_DESK_URL")
    except BadUrl as exc:
        _say(str(exc))
        return EXIT_USAGE
    token = getattr(args, "token", None) or os.environ.get("ANOMALY_DESK_TOKEN")
    raised_for = getattr(args, "raised_for", None)
    if raised_for is not None and not EMAIL.match(raised_for):
        _say(f"--as wants an email address (name@example.com), not {raised_for!r}")
        return EXIT_USAGE
    start = bool(getattr(args, "start", False))
    host = urlsplit(url).hostname or ""
    if start and not _is_loopback(host):
        _say(f"--start starts a receiver on this machine; {host} is not a loopback address")
        return EXIT_USAGE
    found = probe(url)
    if found is None:
        _say(f"{url} answers, but it is not an Anomaly Desk receiver")
        return EXIT_FAILED
    child: ChildReceiver | None = None
    if not found:
        if not (start or (is_default(url) and _is_loopback(host))):
            hint = (
                "; pass --start to start a receiver there"
                if _is_loopback(host)
                else "; is the receiver running, and is the address right?"
            )
            _say(f"nothing answers at {url}{hint}")
            return EXIT_FAILED
        child = ChildReceiver(url, getattr(args, "data_dir", None), getattr(args, "config", None))
        _say(f"starting a receiver on {url} …")
        try:
            error = child.start()
        except BaseException:  # Ctrl+C while it starts: it must not outlive us
            child.stop()
            raise
        if error:
            _say(error)
            return EXIT_FAILED
    from anomaly_desk.tui.app import (
        run_dashboard,  # Textual loads only once there is something to show
    )

    try:
        return run_dashboard(url, token, confirm_notes=_confirm_notes(args), raised_for=raised_for)
    finally:
        if child is not None:
            child.stop()
            child.cleanup()
