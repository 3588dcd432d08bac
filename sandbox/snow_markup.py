"""What ServiceNow would render as markup in a journal field (work notes, additional comments):
the text between ``[code]`` and ``[/code]`` is shown as HTML. The emulator stores text as sent;
this is the test oracle that says which part of a stored value an instance would render, read
the way the instance reads the tags (any case, white space inside the brackets). It is written
independently of the desk's own sanitiser on purpose."""

from __future__ import annotations

import re

_OPEN = r"\[\s*code\s*\]"
_CLOSE = r"\[\s*/\s*code\s*\]"
CODE_BLOCK = re.compile(rf"{_OPEN}(.*?){_CLOSE}", re.IGNORECASE | re.DOTALL)


def rendered_markup(value: str) -> list[str]:
    """The HTML fragments an instance would render from ``value`` (empty: none, all text)."""
    return [match.group(1) for match in CODE_BLOCK.finditer(value)]
