"""D5: a ServiceNow create with a wrong value is a 422 naming ``fields.<name>`` and writes
nothing (counted through the sandbox's Table API); right values in the other accepted shapes
(ISO 8601 times, choice labels) arrive converted; an emergency change is made as one. A real
receiver and the sandbox, both on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ENV, Desk, start_receiver, write_config
from tests.support import ThreadedServer

TABLES = ("incident", "problem", "change_request")
ANOMALY = 10231  # in 01-flow-anomalies-detected.json
CHANGE = {"table": "change_request", "risk_impact_analysis": "Loader only"}


@pytest.fixture
def vdesk(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    tables = ", ".join(f'"{t}"' for t in TABLES)
    config = write_config(
        tmp_path / "anomaly-desk.toml", sandbox.url, servicenow=f"tables = [{tables}]"
    )
    receiver = start_receiver(config, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        desk = Desk(receiver, sandbox, api, tmp_path / "data", config)
        desk.post_webhook("01-flow-anomalies-detected.json")
        yield desk
    finally:
        api.close()
        receiver.stop()


def create(desk: Desk, fields: dict[str, Any]) -> httpx.Response:
    return desk.api.post(
        f"/api/anomalies/{ANOMALY}/tickets",
        json={"connection": "servicenow", "fields": {"short_description": "s", **fields}},
    )


def counts(desk: Desk) -> dict[str, int]:
    """Rows on each table, as the instance's Table API counts them."""
    with desk.snow() as c:
        return {
            table: int(
                c.get(f"/api/now/table/{table}", params={"sysparm_limit": "1"})
                .raise_for_status()
                .headers["X-Total-Count"]
            )
            for table in TABLES
        }


def stored(desk: Desk, table: str, sys_id: str, *names: str) -> dict[str, str]:
    with desk.snow() as c:
        row = c.get(
            f"/api/now/table/{table}/{sys_id}", params={"sysparm_fields": ",".join(names)}
        ).raise_for_status()
    result: dict[str, str] = row.json()["result"]
    return result


REFUSED = [  # fields, the field named, words the message must hold
    ({"due_date": "tomorrow"}, "due_date", "YYYY-MM-DD HH:MM:SS"),
    ({"due_date": "2026-02-30 10:00:00"}, "due_date", "not a date that exists"),
    ({"due_date": 5}, "due_date", "as text"),
    ({"due_date": "2026-12-24 25:00:00"}, "due_date", "not a date that exists"),
    # no UTC moment: 0001-01-01 at +01:00 is before the first, 9999-12-31 at -01:00 after the last
    ({"due_date": "0001-01-01T00:00:00+01:00"}, "due_date", "outside the dates"),
    ({**CHANGE, "start_date": "9999-12-31T23:59:59-01:00"}, "start_date", "outside the dates"),
    ({**CHANGE, "start_date": "nonsense"}, "start_date", "date and time"),
    ({**CHANGE, "end_date": ["2026-12-24 10:00:00"]}, "end_date", "as text"),
    ({"category": "nonsense"}, "category", "allowed: inquiry, software"),
    ({"table": "problem", "category": "nonsense"}, "category", "allowed: software"),
    ({**CHANGE, "type": "bogus"}, "type", "creates (normal, emergency)"),
    ({**CHANGE, "type": "standard"}, "type", "standard change template"),
    ({"subcategory": "email"}, "subcategory", "depends on Category (category)"),
    ({"category": "network", "subcategory": "email"}, "subcategory", "allowed there: dhcp"),
    ({"category": "network", "subcategory": "nonsense"}, "subcategory", "allowed: antivirus"),
    ({"short_description": ["a"]}, "short_description", "takes text, not a list"),
    ({"description": {"x": 1}}, "description", "takes text, not an object"),
    ({"table": "problem", "description": {"x": 1}}, "description", "not an object"),
    ({**CHANGE, "justification": ["a", "b"]}, "justification", "takes text, not a list"),
    ({**CHANGE, "risk": "nonsense"}, "risk", "allowed: 1, 2, 3, 4"),
]


@pytest.mark.parametrize(("fields", "named", "words"), REFUSED)
def test_a_wrong_value_is_refused_by_field_and_nothing_is_created(
    vdesk: Desk, fields: dict[str, Any], named: str, words: str
) -> None:
    before = counts(vdesk)
    answer = create(vdesk, fields)
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert [e["path"] for e in errors] == [f"fields.{named}"], errors
    assert words in errors[0]["message"], errors
    assert counts(vdesk) == before
    assert vdesk.api.get(f"/api/anomalies/{ANOMALY}").json()["links"] == []


def test_every_wrong_value_is_named_in_one_answer(vdesk: Desk) -> None:
    before = counts(vdesk)
    answer = create(
        vdesk, {"due_date": "tomorrow", "category": "nonsense", "description": ["x"], "urgency": 9}
    )
    assert answer.status_code == 422, answer.text
    paths = sorted(e["path"] for e in answer.json()["errors"])
    assert paths == ["fields.category", "fields.description", "fields.due_date", "fields.urgency"]
    assert counts(vdesk) == before


def test_right_values_in_other_shapes_arrive_converted(vdesk: Desk) -> None:
    answer = create(
        vdesk,
        {"due_date": "2026-12-24T10:00:00+02:00", "category": "Network", "subcategory": "DNS"},
    )
    assert answer.status_code == 201, answer.text
    row = stored(
        vdesk, "incident", answer.json()["ticket_id"], "due_date", "category", "subcategory"
    )
    assert row == {"due_date": "2026-12-24 08:00:00", "category": "network", "subcategory": "dns"}

    fields = {"due_date": "2026-12-24 10:00:00", "category": "software", "subcategory": "email"}
    plain = create(vdesk, fields)
    assert plain.status_code == 201, plain.text
    row = stored(vdesk, "incident", plain.json()["ticket_id"], "due_date", "subcategory")
    assert row == {"due_date": "2026-12-24 10:00:00", "subcategory": "email"}


@pytest.mark.parametrize("kind", ["emergency", "Emergency", "normal", None])
def test_a_change_is_made_through_the_change_api_of_its_type(vdesk: Desk, kind: str | None) -> None:
    fields = {**CHANGE, "start_date": "2026-12-24T10:00:00Z"}
    if kind is not None:
        fields["type"] = kind
    answer = create(vdesk, fields)
    assert answer.status_code == 201, answer.text
    assert answer.json()["ticket_key"].startswith("CHG")
    row = stored(vdesk, "change_request", answer.json()["ticket_id"], "type", "start_date")
    expected = (kind or "normal").lower()
    assert row == {"type": expected, "start_date": "2026-12-24 10:00:00"}
