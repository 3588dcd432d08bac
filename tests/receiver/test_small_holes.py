"""The smaller holes: one id rule, clear secrets errors, encodings, trimmed secrets, quiet health."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from tests.receiver.conftest import SECRET
from tests.support import ROOT, ThreadedServer, free_port

JSON = {"content-type": "application/json"}


def test_one_id_rule_for_storing_and_for_every_action(
    start_receiver: Callable[..., ThreadedServer],
) -> None:
    server = start_receiver({})
    api = httpx.Client(base_url=server.url)
    refused = api.post("/webhooks/qualytics", json={"id": -5, "status": "Active"})
    assert refused.status_code == 422  # no usable id, nothing else in the delivery
    assert refused.json()["errors"][0]["path"] == "id"
    for path in ("/api/anomalies/-5", "/api/anomalies/abc"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    biggest = 2**63 - 1
    assert api.post("/webhooks/qualytics", json={"id": biggest}).status_code == 200
    assert api.post(f"/api/anomalies/{biggest}/acknowledge").status_code == 200
    assert api.post("/webhooks/qualytics", json={"id": 2**63}).status_code == 422


def test_a_malformed_signing_secret_is_a_clear_message_not_a_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "anomaly_desk", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "ANOMALY_DESK_DATA_DIR": str(tmp_path / "data"),
            "ANOMALY_DESK_SIGNING_SECRET": "whsec_not*base64!",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ANOMALY_DESK_SIGNING_SECRET: not a Standard Webhooks signing secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not*base64!" not in result.stderr  # the value itself is never repeated


@pytest.mark.parametrize(
    ("headers", "body", "named"),
    [
        ({"content-encoding": "gzip"}, gzip.compress(b'{"id": 94001}', mtime=0), "gzip"),
        ({"content-type": "application/json; charset=latin-1"}, b'{"id": 94001}', "latin-1"),
        (
            {"content-type": "application/json; charset=UTF-16"},
            '{"id": 94001}'.encode("utf-16"),
            "utf-16",
        ),
    ],
)
def test_compressed_or_non_utf8_bodies_are_415_naming_the_encoding(
    start_receiver: Callable[..., ThreadedServer],
    headers: dict[str, str],
    body: bytes,
    named: str,
) -> None:
    server = start_receiver({})
    response = httpx.post(
        f"{server.url}/webhooks/qualytics", content=body, headers={**JSON, **headers}
    )
    assert response.status_code == 415
    assert named in response.json()["detail"]
    ok = httpx.post(
        f"{server.url}/webhooks/qualytics",
        content=b'{"id": 94001}',
        headers={"content-type": "application/json; charset=UTF-8"},
    )
    assert ok.status_code == 200


def test_a_secret_with_surrounding_whitespace_is_trimmed(
    start_receiver: Callable[..., ThreadedServer],
) -> None:
    server = start_receiver({"ANOMALY_DESK_WEBHOOK_SECRET": f"  {SECRET}\n"})
    response = httpx.post(
        f"{server.url}/webhooks/qualytics",
        json={"id": 94002},
        headers={"x-qualytics-secret": SECRET},
    )
    assert response.status_code == 200, response.text


def test_an_exposed_health_check_shows_counts_only_with_the_token(
    start_receiver: Callable[..., ThreadedServer],
) -> None:
    server = start_receiver({"ANOMALY_DESK_HOST": "0.0.0.0", "ANOMALY_DESK_WEBHOOK_SECRET": SECRET})
    anonymous = httpx.get(f"{server.url}/healthz")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok"}
    token = (server.data_dir / "operator-token").read_text().strip()  # type: ignore[attr-defined]
    operator = httpx.get(f"{server.url}/healthz", headers={"authorization": f"Bearer {token}"})
    assert operator.json()["anomalies"] == 0
    assert "by_status" in operator.json()
    wrong = httpx.get(f"{server.url}/healthz", headers={"authorization": "Bearer nope"})
    assert "anomalies" not in wrong.json()
