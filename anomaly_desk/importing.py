"""``anomaly-desk import``: the platform's anomalies into the desk, with a progress bar.

Without a receiver running on the data directory, the store is opened here and the import runs
in this process. With one running (the data directory is locked), the import is asked of that
receiver (``POST /api/import``) and its progress followed (``GET /api/import``); ``--url`` names
the receiver when it is not the default. Either way an interrupted import resumes where it
stopped the next time the same import is asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from anomaly_desk.core.config import ConfigError, load_settings
from anomaly_desk.core.importer import ImportRequest
from anomaly_desk.core.operations import Desk, OperationError
from anomaly_desk.core.providers.platform import PlatformClient, make_platform_client
from anomaly_desk.core.store import Store, StoreError, StoreLocked
from anomaly_desk.core.views import ImportProgressView

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
POLL_S = 0.3


def _say(message: str) -> None:
    print(f"anomaly-desk import: {message}", file=sys.stderr, flush=True)


class Bar:
    """A rich progress bar on stderr (plain lines when it is not a terminal)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("pages · {task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("import", total=None, counts="")

    def show(self, view: ImportProgressView) -> None:
        counts = f"{view.created:,} new, {view.updated:,} updated, {view.unchanged:,} unchanged"
        self.progress.update(
            self.task, completed=view.page, total=view.pages or None, counts=counts
        )

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def summary(view: ImportProgressView) -> str:
    resumed = f" (resumed at page {view.resumed_from})" if view.resumed_from else ""
    return (
        f"imported {view.total:,} anomalies in {view.pages} pages{resumed}: {view.created:,} "
        f"new, {view.updated:,} updated, {view.unchanged:,} unchanged"
    )


def main(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, overrides={"data_dir": args.data_dir})
    except ConfigError as exc:
        _say(str(exc))
        return EXIT_USAGE
    request = ImportRequest(archived=args.archived, since=args.since, datastore=args.datastore)
    try:
        store = Store(settings.data_dir).open()
    except StoreLocked as exc:
        url = args.url or _url_of(exc) or "http://127.0.0.1:8787"
        _say(f"a receiver holds {settings.data_dir}; importing through it at {url}")
        return _through_receiver(url, request)
    except StoreError as exc:
        _say(str(exc))
        return EXIT_FAILED
    client = make_platform_client(settings.platform)
    if client is None:
        store.close_sync()
        _say("the platform's API is not configured: set [platform] url and token_env")
        return EXIT_USAGE
    try:
        return asyncio.run(_here(store, client, request))
    except KeyboardInterrupt:
        _say("interrupted: the pages stored so far are kept; the same command resumes")
        return EXIT_INTERRUPTED


def _url_of(exc: StoreLocked) -> str | None:
    url = exc.holder.get("url")
    return url if isinstance(url, str) else None


async def _here(store: Store, client: PlatformClient, request: ImportRequest) -> int:
    desk = Desk(store, {}, platform_api=client)
    try:
        with Bar() as bar:
            view = await desk.import_from_platform(request, bar.show)
    except OperationError as exc:
        _say(f"{exc} — run the same import again to resume")
        return EXIT_FAILED
    finally:
        await client.aclose()
        await store.close()
    print(summary(view))
    return EXIT_OK


def _through_receiver(url: str, request: ImportRequest) -> int:
    body = {
        "archived": request.archived,
        "since": request.since.isoformat() if request.since else None,
        "datastore": request.datastore,
    }
    with httpx.Client(base_url=url, timeout=30) as api:
        try:
            started = api.post("/api/import", json=body)
        except httpx.TransportError as exc:
            _say(f"nothing answers at {url} ({type(exc).__name__}); pass --url")
            return EXIT_FAILED
        if started.status_code != 202:
            _say(f"the receiver refused: {started.json().get('detail', started.text)}")
            return EXIT_FAILED
        with Bar() as bar:
            while True:
                view = ImportProgressView.model_validate(api.get("/api/import").json())
                bar.show(view)
                if view.done or view.error:
                    break
                time.sleep(POLL_S)
    if view.error:
        _say(f"{view.error} — run the same import again to resume")
        return EXIT_FAILED
    print(summary(view))
    return EXIT_OK
