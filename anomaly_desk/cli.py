"""The ``anomaly-desk`` command line: one script, one subcommand per job.

Each subcommand imports its package only when it runs, so ``anomaly-desk serve`` never loads
Textual and ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from anomaly_desk import __version__

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
SANDBOX_PORT = 8788


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where the anomaly store lives (default: the platform's user data directory; "
        "env ANOMALY_DESK_DATA_DIR)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="configuration file (default: ./anomaly-desk.toml, then the user config directory; "
        "env ANOMALY_DESK_CONFIG)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomaly-desk",
        description="Turn data-quality anomalies into Jira Cloud and ServiceNow tickets.",
        epilog="Without a COMMAND, anomaly-desk runs the dashboard, and takes the dashboard's "
        "options directly: 'anomaly-desk --url http://127.0.0.1:9000' is 'anomaly-desk "
        "dashboard --url http://127.0.0.1:9000' (see 'anomaly-desk dashboard --help'). "
        "Run 'anomaly-desk COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the webhook receiver (headless, for a server or systemd)",
        description="Run the webhook receiver: POST /webhooks/qualytics stores anomalies, "
        "the operator API serves them. Only one receiver may own a data directory.",
        epilog="Who may reach it: every request's Host must be a loopback name, the bound "
        "address, or one of [receiver] allowed_hosts in the config file (env "
        "ANOMALY_DESK_ALLOWED_HOSTS, comma-separated; '*.example.com' for a domain, '*' to turn "
        "the check off): set it to the name a reverse proxy forwards, e.g. allowed_hosts = "
        '["desk.example.com"]. That is what stops a web page from reaching the desk through '
        "DNS rebinding. Writes also refuse a browser's cross-origin requests (a foreign Origin "
        "or Sec-Fetch-Site: cross-site). Bound to a non-loopback address, the receiver needs a "
        "webhook secret and puts the operator API behind a bearer token.",
    )
    serve.add_argument("--host", default=None, help=f"address to bind (default {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=int, default=None, help=f"port to bind (default {DEFAULT_PORT})"
    )
    _add_store_options(serve)
    serve.add_argument(
        "--http",
        choices=("auto", "httptools", "h11"),
        default="auto",
        help="HTTP parser: httptools (C, the default when installed) or h11 (pure Python)",
    )
    serve.add_argument(
        "--repair",
        action="store_true",
        help="start although the store is damaged (a checkpoint emptied, unreadable or missing, "
        "an unreadable journal record), which it otherwise refuses: moves the damaged file "
        "aside (never deletes it), keeps every record that still reads, writes a fresh "
        "checkpoint and logs exactly what was lost. This may lose data: the unreadable "
        "records, or whatever only the lost checkpoint held; restore from a backup instead if "
        "you have one",
    )
    serve.set_defaults(handler="anomaly_desk.receiver.server:main")

    sandbox = commands.add_parser(
        "sandbox",
        help="run local Jira Cloud, ServiceNow and data-quality platform emulators",
        description="Serve a Jira Cloud emulator, a ServiceNow emulator and an emulator of the "
        "data-quality platform's API (/api/anomalies, /api/comments; 300 seeded anomalies) on "
        "one port, with seeded projects, users and choices. Credentials: Jira "
        "demo@example.com / demo-token (scoped token demo-scoped-token through "
        "/ex/jira/{cloudId}, cloud id from /_edge/tenant_info), ServiceNow admin / demo, "
        "platform bearer token demo-platform-token (read-only: demo-platform-readonly). "
        "OAuth 2.0: ServiceNow /oauth_token.do and Atlassian /oauth/token, client desk-client / "
        "desk-secret (ServiceNow password grant: admin / demo). People for two-way sync: Jira "
        "alice@example.com / alice-token, ServiceNow bob.martin / demo. POST /_sandbox/auth "
        "sets token lifetimes, revokes clients, expires API tokens and schedules ServiceNow's "
        "basic-auth restriction; /_sandbox/faults injects latency and errors.",
    )
    sandbox.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)"
    )
    sandbox.add_argument(
        "--port", type=int, default=SANDBOX_PORT, help="port to bind (default %(default)s)"
    )
    sandbox.add_argument(
        "--tls",
        action="store_true",
        help="serve https with a self-signed certificate made at start",
    )
    sandbox.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="N", help="added latency per request"
    )
    sandbox.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of requests answered 503 (0..1)",
    )
    sandbox.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        metavar="N",
        help="requests per second before answering 429 with Retry-After (0: unlimited)",
    )
    sandbox.set_defaults(handler="anomaly_desk.sandbox.server:main")

    check = commands.add_parser(
        "check",
        help="validate the configuration and test every connection",
        description="Validate the configuration file and the environment, then test every "
        "configured connection at once: Jira Cloud with GET /rest/api/3/myself, ServiceNow "
        "with GET /api/now/table/incident?sysparm_limit=1. Prints one line per connection "
        "(ok with who we are and how long it took, or FAIL with the reason), the receiver "
        "settings, and a summary. Secrets are never printed.",
        epilog="Exit status: 0 every connection works; 1 a connection failed or none is "
        "configured; 2 the configuration is invalid.",
    )
    check.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="configuration file (default: ./anomaly-desk.toml, then the user config directory; "
        "env ANOMALY_DESK_CONFIG)",
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up on a connection after this long (default %(default)g)",
    )
    check.set_defaults(handler="anomaly_desk.check:main")
    _add_demo(commands)
    _add_import(commands)
    _add_replay(commands)
    _add_compact(commands)
    _add_rules(commands)
    _add_dashboard(commands)
    return parser


def _add_rules(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from anomaly_desk.rules_cli import add_parser  # its own module: the parser is long

    add_parser(commands)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="see it all work: sandbox Jira + ServiceNow, a receiver, fixture replay, dashboard",
        description="Start the Jira Cloud and ServiceNow sandbox and a receiver configured "
        "for both (on free loopback ports, with a fresh temporary data directory), replay "
        "fixtures/webhooks so anomalies arrive one by one and a few status changes follow, "
        "and open the dashboard. No Jira or ServiceNow account needed. Quitting stops "
        "everything the demo started and removes its temporary files.",
        epilog="--headless runs without the dashboard and takes a scripted tour through the "
        "operator API instead: creates a Jira issue and a ServiceNow incident for one "
        "anomaly, links an existing ticket of each kind to another, acknowledges, comments "
        "and archives both, then reads every note back from the sandbox. Exit status: 0 "
        "every expected note is on its ticket exactly once and in order; 1 something is "
        "missing or failed; 2 bad arguments.",
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="keep the receiver's store here (default: a temporary directory, removed at "
        "exit); the sandbox starts empty on every run, so tickets linked in an earlier run "
        "are not found in it",
    )
    demo.add_argument(
        "--headless",
        action="store_true",
        help="no dashboard: replay, run the scripted tour, print the sync log and a summary",
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="X",
        help="replay X times faster: at 1 (the default with the dashboard) anomalies arrive "
        "about a second apart and status changes a few seconds later; --headless replays "
        "without pauses unless --speed is given",
    )
    demo.add_argument(
        "--fixtures",
        type=Path,
        default=None,
        metavar="DIR",
        help="webhook payloads to replay (default: the repository's fixtures/webhooks)",
    )
    demo.set_defaults(handler="anomaly_desk.demo:main")


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a day like 2026-11-01") from None


def _add_import(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "import",
        help="import the platform's anomalies (resumable), with a progress bar",
        description="Page through the platform's GET /api/anomalies (oldest first, 100 a page) "
        "and store every anomaly through the same merge as webhooks: the same staleness rules, "
        "status changes noted on linked tickets, history saying 'imported', nothing written "
        "back to the platform. Each page is stored with the import's position in one "
        "transaction, so an interrupted import (Ctrl+C, a crash, an outage) resumes at the "
        "first page it had not stored when the same import is run again. Needs [platform] url "
        "and token_env (or token_keyring) in the configuration.",
        epilog="With a receiver running on the data directory, the import runs inside it "
        "(POST /api/import) and this command shows its progress. Exit status: 0 done; 1 the "
        "platform or the store failed (run it again to resume); 2 bad arguments or settings.",
    )
    parser.add_argument("--archived", action="store_true", help="archived anomalies too")
    parser.add_argument(
        "--since", type=_day, metavar="DAY", help="only anomalies created on or after DAY"
    )
    parser.add_argument("--datastore", type=int, metavar="ID", help="only this datastore's")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="the desk's store")
    parser.add_argument("--config", type=Path, metavar="FILE", help="configuration file")
    parser.add_argument(
        "--url",
        metavar="URL",
        help="the receiver to ask when it holds the data directory (default: the one named in "
        "the lock, else http://127.0.0.1:8787)",
    )
    parser.set_defaults(handler="anomaly_desk.importing:main")


def _add_compact(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "compact",
        help="move long-archived anomalies from the hot store to the cold archive",
        description="Move every anomaly whose status is archived (Resolved, Duplicate, "
        "Invalid, Discarded) and that has not changed for [retention] archive_after_days "
        "(default 30) from the hot store to the cold archive in the data directory "
        "(archive/YYYY-MM.jsonl.gz, one file per month, append-only, compressed). Anomalies "
        "with notes still waiting (pending or dead) stay hot, and nothing moves while an import "
        "is open. A cold anomaly is still found by id and by a search that includes the "
        "archive (slower, marked cold), and comes back to the hot store when the platform "
        "reopens it, its ticket changes or an operator acts on it. Nothing is deleted unless "
        "[retention] delete_after_days is set: then archive months older than that go. "
        "'anomaly-desk serve' compacts by itself every [retention] compact_every_h (default "
        "24; the first run a few minutes after it starts). Interrupting it (even kill -9) "
        "loses nothing: anomalies are written to the archive before they leave the hot store.",
        epilog="With a receiver running on the data directory, the compaction runs inside it "
        "(POST /api/compact). Prints progress on stderr and a summary, e.g. 'moved 812,000 "
        "anomalies to the cold archive (3 months); hot store now 188,000'. Exit status: 0 "
        "done; 1 the store or the receiver failed (run it again); 2 bad settings.",
    )
    _add_store_options(parser)
    parser.add_argument(
        "--url",
        metavar="URL",
        help="the receiver to ask when it holds the data directory (default: the one named in "
        "the lock)",
    )
    parser.set_defaults(handler="anomaly_desk.compacting:main")


def _add_replay(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser(
        "replay",
        help="post webhook payloads (files or a directory of *.json) to a receiver",
        description="Post each JSON file to a receiver's POST /webhooks/qualytics, as the "
        "platform would, with the chosen authentication; a directory contributes its *.json "
        "files sorted by name. Every file is checked to be JSON first: a bad one is named "
        "with its line and column and nothing is sent. Shows progress (a bar on a terminal, "
        "one line per delivery otherwise) and ends with a summary of status codes and every "
        "failure with the receiver's reason. Secrets are never printed.",
        epilog="Redeliveries: the receiver recognises a delivery it has seen by its webhook-id; "
        "without one (no --sign-standard) a repeated file is processed again and changes "
        "nothing, because the same anomaly state applied twice is a no-op (the summary counts "
        "those as 'nothing new'). With --sign-standard every delivery carries a fresh "
        "webhook-id. Exit status: 0 every delivery got a 2xx; 1 a delivery failed or "
        "the receiver could not be reached; 2 bad arguments or a bad file (nothing sent).",
    )
    replay.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="FILE|DIR",
        help="webhook payload files, or directories of *.json files",
    )
    replay.add_argument(
        "--url",
        required=True,
        help="the receiver (http://127.0.0.1:8787) or its full webhook URL "
        "(https://desk.example.com/webhooks/qualytics)",
    )
    replay.add_argument(
        "--secret",
        metavar="S",
        help="shared secret, sent as the x-qualytics-secret header (or env:NAME to read it "
        "from an environment variable)",
    )
    replay.add_argument(
        "--sign-standard",
        metavar="KEY",
        help="sign each delivery the Standard Webhooks way (webhook-id, webhook-timestamp, "
        "webhook-signature) with this whsec_… key (or env:NAME)",
    )
    replay.add_argument(
        "--bearer",
        metavar="T",
        help="send Authorization: Bearer T (or env:NAME)",
    )
    replay.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="N",
        help="at most N deliveries per second (default: as fast as the receiver answers)",
    )
    replay.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="send the whole set K times (default %(default)s); see redeliveries below",
    )
    replay.add_argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="C",
        help="deliveries in flight at once (default %(default)s; above 1 the order of "
        "arrival is no longer guaranteed, so a status change may overtake its detection)",
    )
    replay.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up on one delivery after this long (default %(default)g)",
    )
    replay.add_argument(
        "--ca-bundle",
        type=Path,
        metavar="FILE",
        help="trust this CA (PEM) for an https receiver with a private certificate",
    )
    replay.set_defaults(handler="anomaly_desk.replay:main")


def _add_dashboard(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dashboard = commands.add_parser(
        "dashboard",
        help="the terminal dashboard (the default command)",
        description="Browse anomalies, create and link tickets, watch the sync log live. "
        "Attaches to the receiver at --url. When nothing answers there, it starts one (on "
        "--data-dir / --config) and stops it on quit, but only at the default address "
        f"http://{DEFAULT_HOST}:{DEFAULT_PORT} or with --start: a URL typed out that "
        "answers nothing is reported ('nothing answers at URL'), since it is more likely a "
        "typo or a receiver that is down than a wish for a second receiver. This is also "
        "the default command: 'anomaly-desk --url URL' is the same as 'anomaly-desk "
        "dashboard --url URL'.",
        epilog="Exit status: the dashboard's own on quit (0); 1 nothing usable answers at the "
        "URL or the receiver could not be started; 2 bad arguments (e.g. a URL without "
        "http:// or https://).",
    )
    dashboard.add_argument(
        "--url",
        default=None,
        help=f"receiver to attach to, scheme included (default http://{DEFAULT_HOST}:"
        f"{DEFAULT_PORT}; env ANOMALY_DESK_URL)",
    )
    dashboard.add_argument(
        "--start",
        action="store_true",
        help="when nothing answers at --url, start a receiver there (a loopback address only) "
        "and stop it on quit; at the default URL this happens without --start",
    )
    dashboard.add_argument(
        "--token",
        default=None,
        help="operator API bearer token, for a receiver not on loopback (env ANOMALY_DESK_TOKEN)",
    )
    dashboard.add_argument(
        "--as",
        dest="raised_for",
        default=None,
        metavar="EMAIL",
        help="who the tickets you create are raised for (ServiceNow caller, Jira reporter or "
        "watcher): your address in the ticketing systems (default: the receiver's "
        "operator_email setting)",
    )
    _add_store_options(dashboard)
    dashboard.set_defaults(handler="anomaly_desk.tui.launcher:main")


TOP_LEVEL_OPTIONS = frozenset({"-h", "--help", "--version"})


def with_default_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``dashboard`` put first when it names no command: nothing at all, or the
    dashboard's options on their own (``anomaly-desk --url URL``)."""
    args = list(argv)
    if not args or (args[0].startswith("-") and args[0] not in TOP_LEVEL_OPTIONS):
        return ["dashboard", *args]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(with_default_command(sys.argv[1:] if argv is None else argv))
    module_name, func_name = args.handler.split(":")
    module = __import__(module_name, fromlist=[func_name])
    try:
        return int(getattr(module, func_name)(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
