"""The scale benchmark's child process: runs one tree's code (today's or the working tree's).

Copied next to ``scale_docs.py`` into a temporary directory and started there with ``PYTHONPATH``
naming that tree's link farm (``<farm>/anomaly_desk/{core,receiver,...}`` → the tree's folders):
the path finder sees the farm before the venv's editable-install finder (appended to
``sys.meta_path``), so ``anomaly_desk`` is the tree's own. Every mode first checks that it is
(``SCALE_TREE``): a benchmark of the wrong code would be worse than none.

Modes (the parent reads one JSON line from stdout where there is an answer):

- ``where``: the files ``anomaly_desk`` and its store were imported from, and the CLI commands;
- ``load CHUNKS DATA_DIR``: bulk-load the documents (``scale_docs.write_chunks``) through the
  tree's own ``Store.bulk_load``;
- ``cli ARGS...``: the tree's ``anomaly-desk`` (``compact``, say);
- ``serve ARGS...``: ``anomaly-desk serve`` with a checkpoint trigger: SIGUSR1 makes the next
  journal flush start a checkpoint (the store's threshold hook answers 0 once), and the
  checkpoint writer notes its start and end in ``SCALE_EVENTS`` (and the task running it, when it
  is done: what it does on the event loop afterwards counts); identical for both trees;
- ``firstrows URL N``: the tree's dashboard, headless, N times: ms from app start to the first
  page in the table (``tests/benchmarks/tui.py``'s measure).
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

import anomaly_desk
import anomaly_desk.core.store as store_module

TREE = os.path.realpath(os.environ["SCALE_TREE"])
CHECKPOINT_WRITERS = ("_write_checkpoint",)  # what writes a checkpoint, in a thread


def check_tree() -> None:
    for module in (anomaly_desk, store_module):
        real = os.path.realpath(module.__file__ or "")
        if not real.startswith(TREE + os.sep):
            raise SystemExit(f"{module.__name__} imported from {real}, not from {TREE}")


def where() -> dict[str, Any]:
    from anomaly_desk.cli import build_parser

    parser = build_parser()
    commands: list[str] = []
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            commands += list(action.choices)
    return {
        "anomaly_desk": os.path.realpath(anomaly_desk.__file__ or ""),
        "store": os.path.realpath(store_module.__file__ or ""),
        "commands": commands,
    }


def load(chunks: str, data_dir: str) -> dict[str, Any]:
    import scale_docs  # type: ignore[import-not-found]

    gc.disable()  # a million dicts that all live: the collector would only walk them
    started = time.perf_counter()
    store = store_module.Store(Path(data_dir)).open()
    n = store.bulk_load(scale_docs.read_chunks(chunks))
    store.close_sync()
    return {"seconds": time.perf_counter() - started, "loaded": n}


def install_checkpoint_trigger(events_path: str) -> None:
    force = threading.Event()
    lock = threading.Lock()

    def note(event: str, **more: Any) -> None:
        line = orjson.dumps({"event": event, "t": time.time(), **more}) + b"\n"
        with lock, open(events_path, "ab") as out:
            out.write(line)

    def on_signal(signum: int, frame: object) -> None:
        force.set()
        note("asked")

    signal.signal(signal.SIGUSR1, on_signal)
    store_class = store_module.Store
    hooked: list[str] = []
    threshold = getattr(store_class, "_checkpoint_threshold", None)
    if threshold is not None:

        def forced_threshold(self: Any, _original: Any = threshold) -> int:
            if force.is_set():
                force.clear()
                note("triggered")
                return 0
            return int(_original(self))

        store_class._checkpoint_threshold = forced_threshold  # type: ignore[method-assign]
        hooked.append("_checkpoint_threshold")
    for name in CHECKPOINT_WRITERS:
        original = getattr(store_class, name, None)
        if original is None:
            continue

        def timed(*args: Any, _original: Any = original, _name: str = name, **kw: Any) -> Any:
            note("start", writer=_name)
            try:
                return _original(*args, **kw)
            finally:
                note("end", writer=_name)

        setattr(store_class, name, timed)
        hooked.append(name)
    run = getattr(store_class, "_run_checkpoint", None)
    if run is not None and inspect.iscoroutinefunction(run):  # the writer's thread, then the loop

        async def timed_run(*args: Any, _original: Any = run, **kw: Any) -> Any:
            try:
                return await _original(*args, **kw)
            finally:
                note("done")

        store_class._run_checkpoint = timed_run  # type: ignore[method-assign]
        hooked.append("_run_checkpoint")
    note("hooks", hooked=hooked)


def first_rows(url: str, repeat: int) -> dict[str, Any]:
    import asyncio

    from anomaly_desk.tui.app import DashboardApp
    from anomaly_desk.tui.client import DeskClient
    from anomaly_desk.tui.screens.main import MainScreen

    async def once() -> tuple[float, int]:
        app = DashboardApp(DeskClient(url))
        started = time.perf_counter()
        async with app.run_test(size=(160, 48)):
            deadline = started + 60
            while not isinstance(app.screen, MainScreen):
                if time.perf_counter() > deadline:
                    raise TimeoutError("the dashboard never showed its main screen")
                await asyncio.sleep(0.001)
            screen = app.screen
            while not (screen.rows_version > 0 and len(screen.model) > 0):
                if time.perf_counter() > deadline:
                    raise TimeoutError("the dashboard never showed a row")
                await asyncio.sleep(0.001)
            return (screen.rows_shown_at - started) * 1000, len(screen.model)

    runs = [asyncio.run(once()) for _ in range(repeat)]
    return {"ms": [ms for ms, _ in runs], "rows": runs[-1][1]}


def main(argv: list[str]) -> int:
    check_tree()
    mode, rest = argv[0], argv[1:]
    if mode == "where":
        print(json.dumps(where()), flush=True)
    elif mode == "load":
        print(json.dumps(load(*rest)), flush=True)
    elif mode == "firstrows":
        print(json.dumps(first_rows(rest[0], int(rest[1]))), flush=True)
    elif mode in ("cli", "serve"):
        if mode == "serve":
            install_checkpoint_trigger(os.environ["SCALE_EVENTS"])
            rest = ["serve", *rest]
        from anomaly_desk.cli import main as cli_main

        return cli_main(rest)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
