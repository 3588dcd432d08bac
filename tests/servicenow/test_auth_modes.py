"""ServiceNow auth modes: the ``OAuth`` flow on a mock transport (cache, one refresh under a
burst, one retry on 401, refresh token and fallback, failures), the configuration's checks, and
each mode against the sandbox over loopback."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import SecretStr

from anomaly_desk.check import report
from anomaly_desk.core.config import ConfigError, load_settings
from anomaly_desk.core.connections import ServiceNowConnection
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers import AuthError, ProviderError, TicketRef, UnavailableError
from anomaly_desk.core.providers.auth_warnings import (
    auth_warnings,
    failure_warning,
    provider_warnings,
)
from anomaly_desk.core.providers.oauth import OAuth, TokenError, TokenUnavailableError
from anomaly_desk.core.providers.servicenow import ServiceNowClient
from tests.support import ThreadedServer

CLIENT_SECRET = "cs-7f3a9d1e2b4c6a8e"
PASSWORD = "pw-5e8c1a7d3f9b2e4a"
URL = "https://acme.service-now.com"
TOKEN_URL = f"{URL}/oauth_token.do"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """A token endpoint and an API behind it, on ``httpx.MockTransport``.

    ``grants`` lists the token requests' forms; the API answers 401 to a token it did not issue
    or has ``revoked``; ``refuse`` makes the token endpoint answer that status instead.
    """

    def __init__(self, *, lifetime: int | None = 1800, refresh_tokens: bool = False) -> None:
        self.lifetime = lifetime
        self.refresh_tokens = refresh_tokens
        self.grants: list[dict[str, str]] = []
        self.live: set[str] = set()
        self.refresh: set[str] = set()
        self.api_calls: list[str] = []  # the Authorization header of each API call
        self.refuse: tuple[int, dict[str, object] | str] | None = None
        self.refuse_refresh = False
        self.delay = 0.02

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth_token.do":
            return await self.token(request)
        header = request.headers.get("authorization", "")
        self.api_calls.append(header)
        await asyncio.sleep(0.001)
        if header.removeprefix("Bearer ") not in self.live:
            return httpx.Response(401, json={"error": {"message": "User Not Authenticated"}})
        return httpx.Response(200, json={"result": [{"sys_id": "1" * 32}]})

    async def token(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        self.grants.append(form)
        await asyncio.sleep(self.delay)  # a burst overlaps this request
        if self.refuse is not None:
            status, body = self.refuse
            if isinstance(body, str):
                return httpx.Response(status, text=body)
            return httpx.Response(status, json=body)
        if form.get("grant_type") == "refresh_token":
            if self.refuse_refresh or form.get("refresh_token") not in self.refresh:
                return httpx.Response(
                    401, json={"error": "invalid_grant", "error_description": "access_denied"}
                )
            self.refresh.discard(form["refresh_token"])
        token = f"tok-{len(self.grants)}"
        self.live.add(token)
        body: dict[str, object] = {"access_token": token, "token_type": "Bearer"}
        if self.lifetime is not None:
            body["expires_in"] = self.lifetime
        if self.refresh_tokens:
            body["refresh_token"] = f"ref-{len(self.grants)}"
            self.refresh.add(body["refresh_token"])
        return httpx.Response(200, json=body)

    def revoke_all(self) -> None:
        self.live.clear()


def oauth(clock: Clock | None = None, **overrides: Any) -> OAuth:
    values: dict[str, object] = {
        "provider": "ServiceNow",
        "connection": "snow",
        "token_url": TOKEN_URL,
        "client_id": "desk-client",
        "client_secret": CLIENT_SECRET,
    }
    if clock is not None:
        values["clock"] = clock
    values.update(overrides)
    return OAuth(**values)


def http(server: TokenServer, auth: OAuth) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=URL, auth=auth, transport=httpx.MockTransport(server))


async def test_a_token_is_fetched_once_and_reused() -> None:
    server = TokenServer()
    async with http(server, oauth()) as client:
        for _ in range(3):
            assert (await client.get("/api/now/table/incident")).status_code == 200

    assert len(server.grants) == 1
    assert server.grants[0] == {
        "grant_type": "client_credentials",
        "client_id": "desk-client",
        "client_secret": CLIENT_SECRET,
    }
    assert server.api_calls == ["Bearer tok-1"] * 3


async def test_the_token_is_renewed_60_s_before_it_expires() -> None:
    server, clock = TokenServer(lifetime=1800), Clock()
    async with http(server, oauth(clock)) as client:
        await client.get("/x")
        clock.now += 1739
        await client.get("/x")
        assert len(server.grants) == 1
        clock.now += 1  # 1740 s: 60 s before the end
        await client.get("/x")

    assert len(server.grants) == 2
    assert server.api_calls == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


async def test_a_short_lived_token_is_renewed_a_quarter_before_it_ends() -> None:
    server, clock = TokenServer(lifetime=4), Clock()
    async with http(server, oauth(clock)) as client:
        await client.get("/x")
        clock.now += 2.9
        await client.get("/x")
        clock.now += 0.2  # 3.1 s of 4
        await client.get("/x")

    assert len(server.grants) == 2


async def test_a_burst_of_20_requests_fetches_one_token() -> None:
    server = TokenServer()
    async with http(server, oauth()) as client:
        answers = await asyncio.gather(*(client.get(f"/x/{n}") for n in range(20)))

    assert [a.status_code for a in answers] == [200] * 20
    assert len(server.grants) == 1
    assert set(server.api_calls) == {"Bearer tok-1"}


async def test_a_401_refreshes_once_and_retries_the_request_once() -> None:
    server = TokenServer()
    async with http(server, oauth()) as client:
        await client.get("/x")
        server.revoke_all()  # the service forgot the token before it expired
        answer = await client.post("/api/now/table/incident", json={"short_description": "s"})

    assert answer.status_code == 200
    assert len(server.grants) == 2
    assert server.api_calls == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert [r.status_code for r in answer.history] == [401, 200]  # the 401, the new token
    assert json.loads(answer.request.content) == {"short_description": "s"}  # body sent again


async def test_a_second_401_is_the_callers() -> None:
    server = TokenServer()

    async def always_401(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth_token.do":
            return await server.token(request)
        server.api_calls.append(request.headers["authorization"])
        return httpx.Response(401, json={"error": {"message": "User Not Authenticated"}})

    transport = httpx.MockTransport(always_401)
    async with httpx.AsyncClient(base_url=URL, auth=oauth(), transport=transport) as client:
        answer = await client.get("/x")

    assert answer.status_code == 401
    assert len(server.grants) == 2  # one refresh, not a loop
    assert len(server.api_calls) == 2


async def test_a_burst_answered_401_refreshes_once() -> None:
    server = TokenServer()
    async with http(server, oauth()) as client:
        await client.get("/x")
        server.revoke_all()
        answers = await asyncio.gather(*(client.get(f"/x/{n}") for n in range(20)))

    assert [a.status_code for a in answers] == [200] * 20
    assert len(server.grants) == 2


async def test_the_password_grant_renews_with_the_refresh_token() -> None:
    server, clock = TokenServer(lifetime=1800, refresh_tokens=True), Clock()
    auth = oauth(clock, username="admin", password=PASSWORD)
    async with http(server, auth) as client:
        await client.get("/x")
        clock.now += 1750
        await client.get("/x")

    assert [g["grant_type"] for g in server.grants] == ["password", "refresh_token"]
    assert server.grants[0]["username"] == "admin"
    assert server.grants[0]["password"] == PASSWORD
    assert server.grants[1]["refresh_token"] == "ref-1"
    assert "password" not in server.grants[1]
    assert server.api_calls == ["Bearer tok-1", "Bearer tok-2"]


async def test_a_refused_refresh_token_falls_back_to_the_password() -> None:
    server, clock = TokenServer(lifetime=1800, refresh_tokens=True), Clock()
    auth = oauth(clock, username="admin", password=PASSWORD)
    async with http(server, auth) as client:
        await client.get("/x")
        server.refuse_refresh = True
        clock.now += 1750
        assert (await client.get("/x")).status_code == 200

    assert [g["grant_type"] for g in server.grants] == ["password", "refresh_token", "password"]
    assert server.api_calls[-1] == "Bearer tok-3"


async def test_without_expires_in_the_token_lasts_until_refused() -> None:
    server, clock = TokenServer(lifetime=None), Clock()
    async with http(server, oauth(clock)) as client:
        await client.get("/x")
        clock.now += 10**6
        await client.get("/x")
        assert len(server.grants) == 1
        server.revoke_all()
        assert (await client.get("/x")).status_code == 200

    assert len(server.grants) == 2


async def test_a_refused_token_request_is_an_auth_error_in_the_providers_words(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = TokenServer()
    server.refuse = (401, {"error": "invalid_client", "error_description": "Client not valid"})
    auth = oauth(username="admin", password=PASSWORD)
    async with http(server, auth) as client:
        with pytest.raises(TokenError) as caught:
            await client.get("/x")

    exc = caught.value
    assert isinstance(exc, AuthError)
    assert exc.status == 401
    assert str(exc) == (
        f"snow: ServiceNow token request to {TOKEN_URL} refused (password grant, client "
        "desk-client): Client not valid (invalid_client) (HTTP 401)"
    )
    for text in (str(exc), repr(exc), repr(auth), caplog.text):
        assert CLIENT_SECRET not in text
        assert PASSWORD not in text


async def test_a_token_endpoint_echoing_the_secret_is_scrubbed() -> None:
    server = TokenServer()
    server.refuse = (400, f"<html>bad client_secret={CLIENT_SECRET}</html>")
    async with http(server, oauth()) as client:
        with pytest.raises(TokenError) as caught:
            await client.get("/x")

    assert CLIENT_SECRET not in str(caught.value)
    assert "client_secret=***" in str(caught.value)


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_token_endpoint_that_is_down_is_unavailable_not_auth(status: int) -> None:
    server = TokenServer()
    server.refuse = (status, "Service Unavailable")
    async with http(server, oauth()) as client:
        with pytest.raises(TokenUnavailableError) as caught:
            await client.get("/x")

    assert isinstance(caught.value, UnavailableError)
    assert caught.value.retryable
    warning = failure_warning("snow", caught.value)
    assert warning is not None
    assert (warning.kind, warning.message) == (
        "token_request_failed",
        f"the OAuth token endpoint is failing (Service Unavailable, HTTP {status}); requests "
        "wait until it answers",
    )


async def test_a_200_without_a_token_is_refused() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"token_type": "Bearer"})

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(base_url=URL, auth=oauth(), transport=transport) as client:
        with pytest.raises(TokenError, match="no access_token"):
            await client.get("/x")


async def test_the_atlassian_spelling_sends_json() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json={})

    auth = oauth(provider="Atlassian", token_url="https://auth.example/oauth/token", body="json")
    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(auth=auth, transport=transport, timeout=3.0) as client:
        await client.get("https://api.example/ex/jira/c/rest/api/3/myself")

    token_request = seen[0]
    assert token_request.headers["content-type"] == "application/json"
    assert json.loads(token_request.content) == {
        "client_id": "desk-client",
        "client_secret": CLIENT_SECRET,
        "grant_type": "client_credentials",
    }
    assert token_request.extensions["timeout"]["read"] == 3.0  # the caller's timeout
    assert seen[1].headers["authorization"] == "Bearer t"


def test_oauth_refuses_a_sync_client() -> None:
    with (
        httpx.Client(
            auth=oauth(), transport=httpx.MockTransport(lambda r: httpx.Response(200))
        ) as c,
        pytest.raises(RuntimeError, match="AsyncClient"),
    ):
        c.get(URL)


# -- the client in each mode, on the mock --------------------------------------------------


def snow_connection(**overrides: Any) -> ServiceNowConnection:
    values: dict[str, object] = {"name": "snow", "url": URL, "username": "admin", "timeout": 5.0}
    values.update(overrides)
    return ServiceNowConnection(**values)


async def test_the_client_in_oauth_password_mode_never_shows_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = TokenServer(refresh_tokens=True)
    conn = snow_connection(
        auth="oauth_password",
        client_id="desk-client",
        client_secret=SecretStr(CLIENT_SECRET),
        password=SecretStr(PASSWORD),
    )
    client = ServiceNowClient(conn, transport=httpx.MockTransport(server))
    try:
        assert await client.check() == "admin"
        server.refuse = (401, {"error": "server_error", "error_description": "access_denied"})
        server.revoke_all()
        server.refresh.clear()
        with pytest.raises(TokenError) as caught:
            await client.check()
    finally:
        await client.aclose()

    issued = {g.get("refresh_token", "") for g in server.grants} | {"tok-1", "ref-1"}
    for text in (str(caught.value), repr(caught.value), repr(client), repr(conn), caplog.text):
        for secret in (CLIENT_SECRET, PASSWORD, *issued - {""}):
            assert secret not in text, text
    assert repr(client) == (
        f"ServiceNowClient(name='snow', url='{URL}', user='admin', auth='oauth_password')"
    )


@pytest.mark.parametrize(
    ("mode", "needs"),
    [
        ("oauth_client_credentials", "No client secret configured"),
        ("oauth_password", "No password configured"),
    ],
)
async def test_a_client_missing_its_modes_secret_says_which(mode: str, needs: str) -> None:
    conn = snow_connection(
        auth=mode, client_id="c", client_secret_env="X", client_secret=None, password=None
    )
    if mode == "oauth_password":
        conn = conn.model_copy(update={"client_secret": SecretStr(CLIENT_SECRET)})
    client = ServiceNowClient(conn, transport=httpx.MockTransport(TokenServer()))
    try:
        with pytest.raises(AuthError, match=needs):
            await client.check()
    finally:
        await client.aclose()


# -- configuration ---------------------------------------------------------------------------

SNOW = """
[[connections]]
name = "snow"
provider = "servicenow"
url = "https://acme.service-now.com"
username = "desk.integration"
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ServiceNowConnection:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(text, encoding="utf-8")
    conn = load_settings(path, env=env or {}).connections[0]
    assert isinstance(conn, ServiceNowConnection)
    return conn


def config_error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return str(caught.value)


def test_basic_stays_the_default(tmp_path: Path) -> None:
    conn = load(tmp_path, SNOW + 'password_env = "SNOW_PW"\n', {"SNOW_PW": PASSWORD})
    assert conn.auth == "basic"
    assert conn.password is not None
    assert conn.password.get_secret_value() == PASSWORD
    assert conn.client_secret is None


def test_client_credentials_resolve_the_client_secret_only(tmp_path: Path) -> None:
    text = SNOW + (
        'auth = "oauth_client_credentials"\nclient_id = "desk-client"\n'
        'client_secret_env = "SNOW_CS"\n'
    )
    conn = load(tmp_path, text, {"SNOW_CS": f" {CLIENT_SECRET}\n"})
    assert conn.auth == "oauth_client_credentials"
    assert conn.client_secret is not None
    assert conn.client_secret.get_secret_value() == CLIENT_SECRET
    assert conn.password is None
    assert CLIENT_SECRET not in repr(conn)


def test_the_password_grant_needs_the_password_too(tmp_path: Path) -> None:
    text = SNOW + (
        'auth = "oauth_password"\nclient_id = "desk-client"\nclient_secret_env = "SNOW_CS"\n'
    )
    message = config_error(tmp_path, text, {"SNOW_CS": CLIENT_SECRET})
    assert (
        ": connections[0] (snow): password_env: no password configured (auth = "
        "'oauth_password'); name an environment variable with password_env"
    ) in message
    conn = load(
        tmp_path,
        text + 'password_env = "SNOW_PW"\n',
        {"SNOW_CS": CLIENT_SECRET, "SNOW_PW": PASSWORD},
    )
    assert conn.password is not None
    assert conn.client_secret is not None


def test_oauth_needs_a_client_id(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, SNOW + 'auth = "oauth_client_credentials"\nclient_secret_env = "X"\n'
    )
    assert message.endswith(
        "connections[0]: client_id: missing; auth = 'oauth_client_credentials' needs client_id "
        "and a client secret (client_secret_env, client_secret_keyring or client_secret_vault)"
    )


def test_oauth_needs_a_client_secret_reference(tmp_path: Path) -> None:
    message = config_error(tmp_path, SNOW + 'auth = "oauth_password"\nclient_id = "c"\n')
    assert "connections[0]: client_secret_env: missing; auth = 'oauth_password' needs" in message


def test_servicenow_takes_no_scoped_token(tmp_path: Path) -> None:
    message = config_error(tmp_path, SNOW + 'auth = "scoped_token"\npassword_env = "X"\n')
    assert message.endswith(
        "connections[0].auth: 'scoped_token' is not available for servicenow; it takes 'basic', "
        "'oauth_client_credentials', 'oauth_password'"
    )


def test_a_client_secret_in_the_file_is_refused_without_repeating_it(tmp_path: Path) -> None:
    text = (
        SNOW
        + f'auth = "oauth_client_credentials"\nclient_id = "c"\nclient_secret = "{CLIENT_SECRET}"\n'
    )
    message = config_error(tmp_path, text)
    assert "client_secret: secrets are not kept in the config file" in message
    assert "client_secret_env" in message
    assert CLIENT_SECRET not in message


def test_the_client_secret_from_the_keyring_uses_the_client_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring

    asked: list[tuple[str, str]] = []

    def get_password(service: str, username: str) -> str:
        asked.append((service, username))
        return CLIENT_SECRET

    monkeypatch.setattr(keyring, "get_password", get_password)
    text = SNOW + (
        'auth = "oauth_client_credentials"\nclient_id = "desk-client"\n'
        'client_secret_keyring = "anomaly-desk-snow"\n'
    )
    conn = load(tmp_path, text)
    assert asked == [("anomaly-desk-snow", "desk-client")]
    assert conn.client_secret is not None


def test_vault_references_are_accepted_fields() -> None:
    conn = snow_connection(
        auth="oauth_password",
        client_id="c",
        client_secret_vault="secret/anomaly-desk/snow#client_secret",
        password_vault="secret/anomaly-desk/snow#password",
    )
    assert conn.secret_fields() == ("password", "client_secret")


# -- the basic-auth restriction, on a mock ------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            httpx.Response(403, json={"error": {"message": "User Not Authorized"}}),
            "User Not Authorized (HTTP 403)",
        ),
        (httpx.Response(200, json={"result": []}), "none of its properties is visible"),
    ],
)
async def test_an_unreadable_restriction_is_a_note(answer: httpx.Response, reason: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "sys_properties" in request.url.path:
            return answer
        return httpx.Response(200, json={"result": []})

    conn = snow_connection(password=SecretStr(PASSWORD))
    client = ServiceNowClient(conn, transport=httpx.MockTransport(handler))
    try:
        await client.check()
        warnings = await provider_warnings(client, None)
    finally:
        await client.aclose()

    assert [(w.kind, w.is_note) for w in warnings] == [("restriction_unknown", True)]
    assert warnings[0].message.startswith("basic-auth restriction: unknown; sys_properties not")
    assert reason in warnings[0].message


# -- against the sandbox -----------------------------------------------------------------------

SANDBOX_SECRET = "desk-secret"
MODES = ("basic", "oauth_client_credentials", "oauth_password")
FIELDS = {"short_description": "1,204 records have a null email"}


def sandbox_connection(url: str, mode: str, **overrides: Any) -> ServiceNowConnection:
    values: dict[str, object] = {
        "url": url,
        "auth": mode,
        "password": SecretStr("demo") if mode != "oauth_client_credentials" else None,
    }
    if mode != "basic":
        values.update(client_id="desk-client", client_secret=SecretStr(SANDBOX_SECRET))
    values.update(overrides)
    return snow_connection(**values)


def control(sandbox: ThreadedServer, **settings: Any) -> None:
    answer = httpx.post(f"{sandbox.url}/_sandbox/auth", json=settings, timeout=5)
    assert answer.status_code == 200, answer.text


def token_requests(sandbox: ThreadedServer, grant: str | None = None) -> int:
    auth = sandbox.app.state.auth  # type: ignore[attr-defined]
    return int(auth.requests("servicenow", grant_type=grant))


@pytest.fixture
async def password_client(sandbox: ThreadedServer) -> AsyncIterator[ServiceNowClient]:
    client = ServiceNowClient(sandbox_connection(sandbox.url, "oauth_password"))
    yield client
    await client.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_each_mode_creates_a_ticket_and_adds_a_note(
    sandbox: ThreadedServer, anomaly: Anomaly, mode: str
) -> None:
    client = ServiceNowClient(sandbox_connection(sandbox.url, mode))
    try:
        assert await client.check() == "admin"
        ticket = await client.create_ticket(anomaly, FIELDS)
        await client.add_note(TicketRef(ticket.key, ticket.id), f"a note in {mode} mode")
        notes = await client._rows(
            "sys_journal_field",
            f"element_id={ticket.id}^element=work_notes",
            "value,sys_created_by",
        )
    finally:
        await client.aclose()

    assert ticket.key.startswith("INC")
    assert [(n["value"], n["sys_created_by"]) for n in notes] == [
        (f"a note in {mode} mode", "admin")
    ]
    assert token_requests(sandbox) == (0 if mode == "basic" else 1)


async def test_a_token_expiring_mid_run_is_renewed_with_the_refresh_token(
    sandbox: ThreadedServer, password_client: ServiceNowClient, anomaly: Anomaly
) -> None:
    control(sandbox, token_lifetime_s=1)
    ticket = await password_client.create_ticket(anomaly, FIELDS)
    await asyncio.sleep(1.1)
    await password_client.add_note(TicketRef(ticket.key, ticket.id), "after the expiry")
    await password_client.get_ticket(ticket.key)

    assert token_requests(sandbox, "password") == 1
    assert token_requests(sandbox, "refresh_token") == 1


async def test_a_refused_refresh_token_falls_back_to_the_password_grant(
    sandbox: ThreadedServer, password_client: ServiceNowClient, anomaly: Anomaly
) -> None:
    ticket = await password_client.create_ticket(anomaly, FIELDS)
    control(sandbox, expire_all=True, expire_refresh_tokens=True)
    await password_client.add_note(TicketRef(ticket.key, ticket.id), "after both expired")

    assert token_requests(sandbox, "password") == 2
    assert token_requests(sandbox, "refresh_token") == 1


@pytest.mark.parametrize("mode", ["oauth_client_credentials", "oauth_password"])
async def test_a_burst_of_20_refreshes_once(
    sandbox: ThreadedServer, anomaly: Anomaly, mode: str
) -> None:
    client = ServiceNowClient(sandbox_connection(sandbox.url, mode))
    try:
        await asyncio.gather(*(client.check() for _ in range(20)))
        assert token_requests(sandbox) == 1
        ticket = await client.create_ticket(anomaly, FIELDS)
        control(sandbox, expire_all=True)
        read = await asyncio.gather(*(client.get_ticket(ticket.key) for _ in range(20)))
    finally:
        await client.aclose()

    assert {t.key for t in read} == {ticket.key}
    assert token_requests(sandbox) == 2


async def test_a_revoked_client_secret_is_a_clear_auth_error(
    sandbox: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    control(sandbox, revoke_client="desk-client", service="servicenow")
    client = ServiceNowClient(sandbox_connection(sandbox.url, "oauth_client_credentials"))
    try:
        with pytest.raises(TokenError) as caught:
            await client.check()
    finally:
        await client.aclose()

    exc = caught.value
    assert str(exc) == (
        f"snow: ServiceNow token request to {sandbox.url}/oauth_token.do refused "
        "(client_credentials grant, client desk-client): access_denied (server_error) (HTTP 401)"
    )
    for text in (str(exc), repr(exc), repr(client), caplog.text):
        assert SANDBOX_SECRET not in text


async def test_no_token_or_secret_in_logs_errors_or_reprs(
    sandbox: ThreadedServer, anomaly: Anomaly, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for mode in MODES:
        client = ServiceNowClient(sandbox_connection(sandbox.url, mode))
        try:
            ticket = await client.create_ticket(anomaly, FIELDS)
            await client.add_note(TicketRef(ticket.key, ticket.id), "n")
            with pytest.raises(ProviderError) as caught:
                await client.get_ticket("INC9999999")
            texts += [str(caught.value), repr(client), repr(client.oauth), repr(client._client)]
        finally:
            await client.aclose()
    auth = sandbox.app.state.auth  # type: ignore[attr-defined]
    issued = [*auth.access_tokens, *auth.refresh_tokens]
    assert issued
    for text in [*texts, caplog.text]:
        for secret in (SANDBOX_SECRET, *issued):
            assert secret not in text, text


# -- the basic-auth restriction on the sandbox ---------------------------------------------------


@pytest.mark.parametrize(
    ("restriction", "user", "words"),
    [
        (
            {"active": True, "enforce": True, "enforcement_date": "2025-01-01 00:00:00"},
            "desk.integration",  # exempt: snc_basic_auth_api_access
            "enforced since 2025-01-01 00:00:00",
        ),
        (
            {"enforce": True, "enforcement_date": "2099-01-01 00:00:00"},
            "admin",
            "scheduled for 2099-01-01 00:00:00",
        ),
        ({"active": True}, "admin", "active (identifying accounts that use basic auth)"),
    ],
)
async def test_a_basic_connection_warns_of_the_restriction(
    sandbox: ThreadedServer, restriction: dict[str, object], user: str, words: str
) -> None:
    control(sandbox, basic_auth_restriction=restriction)
    conn = sandbox_connection(sandbox.url, "basic", username=user)
    warnings = await auth_warnings([conn], wait_s=5)

    assert [w.kind for w in warnings] == ["basic_auth_restriction"]
    assert warnings[0].message == (
        f"ServiceNow basic-auth restriction {words} on this instance (basic auth refused to "
        "accounts without the snc_basic_auth_api_access role); move this connection to auth = "
        '"oauth_client_credentials" or "oauth_password"'
    )


async def test_no_restriction_warning_when_inactive_or_on_oauth(sandbox: ThreadedServer) -> None:
    basic = sandbox_connection(sandbox.url, "basic", name="basic")
    assert await auth_warnings([basic], wait_s=5) == []
    control(sandbox, basic_auth_restriction={"active": True, "enforce": True})
    conns = [sandbox_connection(sandbox.url, mode, name=mode) for mode in MODES[1:]]
    assert await auth_warnings(conns, wait_s=5) == []


async def test_an_enforced_restriction_refuses_a_basic_account_without_the_role(
    sandbox: ThreadedServer,
) -> None:
    control(sandbox, basic_auth_restriction={"enforce": True})
    client = ServiceNowClient(sandbox_connection(sandbox.url, "basic"))
    try:
        with pytest.raises(AuthError):
            await client.check()
    finally:
        await client.aclose()
    oauth_client = ServiceNowClient(sandbox_connection(sandbox.url, "oauth_password"))
    try:
        assert await oauth_client.check() == "admin"  # OAuth is the way out
    finally:
        await oauth_client.aclose()


def snow_config(url: str, mode: str, user: str = "admin") -> str:
    lines = [
        "[[connections]]",
        'name = "snow"',
        'provider = "servicenow"',
        f'url = "{url}"',
        f'username = "{user}"',
        f'auth = "{mode}"',
    ]
    if mode != "oauth_client_credentials":
        lines.append('password_env = "SNOW_PASSWORD"')
    if mode != "basic":
        lines += ['client_id = "desk-client"', 'client_secret_env = "SNOW_CLIENT_SECRET"']
    return "\n".join(lines) + "\n"


SNOW_ENV = {"SNOW_PASSWORD": "demo", "SNOW_CLIENT_SECRET": SANDBOX_SECRET}


@pytest.mark.parametrize("mode", MODES)
def test_check_prints_the_mode_and_the_api_base(
    sandbox: ThreadedServer, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(snow_config(sandbox.url, mode), encoding="utf-8")
    out = io.StringIO()
    status = report(load_settings(path, env=SNOW_ENV), timeout=5, out=out)

    lines = out.getvalue().splitlines()
    assert status == 0, out.getvalue()
    ok = next(i for i, line in enumerate(lines) if line.startswith("ok "))
    assert lines[ok] == lines[ok].rstrip()
    assert lines[ok + 1] == f"      auth: {mode}  api: {sandbox.url}"
    assert lines[-1] == "1 connection: all ok"


def test_check_warns_of_the_restriction_and_still_exits_0(
    sandbox: ThreadedServer, tmp_path: Path
) -> None:
    control(
        sandbox,
        basic_auth_restriction={"active": True, "enforce": True, "enforcement_date": "2025-01-01"},
    )
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(snow_config(sandbox.url, "basic", "desk.integration"), encoding="utf-8")
    out = io.StringIO()
    status = report(load_settings(path, env=SNOW_ENV), timeout=5, out=out)

    lines = out.getvalue().splitlines()
    assert status == 0, out.getvalue()
    assert lines[-3:] == [
        f"      auth: basic  api: {sandbox.url}",
        "      warning: ServiceNow basic-auth restriction enforced since 2025-01-01 on this "
        "instance (basic auth refused to accounts without the snc_basic_auth_api_access role); "
        'move this connection to auth = "oauth_client_credentials" or "oauth_password"',
        "1 connection: all ok; 1 warning",
    ]
