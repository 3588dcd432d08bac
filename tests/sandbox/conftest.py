from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import ThreadedServer


@pytest.fixture
def sn(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """A plain HTTP client on the sandbox, logged in to ServiceNow as admin."""
    with httpx.Client(base_url=sandbox.url, auth=("admin", "demo"), timeout=10) as http:
        yield http
