"""``anomaly-desk demo``: everything working at once, with no Jira, ServiceNow or platform account.

Starts the sandbox and a receiver as child processes (each its own CPU and event loop, exactly
as a user would run them), replays the fixtures through ``anomaly_desk.replay``, and opens the
dashboard. The receiver uses the sandbox's emulation of the data-quality platform's API: it
imports the platform's open anomalies at start and writes the desk's acknowledgements, archives
and comments back to it. The fixtures' anomalies are given to that platform before the replay
(the platform is where the webhooks come from), so write-back and enrichment find them.
The configuration shows the rest too: two ``[[rules]]`` that raise tickets for the import's and
the replay's anomalies (one with a dedup window), ServiceNow's title and status note as
templates, the ticket types the create form offers, and ``operator_email`` (alice, given her one
ServiceNow account here, so the caller is set as well as Jira's reporter).

``--headless`` replaces the dashboard with a scripted tour through the operator API and proves
the result by reading every note back from the sandbox's own REST APIs, and every write-back from
the platform's log of the calls it accepted — the same evidence a person would look for in Jira,
ServiceNow and the platform. Two-way sync is on (the desk reads its tickets back every
``POLL_S``): the tour ends with a person, alice, commenting on a Jira issue and moving it to Done,
and shows the anomaly following, here and on the platform, with nothing echoed.

Everything started is stopped on the way out (quit, Ctrl+C, SIGTERM, an error): children are
terminated and waited for, temporary directories removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pydantic

from anomaly_desk.core.processes import (
    ExitedEarly,
    NoAnswer,
    free_port,
    running_cli,
    wait_until_answers,
)
from anomaly_desk.core.views import ImportProgressView
from anomaly_desk.demo_setup import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    HOST,
    IMPORT_TIMEOUT_S,
    JIRA_LOGIN,
    JIRA_PERSON,
    JIRA_RULE,
    JIRA_TOKEN_ENV,
    OPERATOR,
    OPERATOR_SNOW_USER,
    PLATFORM,
    PLATFORM_CONTROL,
    PLATFORM_TOKEN,
    PLATFORM_TOKEN_ENV,
    POLL_S,
    RULE_TYPES,
    SERVICENOW_LOGIN,
    SERVICENOW_PERSON,
    SNOW_PASSWORD_ENV,
    SNOW_RULE,
    START_TIMEOUT_S,
    Child,
    DemoError,
    Setup,
    default_fixtures,
    say,
)
from anomaly_desk.pacing import delays, paced_replay
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
from anomaly_desk.tour import headless

# ------------------------------------------------------------------------------ child processes


@contextlib.contextmanager
def child_process(
    name: str, argv: Sequence[str], env: dict[str, str], log: Path, url: str
) -> Iterator[Child]:
    """``python -m anomaly_desk ARGV`` for the ``with`` block; terminated and waited for after."""
    with running_cli(argv, log, env=env) as proc:
        yield Child(name, proc, log, url)


def _is_ok(response: httpx.Response) -> bool:
    return response.status_code == 200


def wait_ready(child: Child, path: str, timeout: float = START_TIMEOUT_S) -> None:
    """Until ``child.url + path`` answers 200; a child that dies is reported with its log."""
    try:
        wait_until_answers(child.url + path, timeout=timeout, proc=child.proc, ready=_is_ok)
    except ExitedEarly as exc:
        raise DemoError(
            f"the {child.name} exited ({exc.returncode}) before it was ready:\n{child.tail()}"
        ) from None
    except NoAnswer:
        raise DemoError(
            f"the {child.name} did not answer at {child.url} within {timeout:g} s:\n{child.tail()}"
        ) from None


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
        port = free_port(HOST)
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
    """The platform's API and the Jira + ServiceNow connections, all in the sandbox; the secrets
    are named, never written. Two-way sync is on: people's comments on either come back, and a
    Jira issue a person moves to Done archives its anomaly; the desk polls every ``POLL_S``.
    Tickets are raised for ``OPERATOR`` (one account in each system), two ``[[rules]]`` raise
    tickets without a key pressed, and ServiceNow's texts come from templates."""
    path.write_text(f"""# Written by `anomaly-desk demo`: the platform and both connections point at the sandbox.
# Who the tickets made here are raised for: Jira reporter, ServiceNow caller (one account each).
operator_email = "{OPERATOR}"

[platform]
name = "{PLATFORM}"
url = "{sandbox_url}"
token_env = "{PLATFORM_TOKEN_ENV}"
import_on_start = true
timeout = 5

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
# two-way: what people do on the issues comes back (read every poll_s seconds)
status = "both"                     # a person moving an issue to Done ...
on_ticket_done = "archive:Resolved" # ... archives the anomaly as Resolved
comments = "both"                   # a person's comment becomes the anomaly's
on_anomaly_archived = "note"        # archived here: a note on the issue, its workflow left alone
poll_s = {POLL_S}

[[connections]]
name = "servicenow"
provider = "servicenow"
url = "{sandbox_url}"
username = "{SERVICENOW_LOGIN[0]}"
password_env = "{SNOW_PASSWORD_ENV}"
timeout = 5
comments = "both"                   # a person's comment on an incident becomes the anomaly's
on_anomaly_archived = "note"
poll_s = {POLL_S}
table = "incident"                  # the default ticket type; the create form offers these:
tables = ["incident", "problem", "change_request"]

[connections.templates]             # Jinja2; see "Templates" in the README
title = "[{{{{ anomaly.datastore.name or 'no datastore' }}}}] {{{{ anomaly.container.name or 'no container' }}}}: {{{{ anomaly.failed_checks[0].message if anomaly.failed_checks else anomaly.message }}}}"
status_note = "{{{{ platform.name }}}} anomaly {{{{ anomaly.id }}}} is now {{{{ status }}}} ({{{{ at.strftime('%Y-%m-%d %H:%M') }}}} UTC)"

# Tickets raised without a key pressed, when an anomaly is first stored (webhook or import).
# Try them: anomaly-desk rules test fixtures/webhooks --config THIS_FILE
[[rules]]
name = "{JIRA_RULE}"
match = {{ datastores = ["warehouse_prod"], containers = ["orders"], types = ["record"], check_types = ["notNull", "between"], min_weight = 30 }}
action = {{ connection = "jira", issue_type = "{RULE_TYPES[JIRA_RULE]}", fields = {{ priority = "High", labels = ["dq", "orders"] }} }}
dedup = {{ key = "container", window = "24h" }}  # one open Bug per container: later ones link to it, with a note
max_per_hour = 20

[[rules]]
name = "{SNOW_RULE}"
match = {{ datastores = ["crm_*"], containers = ["accounts"], tags_all = ["crm", "pii"] }}
action = {{ connection = "servicenow", table = "{RULE_TYPES[SNOW_RULE]}", fields = {{ urgency = "2" }} }}
""")
    return path


# ------------------------------------------------------------------------------ the command


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
    say("Starting the sandbox (Jira Cloud, ServiceNow and platform emulators) and a receiver…")
    sandbox = start_server(
        stack,
        "sandbox",
        lambda port: ["sandbox", "--host", HOST, "--port", str(port)],
        child_env({}),
        work / "sandbox.log",
        "/_sandbox/faults",
    )
    add_operator_to_servicenow(sandbox.url)
    config = write_config(work / "anomaly-desk.toml", sandbox.url)
    webhook_secret = secrets.token_urlsafe(18)
    env = child_env(
        {
            JIRA_TOKEN_ENV: JIRA_LOGIN[1],
            SNOW_PASSWORD_ENV: SERVICENOW_LOGIN[1],
            PLATFORM_TOKEN_ENV: PLATFORM_TOKEN,
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
    setup = Setup(sandbox, receiver, data, temporary, config, webhook_secret, payloads, fixtures)
    # The import at start first, then the webhooks' anomalies: the platform had the 300 it was
    # seeded with when the receiver started, and the replay then brings the fixtures' news.
    setup.imported = wait_for_import(receiver)
    setup.registered = register_with_platform(sandbox.url, payloads)
    return setup


def add_operator_to_servicenow(sandbox_url: str) -> None:
    """``OPERATOR``'s one ServiceNow account, added by its admin through the Table API (the
    sandbox seeds her in Jira only), so the caller of the incidents made here is set too."""
    user_name, first, last = OPERATOR_SNOW_USER
    row = {
        "user_name": user_name,
        "first_name": first,
        "last_name": last,
        "name": f"{first} {last}",
        "email": OPERATOR,
        "title": "Data Engineer",
        "active": "true",
    }
    try:
        response = httpx.post(
            f"{sandbox_url}/api/now/table/sys_user",
            json=row,
            auth=SERVICENOW_LOGIN,
            headers={"accept": "application/json"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise DemoError(f"adding {OPERATOR} to ServiceNow: {exc}") from None
    if response.status_code != 201:
        raise DemoError(
            f"ServiceNow refused the user {user_name} ({response.status_code}): "
            f"{response.text[:300]}"
        )


# ------------------------------------------------------------------------------ the platform


def wait_for_import(receiver: Child, timeout: float = IMPORT_TIMEOUT_S) -> ImportProgressView:
    """The receiver's import at start (``import_on_start``), once done."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if receiver.proc.poll() is not None:
            raise DemoError(
                f"the receiver exited ({receiver.proc.returncode}) while importing:\n"
                f"{receiver.tail()}"
            )
        try:
            response = httpx.get(f"{receiver.url}/api/import", timeout=5.0)
            if response.status_code == 200:
                view = ImportProgressView.model_validate_json(response.content)
                if view.done:
                    return view
                if view.error:
                    raise DemoError(f"the import from the platform stopped: {view.error}")
                last = f"page {view.page} of {view.pages}"
            else:
                last = f"GET /api/import answered {response.status_code}"
        except (httpx.HTTPError, pydantic.ValidationError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise DemoError(
        f"the import from the platform was not done within {timeout:g} s ({last}):\n"
        f"{receiver.tail()}"
    )


def register_with_platform(sandbox_url: str, payloads: Sequence[Payload]) -> int:
    """Give the platform the fixtures' anomalies (it is where webhooks come from), through the
    sandbox's control; how many the platform now knows. Idempotent: known ids are left alone."""
    items = platform_anomalies(payloads)
    if not items:
        return 0
    try:
        response = httpx.post(f"{sandbox_url}{PLATFORM_CONTROL}/anomalies", json=items, timeout=10)
    except httpx.HTTPError as exc:
        raise DemoError(f"giving the platform the fixtures' anomalies: {exc}") from None
    if response.status_code != 200:
        raise DemoError(
            f"the sandbox refused the fixtures' anomalies ({response.status_code}): "
            f"{response.text[:300]}"
        )
    return len(items)


PLATFORM_STATUSES = {
    s.lower(): s
    for s in ("Active", "Acknowledged", "Resolved", "Duplicate", "Invalid", "Discarded")
}
PLATFORM_TYPES = ("record", "shape")


def platform_anomalies(payloads: Sequence[Payload]) -> list[dict[str, Any]]:
    """Each fixture anomaly once, as the platform had it when it first sent it: the id and the
    status of its first appearance in replay order (and what else it says plainly: type, weight,
    message, datastore, container, fields). Items without an integer id are left out."""
    found: dict[int, dict[str, Any]] = {}
    for payload in payloads:
        try:
            data = json.loads(payload.body)
        except ValueError:
            continue
        for item, envelope in _items(data):
            ident = item.get("id")
            if isinstance(ident, bool) or not isinstance(ident, int) or ident in found:
                continue
            found[ident] = _platform_anomaly(ident, item, envelope)
    return list(found.values())


def _items(data: object) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(anomaly, its Flow envelope's context or {}) from a Flow envelope, a list or one object."""
    context = data.get("context") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(context, dict) and "anomalies" in context:
        anomalies: object = context["anomalies"]
        envelope = {**context, "datastore": data.get("datastore")}
    else:
        anomalies, envelope = data, {}
    for item in anomalies if isinstance(anomalies, list) else [anomalies]:
        if isinstance(item, dict):
            yield item, envelope


def _ref(value: object) -> dict[str, Any] | None:
    if isinstance(value, dict):
        ident, name = value.get("id"), value.get("name")
        if isinstance(ident, int) and not isinstance(ident, bool) and isinstance(name, str):
            return {"id": ident, "name": name}
    return None


def _platform_anomaly(ident: int, item: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
    status = item.get("status")
    known = PLATFORM_STATUSES.get(status.strip().lower()) if isinstance(status, str) else None
    anomaly: dict[str, Any] = {"id": ident, "status": known or "Active"}
    if item.get("type") in PLATFORM_TYPES:
        anomaly["type"] = item["type"]
    weight = item.get("weight")
    if isinstance(weight, int | float) and not isinstance(weight, bool):
        anomaly["weight"] = weight
    message = item.get("message")
    if isinstance(message, str) and message.strip():
        anomaly["message"] = message
    datastore = _ref(item.get("datastore")) or _ref(envelope.get("datastore"))
    container = _ref(item.get("container"))
    containers = envelope.get("containers")
    if container is None and isinstance(containers, list):
        wanted = item.get("container_id")
        matching = [c for c in containers if isinstance(c, dict) and c.get("id") == wanted]
        container = _ref(matching[0]) if matching else None
    if datastore:
        anomaly["datastore"] = datastore
    if container:
        anomaly["container"] = container
    names = item.get("fields")
    if isinstance(names, list):
        plain = [n.get("name") if isinstance(n, dict) else n for n in names]
        anomaly["fields"] = [n for n in plain if isinstance(n, str)]
    elif isinstance(item.get("field"), str):
        anomaly["fields"] = [item["field"]]
    return anomaly


def print_banner(setup: Setup) -> None:
    say(banner(setup))


def banner(setup: Setup) -> str:
    """Where everything runs and how to reach it: printed first, and the dashboard's ``i``."""
    s, r = setup.sandbox.url, setup.receiver.url
    kept = "temporary, removed at exit" if setup.temporary_data else "kept"
    return f"""
Anomaly Desk demo
  Sandbox     {s}   (Jira Cloud, ServiceNow and {PLATFORM} emulators, fresh on every run)
    Jira        {s}/rest/api/3   user {JIRA_LOGIN[0]}  API token {JIRA_LOGIN[1]}   (the desk's)
    ServiceNow  {s}/api/now/table/incident   user {SERVICENOW_LOGIN[0]}  password {SERVICENOW_LOGIN[1]}   (the desk's)
    {PLATFORM:<11} {s}/api/anomalies   API token {PLATFORM_TOKEN}  (Authorization: Bearer)
  Two-way     on: the desk reads the tickets back every {POLL_S} s; act on them as a person would
    Jira        user {JIRA_PERSON[0]}  API token {JIRA_PERSON[1]}: a comment comes to the anomaly;
                moving the issue to Done archives the anomaly as Resolved (and on {PLATFORM})
    ServiceNow  user {SERVICENOW_PERSON[0]}  password {SERVICENOW_PERSON[1]}: a comment (not a work note) comes to the anomaly
  Receiver    {r}   webhooks: {r}/webhooks/qualytics
              (demo-only webhook secret: {setup.webhook_secret})
  Platform    the {PLATFORM} API above, its token given to the receiver as ${PLATFORM_TOKEN_ENV}
              {imported_line(setup.imported)}
              write-back on: acknowledge, archive and comments made in the desk go to {PLATFORM}
              ({setup.registered} anomalies of the fixtures were added to it before the replay)
  Rules       [[rules]] in the config raise tickets with no key pressed, at the import and the replay:
                '{JIRA_RULE}' → one Jira {RULE_TYPES[JIRA_RULE]} per container (later anomalies are linked to it, with a note)
                '{SNOW_RULE}' → a ServiceNow {RULE_TYPES[SNOW_RULE]}
              R in the dashboard lists them with their counters (p pauses one); what they would do:
              anomaly-desk rules test {setup.fixtures} --config {setup.config}
  Tickets     c creates one: the form offers each connection's types (Jira DQ's issue types; ServiceNow
              incident, problem, change_request) with their fields as the sandbox describes them
  People      operator_email {OPERATOR}: the Jira reporter and the caller of ServiceNow incidents (the
              demo gave her one ServiceNow account); assignee and other people fields search as you type
  Templates   ServiceNow titles and status notes come from [connections.templates] in the config
  Retention   archived anomalies unchanged for 30 days move to a cold archive (anomaly-desk compact;
              serve does it daily); 6 in the dashboard includes it in searches, rows marked ❄
  Data        {setup.data_dir}   ({kept})
  Config      {setup.config}
  Logs        {setup.sandbox.log}, {setup.receiver.log}   (removed at exit)
  Replay more anomaly-desk replay {setup.fixtures} --url {r} --secret {setup.webhook_secret}
"""


def imported_line(imported: ImportProgressView | None) -> str:
    if imported is None:
        return "import at start: not done"
    changes = f"{imported.created} new, {imported.updated} updated, {imported.unchanged} unchanged"
    return f"imported {imported.total} open anomalies at start (import_on_start: {changes})"


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
        # the banner went to the terminal the dashboard now covers: `i` shows it there
        code = run_dashboard(setup.receiver.url, demo_info=banner(setup))
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
