"""``serve_sandbox``: the reusable in-process sandbox the demo and other tests start."""

from __future__ import annotations

import ssl

import httpx

from anomaly_desk.sandbox.faults import Faults
from anomaly_desk.sandbox.server import banner, serve_sandbox


def test_serve_sandbox_over_tls_with_faults() -> None:
    with serve_sandbox(tls=True, faults=Faults(latency_ms=1)) as running:
        assert running.url.startswith("https://127.0.0.1:")
        assert running.ca_path is not None
        assert running.ca_path.is_file()
        context = ssl.create_default_context(cafile=str(running.ca_path))
        with httpx.Client(base_url=running.url, verify=context) as http:
            response = http.get("/api/now/table/sys_user_group", auth=("admin", "demo"))
            assert response.status_code == 200
            assert http.get("/_sandbox/faults").json()["latency_ms"] == 1
        assert running.app.state.servicenow is not None
        ca_path = running.ca_path
    assert not ca_path.exists()  # the throw-away certificates go with the server


def test_banner_names_urls_credentials_and_active_faults() -> None:
    text = banner("http://127.0.0.1:8788", None, Faults(fail_rate=0.1))
    assert "http://127.0.0.1:8788/api/now/table/incident" in text
    assert "demo@example.com" in text
    assert "fail_rate=0.1" in text
    assert "TLS CA" not in text
