"""The anomaly block as plain text: ServiceNow descriptions and work notes show no markup.

``servicenow_text`` is what every text sent to ServiceNow goes through: control characters
removed (Jira's cleaner, plus C1), and ``[code]`` / ``[/code]`` made inert. ServiceNow renders
what a journal field (work notes, comments) holds between ``[code]`` and ``[/code]`` as HTML; a
zero-width joiner (U+200D) right after the ``[`` keeps the text showing as typed while no tag
is read. A joiner rather than a visible change (``[ code]``, an entity): people see the text
they or the platform wrote; a joiner rather than a zero-width space: it is no line break and no
white space (``\\s`` in Java and JavaScript), and it is the one invisible character editors and
sanitisers keep (emoji sequences need it).
"""

from __future__ import annotations

import re

from anomaly_desk.core.formatting.block import AnomalyBlock, CheckLine
from anomaly_desk.core.formatting.clean import clean_text

ZWJ = "\u200d"
# what may stand between the brackets and the word: spaces and invisible format characters
_GAP = r"[\s\u200b-\u200d\u2060\ufeff]*"
# an opening or closing code tag in any case and spacing, not already followed by our joiner
_CODE_TAG = re.compile(rf"\[(?!{ZWJ}){_GAP}/?{_GAP}code{_GAP}\]", re.IGNORECASE)
_C1 = re.compile(r"[\x80-\x9f]")  # C1 controls (CSI 0x9b and the like): never text


def servicenow_text(text: str) -> str:
    """``text`` as it may be sent to ServiceNow: no control characters but tab and newline,
    every ``[code]`` tag inert. Applying it twice changes nothing."""
    cleaned = _C1.sub("", clean_text(text))
    return _CODE_TAG.sub(lambda tag: f"[{ZWJ}{tag.group()[1:]}", cleaned)


def _check_line(check: CheckLine) -> str:
    head = check.rule_type
    if check.check_id:
        head += f" (check {check.check_id})"
    if check.fields:
        head += f" on {', '.join(check.fields)}"
    return f"- {head}: {check.message}" if check.message else f"- {head}"


def block_to_text(block: AnomalyBlock, intro: str | None = None) -> str:
    """Title, ``Label: value`` facts, message, failed checks and the link, one per line."""
    lines: list[str] = []
    if intro:
        lines += [intro.strip(), ""]
    lines.append(block.title)
    lines += [f"{label}: {value}" for label, value in block.facts]
    if block.message:
        lines += ["", "Message:", block.message.strip()]
    if block.checks:
        lines += ["", "Failed checks:"]
        lines += [_check_line(check) for check in block.checks]
    if block.link:
        lines += ["", f"Open in {block.platform}: {block.link}"]
    return "\n".join(lines)
