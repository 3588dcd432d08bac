"""D2: hostile text from an anomaly or a comment reaches ServiceNow neutralised: no control
characters but newline and tab, and no ``[code]`` tag an instance would render as HTML (the
sandbox's own reading of the tags, ``snow_markup``, is the oracle), while the words still show
as typed. Read back through the Table API and the journal; a real receiver and the sandbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anomaly_desk.core.formatting.plain import ZWJ, servicenow_text
from anomaly_desk.sandbox.snow_markup import rendered_markup
from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer

ANOMALY = 94001
PAYLOAD = "<img src=x onerror=alert(1)>"
TAGGED = [  # the spellings an instance reads as tags
    f"[code]{PAYLOAD}[/code]",
    f"[CODE]{PAYLOAD}[/Code]",
    f"[ code ]{PAYLOAD}[ / code ]",
    f"[\x00code]{PAYLOAD}[/co\x1bde]",  # a control character hiding the tag from a naive filter
]
HOSTILE = "line1\nline2\r\n\x1b[31m\x07 \x9b2J tab\there " + " ".join(TAGGED)
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def hdesk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    config = write_config(tmp_path / "anomaly-desk.toml", sandbox.url)
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        yield Desk(receiver, sandbox, api, tmp_path / "data", config)
    finally:
        api.close()
        receiver.stop()


def envelope(**anomaly: object) -> dict[str, object]:
    item = {"id": ANOMALY, "type": "record", "status": "Active", **anomaly}
    return {
        "event": "qualytics.flow.triggered",
        "trigger": {"type": "anomaly"},
        "context": {"anomalies": [item]},
    }


def assert_neutral(text: str) -> None:
    """No control character, nothing an instance renders, and the words as typed."""
    assert not CONTROLS.search(text), repr(text)
    assert rendered_markup(text) == [], repr(text)
    assert PAYLOAD in text, repr(text)
    assert f"[{ZWJ}code]" in text, repr(text)
    assert f"[{ZWJ}/code]" in text, repr(text)


def test_the_oracle_sees_the_tags_we_send_unneutralised() -> None:
    for tagged in TAGGED[:3]:
        assert rendered_markup(tagged) == [PAYLOAD], tagged
    assert rendered_markup(servicenow_text(HOSTILE)) == []


@pytest.mark.parametrize(
    ("sent", "sent_on"),
    [
        ("[code]x[/code]", f"[{ZWJ}code]x[{ZWJ}/code]"),
        ("[cOdE ]x[ /CODE]", f"[{ZWJ}cOdE ]x[{ZWJ} /CODE]"),
        ("a\r\nb\rc\x00\x07\x1b\x7f\x85\td", "a\nb\nc\td"),
        ("[code", "[code"),  # no tag: unchanged
        ("[codex]", "[codex]"),
    ],
)
def test_servicenow_text_neutralises_and_is_idempotent(sent: str, sent_on: str) -> None:
    assert servicenow_text(sent) == sent_on
    assert servicenow_text(sent_on) == sent_on


def test_anomaly_text_and_comments_arrive_neutralised(hdesk: Desk) -> None:
    answer = hdesk.api.post(
        "/webhooks/qualytics",
        json=envelope(message=HOSTILE, fields=["f\x00ield", "[code]x[/code]"]),
    )
    assert answer.status_code == 200, answer.text
    created = hdesk.api.post(
        f"/api/anomalies/{ANOMALY}/tickets",
        json={
            "connection": "servicenow",
            "fields": {"short_description": f"\x1b]0;t\x07 [code]{PAYLOAD}[/code]"},
        },
    )
    assert created.status_code == 201, created.text
    sys_id = created.json()["ticket_id"]
    incident = hdesk.incident(sys_id)
    assert_neutral(incident["description"])
    assert "line1\nline2\n" in incident["description"]
    assert "tab\there" in incident["description"]
    short = incident["short_description"]
    assert not CONTROLS.search(short), repr(short)
    assert rendered_markup(short) == [], repr(short)

    comment = hdesk.api.post(f"/api/anomalies/{ANOMALY}/comments", json={"text": HOSTILE})
    assert comment.status_code in (200, 201), comment.text
    assert hdesk.api.post(f"/api/anomalies/{ANOMALY}/acknowledge").status_code == 200
    hdesk.wait_idle()
    notes = hdesk.snow_notes(sys_id)
    assert len(notes) == 2, notes  # the comment and the status note, each once
    [note] = [n for n in notes if n.startswith("Comment from")]
    assert_neutral(note)
    jobs = hdesk.api.get("/api/sync-jobs").json()["items"]
    assert jobs, jobs
    assert all(job["state"] == "done" for job in jobs), jobs  # the landed note was recognised


def test_change_api_bodies_and_html_columns_carry_no_markup(
    tmp_path: Path, sandbox: ThreadedServer
) -> None:
    config = write_config(
        tmp_path / "anomaly-desk.toml",
        sandbox.url,
        servicenow='tables = ["incident", "problem", "change_request"]',
    )
    receiver = start_receiver(config, tmp_path / "data", ENV)
    try:
        with httpx.Client(base_url=receiver.url, timeout=30) as api:
            desk = Desk(receiver, sandbox, api, tmp_path / "data", config)
            assert api.post("/webhooks/qualytics", json=envelope(message="m")).status_code == 200
            change = api.post(
                f"/api/anomalies/{ANOMALY}/tickets",
                json={
                    "connection": "servicenow",
                    "fields": {
                        "table": "change_request",
                        "type": "emergency",
                        "short_description": "s",
                        "risk_impact_analysis": HOSTILE,
                        "justification": HOSTILE,
                    },
                },
            )
            assert change.status_code == 201, change.text
            problem = api.post(
                f"/api/anomalies/{ANOMALY}/tickets",
                json={
                    "connection": "servicenow",
                    "fields": {
                        "table": "problem",
                        "short_description": "s",
                        "cause_notes": PAYLOAD,
                    },
                },
            )
            assert problem.status_code == 201, problem.text
            with desk.snow() as c:
                row = c.get(f"/api/now/table/change_request/{change.json()['ticket_id']}").json()
                cause = c.get(
                    f"/api/now/table/problem/{problem.json()['ticket_id']}",
                    params={"sysparm_fields": "cause_notes"},
                ).json()["result"]["cause_notes"]
    finally:
        receiver.stop()
    for name in ("risk_impact_analysis", "justification"):
        assert_neutral(row["result"][name])
    assert cause == "&lt;img src=x onerror=alert(1)&gt;"  # an HTML column shows it as typed
