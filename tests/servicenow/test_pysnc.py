"""The third-party ``pysnc`` client works against the emulator served over https (``--tls``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pysnc
import pytest

from anomaly_desk.sandbox.app import create_app
from anomaly_desk.sandbox.server import make_tls
from tests.support import ThreadedServer


@pytest.fixture
def tls_sandbox(tmp_path: Path) -> Iterator[tuple[ThreadedServer, Path]]:
    files = make_tls(tmp_path)
    app = create_app()
    with ThreadedServer(app, ssl_certfile=str(files.cert), ssl_keyfile=str(files.key)) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server, files.ca


def test_pysnc_inserts_queries_and_writes_a_work_note(
    tls_sandbox: tuple[ThreadedServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca = tls_sandbox
    # requests lets these variables override a session's ``verify``; pysnc sets it on the session
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert server.url.startswith("https://")
    client = pysnc.ServiceNowClient(server.url, ("admin", "demo"), verify=str(ca))
    try:
        _exercise(client)
    finally:
        client.session.close()  # an open keep-alive connection would hold up server shutdown


def _exercise(client: pysnc.ServiceNowClient) -> None:

    gr = client.GlideRecord("incident")
    gr.initialize()
    gr.short_description = "pysnc: orders feed is stale"
    gr.impact = "2"
    gr.urgency = "1"
    sys_id = str(gr.insert())
    assert len(sys_id) == 32

    found = client.GlideRecord("incident")
    found.add_query("short_description", "LIKE", "feed is STALE")
    found.query()
    assert found.get_row_count() == 1
    assert found.next()
    assert found.get_value("sys_id") == sys_id
    assert found.get_value("number") == "INC0010001"
    assert found.get_value("priority") == "2"  # derived from impact 2 x urgency 1
    assert found.get_display_value("priority") == "2 - High"
    assert found.get_display_value("state") == "New"

    found.work_notes = "Investigating with pysnc"
    found.update()

    journal = client.GlideRecord("sys_journal_field")
    journal.add_query("element_id", sys_id)
    journal.add_query("element", "work_notes")
    journal.query()
    assert journal.get_row_count() == 1
    assert journal.next()
    assert journal.get_value("value") == "Investigating with pysnc"
    assert journal.get_value("name") == "incident"

    again = client.GlideRecord("incident")
    assert again.get(sys_id)
    assert again.get_value("work_notes") == ""  # journal fields read back empty

    missing = client.GlideRecord("incident")
    assert not missing.get("0" * 32)
