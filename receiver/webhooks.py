"""``POST /webhooks/qualytics``: check, parse, store, answer. A 2xx means the data is on disk."""

from __future__ import annotations

import logging
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from core.ingest import delivery_key
from core.store import StoreFailed
from core.webhooks import PayloadError, parse_delivery
from receiver.bodies import read_json_body
from receiver.problems import Problem

log = logging.getLogger("anomaly_desk.receiver")


async def receive_webhook(request: Request) -> Response:
    started = time.perf_counter()
    state = request.app.state
    key, ids, outcome = "-", "-", "rejected"
    try:
        body = await read_json_body(request, state.settings.receiver.max_body_bytes)
        refusal = state.auth.check(request.headers, body)
        if refusal is not None:
            raise Problem(
                401,
                "Unauthorized",
                refusal,
                kind="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="webhooks"'},
            )
        key = delivery_key(request.headers.get("webhook-id"), body)
        try:
            delivery = parse_delivery(body)
        except PayloadError as exc:
            kind = "invalid-json" if exc.status == 400 else "invalid-payload"
            raise Problem(exc.status, exc.title, exc.detail, kind=kind, errors=exc.errors) from None
        ids = ",".join(str(a.id) for a in delivery.anomalies) or "-"
        try:
            result = await state.desk.ingest(delivery, key)
        except StoreFailed as exc:
            outcome = "store-failed"
            raise Problem(503, "Store unavailable", str(exc), kind="store-failed") from None
        outcome = "duplicate" if result.duplicate else "stored"
        return Response(orjson.dumps(result.as_json()), media_type="application/json")
    except Problem as exc:
        if outcome == "rejected":
            outcome = f"rejected:{exc.status}"
        raise
    finally:
        log.info(
            "delivery=%s anomalies=%s outcome=%s ms=%.1f",
            key[:24],
            ids,
            outcome,
            (time.perf_counter() - started) * 1000,
        )
