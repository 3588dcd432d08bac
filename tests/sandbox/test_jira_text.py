"""The emulator measures text by Jira's rules with its own code; the client's code must agree.

``anomaly_desk.sandbox.jira_text`` (what the emulator enforces) and
``anomaly_desk.core.formatting.adf`` (what our client uses to stay under Jira's limits) are two
independent implementations of the same rules: a summary is at most 255 UTF-16 code units, a
rich-text field at most 32,767 UTF-16 code units of compact stored JSON. Each checks the other
here, and both are pinned to values worked out by hand.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anomaly_desk.core.formatting.adf import adf_size, adf_to_text, utf16_len
from anomaly_desk.sandbox.jira_text import (
    SUMMARY_LIMIT,
    TEXT_LIMIT,
    java_length,
    plain_text,
    stored_size,
)
from tests.support import ROOT, ThreadedServer

TRICKY = {
    "ascii": "plain words",
    "latin accents": "Zürich Émond façade",
    "combining mark": "e\u0301 (e + combining acute)",
    "cjk": "数据质量异常 データ品質 데이터",
    "emoji": "😀🎉🚀",
    "zwj family": "👨‍👩‍👧‍👦",
    "flag": "🇩🇪🇯🇵",
    "skin tone": "👍🏽",
    "astral cjk": "𠀀𠜎𪚥",  # CJK Extension B: surrogate pairs too
    "math letters": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "bmp edge": "\uffff\ue000",
    "lone surrogate": "broken \ud83d here",
    "escapes": 'quote " backslash \\ slash / tab \t newline \n cr \r',
    "controls": "bell \x07 backspace \x08 formfeed \x0c vtab \x0b esc \x1b del \x7f",
    "line separators": "\u2028\u2029\u0085",
    "empty": "",
}


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_summary_length_agrees_with_the_client(text: str) -> None:
    assert java_length(text) == utf16_len(text)


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("abc", 3),
        ("é", 1),
        ("e\u0301", 2),
        ("数据", 2),
        ("😀", 2),
        ("👍🏽", 4),
        ("👨‍👩‍👧", 8),  # three astral people and two ZERO WIDTH JOINERs
        ("𠀀", 2),
        ("\ud83d", 1),
    ],
)
def test_summary_length_counts_utf16_code_units(text: str, units: int) -> None:
    assert java_length(text) == units


def nested(text: str) -> dict[str, Any]:
    """A document that nests the text in marks, a list, a table and a link."""
    marked = {
        "type": "text",
        "text": text or "x",
        "marks": [
            {"type": "strong"},
            {"type": "em"},
            {"type": "link", "attrs": {"href": f"https://example.com/?q={text}"}},
        ],
    }
    item = {"type": "listItem", "content": [{"type": "paragraph", "content": [marked]}]}
    cell = {
        "type": "tableCell",
        "attrs": {"colspan": 1, "rowspan": 1, "colwidth": [120.5]},
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text or "y"}]}],
    }
    return {
        "version": 1,
        "type": "doc",
        "content": [
            {"type": "heading", "attrs": {"level": 3}, "content": [marked]},
            {"type": "bulletList", "content": [item, item]},
            {"type": "table", "content": [{"type": "tableRow", "content": [cell]}]},
            {"type": "paragraph", "content": [marked, {"type": "hardBreak"}, marked]},
            {"type": "rule"},
            {"type": "codeBlock", "attrs": {"language": None, "flag": True}, "content": []},
        ],
    }


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_stored_size_agrees_with_the_client(text: str) -> None:
    document = nested(text)
    assert stored_size(document) == adf_size(document)
    node = {"type": "text", "text": text}
    assert stored_size(node) == adf_size(node)


@pytest.mark.parametrize(
    ("node", "units"),
    [
        # {"type":"text","text":"😀"}: 6+1+6 for "type":"text", a comma, 6+1 for "text":,
        # the emoji in quotes (2 + 2) and the braces.
        ({"type": "text", "text": "😀"}, 27),
        ({"type": "text", "text": "数"}, 26),
        ({"type": "text", "text": 'a"b'}, 29),  # the quote is written \"
        ({"type": "text", "text": "a\nb"}, 29),  # \n
        ({"type": "text", "text": "a\x01b"}, 33),  # \u0001
        ({"type": "text", "text": "a\x7fb"}, 28),  # DEL is not escaped
        (
            {"attrs": {"level": 3, "on": True, "off": None}},
            42,
        ),  # numbers, true and null as they are
        ([], 2),
        ({}, 2),
    ],
)
def test_stored_size_is_compact_json_in_utf16_units(node: object, units: int) -> None:
    assert stored_size(node) == units
    assert adf_size(node) == units


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_plain_text_reads_the_same_words_as_the_client(text: str) -> None:
    document = nested(text)
    assert plain_text(document).split() == adf_to_text(document).split()
    assert text.split() == plain_text({"type": "text", "text": text}).split()


def test_plain_text_keeps_blocks_apart_and_finds_no_words_in_markup_alone() -> None:
    two = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "end"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "start"}]},
        ],
    }
    assert plain_text(two).split() == ["end", "start"]
    only_breaks = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "hardBreak"}]}],
    }
    assert plain_text(only_breaks).strip() == ""


# -- the emulator enforces the limits at the exact boundary --------------------------------


@pytest.fixture
def jira(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    auth = ("demo@example.com", "demo-token")
    with httpx.Client(base_url=sandbox.url, auth=auth, timeout=10) as http:
        yield http


def create(jira: httpx.Client, **fields: object) -> httpx.Response:
    body = {"project": {"key": "DQ"}, "issuetype": {"name": "Task"}, "summary": "s", **fields}
    return jira.post("/rest/api/3/issue", json={"fields": body})


def document_of_size(units: int) -> dict[str, Any]:
    """One paragraph of emoji (and an ``x`` when ``units`` is odd) stored in exactly ``units``."""
    empty = {
        "version": 1,
        "type": "doc",
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}],
    }
    room = units - stored_size(empty)
    document = {**empty}
    document["content"] = [
        {
            "type": "paragraph",
            "content": [{"type": "text", "text": "😀" * (room // 2) + "x" * (room % 2)}],
        }
    ]
    assert stored_size(document) == adf_size(document) == units
    return document


@pytest.mark.parametrize(("units", "status"), [(TEXT_LIMIT, 201), (TEXT_LIMIT + 1, 400)])
def test_description_limit_is_exact(jira: httpx.Client, units: int, status: int) -> None:
    response = create(jira, description=document_of_size(units))
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("summary", "status"),
    [("😀" * 127 + "x", 201), ("😀" * 128, 400), ("数" * SUMMARY_LIMIT, 201)],
)
def test_summary_limit_counts_emoji_twice(jira: httpx.Client, summary: str, status: int) -> None:
    response = create(jira, summary=summary)
    assert response.status_code == status, response.text


def test_the_sandbox_never_imports_the_clients_formatting() -> None:
    """Two implementations only check each other while the emulator keeps to its own."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import anomaly_desk.sandbox as package\n"
        "for module in pkgutil.walk_packages(package.__path__, 'anomaly_desk.sandbox.'):\n"
        "    importlib.import_module(module.name)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('anomaly_desk.core.formatting'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
