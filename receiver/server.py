"""``anomaly-desk serve``: the receiver under uvicorn, owning one data directory."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from anomaly_desk.core.config import ConfigError, is_loopback, load_settings
from anomaly_desk.core.logs import setup_logging
from anomaly_desk.core.store import Store, StoreError
from anomaly_desk.receiver.app import TOKEN_FILE, create_app


def main(args: argparse.Namespace) -> int:
    setup_logging(logging.INFO)
    try:
        settings = load_settings(
            args.config, overrides={"host": args.host, "port": args.port, "data_dir": args.data_dir}
        )
    except ConfigError as exc:
        print(f"anomaly-desk serve: {exc}", file=sys.stderr)
        return 2
    host, port = settings.receiver.host, settings.receiver.port
    if not is_loopback(host) and not settings.has_webhook_auth:
        print(
            f"anomaly-desk serve: refusing to listen on {host} without a webhook secret; set "
            "ANOMALY_DESK_WEBHOOK_SECRET (or ANOMALY_DESK_SIGNING_SECRET for Standard Webhooks)",
            file=sys.stderr,
        )
        return 2
    url = f"http://{host}:{port}"
    try:
        store = Store(settings.data_dir, owner_url=url, repair=args.repair).open()
    except StoreError as exc:
        print(f"anomaly-desk serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a directory we may not write: a sentence, not a traceback
        print(
            f"anomaly-desk serve: cannot open the store in {settings.data_dir}: {exc}",
            file=sys.stderr,
        )
        return 1
    auth = "secret" if settings.has_webhook_auth else "none (loopback only)"
    lines = [f"anomaly-desk receiver on {url}  data: {settings.data_dir}  webhook auth: {auth}"]
    for conn in settings.connections:
        lines.append(f"  connection {conn.name} ({conn.provider}) → {conn.url}")
    app = create_app(settings, store)
    if not is_loopback(host):
        lines.append(f"  operator API token: {settings.data_dir / TOKEN_FILE} (send as Bearer)")
    print("\n".join(lines), file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=getattr(args, "http", "auto"),
        timeout_graceful_shutdown=10,
    )
    return 0
