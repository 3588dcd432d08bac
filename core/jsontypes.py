"""JSON at the edges: what arrives (a webhook, a provider's answer, the config file) or is stored
(a journal row) before it becomes a model, or after it stops being one.

``JsonMap`` is JSON we keep as it came and never read field by field (odd values the platform
sent, lookup tables of a delivery): typed as JSON, so nothing but JSON values goes in.
``JsonObject`` is a stored row on its way to or from the journal (the store keeps plain dicts
for speed and converts at its boundary); the domain itself travels as the models of
:mod:`anomaly_desk.core.documents` and :mod:`anomaly_desk.core.views`.
"""

import json
import math
from typing import Any, TypeAlias

import orjson
from pydantic import JsonValue

JsonObject: TypeAlias = dict[str, Any]
JsonMap: TypeAlias = dict[str, JsonValue]

__all__ = ["JsonMap", "JsonObject", "JsonValue", "loads_any"]

_INT_DIGITS = 19  # up to here an integer fits the store's 64 bits (checked exactly below)


def _number(text: str) -> float | str:
    """A number too big for a double (``1e999``) stays the text sent, not infinity."""
    number = float(text)
    return number if math.isfinite(number) else text


def _integer(text: str) -> int | float | str:
    """An integer the store can write (64 bits); a longer one as orjson reads it (a double),
    or the text sent when no double holds it (``10**400``: it would fail every write)."""
    if len(text.lstrip("-")) <= _INT_DIGITS + 1:
        number = int(text)
        if -(2**63) <= number < 2**64:
            return number
    return _number(text)


def loads_any(text: str | bytes) -> Any:
    """JSON as orjson reads it, else as the standard library does (which takes what orjson
    refuses: ``NaN``, a number beyond a double, invalid UTF-8 decoded with replacement), every
    value one the store can write again: numbers nothing holds stay their text. Raises
    ValueError (``json.JSONDecodeError``) for what is not JSON at all."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return json.loads(text, parse_float=_number, parse_int=_integer, parse_constant=str)
