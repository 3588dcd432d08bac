"""``anomaly-desk demo``: everything working at once, with no Jira or ServiceNow account.

Starts the sandbox and a receiver as child processes (each its own CPU and event loop, exactly
as a user would run them), replays the fixtures through ``anomaly_desk.replay``, and opens the
dashboard. ``--headless`` replaces the dashboard with a scripted tour through the operator API
and proves the result by reading every note back from the sandbox's own REST APIs — the same
evidence a person would look for in Jira and ServiceNow.

Everything started is stopped on the way out (quit, Ctrl+C, SIGTERM, an error): children are
terminated and waited for, temporary directories removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from anomaly_desk.replay import (
    Auth,
    Payload,
    Result,
    Sender,
    Unreachable,
    UsageError,
    collect_files,
    load_payloads,
    status_counts,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
HOST = "127.0.0.1"
JIRA_LOGIN = ("demo@example.com", "demo-token")  # the sandbox's seeded credentials
SERVICENOW_LOGIN = ("admin", "demo")
JIRA_TOKEN_ENV = "DEMO_JIRA_TOKEN"
SNOW_PASSWORD_ENV = "DEMO_SNOW_PASSWORD"
PLATFORM = "Qualytics"
START_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0
# Seconds before each delivery at --speed 1: anomalies about a second apart, status changes later.
FIRST_DELAY_S, DETECTION_GAP_S, STATUS_PAUSE_S, STATUS_GAP_S = 2.0, 1.0, 5.0, 2.0


class DemoError(Exception):
    """The demo could not run (a child did not start, a tour step was refused): exit 1."""


def default_fixtures() -> Path:
    """The fixtures shipped in the wheel, else ``fixtures/webhooks`` of the source tree."""
    here = Path(__file__).resolve().parent
    packaged = here / "fixtures" / "webhooks"
    return packaged if packaged.is_dir() else here.parent / "fixtures" / "webhooks"


def say(text: str = "") -> None:
    print(text, flush=True)


# ------------------------------------------------------------------------------ child processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """One ``python -m anomaly_desk …`` process, its output going to a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Terminate, wait, and only then kill: the receiver flushes its store on SIGTERM."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def child_process(
    name: str, argv: Sequence[str], env: dict[str, str], log: Path, url: str
) -> Iterator[Child]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anomaly_desk", *argv],
            stdin=subprocess.DEVNULL,  # the dashboard owns the terminal
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield Child(name, proc, log, url)
    finally:
        stop_process(proc)


def wait_ready(child: Child, path: str, timeout: float = START_TIMEOUT_S) -> None:
    """Until ``child.url + path`` answers 200; a child that dies is reported with its log."""
    deadline = time.monotonic() + timeout
    while True:
        code = child.proc.poll()
        if code is not None:
            raise DemoError(
                f"the {child.name} exited ({code}) before it was ready:\n{child.tail()}"
            )
        try:
            if httpx.get(child.url + path, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise DemoError(
                f"the {child.name} did not answer at {child.url} within {timeout:g} s:\n"
                f"{child.tail()}"
            )
        time.sleep(0.05)


def start_server(
    stack: contextlib.ExitStack,
    name: str,
    argv: Callable[[int], list[str]],
    env: dict[str, str],
    log: Path,
    ready_path: str,
) -> Child:
    """Start a server on a free port; another port if that one was taken meanwhile."""
    for attempt in range(3):
        port = free_port()
        child = stack.enter_context(
            child_process(name, argv(port), env, log, f"http://{HOST}:{port}")
        )
        try:
            wait_ready(child, ready_path)
            return child
        except DemoError:
            if attempt < 2 and "address already in use" in log.read_text(errors="replace"):
                continue
            raise
    raise AssertionError("unreachable")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without its ``ANOMALY_DESK_*`` settings: the demo's receiver
    must not pick up a real config, data directory or secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_DESK_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def write_config(path: Path, sandbox_url: str) -> Path:
    """Jira + ServiceNow connections to the sandbox; the secrets are named, never written."""
    path.write_text(f"""# Written by `anomaly-desk demo`: both connections point at the sandbox.
[platform]
name = "{PLATFORM}"
url = "https://acme.qualytics.io"

[sync]
backoff_base_s = 0.2
backoff_max_s = 5
refresh_interval_s = 30

[[connections]]
name = "jira"
provider = "jira"
url = "{sandbox_url}"
email = "{JIRA_LOGIN[0]}"
token_env = "{JIRA_TOKEN_ENV}"
project = "DQ"
issue_type = "Task"
timeout = 5

[[connections]]
name = "servicenow"
provider = "servicenow"
url = "{sandbox_url}"
username = "{SERVICENOW_LOGIN[0]}"
password_env = "{SNOW_PASSWORD_ENV}"
timeout = 5
""")
    return path


# ------------------------------------------------------------------------------ pacing


def delays(payloads: Sequence[Payload], speed: float | None) -> list[float]:
    """Seconds to wait before each delivery; ``speed`` None means no pauses at all."""
    if speed is None:
        return [0.0] * len(payloads)
    out: list[float] = []
    seen_status = False
    for index, payload in enumerate(payloads):
        if index == 0:
            gap = FIRST_DELAY_S
        elif payload.status_change:
            gap = STATUS_GAP_S if seen_status else STATUS_PAUSE_S
            seen_status = True
        else:
            gap = DETECTION_GAP_S
        out.append(gap / speed)
    return out


async def paced_replay(
    payloads: Sequence[Payload],
    pauses: Sequence[float],
    sender: Sender,
    on_result: Callable[[Result], None],
    stop: threading.Event | None = None,
) -> list[Result]:
    results: list[Result] = []
    for payload, pause in zip(payloads, pauses, strict=True):
        deadline = time.monotonic() + pause
        while (left := deadline - time.monotonic()) > 0:
            if stop is not None and stop.is_set():
                return results
            await asyncio.sleep(min(left, 0.1))
        if stop is not None and stop.is_set():
            return results
        result = await sender.send(payload)
        results.append(result)
        on_result(result)
    return results


# ------------------------------------------------------------------------------ the command


@dataclass
class Setup:
    """Where the running demo's parts are."""

    sandbox: Child
    receiver: Child
    data_dir: Path
    temporary_data: bool
    config: Path
    webhook_secret: str
    payloads: list[Payload] = field(default_factory=list)
    fixtures: Path = field(default_factory=default_fixtures)


class Signalled(KeyboardInterrupt):
    """SIGTERM / SIGHUP, handled like Ctrl+C so every ``finally`` runs (asyncio included)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: FrameType | None) -> None:
    raise Signalled(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ``Signalled`` for the demo's lifetime (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {sig: signal.signal(sig, _raise_signalled) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(args: argparse.Namespace) -> int:
    """The ``demo`` subcommand (see ``anomaly_desk.cli``)."""
    if args.speed is not None and args.speed <= 0:
        print("anomaly-desk demo: --speed must be more than 0", file=sys.stderr)
        return EXIT_USAGE
    if not args.headless and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(
            "anomaly-desk demo: the dashboard needs a terminal; use --headless to run the "
            "demo without it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    fixtures = args.fixtures or default_fixtures()
    try:
        payloads = load_payloads(collect_files([fixtures]))
    except UsageError as exc:
        hint = "" if args.fixtures else " (pass --fixtures DIR outside a source checkout)"
        print(f"anomaly-desk demo: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with stop_on_signals(), contextlib.ExitStack() as stack:
            setup = start(stack, args.data_dir, payloads, fixtures)
            print_banner(setup)
            if args.headless:
                from anomaly_desk.tour import headless  # the tour needs this module

                return asyncio.run(headless(setup, args.speed))
            return interactive(setup, 1.0 if args.speed is None else args.speed)
    except DemoError as exc:
        print(f"anomaly-desk demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Signalled) else signal.SIGINT
        name = signal.Signals(signum).name
        print(
            f"anomaly-desk demo: stopped by {name}; everything it started is stopped",
            file=sys.stderr,
        )
        return 128 + signum


def start(
    stack: contextlib.ExitStack, data_dir: Path | None, payloads: list[Payload], fixtures: Path
) -> Setup:
    """Sandbox first (the receiver checks its connections at start), then the receiver."""
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="anomaly-desk-demo-")))
    temporary = data_dir is None
    data = (work / "data") if data_dir is None else data_dir.expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    say("Starting the sandbox (Jira Cloud + ServiceNow emulators) and a receiver…")
    sandbox = start_server(
        stack,
        "sandbox",
        lambda port: ["sandbox", "--host", HOST, "--port", str(port)],
        child_env({}),
        work / "sandbox.log",
        "/_sandbox/faults",
    )
    config = write_config(work / "anomaly-desk.toml", sandbox.url)
    webhook_secret = secrets.token_urlsafe(18)
    env = child_env(
        {
            JIRA_TOKEN_ENV: JIRA_LOGIN[1],
            SNOW_PASSWORD_ENV: SERVICENOW_LOGIN[1],
            "ANOMALY_DESK_WEBHOOK_SECRET": webhook_secret,
        }
    )
    receiver = start_server(
        stack,
        "receiver",
        lambda port: [
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--config",
            str(config),
        ],
        env,
        work / "receiver.log",
        "/healthz",
    )
    return Setup(sandbox, receiver, data, temporary, config, webhook_secret, payloads, fixtures)


def print_banner(setup: Setup) -> None:
    s, r = setup.sandbox.url, setup.receiver.url
    kept = "temporary, removed at exit" if setup.temporary_data else "kept"
    say(
        f"""
Anomaly Desk demo
  Sandbox     {s}   (Jira Cloud + ServiceNow emulators, fresh on every run)
    Jira        {s}/rest/api/3   user {JIRA_LOGIN[0]}  API token {JIRA_LOGIN[1]}
    ServiceNow  {s}/api/now/table/incident   user {SERVICENOW_LOGIN[0]}  password {SERVICENOW_LOGIN[1]}
  Receiver    {r}   webhooks: {r}/webhooks/qualytics
              (demo-only webhook secret: {setup.webhook_secret})
  Data        {setup.data_dir}   ({kept})
  Config      {setup.config}
  Logs        {setup.sandbox.log}, {setup.receiver.log}
  Replay more anomaly-desk replay {setup.fixtures} --url {r} --secret {setup.webhook_secret}
"""
    )


def interactive(setup: Setup, speed: float) -> int:
    """The dashboard in the foreground, the paced replay behind it in a thread."""
    stop = threading.Event()
    results: list[Result] = []
    failure: list[str] = []
    pauses = delays(setup.payloads, speed)

    def run_replay() -> None:
        async def go() -> None:
            async with Sender(setup.receiver.url, Auth(secret=setup.webhook_secret)) as sender:
                await paced_replay(setup.payloads, pauses, sender, results.append, stop)

        try:
            asyncio.run(go())
        except Unreachable as exc:
            failure.append(str(exc))

    thread = threading.Thread(target=run_replay, name="demo-replay", daemon=True)
    say(f"Replaying {len(setup.payloads)} webhook deliveries over about {sum(pauses):.0f} s…")
    thread.start()
    try:
        try:
            from anomaly_desk.tui.app import run_dashboard
        except ImportError as exc:
            say(f"The dashboard is not available ({exc}).")
            say(f"The receiver keeps running at {setup.receiver.url}; press Ctrl+C to stop.")
            thread.join()
            report_replay(results, failure, len(setup.payloads))
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            return EXIT_OK
        code = run_dashboard(setup.receiver.url)
    finally:
        stop.set()
        thread.join(timeout=10)
    report_replay(results, failure, len(setup.payloads))
    say("Stopping the receiver and the sandbox…")
    return int(code or 0)


def report_replay(results: Sequence[Result], failure: Sequence[str], total: int) -> None:
    counts = status_counts(results) or "none"
    say(f"Replay: {len(results)} of {total} deliveries sent ({counts})")
    for problem in failure:
        say(f"  {problem}")
    for result in results:
        if not result.ok:
            say(f"  {result.name}: {result.status} {result.problem}")
