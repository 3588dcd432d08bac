from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import FIXTURES, ThreadedServer

SECRET = "s3cr3t-shared"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GOOD = (FIXTURES / "webhooks" / "04-api-record-anomaly.json").read_bytes()
JSON = {"content-type": "application/json"}
AUTH = {"x-qualytics-secret": SECRET}


def snapshot_dir(path: Path) -> dict[str, str]:
    """Every file in the data directory and a hash of its bytes (lock file aside)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.iterdir())
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.fixture
def receiver(start_receiver: Callable[..., ThreadedServer]) -> ThreadedServer:
    """A receiver that wants the shared secret or a Standard Webhooks signature."""
    return start_receiver(
        {"ANOMALY_DESK_WEBHOOK_SECRET": SECRET, "ANOMALY_DESK_SIGNING_SECRET": SIGNING}
    )


@pytest.fixture
def client(receiver: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver.url, headers={"x-qualytics-secret": SECRET}) as c:
        yield c


@pytest.fixture
def seeded(receiver: ThreadedServer) -> Iterator[Callable[..., httpx.Response]]:
    """A receiver holding one anomaly; ``send`` posts raw and asserts the disk did not change."""
    with httpx.Client(base_url=receiver.url) as raw:
        assert (
            raw.post(
                "/webhooks/qualytics", content=GOOD, headers={**JSON, "x-qualytics-secret": SECRET}
            ).status_code
            == 200
        )
        before = snapshot_dir(receiver.data_dir)  # type: ignore[attr-defined]

        def send(content: bytes, headers: dict[str, str]) -> httpx.Response:
            response = raw.post("/webhooks/qualytics", content=content, headers=headers)
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["status"] == response.status_code
            assert problem["title"]
            assert snapshot_dir(receiver.data_dir) == before  # type: ignore[attr-defined]
            return response

        yield send
