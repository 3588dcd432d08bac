"""How the Jira emulator tells who is calling, and the Atlassian OAuth 2.0 endpoints.

Two ways in, as on Jira Cloud:

* the **site** (``/rest/api/3/…``, ``https://<site>.atlassian.net``): Basic auth with an email and
  a classic API token. Scoped API tokens and OAuth bearer tokens are refused there (401).
* the **API gateway** (``/ex/jira/{cloudId}/rest/api/3/…``, ``https://api.atlassian.com``): the
  same handlers, reached with ``Authorization: Bearer <OAuth access token>`` or Basic auth with a
  *scoped* API token. A cloudId other than the site's is a 404; classic API tokens are refused.

``self`` links stay on the site's base either way. A classic or scoped API token listed in
``AuthState.expired_api_tokens`` answers 401 "API token expired".

``POST /oauth/token`` (auth.atlassian.com; JSON or form) with ``grant_type=client_credentials``,
``client_id`` and ``client_secret`` gives a service account's access token: ``{"access_token",
"expires_in": 3600, "token_type": "Bearer", "scope"}``; a wrong or revoked client is a 401
``{"error": "access_denied", "error_description": "Unauthorized"}``. ``GET /_edge/tenant_info``
answers the site's ``{"cloudId"}``.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from anomaly_desk.sandbox.jira_data import JiraSite, User
from anomaly_desk.sandbox.oauth import TOKEN_HEADERS, token_parameters

GATEWAY = "/ex/jira/{cloud_id}"  # api.atlassian.com's prefix for one site's REST API
UNAUTHENTICATED = "Client must be authenticated to access this resource."
API_TOKEN_EXPIRED = (
    "API token expired. Create a new API token at "
    "https://id.atlassian.com/manage-profile/security/api-tokens"
)
GRANT = "client_credentials"


def jira_error(status: int, message: str) -> Response:
    return JSONResponse({"errorMessages": [message], "errors": {}}, status_code=status)


def gateway_error(status: int, message: str) -> Response:
    """api.atlassian.com answers for itself (before Jira sees the request) in this shape."""
    return JSONResponse({"code": status, "message": message}, status_code=status)


def oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers=TOKEN_HEADERS,
    )


def on_gateway(request: Request) -> bool:
    return "cloud_id" in request.path_params


class JiraAuth:
    """Authentication for one ``JiraSite`` (its ``auth`` holds the OAuth state)."""

    def __init__(self, site: JiraSite) -> None:
        self.site = site

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/_edge/tenant_info", self.tenant_info, methods=["GET"]),
        ]

    # -- who is calling ------------------------------------------------------------------

    def caller(self, request: Request) -> User | Response | None:
        """The user a request acts as; a Response refusing it; None: anonymous or not known.

        On the gateway it is a user or a refusal (nothing there is anonymous).
        """
        if on_gateway(request):
            if request.path_params["cloud_id"] != self.site.cloud_id:
                return gateway_error(404, "Not Found")
            found = self._gateway_user(request)
            return found if found is not None else gateway_error(401, "Unauthorized")
        return self._site_user(request)

    def _site_user(self, request: Request) -> User | Response | None:
        login = _basic(request)
        if login is None:
            return None
        email, token = login
        for user in self.site.users:
            if user.email == email and user.token and _same(user.token, token):
                if self.site.auth.api_token_expired(token):
                    return jira_error(401, API_TOKEN_EXPIRED)
                return user
        return None

    def _gateway_user(self, request: Request) -> User | Response | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = self.site.auth.bearer("jira", value.strip())
            return self.site.find_user(token.subject) if token else None
        login = _basic(request)
        if login is None:
            return None
        email, token_text = login
        for user in self.site.users:
            if user.email == email and user.scoped_token and _same(user.scoped_token, token_text):
                if self.site.auth.api_token_expired(token_text):
                    return gateway_error(401, API_TOKEN_EXPIRED)
                return user
        return None

    # -- auth.atlassian.com and the site's edge ------------------------------------------

    async def token(self, request: Request) -> Response:
        params = await token_parameters(request, json_too=True)
        grant = params.get("grant_type", "")
        client_id = params.get("client_id", "")
        auth = self.site.auth
        auth.count("jira", client_id, grant)
        if not grant:
            return oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
        if grant != GRANT:
            return oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
        client = auth.client("jira", client_id, params.get("client_secret", ""))
        if client is None:
            return oauth_error(401, "access_denied", "Unauthorized")
        body = auth.issue(client, client.subject, refresh=False)
        return JSONResponse(
            {k: body[k] for k in ("access_token", "expires_in", "token_type", "scope")},
            headers=TOKEN_HEADERS,
        )

    async def tenant_info(self, request: Request) -> Response:
        return JSONResponse({"cloudId": self.site.cloud_id})


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        email, _, token = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return email, token


def _same(expected: str, given: str) -> bool:
    return secrets.compare_digest(expected.encode(), given.encode())
