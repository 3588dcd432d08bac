"""A ServiceNow Table API emulator: incident and the other task tables (problem, change_request,
rm_defect, rm_enhancement), journal, dictionary, choices, users and groups in memory.

It answers like a real instance for what our client and ``pysnc`` use: ``{"result": ...}``
envelopes with every value a string, reference fields as ``{"link", "value"}``, the three
``sysparm_display_value`` modes, encoded queries, pagination headers, journal fields that land in
``sys_journal_field`` and read back empty, priority derived from impact x urgency, and the
``{"error": {"message", "detail"}, "status": "failure"}`` error body.

Where things are:

* ``snow_data``   the tables, the seed rows and what an insert or update does to them;
* ``snow_tables`` the task tables besides incident: states, dictionary, data policies;
* ``snow_query``  the encoded query language (``sysparm_query``);
* ``snow_auth``   who is calling (Basic auth under the Basic-auth restriction, OAuth bearer
  tokens) and the token endpoint ``/oauth_token.do``;
* ``snow_routes`` the HTTP endpoints: paging, rendering, error bodies, and the
  Business Rule that posts ``{"sys_id", "table", "operation"}`` to a configured webhook
  (``webhooks.WebhookHub``) on every incident insert and update.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from anomaly_desk.sandbox.oauth import AuthState
from anomaly_desk.sandbox.snow_data import Record, ServiceNowInstance, SnError, seed_id
from anomaly_desk.sandbox.snow_routes import ServiceNowApi
from anomaly_desk.sandbox.webhooks import WebhookHub

__all__ = ["Record", "ServiceNowEmulator", "SnError", "seed_id"]


class ServiceNowEmulator(ServiceNowInstance):
    """An in-memory instance (``ServiceNowInstance``) with its Table API (``routes``).

    ``webhooks``: the hub its Business Rule posts through (shared with the Jira emulator in the
    sandbox app); a reset of the instance turns it off too. ``auth``: the OAuth clients and
    tokens (``oauth.AuthState``, shared with Jira in the app; ``/_sandbox/reset`` reseeds it).
    """

    def __init__(self, webhooks: WebhookHub | None = None, auth: AuthState | None = None) -> None:
        self.webhooks = webhooks
        self.auth = auth or AuthState()
        super().__init__()

    def reset(self) -> None:
        super().reset()
        if self.webhooks is not None:
            self.webhooks.reset()

    def routes(self) -> list[BaseRoute]:
        return ServiceNowApi(self).routes()
