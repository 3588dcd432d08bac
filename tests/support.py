"""Real servers on loopback for tests: uvicorn in a thread, or a whole process.

The helpers themselves live in ``anomaly_desk.core.processes`` (the demo and the dashboard
launcher use them too); these are the tests' defaults on top.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from anomaly_desk.core.processes import (
    AsgiApp,
    ExitedEarly,
    NoAnswer,
    running_cli,
    wait_until_answers,
)
from anomaly_desk.core.processes import ThreadedServer as _ThreadedServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

__all__ = ["FIXTURES", "ROOT", "ThreadedServer", "cli_process", "fill", "free_port", "wait_http"]


#: Ports for servers a test starts itself and may restart on the same port: below the kernel's
#: ephemeral range (32768 and up here), a thousand per xdist worker, handed out in order. A port
#: from ``bind(0)`` is free only until somebody else takes it: after a ``kill -9`` another
#: worker's server (or an outgoing connection) could take it before the restarted receiver
#: does, and the test would talk to that one instead (CI saw it: a 404 from a stranger).
PORTS_FROM, PORTS_PER_WORKER = 20_000, 1_000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PORTS = itertools.count(PORTS_FROM + PORTS_PER_WORKER * _WORKER)


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that no other test worker hands out, free right now, never handed out
    twice in this run."""
    for port in _PORTS:
        if port >= PORTS_FROM + PORTS_PER_WORKER * (_WORKER + 1):
            break
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # somebody outside the tests holds it
            return port
    raise RuntimeError(f"worker {_WORKER} used up its {PORTS_PER_WORKER} test ports")


class ThreadedServer(_ThreadedServer):
    """A uvicorn server for an ASGI app on 127.0.0.1, in a background thread.

    ``config`` goes to ``uvicorn.Config`` (``ssl_certfile``, ``ssl_keyfile``, ``lifespan``…).
    """

    def __init__(self, app: AsgiApp, port: int = 0, **config: Any) -> None:
        super().__init__(app, port=port, **config)


@contextlib.contextmanager
def cli_process(
    *args: str, url: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m anomaly_desk ARGS`` in a child process, waited on until ``url`` answers.

    Output goes to a file, ``proc.log`` (removed afterwards), never a pipe nobody drains.
    """
    fd, name = tempfile.mkstemp(prefix="anomaly-desk-", suffix=".log")
    os.close(fd)
    log = Path(name)
    try:
        with running_cli(args, log, env={**os.environ, **(env or {})}, cwd=ROOT, grace=15) as proc:
            proc.log = log  # type: ignore[attr-defined]
            wait_http(url, timeout=timeout, proc=proc)
            yield proc
    finally:
        log.unlink(missing_ok=True)


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``url`` answers at all (any status, any certificate); a dead ``proc`` fails fast,
    with its output when it has a ``log``."""
    try:
        wait_until_answers(url, timeout=timeout, proc=proc, request_timeout=1.0, verify=False)
    except ExitedEarly as exc:
        log: Path | None = getattr(proc, "log", None)
        output = log.read_text(errors="replace") if log is not None else ""
        raise RuntimeError(f"process exited {exc.returncode}: {output[-2000:]}") from None
    except NoAnswer:
        raise TimeoutError(f"{url} did not answer within {timeout}s") from None


def fill(disk: Path) -> Path:
    """Fill a (small) file system to the last byte; the filler file is the space to give back."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0")
    return filler


def sse_events(lines: Iterator[str]) -> Iterator[tuple[int, str, Any]]:
    """``(id, event, data)`` from an SSE line stream; comments skipped."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in fields:
                yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
