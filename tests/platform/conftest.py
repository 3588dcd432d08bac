"""The platform client's tests: a ``Platform`` with a token, the client over a transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from anomaly_desk.core.connections import Platform
from anomaly_desk.core.providers.http import READ_RETRY, ReadRetry
from anomaly_desk.core.providers.platform import PlatformClient
from anomaly_desk.sandbox.platform import PlatformEmulator
from tests.support import ThreadedServer

SANDBOX_TOKEN = "demo-platform-token"  # the emulator's default token
UNIT_TOKEN = "unit-platform-token-7f3a9c"  # for MockTransport tests: long, found anywhere it leaks
Handler = Callable[[httpx.Request], httpx.Response]


def platform(
    url: str = "https://acme.qualytics.io", token: str | None = UNIT_TOKEN, **kw: Any
) -> Platform:
    values: dict[str, Any] = {"name": "Qualytics", "url": url, "timeout": 5.0}
    if token is not None:
        values["token"] = SecretStr(token)
    values.update(kw)
    return Platform(**values)


def mock_client(handler: Handler, retry: ReadRetry = READ_RETRY, **kw: Any) -> PlatformClient:
    """The real client over ``httpx.MockTransport``: everything above the network is ours."""
    return PlatformClient(platform(**kw), transport=httpx.MockTransport(handler), retry=retry)


@pytest.fixture
def emulator(sandbox: ThreadedServer) -> PlatformEmulator:
    """The sandbox's platform emulator (reseeded before each test by ``sandbox``)."""
    return sandbox.app.state.platform  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
async def client(sandbox: ThreadedServer) -> AsyncIterator[PlatformClient]:
    """Our client against the sandbox's platform emulator over loopback HTTP."""
    async with PlatformClient(platform(sandbox.url, SANDBOX_TOKEN)) as wired:
        yield wired
