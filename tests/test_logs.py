"""The background log writer: a bounded queue, drops counted and reported, callers never hurt."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import pytest

from anomaly_desk.core import logs

BURST = 25_000


class SlowStream:
    """A file-like whose ``write`` sleeps while ``slow`` is set (a stalled terminal or pipe)."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.slow = threading.Event()
        self.slow.set()
        self._parts: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if self.slow.is_set():
            time.sleep(self.delay)
        with self._lock:
            self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return "".join(self._parts).splitlines()


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger with none of our handlers on it; restored afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = []
    yield root
    for handler in root.handlers:
        listener = getattr(handler, "listener", None)
        if listener is not None:
            listener.stop()
    root.handlers[:] = saved
    root.setLevel(level)


def dropped_reports(lines: list[str]) -> list[int]:
    return [int(m[1]) for line in lines if (m := re.search(r"(\d+) log records dropped", line))]


def test_a_stalled_writer_drops_counts_and_reports(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = SlowStream()
    logs.setup_logging(logging.INFO, stream=stream)
    (handler,) = root_logger.handlers
    records = handler.queue  # type: ignore[attr-defined]
    log = logging.getLogger("anomaly_desk.test")

    largest = 0
    for n in range(BURST):  # far faster than one record per 50 ms
        log.info("burst %d", n)  # never raises, never blocks
        largest = max(largest, records.qsize())
    assert largest <= logs.MAX_QUEUED, f"{largest} records queued: memory is not bounded"

    stream.slow.clear()  # the writer catches up
    deadline = time.monotonic() + 20
    while not dropped_reports(stream.lines):
        assert time.monotonic() < deadline, "no 'log records dropped' line after catching up"
        time.sleep(0.02)
    log.info("after the burst")
    deadline = time.monotonic() + 5
    while "after the burst" not in "\n".join(stream.lines):
        assert time.monotonic() < deadline
        time.sleep(0.02)

    lines = stream.lines
    written = [line for line in lines if "burst " in line and "after" not in line]
    (dropped,) = dropped_reports(lines)  # one report for the episode
    assert dropped > 0
    assert len(written) + dropped == BURST  # every record written or counted, none lost silently
    report = next(i for i, line in enumerate(lines) if "log records dropped" in line)
    assert report == len(written)  # reported once the backlog was written…
    assert "after the burst" in lines[report + 1]  # …and before what came next
    assert "WARNING anomaly_desk.logs" in lines[report]
    assert "Logging error" not in capsys.readouterr().err  # nothing surfaced from the handler


def test_quiet_logging_drops_nothing_and_stop_flushes(root_logger: logging.Logger) -> None:
    stream = SlowStream(delay=0)
    logs.setup_logging(logging.INFO, stream=stream, max_queued=50)
    for n in range(40):
        logging.getLogger("anomaly_desk.test").info("line %d", n)
    root_logger.handlers[0].listener.stop()  # type: ignore[attr-defined]
    root_logger.handlers[0].listener.stop()  # type: ignore[attr-defined]  # idempotent (atexit)
    lines = stream.lines
    assert [line.rsplit(" ", 1)[1] for line in lines] == [str(n) for n in range(40)]
    assert dropped_reports(lines) == []
