"""Jira Cloud REST v3 emulator: the endpoints Anomaly Desk and the PyPI ``jira`` library use.

It answers the way Jira Cloud answers: the ``{"errorMessages", "errors"}`` envelope with Jira's
own wording, ADF-only rich text (a plain string description is a 400), Jira's timestamp format,
``self`` links built from the request's base URL, the enhanced search with ``nextPageToken``
pagination, and 410 Gone for the removed ``/search`` endpoints; createmeta with each field's
schema, custom fields judged by it, watchers. State is in memory.

Where things are:

* ``jira_data``   the records (users, issues, comments), the seed and the site's state;
* ``jira_text``   Jira's own rules for text: lengths in UTF-16 units, the plain text of ADF;
* ``jql``         the query language and the search over a site's issues;
* ``jira_workflows`` the projects (company-managed DQ, FIN and OPS, team-managed TM), their
  statuses and transitions;
* ``jira_screens`` the create screens: custom fields of every schema type (FIN), a project
  without ``reporter`` (OPS), and how a create's values are judged;
* ``jira_beans``  the records as Jira's JSON;
* ``jira_auth``   who is calling: API tokens on the site, OAuth bearer and scoped tokens under
  the API gateway's ``/ex/jira/{cloudId}``; ``POST /oauth/token`` and ``/_edge/tenant_info``;
* ``jira_routes`` the HTTP endpoints, with Jira's checks and error messages;
  ``jira_workflow_routes`` the transitions, edits and changelog on top;
* ``jira_events`` the admin webhooks' bodies (sent through ``webhooks.WebhookHub``).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from anomaly_desk.sandbox.jira_data import Comment, Issue, JiraSite, User
from anomaly_desk.sandbox.jira_workflow_routes import JiraWorkflowApi
from anomaly_desk.sandbox.oauth import AuthState
from anomaly_desk.sandbox.webhooks import WebhookHub

__all__ = ["Comment", "Issue", "JiraEmulator", "User"]


class JiraEmulator(JiraSite):
    """An in-memory Jira Cloud site (``JiraSite``) with its REST API (``routes``).

    ``webhooks``: the hub its admin webhooks go through (shared with the ServiceNow emulator in
    the sandbox app); a reset of the site turns them off too. ``auth``: the OAuth clients and
    tokens (``oauth.AuthState``, shared with ServiceNow in the app; ``/_sandbox/reset`` reseeds
    it, a reset of the site alone does not).
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
        return JiraWorkflowApi(self).routes()
