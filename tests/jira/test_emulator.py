"""What the Jira emulator answers on the wire: envelopes, ADF rules, JQL, pagination, 410s."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from anomaly_desk.core.formatting.adf import text_to_adf
from tests.support import ThreadedServer

JIRA_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def _create(http: httpx.Client, summary: str, **fields: Any) -> dict[str, Any]:
    body = {
        "fields": {
            "project": {"key": "DQ"},
            "issuetype": {"name": "Task"},
            "summary": summary,
            **fields,
        }
    }
    response = http.post("/rest/api/3/issue", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _keys(http: httpx.Client, jql: str, **params: Any) -> list[str]:
    response = http.get(
        "/rest/api/3/search/jql", params={"jql": jql, "fields": "summary", **params}
    )
    assert response.status_code == 200, response.text
    return [issue["key"] for issue in response.json()["issues"]]


def test_unauthenticated_requests_get_jiras_401(sandbox: ThreadedServer) -> None:
    for auth in (None, ("demo@example.com", "wrong"), ("someone@example.com", "demo-token")):
        response = httpx.get(f"{sandbox.url}/rest/api/3/myself", auth=auth)
        assert response.status_code == 401
        assert response.json() == {
            "errorMessages": ["Client must be authenticated to access this resource."],
            "errors": {},
        }


def test_server_info_is_cloud_under_v2_and_v3(sandbox: ThreadedServer) -> None:
    for version in (2, 3):
        info = httpx.get(f"{sandbox.url}/rest/api/{version}/serverInfo").json()
        assert info["deploymentType"] == "Cloud"
        assert info["baseUrl"] == sandbox.url
        assert JIRA_TIME.match(info["serverTime"])


@pytest.mark.parametrize("path", ["/rest/api/2/search", "/rest/api/3/search"])
def test_removed_search_endpoints_are_gone(http: httpx.Client, path: str) -> None:
    response = http.get(path, params={"jql": "project = DQ"})
    assert response.status_code == 410
    assert "/rest/api/3/search/jql" in response.json()["errorMessages"][0]


def test_created_issue_reads_back_like_jira(http: httpx.Client, sandbox: ThreadedServer) -> None:
    description = text_to_adf("Première ligne\nseconde")
    created = _create(
        http,
        "Émoji 😀 summary",
        description=description,
        priority={"name": "Low"},
        labels=["a", "b"],
        assignee={"accountId": "5d5f8ab1c2e3f40c8a1b2c3d"},
    )
    assert created["self"] == f"{sandbox.url}/rest/api/3/issue/{created['id']}"
    issue = http.get(f"/rest/api/3/issue/{created['key']}").json()
    fields = issue["fields"]
    assert issue["key"] == created["key"]
    assert issue["id"] == created["id"]
    assert fields["summary"] == "Émoji 😀 summary"
    assert fields["description"] == description
    assert fields["priority"]["name"] == "Low"
    assert fields["labels"] == ["a", "b"]
    assert fields["assignee"]["displayName"] == "Carol Nguyen"
    assert fields["reporter"]["emailAddress"] == "demo@example.com"
    assert fields["status"]["name"] == "To Do"
    assert fields["status"]["statusCategory"] == {
        "self": f"{sandbox.url}/rest/api/3/statuscategory/2",
        "id": 2,
        "key": "new",
        "colorName": "blue-gray",
        "name": "To Do",
    }
    assert fields["project"]["key"] == "DQ"
    assert fields["issuetype"]["name"] == "Task"
    assert JIRA_TIME.match(fields["created"])
    assert JIRA_TIME.match(fields["updated"])
    # ``fields`` narrows the answer, as on Jira
    narrow = http.get(f"/rest/api/3/issue/{created['id']}", params={"fields": "summary"}).json()
    assert set(narrow["fields"]) == {"summary"}


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"summary": ""}, {"summary": "You must specify a summary of the issue."}),
        (
            {"summary": "two\nlines"},
            {"summary": "The summary is invalid because it contains newline characters."},
        ),
        ({"summary": "x" * 256}, {"summary": "Summary must be less than 255 characters."}),
        ({"project": None}, {"project": "Specify a valid project ID or key"}),
        ({"issuetype": None}, {"issuetype": "Specify an issue type"}),
        ({"priority": {"name": "Urgent"}}, {"priority": "Priority name 'Urgent' is not valid"}),
        (
            {"description": "a plain string"},
            {
                "description": "Operation value must be an Atlassian Document "
                "(see the Atlassian Document Format)"
            },
        ),
        (
            {
                "description": {
                    "version": 1,
                    "type": "doc",
                    "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}],
                }
            },
            {
                "description": "Operation value must be an Atlassian Document "
                "(see the Atlassian Document Format)"
            },
        ),
        (
            {"description": text_to_adf("x" * 33_000)},
            {
                "description": "The entered text is too long. "
                "It exceeds the allowed limit of 32,767 characters."
            },
        ),
        (
            {"labels": ["two words"]},
            {"labels": "The label 'two words' contains spaces which is invalid."},
        ),
        ({"assignee": {"accountId": "nobody"}}, {"assignee": "Specify a valid value for assignee"}),
        (
            {"customfield_10099": "x"},
            {
                "customfield_10099": "Field 'customfield_10099' cannot be set. "
                "It is not on the appropriate screen, or unknown."
            },
        ),
    ],
)
def test_create_refuses_what_jira_refuses(
    http: httpx.Client, fields: dict[str, Any], errors: dict[str, str]
) -> None:
    body = {
        "project": {"key": "DQ"},
        "issuetype": {"name": "Task"},
        "summary": "ok",
        **fields,
    }
    response = http.post("/rest/api/3/issue", json={"fields": body})
    assert response.status_code == 400
    assert response.json() == {"errorMessages": [], "errors": errors}


def test_comments_must_be_non_empty_adf(http: httpx.Client) -> None:
    key = _create(http, "commented")["key"]
    url = f"/rest/api/3/issue/{key}/comment"
    assert http.post(url, json={"body": "plain"}).json()["errors"] == {
        "comment": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    }
    empty = http.post(url, json={"body": text_to_adf("")})
    assert empty.status_code == 400
    assert empty.json()["errors"] == {"comment": "Comment body can not be empty!"}

    added = http.post(url, json={"body": text_to_adf("Bonjour ✓")})
    assert added.status_code == 201
    comment = added.json()
    assert comment["author"]["emailAddress"] == "demo@example.com"
    assert JIRA_TIME.match(comment["created"])
    listed = http.get(url).json()
    assert listed["total"] == 1
    assert listed["comments"][0]["body"] == text_to_adf("Bonjour ✓")
    assert http.get(f"{url}/{comment['id']}").json()["id"] == comment["id"]
    assert http.post(
        "/rest/api/3/issue/DQ-999/comment", json={"body": text_to_adf("x")}
    ).json() == {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."],
        "errors": {},
    }


def test_jql_clauses_the_clients_send(http: httpx.Client) -> None:
    one = _create(http, "Null emails in orders", labels=["anomaly-1", "anomaly-desk"])["key"]
    two = _create(http, "Orders volume drop", labels=["anomaly-2"], priority={"name": "High"})[
        "key"
    ]
    three = _create(
        http, "Customers duplicate", description=text_to_adf("affects the orders table")
    )["key"]

    assert _keys(http, f"key = {one}") == [one]
    assert _keys(http, f"issuekey in ({one}, {three}) ORDER BY key ASC") == [one, three]
    assert _keys(http, 'summary ~ "order*" ORDER BY created ASC') == [one, two]
    assert _keys(http, 'summary ~ "orders" AND summary ~ "null"') == [one]
    assert _keys(http, 'text ~ "orders" ORDER BY key DESC') == [three, two, one]
    assert _keys(http, 'labels = "anomaly-1"') == [one]
    assert _keys(http, "labels in (anomaly-1, anomaly-2) ORDER BY key") == [one, two]
    assert _keys(http, 'project = "Data Quality" AND priority = High') == [two]
    assert _keys(http, f'(summary ~ "customers*" OR labels = anomaly-2) AND NOT key = {two}') == [
        three
    ]
    assert _keys(http, 'summary ~ "say \\"hi\\""') == []  # escaped quotes parse
    assert _keys(http, "project = DQ AND labels is EMPTY") == [three]


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("ORDER BY created DESC", "Unbounded JQL queries are not allowed here."),
        ("key = DQ-999", "An issue with key 'DQ-999' does not exist for field 'key'."),
        ("key = ABC-1", "The issue key 'ABC-1' for field 'key' is invalid."),
        ("colour = red", "Field 'colour' does not exist or you do not have permission to view it."),
        ("summary = x", "The operator '=' is not supported by the 'summary' field."),
        ("project = DQ AND (", "Error in the JQL Query"),
    ],
)
def test_jql_errors_are_jiras_400s(http: httpx.Client, jql: str, message: str) -> None:
    _create(http, "present")
    response = http.get("/rest/api/3/search/jql", params={"jql": jql})
    assert response.status_code == 400
    assert message in response.json()["errorMessages"][0]


def test_search_pages_with_next_page_tokens_on_get_and_post(http: httpx.Client) -> None:
    keys = [_create(http, f"paged {n}")["key"] for n in range(5)]
    jql = "project = DQ ORDER BY key ASC"

    first = http.get("/rest/api/3/search/jql", params={"jql": jql, "maxResults": 2}).json()
    assert first["isLast"] is False
    assert len(first["issues"]) == 2
    assert first["issues"] == [
        {"id": issue["id"]} for issue in first["issues"]
    ]  # ids only unless fields are asked for, as the enhanced search does
    seen = [http.get(f"/rest/api/3/issue/{i['id']}").json()["key"] for i in first["issues"]]
    token = first["nextPageToken"]
    while token:
        page = http.post(
            "/rest/api/3/search/jql",
            json={"jql": jql, "maxResults": 2, "nextPageToken": token, "fields": ["summary"]},
        ).json()
        seen += [i["key"] for i in page["issues"]]
        assert all(set(i["fields"]) == {"summary"} for i in page["issues"])
        token = page.get("nextPageToken")
        assert page["isLast"] is (token is None)
    assert seen == keys

    stale = http.get("/rest/api/3/search/jql", params={"jql": jql, "nextPageToken": "bogus"})
    assert stale.status_code == 400


def test_createmeta_priorities_and_users(http: httpx.Client) -> None:
    types = http.get("/rest/api/3/issue/createmeta/DQ/issuetypes").json()
    assert [t["name"] for t in types["issueTypes"]] == ["Task", "Bug", "Story"]
    task = types["issueTypes"][0]["id"]
    fields = http.get(f"/rest/api/3/issue/createmeta/DQ/issuetypes/{task}").json()["fields"]
    priority = next(f for f in fields if f["fieldId"] == "priority")
    assert [p["name"] for p in priority["allowedValues"]] == [
        "Highest",
        "High",
        "Medium",
        "Low",
        "Lowest",
    ]
    assert http.get("/rest/api/3/issue/createmeta/NOPE/issuetypes").status_code == 404
    assert next(p["name"] for p in http.get("/rest/api/3/priority").json()) == "Highest"
    found = http.get("/rest/api/3/user/search", params={"query": "ali"}).json()
    assert [u["emailAddress"] for u in found] == ["alice@example.com"]
    assignable = http.get("/rest/api/3/user/assignable/search", params={"project": "DQ"}).json()
    assert "demo@example.com" in [u["emailAddress"] for u in assignable]
    assert http.get("/rest/api/3/user/assignable/search").status_code == 400
