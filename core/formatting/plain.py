"""The anomaly block as plain text: ServiceNow descriptions and work notes show no markup."""

from __future__ import annotations

from anomaly_desk.core.formatting.block import AnomalyBlock, CheckLine


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
