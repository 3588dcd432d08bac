"""Provider read retries without their waits, for tests that count tries rather than time them."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import stamina

from anomaly_desk.core.providers.http import READ_RETRY


def fast_retries() -> AbstractContextManager[Any]:
    """stamina's test mode: as many tries as a client makes (``READ_RETRY.attempts``), no backoff
    and no ``Retry-After`` waits; the previous mode comes back on exit."""
    return stamina.set_testing(True, attempts=READ_RETRY.attempts, cap=True)
