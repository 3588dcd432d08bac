"""Jira auth modes: basic, scoped token and OAuth client credentials through the API gateway
(``{api_url}/ex/jira/{cloudId}``), the cloud id from ``/_edge/tenant_info``, the configuration's
checks, ``check``'s lines and warnings, and no secret anywhere; against the sandbox over
loopback, and on a mock transport where the sandbox cannot show it."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from anomaly_desk.check import report
from anomaly_desk.core.config import ConfigError, load_settings
from anomaly_desk.core.connections import JiraConnection, Platform
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.providers import AuthError, ProviderError, TicketRef, UnavailableError
from anomaly_desk.core.providers.auth_warnings import auth_warnings, failure_warning
from anomaly_desk.core.providers.jira import JiraClient
from anomaly_desk.core.providers.oauth import TokenError
from tests.jira.conftest import EMAIL, TOKEN, connection
from tests.support import ThreadedServer

CLIENT_ID, CLIENT_SECRET = "desk-client", "desk-secret"
SCOPED_TOKEN = "demo-scoped-token"
CLOUD_ID = "3f9c2b7e-8d41-4a6b-9e25-7c1d0a4f5b83"
SERVICE_EMAIL = "desk-service@serviceaccount.atlassian.com"
MODES = ("basic", "scoped_token", "oauth_client_credentials")


def mode_connection(url: str, mode: str, **overrides: Any) -> JiraConnection:
    """A connection to the sandbox in ``mode``; the gateway and the token endpoint are the
    sandbox too (api.atlassian.com and auth.atlassian.com in real life)."""
    values: dict[str, object] = {"auth": mode, "api_url": url, "auth_url": url}
    if mode == "scoped_token":
        values["token"] = SecretStr(SCOPED_TOKEN)
    elif mode == "oauth_client_credentials":
        values.update(
            email=SERVICE_EMAIL,
            token=None,
            client_id=CLIENT_ID,
            client_secret=SecretStr(CLIENT_SECRET),
        )
    values.update(overrides)
    return connection(url, **values)


def control(sandbox: ThreadedServer, **settings: object) -> None:
    answer = httpx.post(f"{sandbox.url}/_sandbox/auth", json=settings, timeout=5)
    assert answer.status_code == 200, answer.text


def token_requests(sandbox: ThreadedServer, grant: str = "client_credentials") -> int:
    return int(sandbox.app.state.auth.requests("jira", grant_type=grant))  # type: ignore[attr-defined]


@pytest.fixture
async def oauth_client(sandbox: ThreadedServer) -> AsyncIterator[JiraClient]:
    jira = JiraClient(mode_connection(sandbox.url, "oauth_client_credentials"), Platform())
    yield jira
    await jira.aclose()


# -- each mode creates a ticket and adds a note ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_each_mode_creates_a_ticket_and_adds_a_note(
    sandbox: ThreadedServer, anomaly: Anomaly, mode: str
) -> None:
    client = JiraClient(mode_connection(sandbox.url, mode), Platform())
    try:
        who = await client.check()
        ticket = await client.create_ticket(anomaly, {})
        await client.add_note(TicketRef(ticket.key, ticket.id), f"a note in {mode} mode")
        read = await client.get_ticket(ticket.key)
    finally:
        await client.aclose()

    assert who == (SERVICE_EMAIL if mode == "oauth_client_credentials" else EMAIL)
    assert ticket.key.startswith("DQ-")
    assert ticket.url == f"{sandbox.url}/browse/{ticket.key}"  # links go to the site
    assert read.key == ticket.key
    issue = sandbox.app.state.jira.find(ticket.key)  # type: ignore[attr-defined]
    assert [adf_text(c.body) for c in issue.comments][-1] == f"a note in {mode} mode"
    if mode == "basic":
        assert client.api_url == sandbox.url
        assert client.cloud_id is None
    else:
        assert client.cloud_id == CLOUD_ID  # from tenant_info
        assert client.api_url == f"{sandbox.url}/ex/jira/{CLOUD_ID}"


def adf_text(body: Any) -> str:
    from anomaly_desk.core.formatting.adf import adf_to_text

    return adf_to_text(body).strip()


async def test_a_configured_cloud_id_skips_tenant_info(sandbox: ThreadedServer) -> None:
    seen: list[str] = []

    async def log_request(request: httpx.Request) -> None:
        seen.append(request.url.path)

    conn = mode_connection(sandbox.url, "scoped_token", cloud_id=CLOUD_ID)
    client = JiraClient(conn, Platform())
    client._http.event_hooks["request"].append(log_request)
    try:
        await client.check()
    finally:
        await client.aclose()

    assert seen == [f"/ex/jira/{CLOUD_ID}/rest/api/3/myself"]


async def test_a_scoped_token_on_the_site_base_is_refused(sandbox: ThreadedServer) -> None:
    """Scoped tokens work only through the gateway: basic mode with one fails clearly."""
    client = JiraClient(connection(sandbox.url, token=SecretStr(SCOPED_TOKEN)), Platform())
    try:
        with pytest.raises(AuthError) as caught:
            await client.check()
    finally:
        await client.aclose()
    assert caught.value.status == 401


# -- OAuth tokens: expiry mid-run, bursts, revocation ------------------------------------------


async def test_a_token_expiring_mid_run_is_renewed_once(
    sandbox: ThreadedServer, oauth_client: JiraClient, anomaly: Anomaly
) -> None:
    # 3 s: renewed after 2.25 s, so a create slowed by a loaded machine still fits in one token
    control(sandbox, token_lifetime_s=3)
    ticket = await oauth_client.create_ticket(anomaly, {})
    assert token_requests(sandbox) == 1
    await asyncio.sleep(3.1)  # the token is gone on the service's side too
    await oauth_client.add_note(TicketRef(ticket.key, ticket.id), "after the token expired")
    await oauth_client.get_ticket(ticket.key)

    assert token_requests(sandbox) == 2


async def test_a_token_the_service_ended_early_is_replaced_on_the_401(
    sandbox: ThreadedServer, oauth_client: JiraClient, anomaly: Anomaly
) -> None:
    ticket = await oauth_client.create_ticket(anomaly, {})
    control(sandbox, expire_all=True)  # ends the issued token; ours thinks it has an hour
    await oauth_client.add_note(TicketRef(ticket.key, ticket.id), "after a 401")

    assert token_requests(sandbox) == 2
    issue = sandbox.app.state.jira.find(ticket.key)  # type: ignore[attr-defined]
    assert len(issue.comments) == 1  # the note went once


async def test_a_burst_of_20_requests_asks_for_one_token(
    sandbox: ThreadedServer, oauth_client: JiraClient, anomaly: Anomaly
) -> None:
    ticket = await oauth_client.create_ticket(anomaly, {})
    control(sandbox, expire_all=True)
    before = token_requests(sandbox)
    read = await asyncio.gather(*(oauth_client.get_ticket(ticket.key) for _ in range(20)))

    assert {t.key for t in read} == {ticket.key}
    assert before == 1
    assert token_requests(sandbox) == 2


async def test_a_burst_on_a_new_client_asks_for_one_token_and_one_cloud_id(
    sandbox: ThreadedServer, oauth_client: JiraClient
) -> None:
    await asyncio.gather(*(oauth_client.check() for _ in range(20)))
    assert token_requests(sandbox) == 1
    assert oauth_client.cloud_id == CLOUD_ID


async def test_a_revoked_client_secret_is_a_clear_auth_error(
    sandbox: ThreadedServer, oauth_client: JiraClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    control(sandbox, revoke_client=CLIENT_ID, service="jira")
    with pytest.raises(TokenError) as caught:
        await oauth_client.check()

    exc = caught.value
    assert isinstance(exc, AuthError)
    assert str(exc) == (
        f"jira: Atlassian token request to {sandbox.url}/oauth/token refused (client_credentials "
        f"grant, client {CLIENT_ID}): Unauthorized (access_denied) (HTTP 401)"
    )
    for text in (str(exc), repr(exc), repr(oauth_client), repr(oauth_client.conn), caplog.text):
        assert CLIENT_SECRET not in text
    warning = failure_warning("jira", exc)
    assert warning is not None
    assert warning.kind == "token_request_failed"


async def test_no_token_or_secret_in_logs_errors_or_reprs(
    sandbox: ThreadedServer, anomaly: Anomaly, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for mode in MODES:
        client = JiraClient(mode_connection(sandbox.url, mode), Platform())
        try:
            await client.create_ticket(anomaly, {})
            with pytest.raises(ProviderError) as caught:
                await client.get_ticket("DQ-99999")
            texts += [str(caught.value), repr(caught.value), repr(client), repr(client.conn)]
            texts.append(repr(client._http.auth))
        finally:
            await client.aclose()
    issued = list(sandbox.app.state.auth.access_tokens)  # type: ignore[attr-defined]
    assert issued
    for text in [*texts, caplog.text]:
        for secret in (TOKEN, SCOPED_TOKEN, CLIENT_SECRET, *issued):
            assert secret not in text, text


# -- expired API tokens and the warnings -------------------------------------------------------


@pytest.mark.parametrize(("mode", "token"), [("basic", TOKEN), ("scoped_token", SCOPED_TOKEN)])
async def test_an_expired_api_token_is_a_warning(
    sandbox: ThreadedServer, mode: str, token: str
) -> None:
    control(sandbox, expired_api_tokens=[token])
    conn = mode_connection(sandbox.url, mode)
    warnings = await auth_warnings([conn], Platform(), wait_s=5)

    assert [w.kind for w in warnings] == ["credential_expired"]
    assert warnings[0].connection == "jira"
    assert "the API token has expired" in warnings[0].message
    assert token not in warnings[0].message
    assert warnings[0].to_json()["kind"] == "credential_expired"


async def test_working_credentials_have_no_warnings(sandbox: ThreadedServer) -> None:
    conns = [mode_connection(sandbox.url, mode, name=mode) for mode in MODES]
    assert await auth_warnings(conns, Platform(), wait_s=5) == []


def jira_config(url: str, mode: str) -> str:
    lines = [
        "[[connections]]",
        'name = "jira"',
        'provider = "jira"',
        f'url = "{url}"',
        f'auth = "{mode}"',
        f'api_url = "{url}"',
        f'auth_url = "{url}"',
    ]
    if mode == "oauth_client_credentials":
        lines += [f'email = "{SERVICE_EMAIL}"', f'client_id = "{CLIENT_ID}"']
        lines.append('client_secret_env = "JIRA_CLIENT_SECRET"')
    else:
        lines += [f'email = "{EMAIL}"', 'token_env = "JIRA_TOKEN"']
    return "\n".join(lines) + "\n"


ENV = {"JIRA_TOKEN": SCOPED_TOKEN, "JIRA_CLIENT_SECRET": CLIENT_SECRET}


@pytest.mark.parametrize("mode", ["scoped_token", "oauth_client_credentials"])
def test_check_prints_the_mode_the_api_base_and_the_cloud_id(
    sandbox: ThreadedServer, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(jira_config(sandbox.url, mode), encoding="utf-8")
    out = io.StringIO()
    status = report(load_settings(path, env=ENV), timeout=5, out=out)

    lines = out.getvalue().splitlines()
    assert status == 0, out.getvalue()
    ok = next(i for i, line in enumerate(lines) if line.startswith("ok "))
    assert lines[ok + 1] == (
        f"      auth: {mode}  api: {sandbox.url}/ex/jira/{CLOUD_ID}  cloud id: {CLOUD_ID}"
    )
    assert lines[-1] == "1 connection: all ok"
    assert CLIENT_SECRET not in out.getvalue()


def test_check_warns_about_a_refused_token_request(sandbox: ThreadedServer, tmp_path: Path) -> None:
    control(sandbox, revoke_client=CLIENT_ID)
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(jira_config(sandbox.url, "oauth_client_credentials"), encoding="utf-8")
    out = io.StringIO()
    status = report(load_settings(path, env=ENV), timeout=5, out=out)

    text = out.getvalue()
    assert status == 1
    assert "FAIL  jira  (jira)  " in text
    assert (  # the cloud id is read anonymously, before the token is asked for
        f"      auth: oauth_client_credentials  api: {sandbox.url}/ex/jira/{CLOUD_ID}  "
        f"cloud id: {CLOUD_ID}\n"
    ) in text
    assert (
        "      warning: the OAuth token request was refused (Unauthorized (access_denied), "
        "HTTP 401): check client_id and the client secret (revoked or rotated?)\n"
    ) in text
    assert text.splitlines()[-1] == "1 connection: 0 ok, 1 failed (jira); 1 warning"
    assert CLIENT_SECRET not in text


def test_check_warns_about_an_expired_api_token(sandbox: ThreadedServer, tmp_path: Path) -> None:
    control(sandbox, expired_api_tokens=[TOKEN])
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(jira_config(sandbox.url, "basic"), encoding="utf-8")
    out = io.StringIO()
    report(load_settings(path, env={"JIRA_TOKEN": TOKEN}), timeout=5, out=out)

    text = out.getvalue()
    assert f"      auth: basic  api: {sandbox.url}\n" in text
    assert (
        "      warning: the API token has expired: create a new one at "
        "https://id.atlassian.com/manage-profile/security/api-tokens"
    ) in text
    assert TOKEN not in text.replace("API token", "")


# -- the cloud id, on a mock transport ---------------------------------------------------------

SITE = "https://acme.atlassian.net"


def mock_client(handler: Any, **overrides: Any) -> JiraClient:
    values: dict[str, object] = {
        "name": "jira",
        "url": SITE,
        "email": EMAIL,
        "auth": "scoped_token",
    }
    values["token"] = SecretStr(SCOPED_TOKEN)
    values.update(overrides)
    return JiraClient(JiraConnection(**values), transport=httpx.MockTransport(handler))


async def test_the_real_default_urls_are_atlassians() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/_edge/tenant_info":
            return httpx.Response(200, json={"cloudId": "abc-123"})
        return httpx.Response(200, json={"emailAddress": EMAIL})

    client = mock_client(handler)
    try:
        await client.check()
    finally:
        await client.aclose()

    assert [str(r.url) for r in seen] == [
        f"{SITE}/_edge/tenant_info",
        "https://api.atlassian.com/ex/jira/abc-123/rest/api/3/myself",
    ]
    assert "authorization" not in seen[0].headers  # tenant_info is asked anonymously
    assert seen[1].headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (httpx.Response(404, text="Not Found"), ProviderError, "no tenant info here"),
        (httpx.Response(200, json={}), ProviderError, "no cloudId in the answer"),
        (httpx.Response(503, text="down"), UnavailableError, "cannot read the cloud id"),
    ],
)
async def test_a_cloud_id_that_cannot_be_read_says_how_to_skip_it(
    answer: httpx.Response, kind: type[ProviderError], words: str
) -> None:
    client = mock_client(lambda request: answer)
    try:
        with pytest.raises(kind) as caught:
            await client.check()
    finally:
        await client.aclose()
    assert words in str(caught.value)
    assert f"{SITE}/_edge/tenant_info" in str(caught.value)
    if kind is ProviderError:
        assert "set cloud_id in the connection" in str(caught.value)
    assert client.cloud_id is None  # asked again next time


async def test_an_unreachable_site_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = mock_client(handler)
    try:
        with pytest.raises(UnavailableError, match="cannot read the cloud id"):
            await client.check()
    finally:
        await client.aclose()


async def test_repr_names_the_mode_and_no_secret() -> None:
    client = mock_client(lambda r: httpx.Response(200))
    try:
        assert repr(client) == (
            f"JiraClient(name='jira', url='{SITE}', email='{EMAIL}', auth='scoped_token')"
        )
    finally:
        await client.aclose()


# -- configuration ---------------------------------------------------------------------------

JIRA = """
[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> JiraConnection:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(text, encoding="utf-8")
    conn = load_settings(path, env=env or {}).connections[0]
    assert isinstance(conn, JiraConnection)
    return conn


def config_error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return str(caught.value)


def test_defaults_are_basic_and_atlassians_urls(tmp_path: Path) -> None:
    conn = load(tmp_path, JIRA + 'token_env = "T"\n', {"T": TOKEN})
    assert (conn.auth, conn.api_url, conn.auth_url, conn.cloud_id) == (
        "basic",
        "https://api.atlassian.com",
        "https://auth.atlassian.com",
        None,
    )


def test_scoped_token_needs_the_token(tmp_path: Path) -> None:
    message = config_error(tmp_path, JIRA + 'auth = "scoped_token"\n')
    assert (
        "connections[0] (jira): token_env: no token configured (auth = 'scoped_token'); name an "
        "environment variable with token_env"
    ) in message
    conn = load(tmp_path, JIRA + 'auth = "scoped_token"\ntoken_env = "T"\n', {"T": SCOPED_TOKEN})
    assert conn.token is not None
    assert conn.token.get_secret_value() == SCOPED_TOKEN


def test_scoped_token_needs_the_email(tmp_path: Path) -> None:
    text = JIRA.replace('email = "bot@acme.com"\n', "") + 'auth = "scoped_token"\n'
    assert "connections[0].email: Field required" in config_error(tmp_path, text)


def test_client_credentials_resolve_the_client_secret_not_the_token(tmp_path: Path) -> None:
    text = JIRA + (
        'auth = "oauth_client_credentials"\nclient_id = "desk-client"\n'
        'client_secret_env = "CS"\ncloud_id = "abc-123"\n'
    )
    conn = load(tmp_path, text, {"CS": CLIENT_SECRET})
    assert conn.client_secret is not None
    assert conn.client_secret.get_secret_value() == CLIENT_SECRET
    assert conn.token is None
    assert conn.cloud_id == "abc-123"
    assert CLIENT_SECRET not in repr(conn) + str(conn.model_dump())


def test_jira_takes_no_password_grant(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, JIRA + 'auth = "oauth_password"\nclient_id = "c"\nclient_secret_env = "CS"\n'
    )
    assert (
        "connections[0].auth: 'oauth_password' is not available for jira; it takes 'basic', "
        "'scoped_token', 'oauth_client_credentials'"
    ) in message


def test_an_unknown_mode_is_named(tmp_path: Path) -> None:
    message = config_error(tmp_path, JIRA + 'auth = "kerberos"\ntoken_env = "T"\n', {"T": "x"})
    assert "connections[0].auth: Input should be 'basic', 'scoped_token'" in message


def test_client_credentials_need_the_client_id(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, JIRA + 'auth = "oauth_client_credentials"\nclient_secret_env = "CS"\n'
    )
    assert "connections[0]: client_id: missing; auth = 'oauth_client_credentials' needs" in message


@pytest.mark.parametrize("key", ["api_url", "auth_url"])
def test_the_atlassian_urls_must_be_urls(tmp_path: Path, key: str) -> None:
    message = config_error(tmp_path, JIRA + f'token_env = "T"\n{key} = "api.atlassian.com"\n')
    assert f"connections[0].{key}: must start with https://" in message


def test_a_cloud_id_must_look_like_one(tmp_path: Path) -> None:
    message = config_error(tmp_path, JIRA + 'token_env = "T"\ncloud_id = "../x"\n', {"T": "x"})
    assert "connections[0].cloud_id: must be the site's cloud id" in message


def test_token_vault_is_an_accepted_field() -> None:
    conn = JiraConnection(
        name="j", url=SITE, email=EMAIL, auth="scoped_token", token_vault="secret/desk/jira#t"
    )
    assert conn.secret_fields() == ("token",)
