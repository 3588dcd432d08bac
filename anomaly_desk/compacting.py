"""``anomaly-desk compact``: move old archived anomalies to the cold archive now (issue #16).

Without a receiver on the data directory, the store is opened here and compacted in this
process, with progress on stderr. With one running (the data directory is locked), the
compaction is asked of it (``POST /api/compact``), since only the lock's holder may write.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

from anomaly_desk.core.config import ConfigError, load_settings
from anomaly_desk.core.retention import compact, summary
from anomaly_desk.core.store import Store, StoreError, StoreLocked
from anomaly_desk.core.views import CompactView

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PROGRESS_S = 2.0
TOKEN_FILE = "operator-token"  # as the receiver writes it (an exposed receiver wants it)


def _say(message: str) -> None:
    print(f"anomaly-desk compact: {message}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(  # compacting connects to no ticketing system
            args.config, overrides={"data_dir": args.data_dir}, resolve_secrets=False
        )
    except ConfigError as exc:
        _say(str(exc))
        return EXIT_USAGE
    retention = settings.retention
    try:
        store = Store(settings.data_dir).open()
    except StoreLocked as exc:
        holder = exc.holder.get("url")
        url = args.url or (holder if isinstance(holder, str) else None)
        if url is None:
            _say(f"{exc}; it names no URL: pass --url")
            return EXIT_FAILED
        _say(f"a receiver holds {settings.data_dir}; compacting through it at {url}")
        return _through_receiver(url, settings.data_dir)
    except StoreError as exc:
        _say(str(exc))
        return EXIT_FAILED
    _say(
        f"moving anomalies archived more than {retention.archive_after_days} days ago from "
        f"{store.count():,} hot ones to {store.cold.path}"
    )

    last = [0.0]

    def shown(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= PROGRESS_S:  # a line every few seconds, not batch
            last[0] = now
            _say(f"{done:,} / {total:,} archived anomalies looked at")

    async def run() -> CompactView:
        try:
            return await compact(store, retention, progress=shown)
        finally:
            await store.close()

    try:
        view = asyncio.run(run())
    except KeyboardInterrupt:
        _say("interrupted: what moved stays moved, the rest is still hot; run it again")
        return EXIT_INTERRUPTED
    except (StoreError, OSError) as exc:
        _say(f"failed: {exc} (nothing is lost: what did not move is still hot)")
        return EXIT_FAILED
    print(summary(view))
    return EXIT_OK


def _through_receiver(url: str, data_dir: Path) -> int:
    headers = {}
    token = data_dir / TOKEN_FILE
    if token.exists():
        headers["Authorization"] = f"Bearer {token.read_text().strip()}"
    try:
        with httpx.Client(base_url=url, timeout=None, headers=headers) as api:
            answer = api.post("/api/compact")
    except httpx.TransportError as exc:
        _say(f"nothing answers at {url} ({type(exc).__name__}); pass --url")
        return EXIT_FAILED
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        _say(f"the receiver refused ({answer.status_code}): {detail}")
        return EXIT_FAILED
    print(summary(CompactView.model_validate(answer.json())))
    return EXIT_OK
