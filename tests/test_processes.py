"""``core.processes``: the helpers the demo, the launcher, the sandbox and the tests share."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from anomaly_desk.core.processes import (
    ExitedEarly,
    NoAnswer,
    ThreadedServer,
    free_port,
    running_cli,
    stop_process,
    tail,
    wait_until_answers,
)

Message = dict[str, object]


async def hello(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """The smallest ASGI app: 200 "hello" to every request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_a_child_that_exits_fails_the_wait_at_once_and_leaves_its_log(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with running_cli(["--version"], log) as proc, pytest.raises(ExitedEarly) as raised:
        wait_until_answers(url, timeout=30, proc=proc)
    assert raised.value.returncode == 0
    assert time.monotonic() - started < 20
    assert "anomaly-desk" in tail(log)


def test_nothing_listening_is_no_answer() -> None:
    with pytest.raises(NoAnswer):
        wait_until_answers(f"http://127.0.0.1:{free_port()}", timeout=0.3)


def test_stop_process_kills_what_ignores_sigterm() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()  # the handler is in place
    stop_process(proc, grace=0.5)
    assert proc.returncode == -9  # SIGKILL, after the grace
    proc.stdout.close()


def test_threaded_server_answers_runs_calls_on_its_loop_and_stops() -> None:
    with ThreadedServer(hello, lifespan="off") as server:
        wait_until_answers(server.url, timeout=5, ready=lambda r: r.text == "hello")
        assert server.call(lambda a, b: a + b, 2, 3) == 5
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=1.0)
