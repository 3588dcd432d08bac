"""The ServiceNow emulator answers like a real instance's Table API, over loopback HTTP."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from anomaly_desk.sandbox.servicenow import seed_id
from tests.support import ThreadedServer

INCIDENTS = "/api/now/table/incident"
GROUP = seed_id("sys_user_group", "Data Platform")
ALICE = seed_id("sys_user", "alice.nguyen")


def create(sn: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = sn.post(INCIDENTS, json={"short_description": "Test", **fields})
    assert response.status_code == 201, response.text
    return response.json()["result"]


def numbers(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["number"] for row in response.json()["result"]]


def test_create_answers_201_with_location_strings_and_defaults(
    sn: httpx.Client, sandbox: ThreadedServer
) -> None:
    response = sn.post(INCIDENTS, json={"short_description": "Nulls", "urgency": 1, "impact": 2})
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    row = response.json()["result"]
    assert response.headers["Location"] == f"{sandbox.url}{INCIDENTS}/{row['sys_id']}"
    assert re.fullmatch(r"[0-9a-f]{32}", row["sys_id"])
    assert row["number"] == "INC0010001"
    for value in row.values():  # strings, or reference objects made of strings
        assert isinstance(value, str) or all(isinstance(v, str) for v in value.values())
    assert set(row["opened_by"]) == {"link", "value"}
    assert (row["state"], row["urgency"], row["impact"], row["priority"]) == ("1", "1", "2", "2")
    assert row["active"] == "true"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["sys_created_on"])
    assert row["sys_updated_on"] == row["sys_created_on"]
    assert create(sn)["number"] == "INC0010002"


def test_priority_is_derived_and_a_sent_priority_ignored(sn: httpx.Client) -> None:
    row = create(sn, priority="1")
    assert row["priority"] == "5"  # impact 3 x urgency 3, whatever was sent
    patched = sn.patch(f"{INCIDENTS}/{row['sys_id']}", json={"impact": "1", "urgency": "1"})
    assert patched.json()["result"]["priority"] == "1"


def test_reference_fields_in_every_display_mode(sn: httpx.Client, sandbox: ThreadedServer) -> None:
    row = create(sn, assignment_group=GROUP, assigned_to=ALICE, category="database")
    url = f"{INCIDENTS}/{row['sys_id']}"
    group_link = f"{sandbox.url}/api/now/table/sys_user_group/{GROUP}"
    raw = sn.get(url).json()["result"]
    assert raw["assignment_group"] == {"link": group_link, "value": GROUP}
    assert raw["caller_id"] == ""
    shown = sn.get(url, params={"sysparm_display_value": "true"}).json()["result"]
    assert shown["assignment_group"] == {"display_value": "Data Platform", "link": group_link}
    assert shown["category"] == "Database"
    assert shown["state"] == "New"
    both = sn.get(url, params={"sysparm_display_value": "all"}).json()["result"]
    assert both["assigned_to"] == {
        "display_value": "Alice Nguyen",
        "link": f"{sandbox.url}/api/now/table/sys_user/{ALICE}",
        "value": ALICE,
    }
    assert both["priority"] == {"display_value": "5 - Planning", "value": "5"}
    no_links = sn.get(
        url, params={"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"}
    ).json()["result"]
    assert no_links["assigned_to"] == {"display_value": "Alice Nguyen", "value": ALICE}
    plain = sn.get(url, params={"sysparm_exclude_reference_link": "true"}).json()["result"]
    assert plain["assigned_to"] == ALICE


def test_sysparm_fields_with_dot_walk(sn: httpx.Client) -> None:
    row = create(sn, assignment_group=GROUP)
    got = sn.get(
        f"{INCIDENTS}/{row['sys_id']}",
        params={"sysparm_fields": "number,assignment_group.name,nope"},
    ).json()["result"]
    assert got == {"number": row["number"], "assignment_group.name": "Data Platform"}


def test_journal_fields_append_rows_and_read_back_empty(sn: httpx.Client) -> None:
    row = create(sn, work_notes="first note", comments="visible comment")
    sn.patch(f"{INCIDENTS}/{row['sys_id']}", json={"work_notes": "second note"})
    assert row["work_notes"] == ""
    again = sn.get(f"{INCIDENTS}/{row['sys_id']}").json()["result"]
    assert again["work_notes"] == ""
    assert again["comments"] == ""
    assert again["state"] == "1"  # a note never moves the state
    journal = sn.get(
        "/api/now/table/sys_journal_field",
        params={"sysparm_query": f"element_id={row['sys_id']}^ORDERBYsys_created_on"},
    ).json()["result"]
    assert sorted((j["element"], j["value"]) for j in journal) == [
        ("comments", "visible comment"),
        ("work_notes", "first note"),
        ("work_notes", "second note"),
    ]
    assert {(j["name"], j["sys_created_by"]) for j in journal} == {("incident", "admin")}


def test_encoded_queries(sn: httpx.Client) -> None:
    a = create(sn, short_description="Orders null emails", category="database", urgency="1")
    b = create(sn, short_description="Stale orders feed", category="network")
    c = create(sn, short_description="Disk full", assigned_to=ALICE)

    def query(q: str, **params: str) -> list[str]:
        return numbers(sn.get(INCIDENTS, params={"sysparm_query": q, **params}))

    assert query("short_descriptionLIKEorders^ORDERBYnumber") == [a["number"], b["number"]]
    assert query("short_descriptionSTARTSWITHstale") == [b["number"]]
    assert query("category=database^ORcategory=network^ORDERBYDESCnumber") == [
        b["number"],
        a["number"],
    ]
    assert query("category!=database^ORDERBYnumber") == [b["number"], c["number"]]
    assert query(f"numberIN{a['number']},{c['number']}^ORDERBYnumber") == [a["number"], c["number"]]
    assert query("assigned_toISEMPTY^ORDERBYnumber") == [a["number"], b["number"]]
    assert query("assigned_toISNOTEMPTY") == [c["number"]]
    assert query("assigned_to.user_name=alice.nguyen") == [c["number"]]
    assert query("urgency=1^NQcategory=network^ORDERBYnumber") == [a["number"], b["number"]]
    assert query("category=database^urgency=3") == []
    assert query("no_such_field=1") == []  # an invalid condition returns no rows
    assert len(query("")) == 3


def test_pagination_headers(sn: httpx.Client, sandbox: ThreadedServer) -> None:
    for i in range(5):
        create(sn, short_description=f"row {i}")
    params = {"sysparm_limit": "2", "sysparm_offset": "2", "sysparm_query": "ORDERBYnumber"}
    response = sn.get(INCIDENTS, params=params)
    assert numbers(response) == ["INC0010003", "INC0010004"]
    assert response.headers["X-Total-Count"] == "5"
    links = dict(
        (rel, url) for url, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', response.headers["Link"])
    )
    assert set(links) == {"first", "prev", "next", "last"}
    assert "sysparm_offset=4" in links["next"]
    assert "sysparm_offset=0" in links["prev"]
    assert "sysparm_offset=4" in links["last"]
    assert links["first"].startswith(f"{sandbox.url}{INCIDENTS}?")
    following = sn.get(links["next"])
    assert numbers(following) == ["INC0010005"]
    assert "next" not in following.headers["Link"]
    suppressed = sn.get(INCIDENTS, params={"sysparm_suppress_pagination_header": "true"})
    assert "Link" not in suppressed.headers
    assert suppressed.headers["X-Total-Count"] == "5"


def test_put_patch_delete_and_404(sn: httpx.Client) -> None:
    row = create(sn)
    url = f"{INCIDENTS}/{row['sys_id']}"
    closed = {"state": "7", "close_code": "Solution provided", "close_notes": "Fixed upstream"}
    put = sn.put(url, json={"short_description": "Renamed", **closed})
    assert put.status_code == 200
    assert put.json()["result"]["short_description"] == "Renamed"
    assert put.json()["result"]["active"] == "false"
    assert put.json()["result"]["sys_mod_count"] == "1"
    assert sn.delete(url).status_code == 204
    for response in (sn.get(url), sn.patch(url, json={"state": "2"}), sn.delete(url)):
        assert response.status_code == 404
        assert response.json() == {
            "error": {
                "message": "No Record found",
                "detail": "Record doesn't exist or ACL restricts the record retrieval",
            },
            "status": "failure",
        }


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/api/now/table/incidnt", None, 400, "Invalid table incidnt"),
        ("POST", INCIDENTS, b"{not json", 400, "Exception while reading request"),
        ("POST", INCIDENTS, b"", 400, "Exception while reading request"),
        ("POST", INCIDENTS, b'{"description": "no summary"}', 403, "Operation Failed"),
        ("GET", "/api/now/v1/batch", None, 400, "Requested URI does not represent any resource"),
    ],
)
def test_errors_use_the_instance_envelope(
    sn: httpx.Client, method: str, path: str, body: bytes | None, status: int, message: str
) -> None:
    headers = {"Content-Type": "application/json"}
    response = sn.request(method, path, content=body, headers=headers)
    assert response.status_code == status
    payload = response.json()
    assert payload["status"] == "failure"
    assert payload["error"]["message"] == message
    assert set(payload["error"]) == {"message", "detail"}


def test_data_policy_names_the_mandatory_field(sn: httpx.Client) -> None:
    response = sn.post(INCIDENTS, json={"short_description": ""})
    assert (
        "The following fields are mandatory: Short description"
        in (response.json()["error"]["detail"])
    )


def test_basic_auth_is_required(sandbox: ThreadedServer) -> None:
    for auth in (None, ("admin", "wrong"), ("nobody", "demo")):
        response = httpx.get(f"{sandbox.url}{INCIDENTS}", auth=auth)
        assert response.status_code == 401
        assert response.json() == {
            "error": {
                "message": "User Not Authenticated",
                "detail": "Required to provide Auth information",
            },
            "status": "failure",
        }
        assert response.headers["WWW-Authenticate"].startswith("BASIC")


def test_viewer_reads_but_may_not_write(sandbox: ThreadedServer) -> None:
    with httpx.Client(base_url=sandbox.url, auth=("viewer", "demo")) as viewer:
        assert viewer.get(INCIDENTS).status_code == 200
        denied = viewer.post(INCIDENTS, json={"short_description": "x"})
    assert denied.status_code == 403
    assert denied.json()["error"]["detail"] == (
        "ACL Exception Insert Failed due to security constraints"
    )


def test_seeded_choices_groups_and_users(sn: httpx.Client) -> None:
    choices = sn.get(
        "/api/now/table/sys_choice",
        params={
            "sysparm_query": "name=incident^element=subcategory^dependent_value=database"
            "^inactive=false^ORDERBYsequence",
            "sysparm_fields": "value,label,dependent_value",
        },
    ).json()["result"]
    assert [c["label"] for c in choices] == ["DB2", "MS SQL Server", "Oracle"]
    states = sn.get(
        "/api/now/table/sys_choice",
        params={"sysparm_query": "element=state^ORDERBYsequence", "sysparm_fields": "value,label"},
    ).json()["result"]
    assert [(s["value"], s["label"]) for s in states][:3] == [
        ("1", "New"),
        ("2", "In Progress"),
        ("3", "On Hold"),
    ]
    assert [s["value"] for s in states] == ["1", "2", "3", "6", "7", "8"]
    groups = sn.get("/api/now/table/sys_user_group", params={"sysparm_query": "ORDERBYname"})
    assert {"Data Platform", "Service Desk"} <= {g["name"] for g in groups.json()["result"]}
    user = sn.get(f"/api/now/table/sys_user/{ALICE}").json()["result"]
    assert (user["user_name"], user["name"]) == ("alice.nguyen", "Alice Nguyen")


# -- the other task tables (issue #15) ------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "fields", "number", "state", "label"),
    [
        ("problem", {}, "PRB0040001", "101", "New"),
        ("change_request", {"risk_impact_analysis": "low"}, "CHG0030001", "-5", "New"),
        ("rm_defect", {}, "DFCT0010001", "1", "Open"),
        ("rm_enhancement", {}, "ENHC0010001", "1", "Open"),
    ],
)
def test_each_task_table_numbers_states_and_journals(
    sandbox: ThreadedServer,
    table: str,
    fields: dict[str, str],
    number: str,
    state: str,
    label: str,
) -> None:
    with httpx.Client(base_url=sandbox.url, auth=("bob.martin", "demo")) as bob:  # itil
        made = bob.post(
            f"/api/now/table/{table}",
            json={"short_description": "x", "correlation_id": "77", **fields},
            params={"sysparm_display_value": "all"},
        )
        assert made.status_code == 201, made.text
        row = made.json()["result"]
        assert row["number"]["value"] == number
        assert row["state"] == {"display_value": label, "value": state}
        assert row["sys_class_name"]["value"] == table
        sys_id = row["sys_id"]["value"]
        patched = bob.patch(f"/api/now/table/{table}/{sys_id}", json={"work_notes": "a note"})
        assert patched.status_code == 200, patched.text
        journal = bob.get(
            "/api/now/table/sys_journal_field",
            params={"sysparm_query": f"element_id={sys_id}^element=work_notes"},
        ).json()["result"]
        assert [(j["name"], j["value"], j["sys_created_by"]) for j in journal] == [
            (table, "a note", "bob.martin")
        ]
        found = bob.get(f"/api/now/table/{table}", params={"sysparm_query": "correlation_id=77"})
        assert [r["sys_id"] for r in found.json()["result"]] == [sys_id]


def test_data_policies_of_the_other_tables_name_fields_by_label(sn: httpx.Client) -> None:
    refused = sn.post("/api/now/table/problem", json={"description": "no statement"})
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "message": "Operation Failed",
            "detail": "Data Policy Exception: \n\tThe following fields are mandatory: "
            "Problem statement\n",
        },
        "status": "failure",
    }
    change = sn.post("/api/now/table/change_request", json={"short_description": "x"})
    assert change.status_code == 403
    assert "mandatory: Risk and impact analysis" in change.json()["error"]["detail"]
    # the dictionary's mandatory flag is the form's business: the Table API takes the row
    defect = sn.post("/api/now/table/rm_defect", json={"short_description": "no priority"})
    assert defect.status_code == 201, defect.text
    assert defect.json()["result"]["priority"] == ""
    made = sn.post("/api/now/table/problem", json={"short_description": "p"}).json()["result"]
    closing = sn.patch(f"/api/now/table/problem/{made['sys_id']}", json={"state": "107"})
    assert closing.status_code == 403
    assert "mandatory: Close notes" in closing.json()["error"]["detail"]


def test_the_change_api_makes_a_normal_change_and_wraps_every_value(sn: httpx.Client) -> None:
    answer = sn.post(
        "/api/sn_chg_rest/change/normal",
        json={"short_description": "Reload", "risk_impact_analysis": "low", "type": "standard"},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["number"] == {"value": "CHG0030001", "display_value": "CHG0030001"}
    assert result["type"] == {"value": "normal", "display_value": "Normal"}
    assert result["state"] == {"value": "-5", "display_value": "New"}
    assert all(set(cell) == {"value", "display_value"} for cell in result.values())
    refused = sn.post("/api/sn_chg_rest/v1/change/normal", json={"short_description": "x"})
    assert refused.status_code == 403
    assert "Data Policy Exception" in refused.json()["error"]["detail"]


def test_dictionary_tables_and_choices_are_readable(sn: httpx.Client) -> None:
    tables = sn.get(
        "/api/now/table/sys_db_object",
        params={
            "sysparm_query": "nameINrm_defect,rm_task",
            "sysparm_fields": "name,label,super_class.name",
        },
    ).json()["result"]
    assert {(t["name"], t["label"], t["super_class.name"]) for t in tables} == {
        ("rm_defect", "Defect", "rm_task"),
        ("rm_task", "Planning Task", "task"),
    }
    columns = sn.get(
        "/api/now/table/sys_dictionary",
        params={
            "sysparm_query": "nameINrm_defect,task^element=priority",
            "sysparm_fields": "name,mandatory,default_value,choice,internal_type",
        },
    ).json()["result"]
    assert sorted((c["name"], c["mandatory"], c["default_value"]) for c in columns) == [
        ("rm_defect", "true", ""),
        ("task", "false", "4"),
    ]
    codes = sn.get(
        "/api/now/table/sys_choice",
        params={"sysparm_query": "name=change_request^element=close_code^ORDERBYsequence"},
    ).json()["result"]
    assert [c["value"] for c in codes] == ["successful", "successful_issues", "unsuccessful"]


def test_users_with_a_shared_email_and_an_inactive_one(sn: httpx.Client) -> None:
    shared = sn.get(
        "/api/now/table/sys_user", params={"sysparm_query": "email=ana@example.com^active=true"}
    ).json()["result"]
    assert sorted(u["user_name"] for u in shared) == ["ana.lopez", "ana.lopez2"]
    gone = sn.get(
        "/api/now/table/sys_user", params={"sysparm_query": "email=olga.timer@example.com"}
    ).json()["result"]
    assert [(u["user_name"], u["active"]) for u in gone] == [("old.timer", "false")]
