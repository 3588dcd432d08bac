from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ThreadedServer

SECRET = "s3cr3t-shared"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


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
