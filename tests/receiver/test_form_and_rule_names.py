"""Names and ids in operator URLs: a create form for an anomaly the desk does not hold is a 404
(it used to be the plain form, silently), and a rule's name finds its rule whichever Unicode
normal form the client sent."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.integration.conftest import ENV, start_receiver, write_config
from tests.support import ThreadedServer

COMPOSED = unicodedata.normalize("NFC", "données clients")
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)
RULES = f"""
[[rules]]
name = "{COMPOSED}"
match = {{ datastores = ["no-such-datastore"] }}
action = {{ connection = "jira" }}

[[rules]]
name = "{unicodedata.normalize("NFD", "équipe")}"
match = {{ datastores = ["no-such-datastore"] }}
action = {{ connection = "servicenow" }}
"""


@pytest.fixture
def api(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """A receiver on the sandbox with two rules (one named in NFC, one in NFD), holding anomaly
    95001 hot and 95002 in the cold archive."""
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, rules=RULES)
    env = {**ENV, "ANOMALY_DESK_RETENTION__ARCHIVE_AFTER_DAYS": "0"}
    receiver = start_receiver(config, tmp_path / "data", env)
    try:
        with httpx.Client(base_url=receiver.url, timeout=30) as client:
            sent = [
                {"id": 95001, "status": "Active", "message": "m"},
                {"id": 95002, "status": "Resolved", "message": "m"},
            ]
            assert client.post("/webhooks/qualytics", json=sent).status_code == 200
            assert client.post("/api/compact").json()["moved"] == 1
            yield client
    finally:
        receiver.stop()


@pytest.mark.parametrize("connection", ["jira", "servicenow"])
def test_a_form_for_an_unknown_anomaly_is_a_404_naming_it(
    api: httpx.Client, connection: str
) -> None:
    answer = api.get(f"/api/connections/{connection}/form", params={"anomaly": "424242"})
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "424242" in answer.json()["detail"]
    huge = api.get(f"/api/connections/{connection}/form", params={"anomaly": "9" * 19})
    assert huge.status_code == 404, huge.text  # past 64 bits: unknown, not a crash
    assert api.get(f"/api/connections/{connection}/form").status_code == 200
    for known in (95001, 95002):  # hot, and cold (still found by id)
        answer = api.get(f"/api/connections/{connection}/form", params={"anomaly": known})
        assert answer.status_code == 200, answer.text


def test_an_id_of_too_many_digits_is_a_bad_request(api: httpx.Client) -> None:
    answer = api.get("/api/connections/jira/form", params={"anomaly": "9" * 40})
    assert answer.status_code == 400, answer.text


def rule_url(name: str, action: str) -> str:
    return f"/api/rules/{quote(name, safe='')}/{action}"


def paused(api: httpx.Client) -> dict[str, bool]:
    rules = api.get("/api/rules").json()["items"]
    return {unicodedata.normalize("NFC", rule["name"]): rule["paused"] for rule in rules}


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_a_rule_is_found_by_its_name_in_either_normal_form(api: httpx.Client, form: str) -> None:
    for name in (COMPOSED, "équipe"):  # configured NFC, configured NFD
        sent = unicodedata.normalize(form, name)
        answer = api.post(rule_url(sent, "pause"))
        assert answer.status_code == 200, answer.text
        assert unicodedata.normalize("NFC", answer.json()["name"]) == name
        assert paused(api)[name] is True
        again = api.post(rule_url(sent, "pause"))
        assert again.status_code == 409, again.text  # the same rule, paused already
        assert api.post(rule_url(sent, "resume")).status_code == 200
        assert paused(api)[name] is False


def test_an_unknown_rule_is_still_a_404(api: httpx.Client) -> None:
    answer = api.post(rule_url(DECOMPOSED + "x", "pause"))
    assert answer.status_code == 404, answer.text
    assert set(paused(api).values()) == {False}
