"""Control characters out of text we send to a provider: both Jira and ServiceNow store them,
and a terminal or a browser reading the ticket later may act on them (ESC, BEL, NUL)."""

from __future__ import annotations

import re

# C0 controls (but tab and newline), DEL and lone surrogates: Jira's storage rejects them, and on
# ServiceNow they reach whoever reads the ticket.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Line ends as ``\\n``, then every control character but tab and newline removed."""
    return CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
