"""Atlassian Document Format (ADF) for Jira Cloud descriptions and comments.

Jira v3 takes rich text only as ADF and rejects the whole request for one bad node (an empty text
node, a string where a document belongs), so every document here is built from non-empty text and
checked against the published schema in the tests. Lengths are counted the way Jira counts them:
UTF-16 code units of the stored JSON, which is what its 32,767-character field limit applies to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Required, TypedDict, cast

from pydantic import JsonValue

from anomaly_desk.core.formatting.block import AnomalyBlock, CheckLine
from anomaly_desk.core.formatting.clean import clean_text


class Attrs(TypedDict, total=False):
    """The attributes this module sets: a heading's level, a link mark's target."""

    level: int
    href: str


class Mark(TypedDict, total=False):
    """A text node's mark: ``strong``, ``em``, ``code`` or ``link`` (with ``attrs.href``)."""

    type: Required[str]
    attrs: Attrs


class Node(TypedDict, total=False):
    """An ADF node as built here: the document (``version``), a block or an inline node."""

    type: Required[str]
    version: int
    content: list[Node]
    text: str
    marks: list[Mark]
    attrs: Attrs


JIRA_TEXT_LIMIT = 32_767  # description / comment body, as stored JSON
TRUNCATION_MARKER = "[Truncated: the text exceeded Jira's 32,767-character limit.]"
ELLIPSIS = "…"

_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]}]")


def utf16_len(text: str) -> int:
    """Length as Java (and so Jira) counts it: astral characters count twice."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def adf_size(node: Node) -> int:
    """The stored size of a node or document (compact JSON, UTF-16 units)."""
    return utf16_len(json.dumps(node, ensure_ascii=False, separators=(",", ":")))


def doc(content: list[Node]) -> Node:
    return {"version": 1, "type": "doc", "content": content}


def _clean(text: str) -> str:
    return clean_text(text)  # shared with ServiceNow's text (``plain.servicenow_text``)


def text(value: str, *marks: Mark) -> Node | None:
    """A text node, or None for empty text (Jira rejects empty text nodes)."""
    if not value:
        return None
    node: Node = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def _inline_with_links(value: str, *marks: Mark) -> list[Node]:
    """Text with bare http(s) URLs turned into links, so they stay clickable in Jira."""
    nodes: list[Node] = []
    cursor = 0
    for match in _URL.finditer(value):
        before = text(value[cursor : match.start()], *marks)
        link = text(match.group(), *marks, {"type": "link", "attrs": {"href": match.group()}})
        nodes.extend(node for node in (before, link) if node)
        cursor = match.end()
    tail = text(value[cursor:], *marks)
    if tail:
        nodes.append(tail)
    return nodes


def _lines(value: str, *marks: Mark) -> list[Node]:
    """One paragraph's inline content: lines joined by hard breaks, never an empty text node."""
    inline: list[Node] = []
    for index, line in enumerate(_clean(value).split("\n")):
        if index and inline:
            inline.append({"type": "hardBreak"})
        inline.extend(_inline_with_links(line, *marks))
    while inline and inline[-1]["type"] == "hardBreak":
        inline.pop()
    return inline


def paragraph(inline: list[Node]) -> Node:
    return {"type": "paragraph", "content": inline}


def text_paragraphs(value: str) -> list[Node]:
    """Blank lines separate paragraphs; single newlines become hard breaks."""
    blocks = re.split(r"\n[ \t]*\n", _clean(value).strip("\n"))
    return [paragraph(inline) for block in blocks if (inline := _lines(block))]


def text_to_adf(value: str) -> Node:
    """Free text (a comment, a note) as an ADF document."""
    return doc(text_paragraphs(value))


def _heading(value: str, level: int) -> Node:
    return {"type": "heading", "attrs": {"level": level}, "content": _lines(value)}


def _strong(value: str) -> Node:
    return {"type": "text", "text": value, "marks": [{"type": "strong"}]}


def _marker() -> Node:
    return paragraph([{"type": "text", "text": TRUNCATION_MARKER, "marks": [{"type": "em"}]}])


def _fact(label: str, value: str) -> Node:
    return {"type": "listItem", "content": [paragraph([_strong(f"{label}: "), *_lines(value)])]}


def _check_item(check: CheckLine) -> Node:
    inline: list[Node] = []
    rule = text(_clean(check.rule_type).replace("\n", " "), {"type": "code"})
    if rule:
        inline.append(rule)
    if check.check_id:
        inline.append({"type": "text", "text": f" (check {check.check_id})"})
    if check.fields:
        inline.append({"type": "text", "text": " on "})
        for index, name in enumerate(check.fields):
            if index:
                inline.append({"type": "text", "text": ", "})
            field = text(_clean(name).replace("\n", " "), {"type": "code"})
            if field:
                inline.append(field)
    if check.message and (message := _lines(check.message)):
        if inline:
            inline.append({"type": "text", "text": ": "})
        inline.extend(message)
    return {"type": "listItem", "content": [paragraph(inline)]}


def block_nodes(block: AnomalyBlock) -> list[Node]:
    """The anomaly block as top-level ADF nodes."""
    nodes: list[Node] = [_heading(block.title, 3)]
    if block.facts:
        nodes.append({"type": "bulletList", "content": [_fact(k, v) for k, v in block.facts]})
    if block.message and (message := _lines(block.message)):
        nodes.append(paragraph([_strong("Message: "), *message]))
    if block.checks:
        nodes.append(paragraph([_strong("Failed checks")]))
        nodes.append({"type": "bulletList", "content": [_check_item(c) for c in block.checks]})
    if block.link:
        link: Mark = {"type": "link", "attrs": {"href": block.link}}
        label = f"View anomaly in {block.platform}"
        nodes.append(paragraph([{"type": "text", "text": label, "marks": [link]}]))
    return nodes


def block_to_adf(
    block: AnomalyBlock, intro: str | None = None, limit: int = JIRA_TEXT_LIMIT
) -> Node:
    """The description of a new issue: the user's text, a rule, then the anomaly block.

    When the whole exceeds ``limit``, the user's text is cut first (the block is what links the
    issue back to its anomaly); a visible marker says so.
    """
    intro_nodes = text_paragraphs(intro) if intro else []
    body = block_nodes(block)
    joined: list[Node] = [*intro_nodes, {"type": "rule"}, *body] if intro_nodes else body
    if adf_size(doc(joined)) <= limit:
        return doc(joined)
    fixed: list[Node] = [_marker(), {"type": "rule"}, *body]
    spare = limit - adf_size(doc(fixed)) - 1  # the comma joining the cut intro
    if intro_nodes and spare > 0:
        cut = shrink(intro_nodes, spare)
        if cut:
            return doc([*cut, *fixed])
    return truncate_doc(doc(body), limit)


def truncate_doc(document: Node, limit: int = JIRA_TEXT_LIMIT) -> Node:
    """The document cut to fit ``limit``, ending with a visible marker when anything was cut."""
    if adf_size(document) <= limit:
        return document
    spare = limit - adf_size(doc([_marker()])) - 1
    content = shrink(document["content"], spare) if spare > 0 else []
    return doc([*content, _marker()])


def shrink(nodes: list[Node], budget: int) -> list[Node]:
    """The longest prefix of ``nodes`` whose JSON array items fit ``budget``; the last one cut."""
    kept: list[Node] = []
    used = 0
    for node in nodes:
        comma = 1 if kept else 0
        size = adf_size(node)
        if used + comma + size <= budget:
            kept.append(node)
            used += comma + size
            continue
        cut = _shrink_node(node, budget - used - comma)
        if cut is not None:
            kept.append(cut)
        break
    return kept


def _shrink_node(node: Node, budget: int) -> Node | None:
    """``node`` cut to ``budget``, or None when nothing useful fits."""
    if node.get("type") == "text":
        return _shrink_text(node, budget)
    children = node.get("content")
    if not children:
        return None
    shell: Node = {**node, "content": []}
    room = budget - adf_size(shell)
    if room <= 0:
        return None
    content = shrink(children, room)
    if not content or not _has_text(content):
        return None
    return {**node, "content": content}


def _has_text(nodes: list[Node]) -> bool:
    return any(n.get("type") == "text" or _has_text(n.get("content") or []) for n in nodes)


def _shrink_text(node: Node, budget: int) -> Node | None:
    """The text node with its text cut (and an ellipsis added) to fit ``budget``."""
    value = node["text"]
    low, high = 0, len(value)
    best: Node | None = None
    while low <= high:
        mid = (low + high) // 2
        candidate: Node = {**node, "text": value[:mid].rstrip() + ELLIPSIS}
        if adf_size(candidate) <= budget:
            best = candidate
            low = mid + 1
        else:
            high = mid - 1
    if best is None or best["text"] == ELLIPSIS:
        return None
    return best


def truncate_text(value: str, limit: int) -> str:
    """Plain text (a summary) cut to ``limit`` UTF-16 units, ending with a visible ellipsis."""
    if utf16_len(value) <= limit:
        return value
    room = limit - utf16_len(ELLIPSIS)
    cut = value
    while utf16_len(cut) > room:
        cut = cut[: len(cut) - max(1, (utf16_len(cut) - room) // 2)]
    return cut.rstrip() + ELLIPSIS


def adf_json(node: Node) -> dict[str, JsonValue]:
    """The node as a JSON object, to put in a request body beside other JSON values.

    A ``Node`` holds nothing but JSON (strings, numbers, lists and objects of them), which mypy
    cannot see through a ``TypedDict``: the cast states it, and nothing is copied.
    """
    return cast(dict[str, JsonValue], node)


def adf_to_text(node: JsonValue) -> str:
    """Plain text of an ADF document (for display and search), paragraphs on their own lines.

    Reads whatever a provider sent: anything that is not a node adds no text.
    """
    if isinstance(node, str):
        return node
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    content = node.get("content")
    # the node's children: a list, as ADF has it (a string or an object iterates as before)
    children: Iterable[JsonValue] = content if isinstance(content, list | dict | str) else ()
    inner = "".join(adf_to_text(child) for child in children)
    if kind in {"paragraph", "heading", "listItem", "rule", "codeBlock"}:
        return inner + "\n"
    return inner
