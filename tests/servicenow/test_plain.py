"""The plain-text anomaly block written into ServiceNow descriptions, against golden files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anomaly_desk.core.formatting.block import anomaly_block
from anomaly_desk.core.formatting.plain import block_to_text
from anomaly_desk.core.models import Anomaly
from tests.servicenow.conftest import make_anomaly

GOLDEN = Path(__file__).parent / "golden"

CASES: dict[str, tuple[Anomaly, str, str | None, str | None]] = {
    # name: (anomaly, platform, platform_url, intro)
    "full": (make_anomaly(), "Qualytics", None, None),
    "minimal": (
        Anomaly(id=9, type="shape", status="acknowledged"),
        "Qualytics",
        None,
        None,
    ),
    "platform_link_and_intro": (
        make_anomaly(
            55,
            url=None,
            message=None,
            description="Row count dropped 80% day over day",
            failed_checks=[{"rule_type": "volumetric"}],
        ),
        "DQ Hub",
        "https://dq.example.com/",
        "Linked from Anomaly Desk",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_block_to_text_matches_golden(name: str) -> None:
    anomaly, platform, platform_url, intro = CASES[name]
    text = block_to_text(anomaly_block(anomaly, platform, platform_url), intro=intro)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8")


def test_text_has_no_markup_and_no_blank_values() -> None:
    text = block_to_text(anomaly_block(make_anomaly(fields=[], global_tags=[])))
    assert "<" not in text
    assert "*" not in text
    assert "{" not in text
    assert "Fields:" not in text
    assert "Tags:" not in text
    assert not any(line.endswith(": ") for line in text.splitlines())
