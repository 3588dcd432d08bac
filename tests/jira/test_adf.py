"""The ADF Jira receives: golden files, the official schema, no empty text, the length limit."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from anomaly_desk.core.formatting.adf import (
    JIRA_TEXT_LIMIT,
    TRUNCATION_MARKER,
    adf_size,
    adf_to_text,
    block_to_adf,
    text_to_adf,
    truncate_doc,
    truncate_text,
    utf16_len,
)
from anomaly_desk.core.formatting.block import anomaly_block
from anomaly_desk.core.formatting.notes import comment_note, status_note
from anomaly_desk.core.models import Anomaly
from anomaly_desk.sandbox.adf import adf_errors
from tests.jira.conftest import make_anomaly

GOLDEN = Path(__file__).parent / "golden"
AT = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def _documents() -> dict[str, dict[str, Any]]:
    minimal = Anomaly.model_validate({"id": 9, "type": "shape", "status": "acknowledged"})
    platform_link = make_anomaly(
        55,
        url=None,
        message=None,
        description="Row count dropped 80 % day over day",
        failed_checks=[{"rule_type": "volumetric"}],
    )
    return {
        "block_full": block_to_adf(anomaly_block(make_anomaly())),
        "block_minimal": block_to_adf(anomaly_block(minimal)),
        "block_intro_and_platform_link": block_to_adf(
            anomaly_block(platform_link, "DQ Hub", "https://dq.example.com/"),
            intro="Raised from Anomaly Desk.\nOwner: data-platform team\n\nSee https://wiki.example.com/dq for the runbook.",
        ),
        "block_truncated_intro": block_to_adf(
            anomaly_block(minimal), intro="Très long texte. " * 200, limit=1_500
        ),
        "note_status": text_to_adf(status_note("Acknowledged", AT)),
        "note_archive": text_to_adf(status_note("Resolved", AT, platform="DQ Hub")),
        "note_comment_multiline": text_to_adf(
            comment_note(
                "Fixed upstream 👍\nsee https://git.example.com/etl/pull/12.\n\n\nThanks — Zoë"
            )
        ),
    }


DOCUMENTS = _documents()


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_adf_matches_golden_file(name: str) -> None:
    rendered = json.dumps(DOCUMENTS[name], ensure_ascii=False, indent=2) + "\n"
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(rendered, encoding="utf-8")
    assert rendered == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_document_is_valid_against_the_official_schema(name: str) -> None:
    assert adf_errors(DOCUMENTS[name]) == []


def test_the_schema_check_catches_what_jira_rejects() -> None:
    """The validator is not a rubber stamp: these are all 400s on real Jira."""
    empty_text = {
        "version": 1,
        "type": "doc",
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}],
    }
    assert adf_errors(empty_text)
    assert adf_errors("plain string description")
    assert adf_errors({"type": "doc", "content": []})  # no version
    assert adf_errors({"version": 1, "type": "doc", "content": [{"type": "text", "text": "x"}]})


def test_full_block_carries_every_fact_and_the_link() -> None:
    document = DOCUMENTS["block_full"]
    plain = adf_to_text(document)
    for expected in (
        "Qualytics anomaly 4711",
        "Anomaly ID: 4711",
        "Type: record",
        "Status at detection: Active",
        "Entrepôt Zürich",
        "412 rows have a negative montant_€\nFirst seen in the nightly load",
        "between (check 77) on montant_€: montant_€ must be between 0 and 10 000",
        "notNull (check 78) on date_livraison",
    ):
        assert expected in plain
    links = _marks(document, "link")
    assert {"href": "https://acme.qualytics.io/anomalies/4711"} in links


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "  \n", "a\n\n\n\nb", "trailing\n", "\r\nwindows\r\nlines\r\n", "nul\x00byte"],
)
def test_free_text_never_yields_an_empty_text_node(text: str) -> None:
    document = text_to_adf(text)
    assert adf_errors(document) == []
    assert all(node.get("text") for node in _nodes(document, "text"))
    assert "\x00" not in json.dumps(document)


def test_long_description_is_cut_to_jiras_limit_with_a_visible_marker() -> None:
    huge_intro = "Zürich 😀 " * 6_000  # astral characters count twice, as in Jira
    document = block_to_adf(anomaly_block(make_anomaly()), intro=huge_intro)
    assert adf_size(document) <= JIRA_TEXT_LIMIT
    assert adf_errors(document) == []
    plain = adf_to_text(document)
    assert TRUNCATION_MARKER in plain
    assert "…" in plain
    assert "Qualytics anomaly 4711" in plain  # the block survives; the user's text was cut


def test_huge_anomaly_block_alone_is_cut_too() -> None:
    checks = [{"check_id": n, "rule_type": "custom", "message": "x" * 400} for n in range(200)]
    document = block_to_adf(anomaly_block(make_anomaly(failed_checks=checks)))
    assert adf_size(document) <= JIRA_TEXT_LIMIT
    assert adf_errors(document) == []
    assert TRUNCATION_MARKER in adf_to_text(document)


def test_long_comment_is_cut() -> None:
    document = truncate_doc(text_to_adf("word " * 20_000))
    assert adf_size(document) <= JIRA_TEXT_LIMIT
    assert adf_errors(document) == []
    assert TRUNCATION_MARKER in adf_to_text(document)


def test_summary_truncation_counts_like_jira_and_shows_an_ellipsis() -> None:
    assert truncate_text("short", 255) == "short"
    cut = truncate_text("😀" * 300, 255)
    assert utf16_len(cut) <= 255
    assert cut.endswith("…")


def _nodes(node: Any, kind: str) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == kind:
            found.append(node)
        for child in node.get("content") or []:
            found.extend(_nodes(child, kind))
    return found


def _marks(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        mark.get("attrs", {})
        for node in _nodes(document, "text")
        for mark in node.get("marks", [])
        if mark["type"] == kind
    ]
