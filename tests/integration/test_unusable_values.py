"""Values that name nothing are kept aside, never acted on: a blank status is not a status change
(no note reaches the tickets), a number too big for a double is not a weight (kept as the text
sent, where it was stored as null and still compared). Over the wire: a real receiver, the sandbox's Jira holding the ticket."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import Desk

STATUS_BODY = '{{"id": 10260, "status": {status}}}'


@pytest.mark.parametrize(
    "status",
    [
        '""',
        '"   "',
        '"\\u0000"',
        '"\\u001b[31mRed"',
        '"' + "x" * 65 + '"',
        '"\\u2800"',
        '"\\u115f"',
    ],
)
def test_a_status_that_names_nothing_changes_nothing_and_notes_nothing(
    desk: Desk, status: str
) -> None:
    desk.post_webhook("04-api-record-anomaly.json")
    made = desk.api.post(
        "/api/anomalies/10260/tickets", json={"connection": "jira", "fields": {"summary": "x"}}
    )
    assert made.status_code == 201, made.text
    desk.wait_idle()
    before = desk.notes(made.json())
    answer = desk.api.post(
        "/webhooks/qualytics",
        content=STATUS_BODY.format(status=status),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    desk.wait_idle()
    doc = desk.api.get("/api/anomalies/10260").json()
    assert doc["status"] == "Active"
    assert [h["kind"] for h in doc["history"] if h["kind"] == "status_changed"] == []
    assert doc["odd"]["status"] == httpx.Response(200, content=status).json()  # as sent
    assert desk.notes(made.json()) == before  # no blank "Anomaly Status:" note


@pytest.mark.parametrize(("raw", "kept"), [("1e999", "1e999"), ("NaN", "NaN"), ('"inf"', "inf")])
def test_a_weight_that_is_no_number_is_kept_as_sent_not_as_null(
    desk: Desk, raw: str, kept: str
) -> None:
    body = f'{{"id": 77101, "status": "Active", "weight": {raw}}}'
    answer = desk.api.post(
        "/webhooks/qualytics", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    doc = desk.api.get("/api/anomalies/77101").json()
    assert doc["weight"] is None
    assert doc["odd"] == {"weight": kept}


BIG = "1" + "0" * 400  # no 64-bit integer, no double holds it


@pytest.mark.parametrize(
    ("anomaly", "where"),
    [
        (f'"weight": {BIG}', "odd"),
        (f'"weight": "{BIG}"', "odd"),
        (f'"anomalous_records_count": "{BIG}"', "odd"),
        (f'"container_id": {BIG}', "container"),
        (f'"quality_check_ids": [{BIG}], "extra": {{"deep": -{BIG}}}', "extra"),
        ('"created": "0001-01-01T00:00:00+01:00"', "odd"),  # no UTC moment
        ('"created": "9999-12-31T23:59:59-01:00"', "odd"),
    ],
)
def test_numbers_and_dates_nothing_can_hold_are_kept_as_text_never_a_500(
    desk: Desk, anomaly: str, where: str
) -> None:
    envelope = (
        '{"event": "qualytics.flow.triggered", "trigger": {"timestamp": '
        '"9999-12-31T23:59:59-01:00"}, "context": {"anomalies": [{"id": 77201, ' + anomaly + "}]}}"
    )
    for _ in range(2):  # and a redelivery: the same, no 500 on a merge either
        answer = desk.api.post(
            "/webhooks/qualytics", content=envelope, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 200, answer.text
    doc = desk.api.get("/api/anomalies/77201").json()
    text = answer.request.content.decode()
    if where == "odd":
        kept = next(iter(doc["odd"].values()))
        assert str(kept) in text  # as sent, as text
    elif where == "container":
        assert doc["container"]["id"] == BIG
    else:
        assert doc["extra"] == {"deep": "-" + BIG}
