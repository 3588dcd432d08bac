from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from anomaly_desk.core.connections import JiraConnection, Platform
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.jira import JiraClient
from anomaly_desk.sandbox.jira import JiraEmulator
from tests.support import ThreadedServer

EMAIL = "demo@example.com"
TOKEN = "demo-token"


def connection(url: str, **overrides: Any) -> JiraConnection:
    values: dict[str, Any] = {
        "name": "jira",
        "url": url,
        "email": EMAIL,
        "token": SecretStr(TOKEN),
        "timeout": 5.0,
    }
    values.update(overrides)
    return JiraConnection(**values)


def make_anomaly(anomaly_id: int = 4711, **overrides: Any) -> Anomaly:
    """A realistic anomaly: non-ASCII names, a multi-line message, two failed checks."""
    values: dict[str, Any] = {
        "id": anomaly_id,
        "uuid": "0b8f3a52-3c1e-4f7d-9a11-2f0c6e7d8a90",
        "type": "record",
        "status": "Active",
        "weight": 9,
        "datastore": {"id": 3, "name": "Entrepôt Zürich"},
        "container": {"id": 41, "name": "commandes_clients"},
        "fields": ["montant_€", "date_livraison"],
        "message": "412 rows have a negative montant_€\nFirst seen in the nightly load",
        "failed_checks": [
            {
                "quality_check": {
                    "id": 77,
                    "rule_type": "between",
                    "fields": ["montant_€"],
                    "description": "montant_€ must be between 0 and 10 000",
                }
            },
            {"check_id": 78, "rule_type": "notNull", "fields": "date_livraison"},
        ],
        "global_tags": ["finance", "données-critiques"],
        "anomalous_records_count": 412,
        "created": "2024-01-15T10:30:00Z",
        "url": f"https://acme.qualytics.io/anomalies/{anomaly_id}",
    }
    values.update(overrides)
    return Anomaly.model_validate(values)


@pytest.fixture
def anomaly() -> Anomaly:
    return make_anomaly()


@pytest.fixture
def emulator(sandbox: ThreadedServer) -> JiraEmulator:
    return sandbox.app.state.jira  # type: ignore[attr-defined]


@pytest.fixture
async def client(sandbox: ThreadedServer) -> AsyncIterator[JiraClient]:
    """Our client against the sandbox's Jira emulator over loopback HTTP."""
    jira = JiraClient(connection(sandbox.url), Platform())
    yield jira
    await jira.aclose()


@pytest.fixture
def http(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """A raw, authenticated HTTP client for asserting what the emulator itself answers."""
    with httpx.Client(base_url=sandbox.url, auth=(EMAIL, TOKEN), timeout=5.0) as raw:
        yield raw
