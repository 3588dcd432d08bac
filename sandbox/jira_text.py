"""How Jira Cloud measures and reads rich text: the emulator's own code, not the client's.

The emulator judges what our Jira client sends, so it must not reuse the client's helpers
(``anomaly_desk.core.formatting.adf``): a bug shared by both would pass every test. This module
restates Jira's documented rules independently; ``tests/sandbox/test_jira_text.py`` checks that
the two implementations agree.

* A summary is at most 255 characters, counted as Java counts ``String.length()``: UTF-16 code
  units, so a character outside the Basic Multilingual Plane (most emoji) counts 2.
* A rich-text field (description, comment body) is at most 32,767 characters *as stored*: Jira
  keeps the ADF document as JSON text and the limit applies to that text, markup included, again
  in UTF-16 code units. The JSON is compact, with non-ASCII characters written as themselves and
  only quotes, backslashes and control characters escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

SUMMARY_LIMIT = 255
TEXT_LIMIT = 32_767

# JSON string escapes: two characters for these (\" \\ \b \f \n \r \t) ...
_SHORT_ESCAPE = re.compile(r'["\\\x08\x0c\n\r\t]')
# ... six (\u00XX) for every other control character below U+0020.
_UNICODE_ESCAPE = re.compile(r"[\x00-\x07\x0b\x0e-\x1f]")


def java_length(text: str) -> int:
    """Java's ``String.length()``: the UTF-16 code units of ``text`` (a lone surrogate is one)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _string_size(text: str) -> int:
    """A JSON string literal's length: quotes, the text, and what escaping adds."""
    short = len(_SHORT_ESCAPE.findall(text))
    long = len(_UNICODE_ESCAPE.findall(text))
    return 2 + java_length(text) + short + 5 * long


def stored_size(value: object) -> int:
    """The length of ``value`` written as compact JSON, in UTF-16 code units.

    Walks the value as a JSON writer would instead of serializing it: ``{}`` and ``[]`` with a
    comma between members, a colon after each key, strings quoted and escaped.
    """
    if isinstance(value, str):
        return _string_size(value)
    if isinstance(value, Mapping):
        members = [_string_size(str(key)) + 1 + stored_size(item) for key, item in value.items()]
        return 2 + sum(members) + max(len(members) - 1, 0)
    if isinstance(value, Sequence):
        items = [stored_size(item) for item in value]
        return 2 + sum(items) + max(len(items) - 1, 0)
    return len(json.dumps(value))  # null, true, false and numbers are ASCII


def plain_text(node: object) -> str:
    """The words of an ADF node, as Jira's text search and "is it empty?" checks see them.

    Text nodes give their text, a ``hardBreak`` a newline, and every node with content (a
    paragraph, a list item, a table cell…) ends with a newline so that words of neighbouring
    blocks never run together.
    """
    parts: list[str] = []
    _collect(node, parts, top=True)
    return "".join(parts)


def _collect(node: object, parts: list[str], top: bool = False) -> None:
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    text = node.get("text")
    if kind == "text" and isinstance(text, str):
        parts.append(text)
    elif kind == "hardBreak":
        parts.append("\n")
    children = node.get("content")
    if isinstance(children, list):
        for child in children:
            _collect(child, parts)
        if not top:
            parts.append("\n")
