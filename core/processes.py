"""Servers we start ourselves: a child ``python -m anomaly_desk …`` or uvicorn in a thread.

One place for what the demo, the dashboard launcher, the sandbox and the tests all need:

* ``free_port``: a loopback port nobody listens on (yet);
* ``spawn_cli`` / ``running_cli``: a child process whose output goes to a log file, never to a
  pipe nobody drains (a busy server would block on a full pipe);
* ``wait_until_answers``: poll a URL until it answers, failing early when the child dies;
* ``stop_process``: terminate, wait, and only then kill (the receiver flushes its store on
  SIGTERM);
* ``ThreadedServer``: an ASGI app served by uvicorn in a background thread.

Free of any web framework (uvicorn is loaded only by ``ThreadedServer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import httpx

if TYPE_CHECKING:
    import uvicorn

LOOPBACK = "127.0.0.1"
AsgiApp = Callable[..., Awaitable[None]]  # (scope, receive, send)
T = TypeVar("T")


def free_port(host: str = LOOPBACK) -> int:
    """A port free on ``host`` right now (another process may still take it before we do)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_url(host: str, port: int, scheme: str = "http") -> str:
    """``http://127.0.0.1:8787``; an IPv6 host in brackets."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


# -- child processes ---------------------------------------------------------------------------


def cli_command(args: Sequence[str]) -> list[str]:
    """``python -m anomaly_desk ARGS`` with this interpreter."""
    return [sys.executable, "-m", "anomaly_desk", *args]


def spawn_cli(
    args: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m anomaly_desk ARGS``, stdout and stderr to ``log`` (truncated first).

    Its stdin is /dev/null: a dashboard in the foreground owns the terminal. ``env`` is the
    child's whole environment (None: ours).
    """
    with log.open("wb") as out:
        return subprocess.Popen(
            cli_command(args),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Terminate, wait up to ``grace`` seconds, and only then kill; a no-op when it has exited."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_cli(
    args: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    grace: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``spawn_cli`` for the ``with`` block, stopped (``stop_process``) on the way out."""
    proc = spawn_cli(args, log, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        stop_process(proc, grace)


def tail(log: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ("" when it cannot be read)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class ExitedEarly(RuntimeError):
    """The child died before its URL answered."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"the process exited with status {returncode}")
        self.returncode = returncode


class NoAnswer(TimeoutError):
    """Nothing acceptable answered at the URL in time."""


def any_answer(response: httpx.Response) -> bool:
    return True


def wait_until_answers(
    url: str,
    *,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    ready: Callable[[httpx.Response], bool] = any_answer,
    interval: float = 0.05,
    request_timeout: float = 2.0,
    verify: bool = True,
) -> None:
    """Poll ``url`` until ``ready(response)``; raise ``ExitedEarly`` or ``NoAnswer`` instead.

    A response that is not ``ready`` (a 503 while starting, another program on the port) counts
    as no answer; so does a refused connection.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and (code := proc.poll()) is not None:
            raise ExitedEarly(code)
        try:
            if ready(httpx.get(url, timeout=request_timeout, verify=verify)):
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise NoAnswer(f"{url} did not answer within {timeout:g} s")
        time.sleep(interval)


# -- uvicorn in a thread -----------------------------------------------------------------------


class ThreadedServer:
    """An ASGI app served by uvicorn in a background thread; port 0 picks a free port.

    ``start()`` returns once uvicorn listens; ``call()`` runs a function on the server's event
    loop (its state is not thread-safe); ``stop()`` asks uvicorn to exit and joins the thread.
    Also a context manager.
    """

    def __init__(
        self,
        app: AsgiApp,
        host: str = LOOPBACK,
        port: int = 0,
        *,
        lifespan: Literal["auto", "on", "off"] = "on",
        log_level: str = "warning",
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        timeout_graceful_shutdown: int | None = None,
        name: str = "server",
    ) -> None:
        import uvicorn  # only what serves in-process pays for importing it

        self.app = app
        self.host = host
        self.name = name
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan=lifespan,
            log_level=log_level,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            timeout_graceful_shutdown=timeout_graceful_shutdown,
        )
        self.server: uvicorn.Server = uvicorn.Server(self.config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        with asyncio.Runner() as runner:  # the loop is closed with the thread, never leaked
            self.loop = runner.get_loop()
            runner.run(self.server.serve())

    def call(self, fn: Callable[..., T], *args: object, timeout: float = 10.0) -> T:
        """``fn(*args)`` on the server's event loop, waited for ``timeout`` seconds at most."""

        async def run() -> T:
            return fn(*args)

        assert self.loop is not None, "start() the server first"
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.config.ssl_certfile else "http"
        return http_url(self.host, self.port, scheme)

    def start(self, timeout: float = 15.0) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=timeout)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
