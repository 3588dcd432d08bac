"""JSON at the edges: what arrives (a webhook, a provider's answer, the config file) or is stored
(a journal row) before it becomes a model, or after it stops being one.

``JsonMap`` is JSON we keep as it came and never read field by field (odd values the platform
sent, lookup tables of a delivery): typed as JSON, so nothing but JSON values goes in.
``JsonObject`` is a stored row on its way to or from the journal (the store keeps plain dicts
for speed and converts at its boundary); the domain itself travels as the models of
:mod:`anomaly_desk.core.documents` and :mod:`anomaly_desk.core.views`.
"""

from typing import Any, TypeAlias

from pydantic import JsonValue

JsonObject: TypeAlias = dict[str, Any]
JsonMap: TypeAlias = dict[str, JsonValue]

__all__ = ["JsonMap", "JsonObject", "JsonValue"]
