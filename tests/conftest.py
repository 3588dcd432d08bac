from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.config import load_settings
from receiver.app import create_app as create_receiver
from tests.support import ThreadedServer


@pytest.fixture
def sandbox() -> Iterator[ThreadedServer]:
    """The Jira + ServiceNow sandbox on a free loopback port; ``sandbox.app.state`` steers it."""
    from sandbox.app import create_app

    app = create_app()
    with ThreadedServer(app) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Callable[..., ThreadedServer]]:
    """Start a receiver (real uvicorn on loopback) with the given environment."""
    servers: list[ThreadedServer] = []

    def start(env: dict[str, str] | None = None, data_dir: Path | None = None) -> ThreadedServer:
        settings = load_settings(
            overrides={"data_dir": data_dir or tmp_path / "data"}, env=env or {}
        )
        server = ThreadedServer(create_receiver(settings)).start()
        server.data_dir = settings.data_dir  # type: ignore[attr-defined]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
