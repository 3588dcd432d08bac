"""JSON at the edges: what arrives (a webhook, a provider's answer, the config file) or is stored
(a journal row) before it becomes a model, or after it stops being one.

A named alias, so every place that still handles raw JSON says so; the domain itself travels as
the models of :mod:`anomaly_desk.core.documents` and :mod:`anomaly_desk.core.views`.
"""

from typing import Any, TypeAlias

JsonObject: TypeAlias = dict[str, Any]
