from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from anomaly_desk.core.config import load_settings
from anomaly_desk.receiver.app import create_app as create_receiver
from tests.support import ThreadedServer


class _SandboxHolder:
    """One sandbox server per test session (per xdist worker), started when first needed."""

    def __init__(self) -> None:
        self.server: ThreadedServer | None = None

    def get(self) -> ThreadedServer:
        if self.server is None or not self.server.thread.is_alive():  # a test stopped it
            from anomaly_desk.sandbox.app import create_app

            app = create_app()
            self.server = ThreadedServer(app).start()
            self.server.app = app  # type: ignore[attr-defined]
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="session")
def _sandbox_session() -> Iterator[_SandboxHolder]:
    holder = _SandboxHolder()
    yield holder
    holder.stop()


@pytest.fixture
def sandbox(_sandbox_session: _SandboxHolder) -> ThreadedServer:
    """The Jira + ServiceNow sandbox on a free loopback port; ``sandbox.app.state`` steers it.

    One server for the session, reset before each test (``POST /_sandbox/reset``: no faults, the
    emulators back to their seed), so a test sees a fresh sandbox without paying for a server.
    """
    server = _sandbox_session.get()
    httpx.post(f"{server.url}/_sandbox/reset", timeout=10).raise_for_status()
    return server


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
