"""Logging for long-running processes: the event loop hands records to a queue, a thread writes.

A receiver logs one line per delivery; at thousands of deliveries a second a write (and flush)
per line on the event loop costs more than storing the webhook. Here the loop only enqueues; the
listener thread formats and writes, and flushes when the queue runs dry, so lines still appear at
once when the receiver is quiet.

The queue is bounded (``MAX_QUEUED`` records): when the writer falls behind (a slow terminal or
pipe, a traceback per turn in a hot loop) a record that finds the queue full is dropped and
counted, never blocking or raising into the caller, so memory stays bounded. When the writer has
caught up (the queue ran dry) it writes one line, "N log records dropped", in their place.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_QUEUED = 10_000  # records waiting for the writer; ~10 MB at worst (tracebacks included)


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Enqueue the record as is (formatting happens on the listener thread); drop when full."""

    def __init__(self, records: queue.SimpleQueue[Any], max_queued: int) -> None:
        super().__init__(records)
        self.records = records  # the same queue, with its real type (qsize, empty)
        self.max_queued = max_queued
        self.dropped = 0  # since the writer last reported; guarded by the handler's lock
        self.listener: _Listener | None = None

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        # The lock (re-entrant; ``Handler.handle`` already holds it) makes check-then-put atomic
        # among producers; the writer only ever shrinks the queue, so the bound holds.
        with self.lock:  # type: ignore[union-attr]
            if self.records.qsize() < self.max_queued:
                self.records.put_nowait(record)
            else:
                self.dropped += 1

    def take_dropped(self) -> int:
        with self.lock:  # type: ignore[union-attr]
            dropped, self.dropped = self.dropped, 0
        return dropped


class _FlushWhenIdle(logging.StreamHandler):  # type: ignore[type-arg]
    def flush(self) -> None:  # called per record by StreamHandler.emit: defer to the listener
        pass

    def really_flush(self) -> None:
        super().flush()


class _Listener(logging.handlers.QueueListener):
    def __init__(self, source: _DeferredQueueHandler, *handlers: logging.Handler) -> None:
        super().__init__(source.queue, *handlers, respect_handler_level=True)
        self.source = source

    def handle(self, record: logging.LogRecord) -> None:
        super().handle(record)
        if self.source.records.empty():
            self._caught_up()

    def _caught_up(self) -> None:
        """Report what was dropped while behind, then flush."""
        dropped = self.source.take_dropped()
        if dropped:
            super().handle(
                logging.LogRecord(
                    "anomaly_desk.logs",
                    logging.WARNING,
                    __file__,
                    0,
                    "%d log records dropped (the log writer fell behind)",
                    (dropped,),
                    None,
                )
            )
        for handler in self.handlers:
            handler.really_flush()  # type: ignore[attr-defined]

    def enqueue_sentinel(self) -> None:
        # QueueListener's sentinel is None; not subject to the bound: the writer must see it
        self.source.records.put(None)

    def stop(self) -> None:
        """Drain, report drops, flush; idempotent (``atexit`` may call it again)."""
        if self._thread is None:
            return
        super().stop()
        self._caught_up()


def setup_logging(
    level: int = logging.INFO, stream: Any = None, max_queued: int = MAX_QUEUED
) -> None:
    """Route the root logger through a background writer; idempotent."""
    root = logging.getLogger()
    if any(isinstance(h, _DeferredQueueHandler) for h in root.handlers):
        return
    # stamina says "retry_scheduled" with no details on every read retry; the request loop
    # (core/providers/http.py) already logs each failed attempt with the provider's words.
    logging.getLogger("stamina").setLevel(logging.ERROR)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _DeferredQueueHandler(records, max_queued)
    writer = _FlushWhenIdle(stream or sys.stderr)
    writer.setFormatter(logging.Formatter(FORMAT))
    listener = handler.listener = _Listener(handler, writer)
    listener.start()
    atexit.register(listener.stop)
    root.handlers[:] = [handler]
    root.setLevel(level)
