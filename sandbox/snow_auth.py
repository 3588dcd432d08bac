"""How the ServiceNow emulator tells who is calling, and the instance's OAuth token endpoint.

Every Table API call authenticates with Basic auth (a user's name and password) or
``Authorization: Bearer <access token>`` from ``/oauth_token.do``, acting as the user the token
was issued for. An unknown or expired token, wrong credentials, and Basic auth refused by the
Basic-auth restriction (``snow_data``: enforced, and the user has no ``snc_basic_auth_api_access``
role nor is Web-Service-Access-Only) are all the instance's 401 ``{"error": {"message": "User Not
Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"}``.

``POST /oauth_token.do`` (form-encoded, as an instance takes it):

* ``grant_type=client_credentials&client_id&client_secret``: a token acting as the client's
  OAuth application user (``admin`` for the seeded ``desk-client``), no refresh token;
* ``grant_type=password`` plus ``username`` and ``password``: a token for that user, with a
  ``refresh_token``;
* ``grant_type=refresh_token`` plus ``refresh_token``: a new access token and a new refresh
  token (the old one is used up).

The answer is ``{"access_token", "refresh_token"?, "scope": "useraccount", "token_type":
"Bearer", "expires_in": 1800}``. A wrong or revoked client, wrong user credentials or an unknown,
used or expired refresh token are all a 401 ``{"error_description": "access_denied", "error":
"server_error"}``, the way an instance answers them.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from anomaly_desk.sandbox.oauth import TOKEN_HEADERS, token_parameters
from anomaly_desk.sandbox.snow_data import ServiceNowInstance, SnError, check_login

TOKEN_PATH = "/oauth_token.do"
GRANTS = ("client_credentials", "password", "refresh_token")


def not_authenticated() -> SnError:
    return SnError(401, "User Not Authenticated", "Required to provide Auth information")


def denied() -> Response:
    return JSONResponse(
        {"error_description": "access_denied", "error": "server_error"},
        status_code=401,
        headers=TOKEN_HEADERS,
    )


class ServiceNowAuth:
    """Authentication for one ``ServiceNowInstance`` (its ``auth`` holds the OAuth state)."""

    def __init__(self, instance: ServiceNowInstance) -> None:
        self.instance = instance

    def routes(self) -> list[BaseRoute]:
        return [Route(TOKEN_PATH, self.token, methods=["POST"])]

    def caller(self, request: Request) -> str:
        """The ``user_name`` a request acts as, or the instance's 401 (``SnError``)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = self.instance.auth.bearer("servicenow", value.strip())
            if token is not None and self.instance.user_record(token.subject) is not None:
                return token.subject
        elif scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            if check_login(user, password) and not self.instance.basic_auth_refused(user):
                return user
        raise not_authenticated()

    async def token(self, request: Request) -> Response:
        params = await token_parameters(request, json_too=False)
        grant = params.get("grant_type", "")
        client_id = params.get("client_id", "")
        auth = self.instance.auth
        auth.count("servicenow", client_id, grant)
        if grant not in GRANTS:
            return JSONResponse(
                {
                    "error_description": f"Unsupported grant type: {grant or '(none)'}",
                    "error": "unsupported_grant_type",
                },
                status_code=400,
                headers=TOKEN_HEADERS,
            )
        client = auth.client("servicenow", client_id, params.get("client_secret", ""))
        if client is None:
            return denied()
        if grant == "client_credentials":
            body = auth.issue(client, client.subject, refresh=False)
        elif grant == "password":
            user = params.get("username", "")
            if not check_login(user, params.get("password", "")):
                return denied()
            body = auth.issue(client, user, refresh=True)
        else:
            used = auth.redeem_refresh(client, params.get("refresh_token", ""))
            if used is None:
                return denied()
            body = auth.issue(client, used.subject, refresh=True)
        return JSONResponse(body, headers=TOKEN_HEADERS)
