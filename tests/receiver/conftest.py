from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core.config import load_settings
from receiver.app import create_app
from tests.support import ThreadedServer

SECRET = "s3cr3t-shared"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def snapshot_dir(path: Path) -> dict[str, str]:
    """Every file in the data directory and a hash of its bytes (lock file aside)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.iterdir())
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Callable[..., ThreadedServer]]:
    """Start a receiver (real uvicorn on loopback) with the given environment."""
    servers: list[ThreadedServer] = []

    def start(env: dict[str, str] | None = None, data_dir: Path | None = None) -> ThreadedServer:
        settings = load_settings(
            overrides={"data_dir": data_dir or tmp_path / "data"}, env=env or {}
        )
        server = ThreadedServer(create_app(settings)).start()
        server.data_dir = settings.data_dir  # type: ignore[attr-defined]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def receiver(start_receiver: Callable[..., ThreadedServer]) -> ThreadedServer:
    """A receiver that wants the shared secret or a Standard Webhooks signature."""
    return start_receiver(
        {"ANOMALY_DESK_WEBHOOK_SECRET": SECRET, "ANOMALY_DESK_SIGNING_SECRET": SIGNING}
    )


@pytest.fixture
def client(receiver: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver.url, headers={"x-qualytics-secret": SECRET}) as c:
        yield c
