"""The sandbox's OAuth 2.0 state, shared by the Jira and ServiceNow emulators, and its controls.

One ``AuthState`` (``app.state.auth``) holds the registered clients, the access and refresh
tokens issued so far, the lifetimes, the classic Jira API tokens marked expired and a count of
every token request. The token endpoints themselves answer in each service's own way
(``jira_auth``: ``POST /oauth/token`` as auth.atlassian.com; ``snow_auth``: ``POST
/oauth_token.do`` as an instance); they and the emulators' authentication read this state.

Seeded clients (per service, the same id and secret on both):

* ServiceNow ``desk-client`` / ``desk-secret``: client credentials act as ``admin`` (the OAuth
  application user); the password grant acts as the user who logged in.
* Atlassian ``desk-client`` / ``desk-secret``: a service account's OAuth 2.0 credentials, acting
  as the account ``desk-service@serviceaccount.atlassian.com`` (``jira_data.SERVICE_ACCOUNT``).

Control route (tests and the demo steer expiry, revocation and the ServiceNow basic-auth
restriction with it)::

    POST /_sandbox/auth
    {"token_lifetime_s": 5,            # lifetime of the access tokens issued from now on
                                       #   (null: the services' own, Jira 3600 s, ServiceNow 1800 s)
     "refresh_lifetime_s": 60,         # ServiceNow refresh tokens issued from now on (null: 100 days)
     "expire_all": true,               # every access token issued so far expires now
     "expire_refresh_tokens": true,    # every refresh token issued so far expires now
     "revoke_client": "desk-client",   # its secret is refused from now on (a list works too)
     "restore_client": "desk-client",  # accepted again
     "service": "jira",                # narrow the four above to one service (default: both)
     "expired_api_tokens": ["demo-token"],   # Jira API tokens (classic or scoped) that have expired
     "basic_auth_restriction": {"active": true, "enforce": true,
                                "enforcement_date": "2025-01-01 00:00:00"}}

``GET`` reads the settings back with the token requests counted so far; ``/_sandbox/reset``
restores the seed. Access tokens already issued live out their lifetime after their client is
revoked (they are self-contained on the real services); ``expire_all`` ends them at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from anomaly_desk.sandbox.jira_data import SERVICE_ACCOUNT
from anomaly_desk.sandbox.snow_data import parse_glide_date

CONTROL_PATH = "/_sandbox/auth"
SERVICES = ("jira", "servicenow")
DEFAULT_LIFETIME = {"jira": 3600.0, "servicenow": 1800.0}  # seconds, as the services issue them
REFRESH_LIFETIME = 100 * 24 * 3600.0  # ServiceNow's default refresh token lifespan
CLIENT_ID = "desk-client"
CLIENT_SECRET = "desk-secret"
JIRA_SCOPE = "read:jira-work write:jira-work read:jira-user"
SNOW_SCOPE = "useraccount"
RESTRICTION_KEYS = ("active", "enforce", "enforcement_date")
TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # on every token response

Json = dict[str, Any]


@dataclass
class OAuthClient:
    """A registered OAuth client of one service; ``subject`` is who client credentials act as."""

    service: str
    client_id: str
    secret: str
    subject: str  # Jira: an accountId; ServiceNow: a user_name
    scope: str
    revoked: bool = False


@dataclass
class IssuedToken:
    """An access or refresh token: whose, for which service, until when (``time.monotonic``)."""

    value: str
    service: str
    client_id: str
    subject: str
    scope: str
    expires_at: float

    def alive(self) -> bool:
        return time.monotonic() < self.expires_at


def seed_clients() -> list[OAuthClient]:
    return [
        OAuthClient("servicenow", CLIENT_ID, CLIENT_SECRET, "admin", SNOW_SCOPE),
        OAuthClient("jira", CLIENT_ID, CLIENT_SECRET, SERVICE_ACCOUNT, JIRA_SCOPE),
    ]


class AuthState:
    """Clients, issued tokens, lifetimes and counts; ``reset()`` restores the seed.

    ``token_requests`` counts every request to a token endpoint by ``(service, client_id,
    grant_type)`` as sent (failed ones too), so a test can assert that a burst of calls with an
    expired token refreshed once: ``auth.requests("servicenow", grant_type="refresh_token")``.
    """

    clients: dict[tuple[str, str], OAuthClient]
    access_tokens: dict[str, IssuedToken]
    refresh_tokens: dict[str, IssuedToken]
    token_lifetime_s: float | None  # None: the service's own (``DEFAULT_LIFETIME``)
    refresh_lifetime_s: float | None  # None: ``REFRESH_LIFETIME``
    expired_api_tokens: set[str]  # Jira API tokens (classic or scoped) answering "expired"
    token_requests: Counter[tuple[str, str, str]]

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.clients = {(c.service, c.client_id): c for c in seed_clients()}
        self.access_tokens = {}
        self.refresh_tokens = {}
        self.token_lifetime_s = None
        self.refresh_lifetime_s = None
        self.expired_api_tokens = set()
        self.token_requests = Counter()

    # -- token endpoints -----------------------------------------------------------------

    def count(self, service: str, client_id: str, grant_type: str) -> None:
        self.token_requests[(service, client_id, grant_type)] += 1

    def requests(
        self,
        service: str | None = None,
        client_id: str | None = None,
        grant_type: str | None = None,
    ) -> int:
        """How many token requests matched (None: any service, client or grant)."""
        return sum(
            n
            for (s, c, g), n in self.token_requests.items()
            if service in (None, s) and client_id in (None, c) and grant_type in (None, g)
        )

    def client(self, service: str, client_id: str, secret: str) -> OAuthClient | None:
        """The client when the id and secret match and it is not revoked."""
        client = self.clients.get((service, client_id))
        if client is None or client.revoked:
            return None
        if not secrets.compare_digest(client.secret.encode(), secret.encode()):
            return None
        return client

    def lifetime(self, service: str) -> float:
        if self.token_lifetime_s is not None:
            return self.token_lifetime_s
        return DEFAULT_LIFETIME[service]

    def issue(self, client: OAuthClient, subject: str, *, refresh: bool) -> Json:
        """A new access token (and refresh token) for ``subject``: the token response's fields."""
        lifetime = self.lifetime(client.service)
        access = IssuedToken(
            secrets.token_urlsafe(32),
            client.service,
            client.client_id,
            subject,
            client.scope,
            time.monotonic() + lifetime,
        )
        self.access_tokens[access.value] = access
        body: Json = {
            "access_token": access.value,
            "token_type": "Bearer",
            "expires_in": int(lifetime),
            "scope": client.scope,
        }
        if refresh:
            lasting = (
                REFRESH_LIFETIME if self.refresh_lifetime_s is None else self.refresh_lifetime_s
            )
            token = IssuedToken(
                secrets.token_urlsafe(48),
                client.service,
                client.client_id,
                subject,
                client.scope,
                time.monotonic() + lasting,
            )
            self.refresh_tokens[token.value] = token
            body["refresh_token"] = token.value
        return body

    def redeem_refresh(self, client: OAuthClient, value: str) -> IssuedToken | None:
        """The refresh token's grant, used up (tokens rotate); None when unknown or expired."""
        token = self.refresh_tokens.get(value)
        if token is None or (token.service, token.client_id) != (client.service, client.client_id):
            return None
        del self.refresh_tokens[value]
        return token if token.alive() else None

    def bearer(self, service: str, value: str) -> IssuedToken | None:
        """The live access token ``value`` of ``service``, or None (unknown or expired)."""
        token = self.access_tokens.get(value)
        if token is None or token.service != service or not token.alive():
            return None
        return token

    def api_token_expired(self, token: str) -> bool:
        return token in self.expired_api_tokens

    # -- steering ------------------------------------------------------------------------

    def expire(self, service: str | None = None, *, refresh: bool = False) -> None:
        """End the access tokens (or the refresh tokens) issued so far, of one or both services."""
        now = time.monotonic()
        for token in (self.refresh_tokens if refresh else self.access_tokens).values():
            if service in (None, token.service):
                token.expires_at = min(token.expires_at, now)

    def revoke(self, client_id: str, service: str | None = None, *, revoked: bool = True) -> None:
        for client in self.clients.values():
            if client.client_id == client_id and service in (None, client.service):
                client.revoked = revoked

    def settings(self) -> Json:
        alive = Counter(t.service for t in self.access_tokens.values() if t.alive())
        return {
            "token_lifetime_s": self.token_lifetime_s,
            "refresh_lifetime_s": self.refresh_lifetime_s,
            "default_lifetimes_s": dict(DEFAULT_LIFETIME),
            "clients": [
                {"service": c.service, "client_id": c.client_id, "revoked": c.revoked}
                for c in self.clients.values()
            ],
            "expired_api_tokens": sorted(self.expired_api_tokens),
            "live_access_tokens": {service: alive[service] for service in SERVICES},
            "token_requests": [
                {"service": s, "client_id": c, "grant_type": g, "count": n}
                for (s, c, g), n in sorted(self.token_requests.items())
            ],
        }

    def update(self, values: Json) -> None:
        """Apply a control request (checked first: nothing changes when a value is wrong)."""
        known = {
            "token_lifetime_s",
            "refresh_lifetime_s",
            "expire_all",
            "expire_refresh_tokens",
            "revoke_client",
            "restore_client",
            "service",
            "expired_api_tokens",
            "basic_auth_restriction",  # applied by the route, on the ServiceNow instance
        }
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown auth setting(s): {', '.join(unknown)}")
        service = values.get("service")
        if service is not None and service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)} or null")
        lifetimes = {
            name: _seconds(values[name], name)
            for name in ("token_lifetime_s", "refresh_lifetime_s")
            if name in values
        }
        revoke = _names(values.get("revoke_client"), "revoke_client")
        restore = _names(values.get("restore_client"), "restore_client")
        expired = values.get("expired_api_tokens")
        if expired is not None and (
            not isinstance(expired, list) or not all(isinstance(t, str) for t in expired)
        ):
            raise ValueError("expired_api_tokens must be a list of token strings")
        for name in ("expire_all", "expire_refresh_tokens"):
            if not isinstance(values.get(name, False), bool):
                raise ValueError(f"{name} must be true or false")
        if "token_lifetime_s" in lifetimes:
            self.token_lifetime_s = lifetimes["token_lifetime_s"]
        if "refresh_lifetime_s" in lifetimes:
            self.refresh_lifetime_s = lifetimes["refresh_lifetime_s"]
        for client_id in revoke:
            self.revoke(client_id, service)
        for client_id in restore:
            self.revoke(client_id, service, revoked=False)
        if expired is not None:
            self.expired_api_tokens = set(expired)
        if values.get("expire_all"):
            self.expire(service)
        if values.get("expire_refresh_tokens"):
            self.expire(service, refresh=True)

    def routes(self) -> list[BaseRoute]:
        return [Route(CONTROL_PATH, self._control, methods=["GET", "POST"])]

    async def _control(self, request: Request) -> Response:
        instance = getattr(request.app.state, "servicenow", None)
        if request.method == "POST":
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object")
                restriction = body.get("basic_auth_restriction")
                if restriction is not None:
                    restriction = check_restriction(restriction)
                    if instance is None:
                        raise ValueError("no ServiceNow emulator to restrict")
                self.update(body)
                if restriction is not None and instance is not None:
                    instance.set_basic_auth_restriction(restriction)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, 400)
        settings = self.settings()
        if instance is not None:
            settings["basic_auth_restriction"] = instance.basic_auth_restriction()
        return JSONResponse(settings)


def check_restriction(value: object) -> dict[str, str]:
    """``{"active", "enforce", "enforcement_date"}`` (any of them) as the properties' strings."""
    if not isinstance(value, dict):
        raise ValueError("basic_auth_restriction must be an object")
    unknown = sorted(set(value) - set(RESTRICTION_KEYS))
    if unknown:
        raise ValueError(f"basic_auth_restriction: unknown key(s) {', '.join(unknown)}")
    out: dict[str, str] = {}
    for key in ("active", "enforce"):
        if key in value:
            if not isinstance(value[key], bool):
                raise ValueError(f"basic_auth_restriction.{key} must be true or false")
            out[key] = "true" if value[key] else "false"
    if "enforcement_date" in value:
        date = value["enforcement_date"]
        if date is None or date == "":
            out["enforcement_date"] = ""
        elif not isinstance(date, str) or parse_glide_date(date) is None:
            raise ValueError(
                "basic_auth_restriction.enforcement_date: 'YYYY-MM-DD HH:MM:SS' (UTC) or null"
            )
        else:
            out["enforcement_date"] = date.strip()
    return out


def _seconds(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds or null")
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return float(value)


def _names(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{name} must be a client id or a list of them")


# -- token requests ------------------------------------------------------------------------


async def token_parameters(request: Request, *, json_too: bool) -> dict[str, str]:
    """A token request's parameters: the form body (``json_too``: or a JSON object).

    A client may authenticate with HTTP Basic instead of ``client_id``/``client_secret`` in the
    body (RFC 6749 2.3.1; ``requests-oauthlib``, and so ``pysnc``'s password flow, does): the
    header's pair fills in the parameters the body leaves out.
    """
    params = await _body_parameters(request, json_too=json_too)
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and "client_secret" not in params:
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return params
        params.setdefault("client_id", unquote_plus(client_id))
        params["client_secret"] = unquote_plus(secret)
    return params


async def _body_parameters(request: Request, *, json_too: bool) -> dict[str, str]:
    raw = await request.body()
    content_type = request.headers.get("content-type", "").lower()
    if json_too and content_type.startswith("application/json"):
        try:
            parsed = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}
        if not isinstance(parsed, dict):
            return {}
        return {str(k): str(v) for k, v in parsed.items() if isinstance(v, str | int | float)}
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return {}
    return dict(parse_qsl(text, keep_blank_values=True))
