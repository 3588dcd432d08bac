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
import re
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
from typing import Any

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
    progress_line,
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
            from tui.app import run_dashboard
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


# ------------------------------------------------------------------------------ the tour


@dataclass
class Expect:
    """One ticket the tour touched and the notes that must be on it, in order."""

    anomaly_id: int
    link: dict[str, Any]
    patterns: list[tuple[str, re.Pattern[str]]]  # (what to call it when missing, pattern)
    confirmed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.link["ticket_key"])

    @property
    def complete(self) -> bool:
        return len(self.notes) == len(self.patterns) and all(
            p.fullmatch(n) for (_, p), n in zip(self.patterns, self.notes, strict=True)
        )


def status_pattern(status: str) -> tuple[str, re.Pattern[str]]:
    return (
        f"[<time> UTC] {PLATFORM} Anomaly Status: {status}",
        re.compile(
            r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\] "
            + re.escape(f"{PLATFORM} Anomaly Status: {status}")
        ),
    )


def comment_pattern(text: str) -> tuple[str, re.Pattern[str]]:
    note = f"Comment from {PLATFORM}: {text}"
    return note, re.compile(re.escape(note))


def link_pattern(anomaly_id: int) -> tuple[str, re.Pattern[str]]:
    note = f"Linked to {PLATFORM} anomaly {anomaly_id}"
    return note + ": <link>", re.compile(re.escape(note) + r"\b.*", re.DOTALL)


@dataclass(frozen=True)
class Step:
    """What the tour does to one anomaly after its tickets are linked."""

    comment: str
    archive_as: str
    archive_comment: str


class Tour:
    """The scripted walk through the operator API, and the evidence collected from the sandbox."""

    def __init__(self, setup: Setup) -> None:
        from tui.client import DeskClient  # the dashboard's own client: the same API it uses

        self.setup = setup
        self.desk = DeskClient(setup.receiver.url, timeout=30.0)
        self.jira = httpx.AsyncClient(base_url=setup.sandbox.url, auth=JIRA_LOGIN, timeout=10.0)
        self.snow = httpx.AsyncClient(
            base_url=setup.sandbox.url,
            auth=SERVICENOW_LOGIN,
            headers={"accept": "application/json"},
            timeout=10.0,
        )
        self.expect: list[Expect] = []

    async def aclose(self) -> None:
        await asyncio.gather(self.desk.aclose(), self.jira.aclose(), self.snow.aclose())

    # -- steps -------------------------------------------------------------------------------

    async def call(self, what: str, action: Any) -> Any:
        from tui.client import ApiError

        try:
            return await action
        except ApiError as exc:
            raise DemoError(f"{what}: the receiver answered {exc.status} {exc.detail}") from None
        except httpx.HTTPError as exc:
            raise DemoError(f"{what}: {type(exc).__name__}: {exc}") from None

    async def pick(self, replayed: Sequence[Result]) -> tuple[int, int]:
        """Two active anomalies from this replay that have no tickets yet."""
        ids = {i for r in replayed for i in r.anomalies}
        items, _ = await self.call(
            "listing anomalies", self.desk.list_anomalies(status="Active", limit=500)
        )
        free = sorted(a["id"] for a in items if a["id"] in ids and not a.get("tickets"))
        if len(free) < 2:
            raise DemoError(
                "the tour needs two active anomalies without tickets; this data directory has "
                f"{len(free)} (run without --data-dir for a fresh one)"
            )
        return free[0], free[1]

    async def existing_jira_issue(self) -> str:
        response = await self.jira.post(
            "/rest/api/3/issue",
            json={
                "fields": {
                    "project": {"key": "DQ"},
                    "issuetype": {"name": "Bug"},
                    "summary": "Nightly orders load finishes late",
                }
            },
        )
        response.raise_for_status()
        return str(response.json()["key"])

    async def existing_incident(self) -> str:
        response = await self.snow.post(
            "/api/now/table/incident",
            json={
                "short_description": "CRM export job failing intermittently",
                "description": "Reported by the CRM team.",
            },
        )
        response.raise_for_status()
        return str(response.json()["result"]["number"])

    async def run(self, a: int, b: int) -> None:
        desk = self.desk
        say(f"  anomaly {a}: create a Jira issue and a ServiceNow incident")
        fields = {"description": "Created by the anomaly-desk demo tour."}
        jira_a = await self.call(
            "creating a Jira issue",
            desk.create_ticket(a, "jira", {"summary": f"Anomaly {a} in the demo", **fields}),
        )
        snow_a = await self.call(
            "creating a ServiceNow incident",
            desk.create_ticket(
                a, "servicenow", {"short_description": f"Anomaly {a} in the demo", **fields}
            ),
        )
        say(f"    created {jira_a['ticket_key']} and {snow_a['ticket_key']}")
        try:
            issue_b, incident_b = await asyncio.gather(
                self.existing_jira_issue(), self.existing_incident()
            )
        except httpx.HTTPError as exc:
            raise DemoError(f"creating tickets directly in the sandbox: {exc}") from None
        say(f"  sandbox: an existing Jira issue {issue_b} and incident {incident_b} (made there)")
        say(f"  anomaly {b}: link {issue_b} and {incident_b}")
        jira_b = await self.call(f"linking {issue_b}", desk.link_ticket(b, "jira", issue_b))
        snow_b = await self.call(
            f"linking {incident_b}", desk.link_ticket(b, "servicenow", incident_b)
        )
        steps = {
            a: Step("Owner: data platform — Zoë is on it", "Resolved", "Backfilled from CRM"),
            b: Step("Same root cause as the late load", "Duplicate", "Tracked in the CRM ticket"),
        }
        for anomaly_id, step in steps.items():
            say(
                f"  anomaly {anomaly_id}: acknowledge, comment, archive as {step.archive_as} "
                "with a comment"
            )
            await self.call("acknowledging", desk.acknowledge(anomaly_id))
            await self.call("commenting", desk.comment(anomaly_id, step.comment))
            await self.call(
                "archiving", desk.archive(anomaly_id, step.archive_as, step.archive_comment)
            )
        for anomaly_id, link in ((a, jira_a), (a, snow_a), (b, jira_b), (b, snow_b)):
            step = steps[anomaly_id]
            patterns = [
                status_pattern("Acknowledged"),
                comment_pattern(step.comment),
                status_pattern(step.archive_as),
                comment_pattern(step.archive_comment),
            ]
            if link["provider"] == "servicenow" and link["origin"] == "linked":
                patterns.insert(0, link_pattern(anomaly_id))
            self.expect.append(Expect(anomaly_id, link, patterns))

    # -- evidence ----------------------------------------------------------------------------

    async def notes(self, link: dict[str, Any]) -> list[str]:
        """The ticket's notes as its own API returns them, oldest first."""
        if link["provider"] == "jira":
            from core.formatting.adf import adf_to_text

            response = await self.jira.get(
                f"/rest/api/3/issue/{link['ticket_key']}/comment",
                params={"orderBy": "created", "maxResults": 100},
            )
            response.raise_for_status()
            return [adf_to_text(c["body"]).strip() for c in response.json()["comments"]]
        response = await self.snow.get(
            "/api/now/table/sys_journal_field",
            params={
                "sysparm_query": f"element_id={link['ticket_id']}^element=work_notes"
                "^ORDERBYsys_created_on"
            },
        )
        response.raise_for_status()
        return [str(row["value"]).strip() for row in response.json()["result"]]

    async def pending(self) -> list[dict[str, Any]]:
        ours = {e.anomaly_id for e in self.expect}
        jobs = await self.call("reading sync jobs", self.desk.sync_jobs(state="pending"))
        return [j for j in jobs if j["anomaly_id"] in ours]

    async def watch(self, within_s: float = SETTLE_TIMEOUT_S) -> bool:
        """Print each note the moment the sandbox has it; True once the worker is idle."""
        deadline = time.monotonic() + within_s
        while True:
            pending = await self.pending()  # first: notes read after an empty queue are final
            try:
                found = await asyncio.gather(*(self.notes(e.link) for e in self.expect))
            except httpx.HTTPError as exc:
                raise DemoError(f"reading notes back from the sandbox: {exc}") from None
            for expect, notes in zip(self.expect, found, strict=True):
                expect.notes = notes
                while expect.confirmed < min(len(notes), len(expect.patterns)):
                    _, pattern = expect.patterns[expect.confirmed]
                    note = notes[expect.confirmed]
                    if not pattern.fullmatch(note):
                        break
                    say(f"✓ {expect.key:<11} {note.splitlines()[0]}")
                    expect.confirmed += 1
            if not pending:
                return True
            if time.monotonic() > deadline:
                say(
                    f"✗ the sync worker still had {len(pending)} notes pending after {within_s:g} s"
                )
                return False
            await asyncio.sleep(0.1)

    async def dead_jobs(self) -> list[dict[str, Any]]:
        ours = {e.anomaly_id for e in self.expect}
        jobs = await self.call("reading sync jobs", self.desk.sync_jobs(state="dead"))
        return [j for j in jobs if j["anomaly_id"] in ours]

    async def print_sync_log(self) -> None:
        ours = {e.anomaly_id for e in self.expect}
        entries = await self.call("reading the sync log", self.desk.sync_log(limit=1000))
        for entry in entries:
            if entry["anomaly_id"] not in ours:
                continue
            at = str(entry.get("at", ""))[11:19]
            message = f"  {entry['message']}" if entry.get("message") else ""
            say(
                f"  #{entry['id']:<3} {at}  {entry['ticket_key']:<11} {entry['kind']:<8} "
                f"attempt {entry['attempt']}  {entry['outcome']:<5} "
                f"{entry['duration_ms']:>6.1f} ms{message}"
            )


def print_summary(expect: Sequence[Expect]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Demo tour", title_justify="left")
    for column in ("Anomaly", "Ticket", "Provider", "How", "Notes", "Result"):
        table.add_column(column)
    for e in expect:
        provider = "Jira" if e.link["provider"] == "jira" else "ServiceNow"
        table.add_row(
            str(e.anomaly_id),
            e.key,
            provider,
            str(e.link["origin"]),
            f"{len(e.notes)}/{len(e.patterns)}",
            "ok" if e.complete else "MISSING",
        )
    Console(highlight=False, soft_wrap=False).print(table)


def explain(expect: Expect) -> None:
    """What is missing, extra or out of order on one ticket."""
    say(f"✗ {expect.key}: expected {len(expect.patterns)} notes in this order, found:")
    for index in range(max(len(expect.patterns), len(expect.notes))):
        want = expect.patterns[index] if index < len(expect.patterns) else None
        got = expect.notes[index] if index < len(expect.notes) else None
        if got is None:
            say(f"    {index + 1}. MISSING   {want[0] if want else ''}")
        elif want is None:
            say(f"    {index + 1}. EXTRA     {got.splitlines()[0]}")
        elif want[1].fullmatch(got):
            say(f"    {index + 1}. ok        {got.splitlines()[0]}")
        else:
            say(f"    {index + 1}. WRONG     expected {want[0]!r}, found {got.splitlines()[0]!r}")


async def headless(setup: Setup, speed: float | None) -> int:
    """Replay, tour, wait for the sync worker, and check every note on its ticket."""
    say(f"== Replay: {len(setup.payloads)} deliveries from {setup.fixtures}")
    pauses = delays(setup.payloads, speed)
    width = max(len(p.name) for p in setup.payloads)
    async with Sender(setup.receiver.url, Auth(secret=setup.webhook_secret)) as sender:
        try:
            results = await paced_replay(
                setup.payloads, pauses, sender, lambda r: say("  " + progress_line(r, width))
            )
        except Unreachable as exc:
            raise DemoError(str(exc)) from None
    say(f"  {status_counts(results)}")
    if not all(r.ok for r in results):
        say("✗ the receiver refused deliveries (above); the tour needs them all")
        return EXIT_FAILED

    tour = Tour(setup)
    try:
        say("\n== Tour through the operator API")
        a, b = await tour.pick(results)
        await tour.run(a, b)
        total = sum(len(e.patterns) for e in tour.expect)
        say(f"\n== Notes arriving on the tickets ({total} expected, read back from the sandbox)")
        idle = await tour.watch()
        dead = await tour.dead_jobs()
        say("\n== Sync log")
        await tour.print_sync_log()
        say()
        print_summary(tour.expect)
    finally:
        await tour.aclose()
    problems = [e for e in tour.expect if not e.complete]
    for expect in problems:
        explain(expect)
    for job in dead:
        say(f"✗ sync job {job['id']} to {job['ticket_key']} is dead: {job['last_error']}")
    if problems or dead or not idle:
        say("Demo FAILED: not every note reached its ticket exactly once and in order.")
        return EXIT_FAILED
    say(
        f"Demo passed: {total} notes on {len(tour.expect)} tickets, each exactly once and in order."
    )
    return EXIT_OK
