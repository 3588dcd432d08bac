from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from anomaly_desk.core.connections import Platform, ServiceNowConnection
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers.servicenow import ServiceNowClient
from tests.support import ThreadedServer

PASSWORD = "demo"


def connection(url: str, **overrides: Any) -> ServiceNowConnection:
    values: dict[str, Any] = {
        "name": "servicenow",
        "url": url,
        "username": "admin",
        "password": SecretStr(PASSWORD),
        "timeout": 5.0,
    }
    values.update(overrides)
    return ServiceNowConnection(**values)


def make_anomaly(anomaly_id: int = 1234, **overrides: Any) -> Anomaly:
    values: dict[str, Any] = {
        "id": anomaly_id,
        "uuid": "5c1b0d8e-5a0b-4a7e-9a53-3f1f3f0c2a11",
        "type": "record",
        "status": "Active",
        "weight": 7,
        "datastore": {"id": 3, "name": "warehouse"},
        "container": {"id": 41, "name": "orders"},
        "fields": ["email", "customer_id"],
        "message": "1,204 records have a null email",
        "failed_checks": [
            {
                "quality_check": {
                    "id": 77,
                    "rule_type": "notNull",
                    "fields": ["email"],
                    "description": "email must not be null",
                }
            },
            {"check_id": 78, "rule_type": "matchesPattern", "fields": ["customer_id"]},
        ],
        "global_tags": ["finance", "pii"],
        "anomalous_records_count": 1204,
        "created": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
        "url": f"https://acme.qualytics.io/anomalies/{anomaly_id}",
    }
    values.update(overrides)
    return Anomaly(**values)


@pytest.fixture
def anomaly() -> Anomaly:
    return make_anomaly()


@pytest.fixture
async def client(sandbox: ThreadedServer) -> AsyncIterator[ServiceNowClient]:
    """Our client against the sandbox's ServiceNow emulator over loopback HTTP."""
    snc = ServiceNowClient(connection(sandbox.url), Platform())
    yield snc
    await snc.aclose()
