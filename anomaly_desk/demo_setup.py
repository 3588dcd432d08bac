"""What a running demo is made of, for ``demo`` (which starts it) and ``tour`` (which drives it).

The sandbox's seeded credentials (Jira, ServiceNow and the data-quality platform's API), the names
and limits both use, the ``Setup`` that says where the sandbox and the receiver run and what the
receiver imported from the platform, and ``DemoError`` for a demo that cannot go on.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from anomaly_desk.core.processes import tail
from anomaly_desk.core.views import ImportProgressView
from anomaly_desk.replay import Payload

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
HOST = "127.0.0.1"
JIRA_LOGIN = ("demo@example.com", "demo-token")  # the sandbox's seeded credentials
SERVICENOW_LOGIN = ("admin", "demo")
# People working the tickets through the ordinary APIs (the sandbox's seeded users): what they
# do comes back to the desk (two-way sync). alice may transition and comment in Jira's DQ.
JIRA_PERSON = ("alice@example.com", "alice-token")
SERVICENOW_PERSON = ("bob.martin", "demo")
POLL_S = 2  # the demo's connections read their tickets back this often (seconds)
# The operator tickets are raised for (operator_email): alice has one Jira account; the demo
# gives her the one ServiceNow account (as an admin would) so the caller is set there too.
OPERATOR = JIRA_PERSON[0]
OPERATOR_SNOW_USER = ("alice.emond", "Alice", "Émond")  # user_name, first, last
# The demo's [[rules]]: warehouse orders anomalies to one Jira Bug (dedup by container), CRM
# accounts carrying personal data to a ServiceNow problem.
JIRA_RULE = "warehouse orders"
SNOW_RULE = "CRM personal data"
RULE_TYPES = {JIRA_RULE: "Bug", SNOW_RULE: "problem"}  # the ticket type each rule raises
JIRA_TOKEN_ENV = "DEMO_JIRA_TOKEN"
SNOW_PASSWORD_ENV = "DEMO_SNOW_PASSWORD"
PLATFORM = "Qualytics"
PLATFORM_TOKEN = "demo-platform-token"  # the sandbox platform's seeded read-write API token
PLATFORM_TOKEN_ENV = "DEMO_PLATFORM_TOKEN"
PLATFORM_CONTROL = "/_sandbox/platform"  # the sandbox's controls of its platform emulator
START_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0
IMPORT_TIMEOUT_S = 30.0
TWO_WAY_TIMEOUT_S = 20.0  # a person's change on a ticket, until the desk shows it


class DemoError(Exception):
    """The demo could not run (a child did not start, a tour step was refused): exit 1."""


def say(text: str = "") -> None:
    print(text, flush=True)


def default_fixtures() -> Path:
    """The fixtures shipped in the wheel, else ``fixtures/webhooks`` of the source tree."""
    here = Path(__file__).resolve().parent
    packaged = here / "fixtures" / "webhooks"
    return packaged if packaged.is_dir() else here.parent / "fixtures" / "webhooks"


@dataclass
class Child:
    """One ``python -m anomaly_desk …`` process, its output going to a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def tail(self, lines: int = 15) -> str:
        """The end of its log, indented to sit under an error message."""
        return "\n".join("    " + line for line in tail(self.log, lines).splitlines())


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
    imported: ImportProgressView | None = None  # the import at start, once done
    registered: int = 0  # the fixtures' anomalies given to the platform before the replay
