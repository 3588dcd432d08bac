from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anomaly_desk.core.config import load_settings
from anomaly_desk.receiver.app import create_app as create_receiver
from tests.support import ThreadedServer


@pytest.fixture
def sandbox() -> Iterator[ThreadedServer]:
    """The Jira + ServiceNow sandbox on a free loopback port; ``sandbox.app.state`` steers it."""
    from anomaly_desk.sandbox.app import create_app

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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: the only way to see a full disk (ENOSPC) without filling the real one."""
    if os.geteuid() != 0:
        pytest.skip("disk-full tests need root to mount a small tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
