"""Scale benchmark (issue #16): a desk with 100k / 300k / 1M anomalies, today's store vs now's.

Run: ``.venv/bin/python -m tests.benchmarks scale [--sizes 100000,300000,1000000] [--quick]
[--json FILE]``. In one run, for each size and for both trees (*today*: commit ``9bcb6b0``,
before the work on #16, extracted with ``git archive``; *now*: the working tree), each tree's
own code in its own processes (see ``scale_trees``):

1. a data directory with N stored anomalies (``scale_docs``: 80 % archived over the last twelve
   months, 20 % open, some with tickets and comments) bulk-loaded through the tree's
   ``Store.bulk_load`` from one generated document set; then, where the tree has it,
   ``anomaly-desk compact`` (what a deployment runs daily);
2. ``anomaly-desk serve`` on 127.0.0.1: start-up is spawn → the first webhook answered 2xx;
3. resident memory (VmRSS, and the peak VmHWM) after start and after the load;
4. webhook latency at a fixed rate (``scale_load``: new anomalies, status changes, a reopened
   archived one now and then), counted from each request's scheduled time; then the same load
   while checkpoints run, forced one after the other the same way in both trees
   (``scale_child``'s SIGUSR1 trigger) and timed by the checkpoint code itself: the p99 of the
   webhooks scheduled while one ran, and of the whole phase;
5. list / filter and search latency through ``GET /api/anomalies`` (``archive=1`` too: the
   working tree's cold archive; today's receiver ignores it), and the dashboard's first rows
   (the tree's own dashboard, headless, as ``tests/benchmarks/tui.py`` measures them);
6. the receiver's CPU time per webhook at N stored, against the same at 1,000 stored.

Markdown tables (today and now side by side per size, ✓/✗ against the goals of #16) go to
stdout, progress to stderr, every figure (and each webhook's latency) to ``--json FILE``. A phase
that fails is reported as failed (the tree may be mid-change) and the run goes on. Options:
``--quick`` (10k / 30k, shorter phases: about two minutes), ``--trees today,now``,
``--baseline COMMIT``. The full run takes about half an hour, most of it generating, loading and
starting today's store at 1M. p99s are sensitive to whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.benchmarks import scale_docs
from tests.benchmarks.ingest import cpu_seconds
from tests.benchmarks.loadgen import encode_post
from tests.benchmarks.scale_load import Paced, WebhookMix, paced, percentile
from tests.benchmarks.scale_trees import ChildFailed, Tree, extract_commit, kill_group, prepare
from tests.support import ROOT, free_port

BASELINE = "9bcb6b0"
REFERENCE = 1_000  # the cost per webhook is compared with this many stored
FULL_SIZES = (100_000, 300_000, 1_000_000)
QUICK_SIZES = (10_000, 30_000)
PROBE_ID = 1_999_999_999  # the start-up probe's anomaly
CHECKPOINT_GAP_S = 0.3  # between two forced checkpoints


@dataclass(frozen=True)
class Plan:
    rate: float  # webhooks per second
    warmup: int
    steady: int
    checkpoint: int  # webhooks in the checkpoint phase, more while the checkpoint runs
    checkpoint_extra_s: float  # at most this much longer
    trigger_after_s: float
    queries: int  # per list / search request kind
    query_budget_s: float  # ... or as many as fit in this
    dashboard_runs: int
    start_timeout_s: float


FULL = Plan(
    rate=200,
    warmup=200,
    steady=2_000,
    checkpoint=2_000,
    checkpoint_extra_s=120,
    trigger_after_s=1.0,
    queries=50,
    query_budget_s=10,
    dashboard_runs=3,
    start_timeout_s=900,
)
QUICK = Plan(
    rate=200,
    warmup=100,
    steady=600,
    checkpoint=600,
    checkpoint_extra_s=30,
    trigger_after_s=0.5,
    queries=20,
    query_budget_s=3,
    dashboard_runs=2,
    start_timeout_s=900,
)

GOAL_START_S = 3.0
GOAL_RSS_MB = 1024.0
GOAL_WEBHOOK_MS = 50.0
GOAL_LIST_MS = 50.0
GOAL_SEARCH_MS = 200.0
GOAL_FIRST_ROWS_MS = 1000.0
GOAL_COST_RATIO = 1.5

LISTS: list[tuple[str, dict[str, str]]] = [
    ("list: open (the dashboard's first page)", {"limit": "50"}),
    ("list: open, page 2 (cursor)", {"limit": "50", "page": "2"}),
    ("filter: status=Active", {"status": "Active", "limit": "50"}),
    ("filter: status=Acknowledged", {"status": "Acknowledged", "limit": "50"}),
    ("filter: status=Resolved", {"status": "Resolved", "limit": "50"}),
    ("filter: archived", {"status": "archived", "limit": "50"}),
    ("filter: all", {"status": "all", "limit": "50"}),
    ("filter: archived, archive=1", {"status": "archived", "limit": "50", "archive": "1"}),
]
RARE, COMMON, NONE = (repr(w) for w in scale_docs.SEARCHES)
SEARCHES: list[tuple[str, dict[str, str]]] = [
    (f"search: {RARE} (rare), all", {"status": "all", "q": scale_docs.SEARCH_RARE}),
    (f"search: {COMMON} (common), all", {"status": "all", "q": scale_docs.SEARCH_COMMON}),
    (f"search: {NONE} (no match), all", {"status": "all", "q": scale_docs.SEARCH_NONE}),
    (f"search: {NONE} (no match), open", {"q": scale_docs.SEARCH_NONE}),
    (
        f"search: {RARE} (rare), all, archive=1",
        {"status": "all", "q": scale_docs.SEARCH_RARE, "archive": "1"},
    ),
    (
        f"search: {NONE} (no match), all, archive=1",
        {"status": "all", "q": scale_docs.SEARCH_NONE, "archive": "1"},
    ),
]

Result = dict[str, Any]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks scale")
    parser.add_argument(
        "--sizes", help="comma-separated anomaly counts (default 100000,300000,1000000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="10k / 30k and shorter phases (development)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the raw figures here")
    parser.add_argument("--baseline", default=BASELINE, help="today's commit (default %(default)s)")
    parser.add_argument("--trees", default="today,now", help="which trees (default %(default)s)")
    args = parser.parse_args(argv)
    default = QUICK_SIZES if args.quick else FULL_SIZES
    args.sizes = (
        [int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes else list(default)
    )
    args.trees = args.trees.split(",")
    return args


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(list(argv or []))
    previous = signal.signal(signal.SIGTERM, _terminated)  # run the finally blocks: clean up
    try:
        return run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> list[str]:
    plan = QUICK if args.quick else FULL
    began = time.perf_counter()
    report: Result = {
        "baseline": args.baseline,
        "sizes": args.sizes,
        "plan": plan.__dict__,
        "trees": {},
        "runs": {},
        "started": scale_docs.iso(time.time()),
    }
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        trees: list[Tree] = []
        wanted = {"today": f"today ({args.baseline})", "now": "now (working tree)"}
        for name in (n for n in wanted if n in args.trees):
            try:
                source = (
                    extract_commit(args.baseline, work / "today-src") if name == "today" else ROOT
                )
                trees.append(prepare(name, wanted[name], source, work))
            except (ChildFailed, subprocess.CalledProcessError) as exc:  # a tree that cannot start
                report["trees"][name] = {"label": wanted[name], "error": str(exc)}
                log(f"{wanted[name]}: left out: {exc}")
        for tree in trees:
            report["trees"][tree.name] = {
                "label": tree.label,
                "root": str(tree.root),
                "compact": "compact" in tree.commands,
            }
            log(f"{tree.label}: anomaly_desk from {tree.root}; commands {', '.join(tree.commands)}")
        config = work / "anomaly-desk.toml"
        config.write_text("[sync]\nrefresh_interval_s = 0\n")
        for size in (REFERENCE, *args.sizes):
            report["runs"][str(size)] = run_size(size, trees, plan, work, config)
            report["seconds"] = time.perf_counter() - began
            if args.json:  # after each size: a run cut short still leaves what it measured
                args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return render(report, trees_order=[t.name for t in trees])


def log(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- one size ------------------------------------------------------------------------------------


def run_size(
    size: int, trees: list[Tree], plan: Plan, work: Path, config: Path
) -> dict[str, Result]:
    seeded_at = time.time()
    chunks = work / f"docs-{size}.jsonl"
    started = time.perf_counter()
    gc.disable()  # a million short-lived dicts: the collector would only slow the writing
    try:
        scale_docs.write_chunks(str(chunks), size, seeded_at)
    finally:
        gc.enable()
    log(f"{size:,}: documents generated in {time.perf_counter() - started:.1f} s")
    results: dict[str, Result] = {}
    data_dirs: dict[str, Path] = {}
    try:
        for tree in trees:
            data_dirs[tree.name] = data = work / f"data-{tree.name}-{size}"
            results[tree.name] = {"errors": {}}
            with phase(results[tree.name], "build"):
                results[tree.name]["build"] = build(tree, data, chunks)
            if "build" in results[tree.name] and "compact" in tree.commands:
                with phase(results[tree.name], "compact"):
                    compact(tree, data, config, results[tree.name]["build"])
        chunks.unlink()
        for tree in trees:
            if "build" in results[tree.name]:
                with phase(results[tree.name], "measure"):
                    measure(
                        tree,
                        size,
                        seeded_at,
                        data_dirs[tree.name],
                        config,
                        plan,
                        work,
                        results[tree.name],
                    )
            log(f"{size:,} {tree.name}: {summary(results[tree.name])}")
    finally:
        chunks.unlink(missing_ok=True)
        for data in data_dirs.values():
            shutil.rmtree(data, ignore_errors=True)
    return results


@contextlib.contextmanager
def phase(result: Result, name: str):  # type: ignore[no-untyped-def]
    """Run a phase; a failure is recorded under ``errors`` and the run goes on."""
    try:
        yield
    except Exception as exc:
        result["errors"][name] = f"{type(exc).__name__}: {exc}"
        log(f"phase {name} failed: {exc}")
        result.setdefault("tracebacks", {})[name] = traceback.format_exc()[-3000:]


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(tree: Tree, data: Path, chunks: Path) -> Result:
    """Bulk load through the tree's own store."""
    answer = tree.ask("load", str(chunks), str(data), timeout=1800)
    return {
        "load_s": answer["seconds"],
        "loaded": answer["loaded"],
        "disk_mb": du(data) / 1e6,
        "compact_s": None,  # unless the tree has `anomaly-desk compact`
    }


def compact(tree: Tree, data: Path, config: Path, built: Result) -> None:
    """What a deployment runs daily: ``anomaly-desk compact`` (the tree's own)."""
    started = time.perf_counter()
    out, err = tree.run(
        "cli", "compact", "--data-dir", str(data), "--config", str(config), timeout=1800
    )
    built["compact_s"] = time.perf_counter() - started
    built["compact_output"] = (out + err).strip()[-600:]
    built["disk_after_compact_mb"] = du(data) / 1e6
    archive = data / "archive"
    built["archive_mb"] = du(archive) / 1e6 if archive.exists() else 0.0


# -- one server ---------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) in MB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def first_webhook(
    proc: subprocess.Popen[bytes], port: int, body: bytes, since: float, timeout: float
) -> float:
    """Seconds from ``since`` until a webhook is answered 2xx (polling every 10 ms)."""
    request = encode_post("/webhooks/qualytics", body, {"Connection": "close"})
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the receiver exited {proc.returncode} while starting")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock,
        ):
            sock.sendall(request)
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
            if head[9:10] == b"2":
                return time.perf_counter() - since
            if head:
                raise RuntimeError(f"the first webhook was answered {head[:40]!r}")
        if time.perf_counter() - since > timeout:
            raise TimeoutError(f"no webhook answered within {timeout:.0f} s")
        time.sleep(0.01)


def read_events(path: Path, offset: float) -> list[dict[str, Any]]:
    """The checkpoint trigger's notes (``scale_child``), times moved to perf_counter's clock."""
    if not path.exists():
        return []
    events = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for event in events:
        event["p"] = event["t"] - offset
    return events


def checkpoint_windows(
    events: list[dict[str, Any]], since: float, until: float
) -> list[tuple[float, float, str]]:
    """(start, end, writer) of each checkpoint that overlapped [since, until]; a forced one starts
    when the threshold hook fired (the snapshot is taken then, on the event loop)."""
    windows: list[tuple[float, float, str]] = []
    triggered: float | None = None
    started: tuple[float, str] | None = None
    for event in events:
        if event["event"] == "triggered":
            triggered = event["p"]
        elif event["event"] == "start" and started is None:
            begin = (
                triggered if triggered is not None and event["p"] - triggered < 5 else event["p"]
            )
            started, triggered = (begin, event.get("writer", "?")), None
        elif event["event"] == "end" and started is not None:
            if event["p"] >= since and started[0] <= until:
                windows.append((started[0], event["p"], started[1]))
            started = None
    if started is not None and started[0] <= until:
        windows.append((started[0], math.inf, started[1]))  # still running
    for done in (e["p"] for e in events if e["event"] == "done"):  # the task's end, on the loop
        before = [i for i, (_, end, _) in enumerate(windows) if end <= done]
        if before and done - windows[before[-1]][1] < 5:
            begin, _, writer = windows[before[-1]]
            windows[before[-1]] = (begin, done, writer)
    return windows


def serve(
    tree: Tree, data: Path, config: Path, port: int, log_path: Path, events: Path
) -> subprocess.Popen[bytes]:
    cmd = tree.command(
        "serve", "--port", str(port), "--data-dir", str(data), "--config", str(config)
    )
    with open(log_path, "wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=tree.launcher,
            env=tree.env(SCALE_EVENTS=str(events)),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def measure(
    tree: Tree,
    size: int,
    seeded_at: float,
    data: Path,
    config: Path,
    plan: Plan,
    work: Path,
    result: Result,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work / f"serve-{tree.name}-{size}.log"
    events = work / f"events-{tree.name}-{size}.jsonl"
    mix = WebhookMix(size, seeded_at)
    probe = orjson.dumps(scale_docs.platform_anomaly(PROBE_ID))
    # the previous tree's (or the data build's) dirty pages are written back before this one
    # starts: at 1M a checkpoint of today's store leaves a gigabyte to flush, and that flush
    # would land in the next tree's fsyncs
    os.sync()
    started = time.perf_counter()
    proc = serve(tree, data, config, port, log_path, events)
    offset = time.time() - time.perf_counter()
    try:
        with phase(result, "start-up"):
            result["startup_s"] = first_webhook(proc, port, probe, started, plan.start_timeout_s)
            result["rss_start"] = proc_status(proc.pid)
            health = httpx.get(f"{url}/healthz", timeout=30).json()
            result["served"] = {k: health.get(k) for k in ("anomalies", "by_status")}
        if "startup_s" not in result:
            return
        n = 0
        with phase(result, "steady"):
            asyncio.run(
                paced(port, mix.request, plan.warmup, plan.rate * 2, start=n, kind=mix.kind)
            )
            n += plan.warmup
            cpu = cpu_seconds(proc.pid)
            since = time.perf_counter()
            run = asyncio.run(
                paced(port, mix.request, plan.steady, plan.rate, start=n, kind=mix.kind)
            )
            n += len(run.latencies_ms)
            result["steady"] = paced_figures(run)
            result["steady"]["cpu_ms_per_webhook"] = (
                (cpu_seconds(proc.pid) - cpu) * 1000 / len(run.latencies_ms)
            )
            result["steady"]["checkpoints"] = len(
                checkpoint_windows(read_events(events, offset), since, time.perf_counter())
            )
        with phase(result, "checkpoint"):
            result["checkpoint"] = checkpoint_phase(
                proc, port, mix, n, plan, events, offset, log_path
            )
            n += result["checkpoint"]["count"]
        alive(proc)
        result["rss_after_load"] = proc_status(proc.pid)
        with phase(result, "lists"), httpx.Client(base_url=url, timeout=60) as http:
            result["lists"] = {name: query(http, params, plan) for name, params in LISTS}
        alive(proc)
        with phase(result, "search"), httpx.Client(base_url=url, timeout=60) as http:
            result["search"] = {name: query(http, params, plan) for name, params in SEARCHES}
        alive(proc)
        with phase(result, "dashboard"):
            shown = tree.ask("firstrows", url, str(plan.dashboard_runs), timeout=300)
            result["first_rows_ms"] = shown["ms"]
            result["first_rows_count"] = shown["rows"]
        alive(proc)
        result["rss_end"] = proc_status(proc.pid)
        result["cpu_total_s"] = cpu_seconds(proc.pid)
    finally:
        kill_group(proc)
        result["log_tail"] = (
            log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        )


def alive(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"the receiver exited {proc.returncode}")


def paced_figures(run: Paced) -> Result:
    by_kind: dict[str, list[float]] = {}
    for kind, latency in zip(run.kinds, run.latencies_ms, strict=True):
        by_kind.setdefault(kind, []).append(latency)
    return {
        "by_kind": {
            kind: {"count": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)}
            for kind, v in sorted(by_kind.items())
        },
        "count": len(run.latencies_ms),
        "seconds": run.seconds,
        "p50_ms": percentile(run.latencies_ms, 50),
        "p99_ms": percentile(run.latencies_ms, 99),
        "max_ms": max(run.latencies_ms),
        "statuses": {str(k): v for k, v in run.statuses.items()},
        # every request: [ms since the first was scheduled, latency ms, kind], for a closer look
        "requests": [
            [round((at - run.scheduled[0]) * 1000, 1), round(ms, 2), kind]
            for at, ms, kind in sorted(zip(run.scheduled, run.latencies_ms, run.kinds, strict=True))
        ],
    }


def checkpoint_phase(
    proc: subprocess.Popen[bytes],
    port: int,
    mix: WebhookMix,
    start: int,
    plan: Plan,
    events: Path,
    offset: float,
    log_path: Path,
) -> Result:
    """The steady load again, with checkpoints forced (SIGUSR1) one after the other from
    ``trigger_after_s`` in: each as soon as the last has ended and ``CHECKPOINT_GAP_S`` passed, so
    a short checkpoint still sees enough webhooks. After the planned count, the load goes on
    until the last checkpoint has ended (at most ``checkpoint_extra_s`` more)."""
    log_lines = log_path.read_text(errors="replace").count("checkpoint")
    state = {"done": False, "asked": 0}
    planned_end = time.perf_counter() + 0.05 + plan.checkpoint / plan.rate

    async def force() -> None:
        await asyncio.sleep(plan.trigger_after_s)
        while True:
            asked = time.perf_counter()
            state["asked"] += 1
            os.kill(proc.pid, signal.SIGUSR1)
            while True:
                await asyncio.sleep(0.02)
                found = checkpoint_windows(read_events(events, offset), asked, math.inf)
                if found and found[-1][1] != math.inf:
                    break  # it ended
                if not found and time.perf_counter() - asked > 15:
                    state["done"] = True  # the trigger did not take: say so, stop asking
                    return
            if time.perf_counter() >= planned_end:
                state["done"] = True
                return
            await asyncio.sleep(CHECKPOINT_GAP_S)

    async def run() -> Paced:
        forcing = asyncio.create_task(force())
        try:
            return await paced(
                port,
                mix.request,
                plan.checkpoint,
                plan.rate,
                start=start,
                more=lambda: not state["done"],
                kind=mix.kind,
                most=plan.checkpoint + int(plan.rate * plan.checkpoint_extra_s),
            )
        finally:
            forcing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forcing

    since = time.perf_counter()
    load = asyncio.run(run())
    until = time.perf_counter()
    figures = paced_figures(load)
    windows = checkpoint_windows(read_events(events, offset), since, until)
    hooked = [e.get("hooked") for e in read_events(events, offset) if e["event"] == "hooks"]
    figures["hooks"] = hooked[-1] if hooked else None
    figures["triggered"] = any(
        e["event"] == "triggered" and e["p"] >= since for e in read_events(events, offset)
    )
    figures["windows"] = [(a - since, b - since, w) for a, b, w in windows]
    figures["forced"] = state["asked"]
    figures["log_mentions"] = log_path.read_text(errors="replace").count("checkpoint") - log_lines
    if windows:
        inside = [
            ms
            for at, ms in zip(load.scheduled, load.latencies_ms, strict=True)
            if any(a <= at <= b for a, b, _ in windows)
        ]
        figures["in_checkpoint"] = {
            "count": len(inside),
            "p50_ms": percentile(inside, 50) if inside else None,
            "p99_ms": percentile(inside, 99) if inside else None,
            "max_ms": max(inside) if inside else None,
            "seconds": sum(min(b, until) - a for a, b, _ in windows),
        }
    return figures


def query(http: httpx.Client, params: dict[str, str], plan: Plan) -> Result:
    """Up to ``plan.queries`` requests (or ``query_budget_s``): p50 / p99 ms and rows answered."""
    params = dict(params)
    if params.pop("page", None):  # the second page: the first one's cursor
        first = http.get("/api/anomalies", params=params)
        first.raise_for_status()
        cursor = first.json().get("next_cursor")
        if not cursor:
            raise RuntimeError("the first page has no next_cursor")
        params["cursor"] = cursor
    times: list[float] = []
    rows = 0
    budget = time.perf_counter() + plan.query_budget_s
    while len(times) < plan.queries and (len(times) < 3 or time.perf_counter() < budget):
        sent = time.perf_counter()
        answer = http.get("/api/anomalies", params=params)
        times.append((time.perf_counter() - sent) * 1000)
        answer.raise_for_status()
        rows = len(answer.json().get("items", []))
    return {
        "count": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": percentile(times, 99),
        "rows": rows,
    }


def summary(result: Result) -> str:
    parts = []
    if "startup_s" in result:
        parts.append(f"start {result['startup_s']:.2f} s")
    if "steady" in result:
        parts.append(f"p99 {result['steady']['p99_ms']:.1f} ms")
    in_checkpoint = result.get("checkpoint", {}).get("in_checkpoint")
    if in_checkpoint and in_checkpoint["count"]:
        parts.append(f"p99 in checkpoint {in_checkpoint['p99_ms']:.1f} ms")
    if "rss_end" in result:
        parts.append(f"peak RSS {result['rss_end']['VmHWM']:.0f} MB")
    if result["errors"]:
        parts.append(f"failed: {', '.join(result['errors'])}")
    return "; ".join(parts)


# -- the report ----------------------------------------------------------------------------------


def mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


Cell = Callable[[Result, Result], str]


def render(report: Result, trees_order: list[str]) -> list[str]:
    plan = report["plan"]
    labels = [report["trees"][t]["label"] for t in trees_order]
    lines = [
        f"Scale (issue #16): N stored anomalies, 80 % archived over twelve months; each tree's own "
        f"code in its own processes; *today* = {report['baseline']}, *now* = the working tree. "
        f"Webhooks at {plan['rate']:.0f}/s over keep-alive sockets (new anomalies, status changes, "
        f"2 % reopened archived ones), latency from each request's scheduled time; list and "
        f"search: `GET /api/anomalies`, {plan['queries']} requests each (p50 / p99 ms; `archive=1` "
        f"asks now's receiver to include the cold archive, today's ignores it: everything is hot "
        f"there); dashboard: "
        f"the tree's own, headless, median of {plan['dashboard_runs']} starts.",
        "",
    ]
    for about in report["trees"].values():
        if "error" in about:
            lines.append(f"*{about['label']}* could not run at all: {about['error'][-300:]}")
    for tree in trees_order:
        if not report["trees"][tree]["compact"]:
            lines.append(
                f"*{report['trees'][tree]['label']}* has no `anomaly-desk compact`: not run."
            )
    reference = report["runs"].get(str(REFERENCE), {})
    for size in report["sizes"]:
        runs = report["runs"][str(size)]
        lines += [
            "",
            f"**{size:,} anomalies stored**",
            "",
            "| measure | goal | " + " | ".join(labels) + " |",
            "|---|---|" + "---:|" * len(labels),
        ]
        rows = table_rows(runs, reference, trees_order)
        for name, goal, cells in rows:
            lines.append(f"| {name} | {goal} | " + " | ".join(cells) + " |")
        for tree in trees_order:
            for name, error in runs.get(tree, {}).get("errors", {}).items():
                last = error.strip().splitlines()[-1] if error.strip() else error
                lines.append(f"- {report['trees'][tree]['label']}: *{name}* failed: {last[:300]}")
    return lines


def table_rows(
    runs: dict[str, Result], reference: dict[str, Result], trees: list[str]
) -> list[tuple[str, str, list[str]]]:
    def cells(fn: Callable[[Result, Result], str]) -> list[str]:
        out = []
        for tree in trees:
            result, ref = runs.get(tree, {"errors": {}}), reference.get(tree, {"errors": {}})
            try:
                out.append(fn(result, ref))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                out.append("failed" if result.get("errors") else "–")
        return out

    def build(r: Result, _: Result) -> str:
        b = r["build"]
        text = f"{b['load_s']:.1f} s, {b['disk_mb']:,.0f} MB"
        if b.get("disk_after_compact_mb") is not None:
            text += f"; compact {b['compact_s']:.1f} s → {b['disk_after_compact_mb']:,.0f} MB ({b['archive_mb']:,.0f} MB archive)"
        return text

    def served(r: Result, _: Result) -> str:
        return f"{r['served']['anomalies']:,}"

    def startup(r: Result, _: Result) -> str:
        return f"{r['startup_s']:.2f} s{mark(r['startup_s'] <= GOAL_START_S)}"

    def rss(key: str, field: str) -> Cell:
        def cell(r: Result, _: Result) -> str:
            value = r[key][field]
            return f"{value:,.0f} MB{mark(value <= GOAL_RSS_MB)}"

        return cell

    def steady(r: Result, _: Result) -> str:
        s = r["steady"]
        bad = {k: v for k, v in s["statuses"].items() if not k.startswith("2")}
        extra = f" (non-2xx: {bad})" if bad else ""
        return f"{ms(s['p50_ms'])} / {ms(s['p99_ms'])} ms{mark(s['p99_ms'] <= GOAL_WEBHOOK_MS and not bad)}{extra}"

    def kinds(r: Result, _: Result) -> str:
        by = r["steady"]["by_kind"]
        return " / ".join(f"{ms(by[k]['p99_ms'])}" for k in ("new", "change", "reopen")) + " ms"

    def checkpoint(r: Result, _: Result) -> str:
        c = r["checkpoint"]
        inside = c.get("in_checkpoint")
        if not inside or not inside["count"]:
            seen = "no checkpoint seen" if not c["windows"] else "no webhook inside one"
            return f"{seen} (phase p99 {ms(c['p99_ms'])} ms; log: {c['log_mentions']})"
        ok = inside["p99_ms"] <= GOAL_WEBHOOK_MS and c["p99_ms"] <= GOAL_WEBHOOK_MS
        return (
            f"{ms(inside['p99_ms'])} ms (max {ms(inside['max_ms'])}; {inside['count']} webhooks "
            f"in {len(c['windows'])} checkpoints, {inside['seconds']:.1f} s; phase p99 "
            f"{ms(c['p99_ms'])}){mark(ok)}"
        )

    def timed(group: str, name: str, goal: float) -> Cell:
        def cell(r: Result, _: Result) -> str:
            q = r[group][name]
            return f"{ms(q['p50_ms'])} / {ms(q['p99_ms'])} ms ({q['rows']} rows){mark(q['p99_ms'] <= goal)}"

        return cell

    def first_rows(r: Result, _: Result) -> str:
        value = statistics.median(r["first_rows_ms"])
        return (
            f"{ms(value)} ms (max {ms(max(r['first_rows_ms']))}){mark(value <= GOAL_FIRST_ROWS_MS)}"
        )

    def cost(r: Result, ref: Result) -> str:
        here, there = r["steady"]["cpu_ms_per_webhook"], ref["steady"]["cpu_ms_per_webhook"]
        ratio = here / there
        return f"{here:.2f} ms vs {there:.2f} at 1k: {ratio:.2f}×{mark(ratio <= GOAL_COST_RATIO)}"

    rows: list[tuple[str, str, list[str]]] = [
        ("data: bulk load, on disk; compact", "", cells(build)),
        ("anomalies the receiver holds (`/healthz`)", "", cells(served)),
        ("start-up: spawn → first webhook 2xx", f"≤ {GOAL_START_S:.0f} s", cells(startup)),
        ("RSS after start", "≤ 1 GB", cells(rss("rss_start", "VmRSS"))),
        ("RSS after the webhook load", "≤ 1 GB", cells(rss("rss_after_load", "VmRSS"))),
        ("peak RSS (VmHWM) at the end", "≤ 1 GB", cells(rss("rss_end", "VmHWM"))),
        ("webhook p50 / p99, steady", f"p99 ≤ {GOAL_WEBHOOK_MS:.0f} ms", cells(steady)),
        ("webhook p99, steady: new / status change / reopened archived", "", cells(kinds)),
        ("webhook p99 during a checkpoint", f"≤ {GOAL_WEBHOOK_MS:.0f} ms", cells(checkpoint)),
    ]
    rows += [
        (name, f"p99 ≤ {GOAL_LIST_MS:.0f} ms", cells(timed("lists", name, GOAL_LIST_MS)))
        for name, _ in LISTS
    ]
    rows += [
        (name, f"p99 ≤ {GOAL_SEARCH_MS:.0f} ms", cells(timed("search", name, GOAL_SEARCH_MS)))
        for name, _ in SEARCHES
    ]
    rows += [
        ("dashboard: first rows", f"≤ {GOAL_FIRST_ROWS_MS / 1000:.0f} s", cells(first_rows)),
        ("server CPU per webhook, vs 1k stored", f"≤ {GOAL_COST_RATIO}×", cells(cost)),
    ]
    return rows


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
