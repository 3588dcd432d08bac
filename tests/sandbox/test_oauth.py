"""ServiceNow OAuth in the sandbox (``/oauth_token.do``, bearer tokens on the Table API), the
Basic-auth restriction, and the ``/_sandbox/auth`` control route, over loopback HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pysnc
import pytest

from anomaly_desk.sandbox.app import create_app
from anomaly_desk.sandbox.faults import Faults
from anomaly_desk.sandbox.oauth import AuthState
from anomaly_desk.sandbox.server import banner, make_tls
from anomaly_desk.sandbox.servicenow import seed_id
from tests.support import ThreadedServer

TOKEN = "/oauth_token.do"
INCIDENTS = "/api/now/table/incident"
PROPERTIES = "/api/now/table/sys_properties"
CLIENT = {"client_id": "desk-client", "client_secret": "desk-secret"}
NOT_AUTHENTICATED = {
    "error": {
        "message": "User Not Authenticated",
        "detail": "Required to provide Auth information",
    },
    "status": "failure",
}
DENIED = {"error_description": "access_denied", "error": "server_error"}
RESTRICTION = "glide.authenticate.basic_auth.restriction"


@pytest.fixture
def http(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    """An anonymous client on the sandbox: each request brings its own credentials."""
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        yield client


def auth_state(sandbox: ThreadedServer) -> AuthState:
    state: AuthState = sandbox.app.state.auth  # type: ignore[attr-defined]
    return state


def token(http: httpx.Client, **form: str) -> httpx.Response:
    return http.post(TOKEN, data=form)


def access(http: httpx.Client, **form: str) -> str:
    response = token(http, **{"grant_type": "client_credentials", **CLIENT, **form})
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def control(http: httpx.Client, **settings: Any) -> dict[str, Any]:
    response = http.post("/_sandbox/auth", json=settings)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def create(http: httpx.Client, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return http.post(INCIDENTS, json={"short_description": "OAuth test"}, headers=headers, **kw)


# -- the token endpoint --------------------------------------------------------------------


def test_client_credentials_give_a_bearer_token_acting_as_admin(http: httpx.Client) -> None:
    response = token(http, grant_type="client_credentials", **CLIENT)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh token
    assert (body["token_type"], body["expires_in"], body["scope"]) == (
        "Bearer",
        1800,
        "useraccount",
    )

    created = create(http, bearer(body["access_token"]))
    assert created.status_code == 201, created.text
    row = created.json()["result"]
    assert row["sys_created_by"] == "admin"
    assert row["opened_by"]["value"] == seed_id("sys_user", "admin")
    listed = http.get(INCIDENTS, headers=bearer(body["access_token"]))
    assert [r["sys_id"] for r in listed.json()["result"]] == [row["sys_id"]]
    member = http.get(f"{INCIDENTS}/{row['sys_id']}", headers=bearer(body["access_token"]))
    assert member.status_code == 200


def test_the_password_grant_acts_as_the_user_and_refresh_tokens_rotate(
    http: httpx.Client,
) -> None:
    first = token(http, grant_type="password", username="bob.martin", password="demo", **CLIENT)
    assert first.status_code == 200, first.text
    issued = first.json()
    assert set(issued) == {"access_token", "refresh_token", "token_type", "expires_in", "scope"}
    row = create(http, bearer(issued["access_token"])).json()["result"]
    assert row["sys_created_by"] == "bob.martin"
    # bob is itil: he may not delete, whichever way he logs in
    gone = http.delete(f"{INCIDENTS}/{row['sys_id']}", headers=bearer(issued["access_token"]))
    assert gone.status_code == 403

    again = token(http, grant_type="refresh_token", refresh_token=issued["refresh_token"], **CLIENT)
    assert again.status_code == 200, again.text
    renewed = again.json()
    assert renewed["access_token"] != issued["access_token"]
    assert renewed["refresh_token"] != issued["refresh_token"]
    note = {"work_notes": "via a refreshed token"}
    patched = http.patch(
        f"{INCIDENTS}/{row['sys_id']}", json=note, headers=bearer(renewed["access_token"])
    )
    assert patched.json()["result"]["sys_updated_by"] == "bob.martin"

    # the used refresh token is spent; the new one works once more
    reused = token(
        http, grant_type="refresh_token", refresh_token=issued["refresh_token"], **CLIENT
    )
    assert (reused.status_code, reused.json()) == (401, DENIED)
    chained = token(
        http, grant_type="refresh_token", refresh_token=renewed["refresh_token"], **CLIENT
    )
    assert chained.status_code == 200


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "client_credentials", "client_id": "desk-client", "client_secret": "nope"},
        {"grant_type": "client_credentials", "client_id": "other", "client_secret": "desk-secret"},
        {"grant_type": "client_credentials"},
        {"grant_type": "password", "username": "bob.martin", "password": "wrong", **CLIENT},
        {"grant_type": "password", "username": "nobody", "password": "demo", **CLIENT},
        {"grant_type": "refresh_token", "refresh_token": "never-issued", **CLIENT},
    ],
)
def test_wrong_clients_credentials_and_refresh_tokens_are_access_denied(
    http: httpx.Client, form: dict[str, str]
) -> None:
    response = token(http, **form)
    assert response.status_code == 401
    assert response.json() == DENIED


def test_the_client_may_authenticate_with_http_basic(http: httpx.Client) -> None:
    """RFC 6749 2.3.1, as requests-oauthlib (and so pysnc's password flow) sends it."""
    response = http.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=("desk-client", "desk-secret")
    )
    assert response.status_code == 200, response.text
    wrong = http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=("desk-client", "x"))
    assert wrong.status_code == 401
    jira = http.post(
        "/oauth/token",
        json={"grant_type": "client_credentials"},
        auth=("desk-client", "desk-secret"),
    )
    assert jira.status_code == 200


def test_an_unknown_grant_type_is_a_400(http: httpx.Client) -> None:
    response = token(http, grant_type="authorization_code", **CLIENT)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert token(http, **CLIENT).status_code == 400


def test_a_refresh_token_belongs_to_its_client(http: httpx.Client, sandbox: ThreadedServer) -> None:
    issued = token(http, grant_type="password", username="admin", password="demo", **CLIENT).json()
    auth_state(sandbox).clients[("servicenow", "desk-client")].secret = "rotated"
    stale = token(http, grant_type="refresh_token", refresh_token=issued["refresh_token"], **CLIENT)
    assert stale.status_code == 401


# -- bearer tokens on the Table API ----------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-token", "Bearer", "Token abc", "Basic !!!", "Basic YWRtaW46d3Jvbmc="],
)
def test_unknown_tokens_and_bad_credentials_are_not_authenticated(
    http: httpx.Client, header: str
) -> None:
    response = http.get(INCIDENTS, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED


def test_a_jira_token_is_no_servicenow_token(http: httpx.Client) -> None:
    jira = http.post("/oauth/token", json={"grant_type": "client_credentials", **CLIENT})
    response = http.get(INCIDENTS, headers=bearer(jira.json()["access_token"]))
    assert response.status_code == 401


def test_tokens_expire_after_the_lifetime_set(http: httpx.Client) -> None:
    settings = control(http, token_lifetime_s=1)
    assert settings["token_lifetime_s"] == 1
    response = token(http, grant_type="client_credentials", **CLIENT)
    assert response.json()["expires_in"] == 1
    value = response.json()["access_token"]
    assert http.get(INCIDENTS, headers=bearer(value)).status_code == 200
    time.sleep(1.1)
    expired = http.get(INCIDENTS, headers=bearer(value))
    assert (expired.status_code, expired.json()) == (401, NOT_AUTHENTICATED)
    control(http, token_lifetime_s=None)
    assert token(http, grant_type="client_credentials", **CLIENT).json()["expires_in"] == 1800


def test_expire_all_ends_access_tokens_but_refresh_tokens_still_work(http: httpx.Client) -> None:
    issued = token(http, grant_type="password", username="admin", password="demo", **CLIENT).json()
    other = access(http)
    control(http, expire_all=True)
    for value in (issued["access_token"], other):
        assert http.get(INCIDENTS, headers=bearer(value)).status_code == 401
    renewed = token(
        http, grant_type="refresh_token", refresh_token=issued["refresh_token"], **CLIENT
    )
    assert renewed.status_code == 200
    assert http.get(INCIDENTS, headers=bearer(renewed.json()["access_token"])).status_code == 200

    control(http, expire_refresh_tokens=True)
    spent = token(
        http, grant_type="refresh_token", refresh_token=renewed.json()["refresh_token"], **CLIENT
    )
    assert spent.status_code == 401


def test_a_refresh_token_lifetime_can_be_short(http: httpx.Client) -> None:
    control(http, refresh_lifetime_s=0)
    issued = token(http, grant_type="password", username="admin", password="demo", **CLIENT).json()
    spent = token(http, grant_type="refresh_token", refresh_token=issued["refresh_token"], **CLIENT)
    assert spent.status_code == 401


def test_a_revoked_client_gets_no_tokens_until_restored(
    http: httpx.Client, sandbox: ThreadedServer
) -> None:
    value = access(http)
    settings = control(http, revoke_client="desk-client", service="servicenow")
    assert {"service": "servicenow", "client_id": "desk-client", "revoked": True} in settings[
        "clients"
    ]
    refused = token(http, grant_type="client_credentials", **CLIENT)
    assert (refused.status_code, refused.json()) == (401, DENIED)
    # only ServiceNow's client was revoked; Atlassian's of the same name still works
    jira = http.post("/oauth/token", json={"grant_type": "client_credentials", **CLIENT})
    assert jira.status_code == 200
    # a token issued before lives out its lifetime
    assert http.get(INCIDENTS, headers=bearer(value)).status_code == 200
    control(http, restore_client=["desk-client"])
    assert token(http, grant_type="client_credentials", **CLIENT).status_code == 200
    assert not auth_state(sandbox).clients[("servicenow", "desk-client")].revoked


def test_token_requests_are_counted_per_service_client_and_grant(
    http: httpx.Client, sandbox: ThreadedServer
) -> None:
    for _ in range(3):
        access(http)
    issued = token(http, grant_type="password", username="admin", password="demo", **CLIENT).json()
    token(http, grant_type="refresh_token", refresh_token=issued["refresh_token"], **CLIENT)
    token(http, grant_type="client_credentials", client_id="desk-client", client_secret="x")
    http.post("/oauth/token", json={"grant_type": "client_credentials", **CLIENT})

    state = auth_state(sandbox)
    assert state.token_requests[("servicenow", "desk-client", "client_credentials")] == 4
    assert state.requests("servicenow", "desk-client", "refresh_token") == 1
    assert state.requests("servicenow", grant_type="password") == 1
    assert state.requests("servicenow") == 6
    assert state.requests("jira") == 1
    assert state.requests() == 7
    counted = http.get("/_sandbox/auth").json()["token_requests"]
    assert {
        "service": "servicenow",
        "client_id": "desk-client",
        "grant_type": "refresh_token",
        "count": 1,
    } in counted
    assert http.get("/_sandbox/auth").json()["live_access_tokens"] == {
        "jira": 1,
        "servicenow": 5,
    }


# -- the Basic-auth restriction --------------------------------------------------------------


def restriction_rows(http: httpx.Client, **auth: Any) -> dict[str, str]:
    response = http.get(
        PROPERTIES, params={"sysparm_query": f"nameSTARTSWITH{RESTRICTION}"}, **auth
    )
    assert response.status_code == 200, response.text
    return {row["name"]: row["value"] for row in response.json()["result"]}


def test_the_restriction_properties_are_readable_and_inactive_by_default(
    http: httpx.Client,
) -> None:
    assert restriction_rows(http, auth=("admin", "demo")) == {
        f"{RESTRICTION}.active": "false",
        f"{RESTRICTION}.enforce": "false",
        f"{RESTRICTION}.enforcement_date": "",
    }
    assert http.get("/_sandbox/auth").json()["basic_auth_restriction"] == {
        "active": "false",
        "enforce": "false",
        "enforcement_date": "",
    }
    roles = http.get(
        "/api/now/table/sys_user_has_role",
        params={"sysparm_query": "role.name=snc_basic_auth_api_access", "sysparm_fields": "user"},
        auth=("admin", "demo"),
    ).json()["result"]
    assert roles == [
        {
            "user": {
                "link": f"{http.base_url}/api/now/table/sys_user/"
                + seed_id("sys_user", "desk.integration"),
                "value": seed_id("sys_user", "desk.integration"),
            }
        }
    ]


def test_before_the_enforcement_date_basic_auth_still_works(http: httpx.Client) -> None:
    settings = control(
        http,
        basic_auth_restriction={
            "active": True,
            "enforce": True,
            "enforcement_date": "2999-01-01 00:00:00",
        },
    )
    assert settings["basic_auth_restriction"]["enforce"] == "true"
    rows = restriction_rows(http, auth=("admin", "demo"))  # what a pre-flight check would read
    assert rows[f"{RESTRICTION}.enforcement_date"] == "2999-01-01 00:00:00"
    assert create(http, auth=("admin", "demo")).status_code == 201


def test_enforced_restriction_refuses_basic_auth_without_the_role(http: httpx.Client) -> None:
    control(
        http,
        basic_auth_restriction={
            "active": True,
            "enforce": True,
            "enforcement_date": "2025-01-01 00:00:00",
        },
    )
    refused = create(http, auth=("admin", "demo"))
    assert (refused.status_code, refused.json()) == (401, NOT_AUTHENTICATED)
    assert http.get(INCIDENTS, auth=("bob.martin", "demo")).status_code == 401
    # the exempt integration user keeps Basic auth; bearer tokens keep working for everyone
    assert create(http, auth=("desk.integration", "demo")).status_code == 201
    admin = access(http)
    assert create(http, bearer(admin)).status_code == 201
    bob = token(
        http, grant_type="password", username="bob.martin", password="demo", **CLIENT
    ).json()["access_token"]
    assert http.get(INCIDENTS, headers=bearer(bob)).status_code == 200

    # an admin (by token) can exempt accounts: the role, or Web-Service-Access-Only
    granted = http.post(
        "/api/now/table/sys_user_has_role",
        json={
            "user": seed_id("sys_user", "bob.martin"),
            "role": seed_id("sys_user_role", "snc_basic_auth_api_access"),
            "state": "active",
        },
        headers=bearer(admin),
    )
    assert granted.status_code == 201, granted.text
    assert http.get(INCIDENTS, auth=("bob.martin", "demo")).status_code == 200
    viewer = seed_id("sys_user", "viewer")
    assert http.get(INCIDENTS, auth=("viewer", "demo")).status_code == 401
    http.patch(
        f"/api/now/table/sys_user/{viewer}",
        json={"web_service_access_only": "true"},
        headers=bearer(admin),
    ).raise_for_status()
    assert http.get(INCIDENTS, auth=("viewer", "demo")).status_code == 200

    # switched off again: Basic auth is back for admin
    control(http, basic_auth_restriction={"enforce": False})
    assert create(http, auth=("admin", "demo")).status_code == 201


def test_enforce_without_a_date_applies_at_once(http: httpx.Client) -> None:
    control(http, basic_auth_restriction={"enforce": True})
    assert http.get(INCIDENTS, auth=("admin", "demo")).status_code == 401
    assert http.get(INCIDENTS, auth=("desk.integration", "demo")).status_code == 200


def test_the_properties_can_also_be_set_through_the_table_api(http: httpx.Client) -> None:
    enforce = seed_id("sys_properties", f"{RESTRICTION}.enforce")
    changed = http.patch(f"{PROPERTIES}/{enforce}", json={"value": "true"}, auth=("admin", "demo"))
    assert changed.status_code == 200
    assert http.get(INCIDENTS, auth=("admin", "demo")).status_code == 401
    assert http.get("/_sandbox/auth").json()["basic_auth_restriction"]["enforce"] == "true"
    # an itil user may not change properties
    assert (
        http.patch(
            f"{PROPERTIES}/{enforce}", json={"value": "false"}, auth=("desk.integration", "demo")
        ).status_code
        == 403
    )


# -- the control route -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"lifetime": 5},
        {"token_lifetime_s": -1},
        {"token_lifetime_s": "5"},
        {"token_lifetime_s": True},
        {"revoke_client": 3},
        {"service": "github"},
        {"expire_all": "yes"},
        {"expired_api_tokens": "demo-token"},
        {"basic_auth_restriction": {"enforce": "true"}},
        {"basic_auth_restriction": {"enforcement_date": "tomorrow"}},
        {"basic_auth_restriction": {"mode": "strict"}},
        {"basic_auth_restriction": [True]},
    ],
)
def test_the_control_route_refuses_wrong_settings_and_changes_nothing(
    http: httpx.Client, settings: dict[str, Any]
) -> None:
    before = http.get("/_sandbox/auth").json()
    response = http.post("/_sandbox/auth", json={"token_lifetime_s": 7, **settings})
    assert response.status_code == 400
    assert "error" in response.json()
    assert http.get("/_sandbox/auth").json() == before


def test_reset_restores_the_seed(http: httpx.Client, sandbox: ThreadedServer) -> None:
    access(http)
    control(
        http,
        token_lifetime_s=5,
        revoke_client="desk-client",
        expired_api_tokens=["demo-token"],
        basic_auth_restriction={"enforce": True},
    )
    http.post("/_sandbox/reset").raise_for_status()
    settings = http.get("/_sandbox/auth").json()
    assert settings["token_lifetime_s"] is None
    assert not any(c["revoked"] for c in settings["clients"])
    assert settings["expired_api_tokens"] == []
    assert settings["token_requests"] == []
    assert settings["basic_auth_restriction"]["enforce"] == "false"
    assert auth_state(sandbox).access_tokens == {}


def test_faults_can_target_the_token_endpoint_alone(http: httpx.Client) -> None:
    http.post(
        "/_sandbox/faults", json={"force_status": 503, "force_count": 1, "path_prefix": TOKEN}
    ).raise_for_status()
    assert http.get(INCIDENTS, auth=("admin", "demo")).status_code == 200
    failed = token(http, grant_type="client_credentials", **CLIENT)
    assert failed.status_code == 503
    assert failed.json()["status"] == "failure"
    assert token(http, grant_type="client_credentials", **CLIENT).status_code == 200


def test_the_banner_names_the_oauth_clients_tokens_and_control_route() -> None:
    text = banner("http://127.0.0.1:8788", None, Faults())
    assert "http://127.0.0.1:8788/oauth_token.do" in text
    assert "http://127.0.0.1:8788/oauth/token" in text
    assert "desk-client" in text
    assert "desk-secret" in text
    assert "demo-scoped-token" in text
    assert "/ex/jira/3f9c2b7e-8d41-4a6b-9e25-7c1d0a4f5b83/rest/api/3" in text
    assert "/_edge/tenant_info" in text
    assert "/_sandbox/auth" in text
    assert "desk.integration" in text


# -- a third-party client: pysnc's OAuth flows (it insists on https) --------------------------


@pytest.fixture
def tls_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    # requests lets these variables override a session's ``verify``; pysnc sets it on the session
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    files = make_tls(tmp_path)
    app = create_app()
    with ThreadedServer(app, ssl_certfile=str(files.cert), ssl_keyfile=str(files.key)) as server:
        yield server.url, files.ca


def test_pysnc_client_credentials_flow(
    tls_sandbox: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca = tls_sandbox
    # pysnc's client-credentials flow fetches its token with plain ``requests.post``
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    flow = pysnc.ServiceNowClientCredentialsFlow("desk-client", "desk-secret")
    client = pysnc.ServiceNowClient(url, flow, verify=str(ca))
    try:
        gr = client.GlideRecord("incident")
        gr.initialize()
        gr.short_description = "pysnc over OAuth"
        sys_id = str(gr.insert())
        found = client.GlideRecord("incident")
        assert found.get(sys_id)
        assert found.get_value("sys_created_by") == "admin"
    finally:
        client.session.close()


def test_pysnc_password_grant_flow(tls_sandbox: tuple[str, Path]) -> None:
    url, ca = tls_sandbox
    flow = pysnc.ServiceNowPasswordGrantFlow("bob.martin", "demo", "desk-client", "desk-secret")
    client = pysnc.ServiceNowClient(url, flow, verify=str(ca))
    try:
        gr = client.GlideRecord("incident")
        gr.initialize()
        gr.short_description = "pysnc, password grant"
        sys_id = str(gr.insert())
        found = client.GlideRecord("incident")
        assert found.get(sys_id)
        assert found.get_value("sys_created_by") == "bob.martin"
    finally:
        client.session.close()
