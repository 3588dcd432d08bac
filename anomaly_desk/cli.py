"""The ``anomaly-desk`` command line: one script, one subcommand per job.

Each subcommand imports its package only when it runs, so ``anomaly-desk serve`` never loads
Textual and ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
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
        epilog="Run 'anomaly-desk COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the webhook receiver (headless, for a server or systemd)",
        description="Run the webhook receiver: POST /webhooks/qualytics stores anomalies, "
        "the operator API serves them. Only one receiver may own a data directory.",
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
    serve.set_defaults(handler="receiver.server:main")

    sandbox = commands.add_parser(
        "sandbox",
        help="run local Jira Cloud and ServiceNow emulators",
        description="Serve a Jira Cloud emulator and a ServiceNow emulator on one port, with "
        "seeded projects, users and choices. Credentials: Jira demo@example.com / demo-token, "
        "ServiceNow admin / demo.",
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
    sandbox.set_defaults(handler="sandbox.server:main")

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module_name, func_name = args.handler.split(":")
    module = __import__(module_name, fromlist=[func_name])
    try:
        return int(getattr(module, func_name)(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
