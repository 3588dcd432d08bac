"""``anomaly-desk sandbox`` starts from the command line, plain and with ``--tls``."""

from __future__ import annotations

import re
import ssl

import httpx

from tests.support import cli_process, free_port


def test_sandbox_command_serves_both_services_with_fault_flags() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("sandbox", "--port", str(port), "--latency-ms", "5", "--rate-limit", "100")
    with cli_process(*args, url=f"{url}/_sandbox/faults") as proc:
        faults = httpx.get(f"{url}/_sandbox/faults").json()
        assert (faults["latency_ms"], faults["rate_limit"]) == (5, 100)
        sn = httpx.get(f"{url}/api/now/table/incident", auth=("admin", "demo"))
        assert sn.status_code == 200
        assert sn.json() == {"result": []}
        jira = httpx.get(f"{url}/rest/api/3/myself", auth=("demo@example.com", "demo-token"))
        assert jira.status_code == 200
        banner = proc.log.read_text()  # type: ignore[attr-defined]
    assert f"{url}/api/now/table/incident" in banner
    assert "admin" in banner
    assert "demo-token" in banner


def test_sandbox_command_with_tls_prints_the_ca_to_verify_with() -> None:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with cli_process("sandbox", "--port", str(port), "--tls", url=f"{url}/_sandbox/faults") as proc:
        banner = proc.log.read_text()  # type: ignore[attr-defined]
        match = re.search(r"TLS CA\s+(\S+)", banner)
        assert match, banner
        ca = match.group(1)
        response = httpx.get(
            f"{url}/api/now/table/incident", auth=("admin", "demo"), verify=_context(ca)
        )
        assert response.status_code == 200
        assert response.json() == {"result": []}
        assert f"{url}/rest/api/3" in banner


def _context(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)
