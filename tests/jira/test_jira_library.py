"""A well-known third-party client, the PyPI ``jira`` library, talks to the emulator unchanged."""

from __future__ import annotations

import pytest
from jira import JIRA, JIRAError

from anomaly_desk.core.formatting.adf import adf_to_text, text_to_adf
from anomaly_desk.sandbox.adf import adf_errors
from tests.jira.conftest import EMAIL, TOKEN
from tests.support import ThreadedServer


@pytest.fixture
def jira(sandbox: ThreadedServer) -> JIRA:
    # The constructor reads /rest/api/3/serverInfo; enhanced search reads /field first.
    return JIRA(server=sandbox.url, basic_auth=(EMAIL, TOKEN), options={"rest_api_version": "3"})


def test_jira_library_creates_comments_reads_and_finds(jira: JIRA) -> None:
    assert jira.deploymentType == "Cloud"
    description = text_to_adf("Créé par la bibliothèque jira\nligne deux")
    issue = jira.create_issue(
        fields={
            "project": {"key": "DQ"},
            "issuetype": {"name": "Bug"},
            "summary": "Library-made issue ✓",
            "description": description,
            "priority": {"name": "High"},
            "labels": ["from-library"],
        }
    )
    assert issue.key.startswith("DQ-")
    assert issue.fields.status.name == "To Do"
    assert issue.fields.priority.name == "High"

    body = text_to_adf("Commentaire ADF depuis la bibliothèque 🚀")
    assert adf_errors(body) == []
    comment = jira.add_comment(issue.key, body)
    assert comment.id

    again = jira.issue(issue.key)
    assert again.raw["fields"]["description"] == description
    assert again.fields.summary == "Library-made issue ✓"
    assert [c.raw["body"] for c in jira.comments(issue.key)] == [body]
    assert adf_to_text(jira.comment(issue.key, comment.id).raw["body"]).startswith("Commentaire")

    found = jira.enhanced_search_issues('project = DQ AND summary ~ "library*"')
    assert [i.key for i in found] == [issue.key]
    assert found[0].fields.summary == "Library-made issue ✓"
    by_label = jira.enhanced_search_issues('labels = "from-library"', fields="summary")
    assert [i.key for i in by_label] == [issue.key]
    assert jira.myself()["emailAddress"] == EMAIL


def test_jira_library_sees_jiras_errors(jira: JIRA) -> None:
    with pytest.raises(JIRAError) as caught:
        jira.create_issue(
            fields={
                "project": {"key": "DQ"},
                "issuetype": {"name": "Task"},
                "summary": "plain description",
                "description": "not ADF",
            }
        )
    assert caught.value.status_code == 400
    assert "Atlassian Document" in caught.value.text
    with pytest.raises(JIRAError) as missing:
        jira.issue("DQ-404")
    assert missing.value.status_code == 404


def test_jira_library_sets_custom_fields_and_watchers(jira: JIRA) -> None:
    """The library passes custom field values through; the emulator judges and keeps them."""
    issue = jira.create_issue(
        fields={
            "project": {"key": "FIN"},
            "issuetype": {"name": "Task"},
            "summary": "Library-made finance issue",
            "customfield_10050": {"value": "EMEA"},
            "customfield_10054": {"value": "Data", "child": {"value": "Platform"}},
            "customfield_10056": 12.5,
        }
    )
    again = jira.issue(issue.key)
    assert again.raw["fields"]["customfield_10050"]["value"] == "EMEA"
    assert again.raw["fields"]["customfield_10054"]["child"]["value"] == "Platform"
    assert again.raw["fields"]["customfield_10056"] == 12.5
    jira.add_watcher(issue.key, "Dana Whitfield")  # found through /user/search
    names = [w.displayName for w in jira.watchers(issue.key).watchers]
    assert names == ["Demo User", "Dana Whitfield"]
    with pytest.raises(JIRAError) as caught:
        jira.create_issue(
            fields={"project": {"key": "FIN"}, "issuetype": {"name": "Task"}, "summary": "x"}
        )
    assert caught.value.status_code == 400
    assert "Region is required." in str(caught.value.text)
