"""Comment properties: set with the comment, read back with ``expand=properties``.

The emulator side follows Jira's documented rules (a property key of at most 255 characters, a
value that is a JSON object of at most 32 KB; comment properties only in a comment read that asks
for ``expand=properties``). The client side: a note carries its job's nonce, and ``has_note``
goes by that nonce, not by the text.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from anomaly_desk.core.formatting.adf import text_to_adf
from anomaly_desk.core.providers.base import NoteTag, TicketRef
from anomaly_desk.core.providers.jira import NOTE_PROPERTY, JiraClient
from anomaly_desk.sandbox.jira import JiraEmulator
from tests.jira.conftest import connection, make_anomaly

NOTE = "Comment from Qualytics: rerun scheduled"
REF = TicketRef("DQ-1", "10000")


def _issue(http: httpx.Client) -> str:
    fields = {"project": {"key": "DQ"}, "issuetype": {"name": "Task"}, "summary": "props"}
    response = http.post("/rest/api/3/issue", json={"fields": fields})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _comment(http: httpx.Client, key: str, **extra: Any) -> httpx.Response:
    return http.post(
        f"/rest/api/3/issue/{key}/comment", json={"body": text_to_adf("hello"), **extra}
    )


# --------------------------------------------------------------------------- the emulator


def test_properties_set_at_create_come_back_only_when_expanded(http: httpx.Client) -> None:
    key = _issue(http)
    properties = [
        {"key": "anomaly-desk", "value": {"job": "abc"}},
        {"key": "sd.public.comment", "value": {"internal": True}},
    ]
    created = _comment(http, key, properties=properties)
    assert created.status_code == 201, created.text
    assert "properties" not in created.json()
    _comment(http, key)  # one without properties

    plain = http.get(f"/rest/api/3/issue/{key}/comment").json()["comments"]
    assert all("properties" not in c for c in plain)

    expanded = http.get(
        f"/rest/api/3/issue/{key}/comment", params={"expand": "renderedBody,properties"}
    ).json()["comments"]
    assert [c["properties"] for c in expanded] == [properties, []]

    one = http.get(
        f"/rest/api/3/issue/{key}/comment/{expanded[0]['id']}", params={"expand": "properties"}
    ).json()
    assert one["properties"] == properties
    echoed = _comment(http, key, properties=properties[:1])
    assert "properties" not in echoed.json()
    with_expand = http.post(
        f"/rest/api/3/issue/{key}/comment",
        params={"expand": "properties"},
        json={"body": text_to_adf("x"), "properties": properties[:1]},
    )
    assert with_expand.json()["properties"] == properties[:1]


def test_a_255_character_key_is_accepted(http: httpx.Client) -> None:
    key = _issue(http)
    response = _comment(http, key, properties=[{"key": "k" * 255, "value": {}}])
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("properties", "words"),
    [
        ({"key": "a", "value": {}}, "array"),
        (["anomaly-desk"], "array"),
        ([{"key": "a", "value": {}, "extra": 1}], "array"),
        ([{"value": {"job": "x"}}], "key"),
        ([{"key": "", "value": {"job": "x"}}], "key"),
        ([{"key": 7, "value": {"job": "x"}}], "key"),
        ([{"key": "k" * 256, "value": {"job": "x"}}], "255"),
        ([{"key": "a"}], "JSON object"),
        ([{"key": "a", "value": "x"}], "JSON object"),
        ([{"key": "a", "value": ["x"]}], "JSON object"),
        ([{"key": "a", "value": 1}], "JSON object"),
        ([{"key": "a", "value": {"big": "x" * 32768}}], "32768"),
    ],
)
def test_malformed_properties_are_jiras_400_and_nothing_is_stored(
    http: httpx.Client, emulator: JiraEmulator, properties: Any, words: str
) -> None:
    key = _issue(http)
    response = _comment(http, key, properties=properties)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"errorMessages", "errors"}
    assert body["errors"] == {}
    (message,) = body["errorMessages"]
    assert words in message
    issue = emulator.find(key)
    assert issue is not None
    assert issue.comments == []


# --------------------------------------------------------------------------- the client


async def test_has_note_goes_by_the_jobs_nonce_not_the_text(
    client: JiraClient, emulator: JiraEmulator
) -> None:
    ticket = await client.create_ticket(make_anomaly(), {"summary": "nonce"})
    first, second = NoteTag("job-1"), NoteTag("job-2")
    await client.add_note(ticket, NOTE, first)
    assert await client.has_note(ticket, NOTE, first) is True
    assert await client.has_note(ticket, NOTE, second) is False  # same text, not this job's
    await client.add_note(ticket, NOTE, second)
    assert await client.has_note(ticket, NOTE, second) is True

    stored = emulator.find(ticket.key)
    assert stored is not None
    assert [c.properties for c in stored.comments] == [
        {NOTE_PROPERTY: {"job": "job-1"}},
        {NOTE_PROPERTY: {"job": "job-2"}},
    ]


async def test_an_unmarked_identical_comment_is_not_this_jobs(client: JiraClient) -> None:
    """A person's comment, or one from before notes were marked: only a legacy job takes it."""
    ticket = await client.create_ticket(make_anomaly(), {"summary": "unmarked"})
    await client.add_note(ticket, NOTE)  # no tag: no property
    assert await client.has_note(ticket, NOTE, NoteTag("job-9")) is False
    legacy = NoteTag("job-9-abc", legacy=True)  # stored before jobs had a nonce
    assert await client.has_note(ticket, NOTE, legacy) is True
    assert await client.has_note(ticket, NOTE + " (other)", legacy) is False


def _recording_client(comments: list[dict[str, Any]], seen: list[httpx.Request]) -> JiraClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(201, json={"id": "1"})
        return httpx.Response(200, json={"startAt": 0, "total": 1, "comments": comments})

    return JiraClient(
        connection("https://acme.atlassian.net"), transport=httpx.MockTransport(handler)
    )


async def test_the_wire_format_of_a_marked_note_and_its_check() -> None:
    seen: list[httpx.Request] = []
    jira = _recording_client([], seen)
    tag = NoteTag("0f3c")
    await jira.add_note(REF, NOTE, tag)
    await jira.has_note(REF, NOTE, tag)
    await jira.aclose()
    post, get = seen
    assert json.loads(post.content)["properties"] == [
        {"key": "anomaly-desk", "value": {"job": "0f3c"}}
    ]
    assert get.url.params["expand"] == "properties"
    assert get.url.params["orderBy"] == "-created"
    assert get.url.params["maxResults"] == "100"


async def test_a_site_that_does_not_expand_properties_falls_back_to_the_text() -> None:
    """Never doubled rather than exactly twice, where Jira gives no properties back."""
    comment = {"id": "1", "body": text_to_adf(NOTE)}  # no "properties" key at all
    jira = _recording_client([comment], [])
    assert await jira.has_note(REF, NOTE, NoteTag("job-1")) is True
    assert await jira.has_note(REF, "something else", NoteTag("job-1")) is False
    await jira.aclose()


async def test_note_baseline_costs_no_request() -> None:
    seen: list[httpx.Request] = []
    jira = _recording_client([], seen)
    assert await jira.note_baseline(REF, NOTE) == 0
    await jira.aclose()
    assert seen == []
