"""Atlassian OAuth 2.0 (service account client credentials), the API gateway
``/ex/jira/{cloudId}`` with bearer and scoped tokens, and expiring API tokens, over loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jira import JIRA

from anomaly_desk.sandbox.jira_data import CLOUD_ID, SERVICE_ACCOUNT
from tests.support import ThreadedServer

CLIENT = {"client_id": "desk-client", "client_secret": "desk-secret"}
GATEWAY = f"/ex/jira/{CLOUD_ID}/rest/api/3"
SITE = "/rest/api/3"
UNAUTHENTICATED = {
    "errorMessages": ["Client must be authenticated to access this resource."],
    "errors": {},
}
DQ_ISSUE = {
    "fields": {
        "project": {"key": "DQ"},
        "issuetype": {"name": "Task"},
        "summary": "Made by the service account",
    }
}
ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Looked at it"}]}],
}


@pytest.fixture
def http(sandbox: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        yield client


def token_response(http: httpx.Client, **overrides: str) -> httpx.Response:
    return http.post(
        "/oauth/token", json={"grant_type": "client_credentials", **CLIENT, **overrides}
    )


def service_token(http: httpx.Client) -> str:
    response = token_response(http)
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def control(http: httpx.Client, **settings: Any) -> None:
    http.post("/_sandbox/auth", json=settings).raise_for_status()


# -- auth.atlassian.com and the edge ------------------------------------------------------


def test_client_credentials_give_an_hour_long_bearer_token(http: httpx.Client) -> None:
    response = token_response(http)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert (body["expires_in"], body["token_type"]) == (3600, "Bearer")
    assert "write:jira-work" in body["scope"].split()
    form = http.post("/oauth/token", data={"grant_type": "client_credentials", **CLIENT})
    assert form.status_code == 200
    assert form.json()["access_token"] != body["access_token"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": "desk-client"}, 401, "access_denied"),
        (
            {"grant_type": "client_credentials", **CLIENT, "client_secret": "x"},
            401,
            "access_denied",
        ),
        ({"grant_type": "client_credentials", **CLIENT, "client_id": "x"}, 401, "access_denied"),
        ({"grant_type": "password", **CLIENT}, 400, "unsupported_grant_type"),
        (CLIENT, 400, "invalid_request"),
    ],
)
def test_wrong_token_requests(
    http: httpx.Client, body: dict[str, str], status: int, error: str
) -> None:
    response = http.post("/oauth/token", json=body)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_tenant_info_names_the_cloud_id(http: httpx.Client) -> None:
    response = http.get("/_edge/tenant_info")
    assert response.status_code == 200
    cloud_id = response.json()["cloudId"]
    assert cloud_id == CLOUD_ID
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", cloud_id)


# -- the gateway ----------------------------------------------------------------------------


def test_the_service_account_works_in_dq_through_the_gateway(
    http: httpx.Client, sandbox: ThreadedServer
) -> None:
    headers = bearer(service_token(http))
    me = http.get(f"{GATEWAY}/myself", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["accountId"] == SERVICE_ACCOUNT
    assert me.json()["emailAddress"] == "desk-service@serviceaccount.atlassian.com"
    assert me.json()["accountType"] == "app"

    created = http.post(f"{GATEWAY}/issue", json=DQ_ISSUE, headers=headers)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    # links point at the site, not at the gateway
    assert created.json()["self"] == f"{sandbox.url}{SITE}/issue/{created.json()['id']}"
    issue = http.get(f"{GATEWAY}/issue/{key}", headers=headers).json()
    assert issue["fields"]["reporter"]["accountId"] == SERVICE_ACCOUNT
    assert issue["self"].startswith(f"{sandbox.url}{SITE}/")

    comment = http.post(f"{GATEWAY}/issue/{key}/comment", json={"body": ADF}, headers=headers)
    assert comment.status_code == 201
    assert comment.json()["author"]["accountId"] == SERVICE_ACCOUNT
    offered = http.get(f"{GATEWAY}/issue/{key}/transitions", headers=headers).json()
    start = next(t for t in offered["transitions"] if t["to"]["statusCategory"]["key"] != "new")
    moved = http.post(
        f"{GATEWAY}/issue/{key}/transitions",
        json={"transition": {"id": start["id"]}},
        headers=headers,
    )
    assert moved.status_code == 204, moved.text
    found = http.post(
        f"{GATEWAY}/search/jql",
        json={"jql": f"key = {key}", "fields": ["status", "reporter"]},
        headers=headers,
    ).json()
    assert [i["key"] for i in found["issues"]] == [key]

    # the same issue, seen from the site with a classic API token
    seen = http.get(f"{SITE}/issue/{key}", auth=("demo@example.com", "demo-token"))
    assert seen.json()["fields"]["comment"]["comments"][0]["author"]["accountId"] == (
        SERVICE_ACCOUNT
    )


def test_the_service_account_may_not_write_outside_dq(http: httpx.Client) -> None:
    headers = bearer(service_token(http))
    tm_issue = {"fields": {**DQ_ISSUE["fields"], "project": {"key": "TM"}}}
    refused = http.post(f"{GATEWAY}/issue", json=tm_issue, headers=headers)
    assert refused.status_code == 403
    made = http.post(f"{SITE}/issue", json=tm_issue, auth=("demo@example.com", "demo-token"))
    key = made.json()["key"]
    assert http.get(f"{GATEWAY}/issue/{key}", headers=headers).status_code == 200  # may read
    comment = http.post(f"{GATEWAY}/issue/{key}/comment", json={"body": ADF}, headers=headers)
    assert comment.status_code == 403
    offered = http.get(f"{GATEWAY}/issue/{key}/transitions", headers=headers).json()
    assert offered["transitions"] == []


def test_a_scoped_token_works_through_the_gateway_only(http: httpx.Client) -> None:
    scoped = ("demo@example.com", "demo-scoped-token")
    me = http.get(f"{GATEWAY}/myself", auth=scoped)
    assert me.status_code == 200
    assert me.json()["emailAddress"] == "demo@example.com"
    assert http.post(f"{GATEWAY}/issue", json=DQ_ISSUE, auth=scoped).status_code == 201
    site = http.get(f"{SITE}/myself", auth=scoped)
    assert (site.status_code, site.json()) == (401, UNAUTHENTICATED)


def test_the_site_refuses_bearer_tokens_and_the_gateway_classic_tokens(
    http: httpx.Client,
) -> None:
    site = http.get(f"{SITE}/myself", headers=bearer(service_token(http)))
    assert (site.status_code, site.json()) == (401, UNAUTHENTICATED)
    classic = http.get(f"{GATEWAY}/myself", auth=("demo@example.com", "demo-token"))
    assert classic.status_code == 401
    assert classic.json() == {"code": 401, "message": "Unauthorized"}
    for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic !!"}):
        response = http.get(f"{GATEWAY}/serverInfo", headers=headers)
        assert response.status_code == 401  # nothing on the gateway is anonymous
    assert http.get(f"{SITE}/serverInfo").status_code == 200  # the site serves it to anyone


def test_a_servicenow_token_is_no_jira_token(http: httpx.Client) -> None:
    sn = http.post("/oauth_token.do", data={"grant_type": "client_credentials", **CLIENT})
    response = http.get(f"{GATEWAY}/myself", headers=bearer(sn.json()["access_token"]))
    assert response.status_code == 401


def test_a_wrong_cloud_id_is_a_404(http: httpx.Client) -> None:
    headers = bearer(service_token(http))
    other = "00000000-0000-4000-8000-000000000000"
    response = http.get(f"/ex/jira/{other}/rest/api/3/myself", headers=headers)
    assert response.status_code == 404
    assert http.get(f"/ex/jira/{other}/rest/api/3/myself").status_code == 404


# -- expiry and revocation --------------------------------------------------------------------


def test_tokens_expire_when_told_and_new_ones_follow_the_lifetime_set(
    http: httpx.Client,
) -> None:
    value = service_token(http)
    control(http, expire_all=True, service="jira")
    expired = http.get(f"{GATEWAY}/myself", headers=bearer(value))
    assert (expired.status_code, expired.json()) == (401, {"code": 401, "message": "Unauthorized"})
    control(http, token_lifetime_s=5)
    response = token_response(http)
    assert response.json()["expires_in"] == 5
    assert http.get(f"{GATEWAY}/myself", headers=bearer(response.json()["access_token"])).is_success


def test_a_revoked_service_account_secret_gets_no_token(
    http: httpx.Client, sandbox: ThreadedServer
) -> None:
    value = service_token(http)
    control(http, revoke_client="desk-client", service="jira")
    refused = token_response(http)
    assert refused.status_code == 401
    assert refused.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    assert http.get(f"{GATEWAY}/myself", headers=bearer(value)).status_code == 200
    assert sandbox.app.state.auth.requests("jira", "desk-client", "client_credentials") == 2  # type: ignore[attr-defined]


def test_expired_api_tokens_answer_api_token_expired(http: httpx.Client) -> None:
    control(http, expired_api_tokens=["demo-token", "demo-scoped-token"])
    site = http.get(f"{SITE}/myself", auth=("demo@example.com", "demo-token"))
    assert site.status_code == 401
    assert "API token expired" in site.text
    assert site.json()["errorMessages"][0].startswith("API token expired")
    gateway = http.get(f"{GATEWAY}/myself", auth=("demo@example.com", "demo-scoped-token"))
    assert gateway.status_code == 401
    assert "API token expired" in gateway.text
    # other people's tokens are fine; a wrong token is still just unauthenticated
    assert http.get(f"{SITE}/myself", auth=("alice@example.com", "alice-token")).status_code == 200
    wrong = http.get(f"{SITE}/myself", auth=("demo@example.com", "other"))
    assert wrong.json() == UNAUTHENTICATED
    control(http, expired_api_tokens=[])
    assert http.get(f"{SITE}/myself", auth=("demo@example.com", "demo-token")).status_code == 200


def test_faults_can_target_the_gateway(http: httpx.Client) -> None:
    headers = bearer(service_token(http))
    http.post(
        "/_sandbox/faults", json={"force_status": 503, "force_count": 1, "path_prefix": "/ex/jira"}
    ).raise_for_status()
    assert http.get(f"{SITE}/myself", auth=("demo@example.com", "demo-token")).status_code == 200
    failed = http.get(f"{GATEWAY}/myself", headers=headers)
    assert failed.status_code == 503
    assert "errorMessages" in failed.json()
    assert http.get(f"{GATEWAY}/myself", headers=headers).status_code == 200


# -- a third-party client: the jira library with a bearer token on the gateway ---------------


def test_the_jira_library_works_through_the_gateway_with_a_bearer_token(
    http: httpx.Client, sandbox: ThreadedServer
) -> None:
    value = service_token(http)
    jira = JIRA(
        server=f"{sandbox.url}/ex/jira/{CLOUD_ID}",
        token_auth=value,
        options={"rest_api_version": "3"},
    )
    try:
        assert jira.myself()["accountId"] == SERVICE_ACCOUNT
        issue = jira.create_issue(fields=DQ_ISSUE["fields"])
        assert issue.key.startswith("DQ-")
        jira.add_comment(issue.key, ADF)
        assert [c.raw["body"] for c in jira.comments(issue.key)] == [ADF]
    finally:
        jira.close()
