from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import ThreadedServer


@pytest.fixture
def sandbox() -> Iterator[ThreadedServer]:
    """The Jira + ServiceNow sandbox on a free loopback port; ``sandbox.app.state`` steers it."""
    from sandbox.app import create_app

    app = create_app()
    with ThreadedServer(app) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server
