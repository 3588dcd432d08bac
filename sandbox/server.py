"""Run the sandbox: ``anomaly-desk sandbox`` in the foreground, or ``serve_sandbox`` in a thread.

``--tls`` makes a throw-away CA and a server certificate for 127.0.0.1/localhost at start
(``trustme``), because ``pysnc`` and other clients refuse plain http; clients pass the printed CA
path as ``verify=``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme
import uvicorn
from starlette.applications import Starlette

from anomaly_desk.core.processes import ThreadedServer, http_url
from anomaly_desk.sandbox.faults import Faults
from anomaly_desk.sandbox.jira_data import CLOUD_ID, SCOPED_TOKEN, SERVICE_ACCOUNT_EMAIL
from anomaly_desk.sandbox.oauth import CLIENT_ID, CLIENT_SECRET
from anomaly_desk.sandbox.platform_data import DEFAULT_TOKEN, READ_ONLY_TOKEN

JIRA_LOGIN = ("demo@example.com", "demo-token")
SERVICENOW_LOGIN = ("admin", "demo")
# People working the tickets (two-way sync): their changes are not the integration's
JIRA_HUMAN_LOGIN = ("alice@example.com", "alice-token")  # may transition and comment in DQ, TM
SERVICENOW_HUMAN_LOGIN = ("bob.martin", "demo")  # itil: updates incidents, work notes, comments
# itil with snc_basic_auth_api_access: keeps Basic auth when the restriction is enforced
SERVICENOW_EXEMPT_LOGIN = ("desk.integration", "demo")
OAUTH_CLIENT = (CLIENT_ID, CLIENT_SECRET)  # ServiceNow and Atlassian (a service account) alike
JIRA_SCOPED_LOGIN = (JIRA_LOGIN[0], SCOPED_TOKEN)  # only through /ex/jira/{cloudId}
JIRA_CLOUD_ID = CLOUD_ID
PLATFORM_TOKEN = DEFAULT_TOKEN  # Authorization: Bearer <token>
PLATFORM_READ_ONLY_TOKEN = READ_ONLY_TOKEN  # reads only: writes answer 403


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path  # give this to clients as ``verify=``
    cert: Path
    key: Path


def make_tls(directory: Path) -> TlsFiles:
    """A fresh CA and a server certificate for 127.0.0.1 and localhost, written as PEM files."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost", "::1")
    files = TlsFiles(directory / "sandbox-ca.pem", directory / "server.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    server.cert_chain_pems[0].write_to_path(str(files.cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert), append=True)
    server.private_key_pem.write_to_path(str(files.key))
    return files


@dataclass
class RunningSandbox:
    """A sandbox serving in a background thread; ``app.state`` steers the emulators."""

    url: str
    ca_path: Path | None
    app: Starlette
    faults: Faults


@contextlib.contextmanager
def serve_sandbox(
    host: str = "127.0.0.1", port: int = 0, *, tls: bool = False, faults: Faults | None = None
) -> Iterator[RunningSandbox]:
    """Start the sandbox in a thread (port 0: a free one) and stop it on exit."""
    from anomaly_desk.sandbox.app import create_app

    faults = faults or Faults()
    app = create_app(faults)
    with tempfile.TemporaryDirectory(prefix="anomaly-desk-sandbox-") as tmp:
        files = make_tls(Path(tmp)) if tls else None
        server = ThreadedServer(
            app,
            host,
            port,
            lifespan="off",
            ssl_certfile=files.cert if files else None,
            ssl_keyfile=files.key if files else None,
            timeout_graceful_shutdown=2,
            name="sandbox",
        )
        with server:
            yield RunningSandbox(server.url, files.ca if files else None, app, faults)


def banner(
    url: str, ca_path: Path | None, faults: Faults, platform_token: str = PLATFORM_TOKEN
) -> str:
    lines = [
        "Anomaly Desk sandbox: Jira Cloud + ServiceNow + data-quality platform emulators",
        f"  Jira Cloud   {url}/rest/api/3   user {JIRA_LOGIN[0]}  token {JIRA_LOGIN[1]}",
        f"  ServiceNow   {url}/api/now/table/incident   user {SERVICENOW_LOGIN[0]}  "
        f"password {SERVICENOW_LOGIN[1]}",
        f"  People       Jira {JIRA_HUMAN_LOGIN[0]} token {JIRA_HUMAN_LOGIN[1]}   ServiceNow "
        f"{SERVICENOW_HUMAN_LOGIN[0]} password {SERVICENOW_HUMAN_LOGIN[1]}",
        "               Jira projects DQ (company-managed: Done asks a resolution) and TM "
        "(team-managed: none)",
        f"  Jira OAuth   POST {url}/oauth/token   client {OAUTH_CLIENT[0]}  secret "
        f"{OAUTH_CLIENT[1]}  (grant_type client_credentials; JSON or form)",
        f"               service account {SERVICE_ACCOUNT_EMAIL} (writes in DQ); cloudId: "
        f"{url}/_edge/tenant_info",
        f"  Jira gateway {url}/ex/jira/{JIRA_CLOUD_ID}/rest/api/3",
        f"               Bearer <token>, or user {JIRA_SCOPED_LOGIN[0]} scoped token "
        f"{JIRA_SCOPED_LOGIN[1]} (the site's /rest/api/3: classic API tokens only)",
        f"  SN OAuth     POST {url}/oauth_token.do (form)   client {OAUTH_CLIENT[0]}  secret "
        f"{OAUTH_CLIENT[1]}",
        "               grant_type client_credentials (acts as admin), password (+ username, "
        "password), refresh_token",
        f"  SN exempt    {SERVICENOW_EXEMPT_LOGIN[0]} password {SERVICENOW_EXEMPT_LOGIN[1]} keeps "
        "Basic auth under the Basic-auth restriction",
        "               (sys_properties glide.authenticate.basic_auth.restriction.*; admin is "
        "not exempt)",
        f"  Auth         {url}/_sandbox/auth   (GET: settings, token requests counted; POST JSON "
        "to change)",
        '               {"token_lifetime_s", "expire_all", "revoke_client", "restore_client", '
        '"service", "expired_api_tokens",',
        '                "basic_auth_restriction": {"active", "enforce", "enforcement_date"}}',
        f"  Platform     {url}/api/anomalies   Authorization: Bearer {platform_token}  "
        f"(read-only: {PLATFORM_READ_ONLY_TOKEN})",
        f"               anomaly pages {url}/anomalies/{{id}}",
        f"  Faults       {url}/_sandbox/faults   (GET to read, POST JSON to change)",
        f"  Webhooks     {url}/_sandbox/webhooks   (off until set; GET: settings and deliveries, "
        "DELETE: off)",
        '               POST {"jira": {"url", "secret"}, "servicenow": {"url", "secret"}, '
        '"duplicate", "shuffle", "retry_on_failure"}',
        "               Jira: X-Hub-Signature sha256=HMAC of the body; ServiceNow: "
        "X-Snow-Signature sha256=HMAC",
    ]
    if ca_path:
        lines.append(f"  TLS CA       {ca_path}   (pass as verify= / a CA bundle)")
    active = {k: v for k, v in faults.settings().items() if v not in (0, 0.0, None)}
    if active:
        lines.append("  Active       " + ", ".join(f"{k}={v}" for k, v in active.items()))
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from anomaly_desk.sandbox.app import create_app
    from anomaly_desk.sandbox.platform import PlatformEmulator

    faults = Faults(
        latency_ms=args.latency_ms, fail_rate=args.fail_rate, rate_limit=args.rate_limit
    )
    # ``--platform-token`` when the command line offers it; the seeded default otherwise
    platform_token = getattr(args, "platform_token", None) or PLATFORM_TOKEN
    app = create_app(faults, PlatformEmulator(token=platform_token))
    with tempfile.TemporaryDirectory(prefix="anomaly-desk-sandbox-") as tmp:
        files = make_tls(Path(tmp)) if args.tls else None
        url = http_url(args.host, args.port, "https" if files else "http")
        print(banner(url, files.ca if files else None, faults, platform_token))
        print(flush=True)
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            lifespan="off",
            log_level="info",
            ssl_certfile=files.cert if files else None,
            ssl_keyfile=files.key if files else None,
        )
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else 1
