"""Logging for long-running processes: the event loop hands records to a queue, a thread writes.

A receiver logs one line per delivery; at thousands of deliveries a second a write (and flush)
per line on the event loop costs more than storing the webhook. Here the loop only enqueues; the
listener thread formats and writes, and flushes when the queue runs dry, so lines still appear at
once when the receiver is quiet.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Enqueue the record as is; formatting happens on the listener thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class _FlushWhenIdle(logging.StreamHandler):  # type: ignore[type-arg]
    def flush(self) -> None:  # called per record by StreamHandler.emit: defer to the listener
        pass

    def really_flush(self) -> None:
        super().flush()


class _Listener(logging.handlers.QueueListener):
    def handle(self, record: logging.LogRecord) -> None:
        super().handle(record)
        if self.queue.empty():
            for handler in self.handlers:
                handler.really_flush()  # type: ignore[attr-defined]


def setup_logging(level: int = logging.INFO, stream: Any = None) -> None:
    """Route the root logger through a background writer; idempotent."""
    root = logging.getLogger()
    if any(isinstance(h, _DeferredQueueHandler) for h in root.handlers):
        return
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = _FlushWhenIdle(stream or sys.stderr)
    writer.setFormatter(logging.Formatter(FORMAT))
    listener = _Listener(records, writer, respect_handler_level=True)  # type: ignore[arg-type]
    listener.start()
    atexit.register(listener.stop)
    root.handlers[:] = [_DeferredQueueHandler(records)]  # type: ignore[arg-type]
    root.setLevel(level)
