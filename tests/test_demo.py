"""``anomaly-desk demo --headless``: the newcomer's path, end to end, as a real process."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from anomaly_desk.core.config import load_settings
from anomaly_desk.core.connections import ServiceNowConnection
from anomaly_desk.core.views import AnomalyDetail, TicketLinkView
from anomaly_desk.demo import platform_anomalies, write_config
from anomaly_desk.demo_setup import default_fixtures
from anomaly_desk.replay import Payload, collect_files, load_payloads
from anomaly_desk.rules_cli import DryRun, payload_files
from anomaly_desk.tour import PERSON_SAYS, Call, PlatformExpect, Step, TwoWay, call_text
from anomaly_desk.tour_rules import RaisedFor, RuleTicket
from tests.support import ROOT

BANNER_URL = re.compile(r"^\s+(Sandbox|Receiver)\s+(http://127\.0\.0\.1:\d+)", re.MULTILINE)
DATA_DIR = re.compile(r"^\s+Data\s+(\S+)", re.MULTILINE)
STATUS = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\] Qualytics Anomaly Status: "
# ServiceNow's status note in the demo: its connection's status_note template
SNOW_STATUS = r"Qualytics anomaly \d+ is now (\w+) \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)"
SYNC_LOG_DONE = re.compile(r"^\s+#\d+\s+\S+\s+(platform \d+|\S+)\s+(\w+)\s.*\bdone\b", re.MULTILINE)


def demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "anomaly_desk", "demo", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def urls(output: str) -> dict[str, str]:
    found = dict(BANNER_URL.findall(output))
    assert set(found) == {"Sandbox", "Receiver"}, output
    return found


def assert_stopped(output: str) -> None:
    """Nothing the demo started still answers."""
    for url in urls(output).values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2.0)


def test_headless_demo_shows_every_note_and_write_back_arriving_and_cleans_up() -> None:
    proc = demo("--headless")
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output

    # the banner: the platform's API in the sandbox, its token, the import at start, write-back
    assert "API token demo-platform-token" in output
    assert "$DEMO_PLATFORM_TOKEN" in output
    assert "imported 196 open anomalies at start" in output
    assert "write-back on: acknowledge, archive and comments made in the desk go to Qualytics" in (
        output
    )
    # two-way: who the people are, how to log in as them, how often the desk reads back
    assert "Two-way     on: the desk reads the tickets back every 2 s" in output
    assert "user alice@example.com  API token alice-token" in output
    assert "user bob.martin  password demo" in output
    # every fixture accepted by the receiver, with the demo's webhook secret
    assert "200 ×9" in output
    # the rules: at the import, 'warehouse orders' made one Jira Bug for the seeded platform's
    # first orders anomaly and linked the next ones to it (dedup by container); the replay's
    # 10231 and 10232 joined it, each with its note; 10260 got a ServiceNow problem, titled by
    # the connection's title template; all found once in the sandbox by the integration's mark
    rules = output.partition("\n== Rules")[2].partition("\n== Tour")[0]
    assert re.search(
        r"^✓ DQ-1\s+Bug for anomaly \d+ by rule 'warehouse orders', once, reporter "
        r"alice@example\.com: ",
        rules,
        re.MULTILINE,
    ), rules
    for joined in (10231, 10232):
        assert re.search(
            rf"^✓ DQ-1\s+linked {joined}, noted: Anomaly {joined} matched rule 'warehouse "
            r"orders' \(same container as anomaly \d+\)$",
            rules,
            re.MULTILINE,
        ), rules
    assert re.search(
        r"^✓ PRB\d{7}\s+problem for anomaly 10260 by rule 'CRM personal data', once: "
        r"\[crm_replica\] accounts: 312 records fail satisfiesExpression$",
        rules,
        re.MULTILINE,
    ), rules
    assert "Rules: tickets raised without a key pressed" in output  # its summary table
    # operator_email: the tour's own tickets are raised for alice in both systems
    assert re.search(r"✓ DQ-2\s+reporter alice@example\.com", output), output
    assert re.search(r"✓ INC\d{7}\s+caller alice@example\.com", output), output

    tour, _, two_way = output.partition("\n== Two-way")
    tour = tour.partition("\n== Tour")[2]  # the tour's tickets, the rules' above them
    assert two_way, output
    confirmed = re.findall(r"^✓ (\S+)\s+(.+)$", tour, re.MULTILINE)
    by_ticket: dict[str, list[str]] = {}
    for key, note in confirmed:
        by_ticket.setdefault(key, []).append(note)
    jira = sorted(k for k in by_ticket if re.fullmatch(r"DQ-\d+", k))
    snow = sorted(k for k in by_ticket if re.fullmatch(r"INC\d{7}", k))
    assert len(jira) == 2, output  # one created, one linked
    assert len(snow) == 2, output
    for key in jira:
        notes = by_ticket[key]
        assert len(notes) == 4, notes
        assert re.fullmatch(STATUS + "Acknowledged", notes[0]), notes
        assert notes[1].startswith("Comment from Qualytics: "), notes
        assert re.fullmatch(STATUS + "(Resolved|Duplicate)", notes[2]), notes
        assert notes[3].startswith("Comment from Qualytics: "), notes
    linked = [k for k in snow if by_ticket[k][0].startswith("Linked to Qualytics anomaly ")]
    assert len(linked) == 1, output  # linking an existing incident leaves a work note
    for key in snow:
        notes = by_ticket[key][1:] if key in linked else by_ticket[key]
        assert len(notes) == 4, notes
        assert re.fullmatch(SNOW_STATUS.replace(r"(\w+)", "Acknowledged"), notes[0]), notes
        assert re.fullmatch(SNOW_STATUS.replace(r"(\w+)", "(Resolved|Duplicate)"), notes[2])
    assert "Zoë" in output  # non-ASCII survives the trip through both providers

    # the platform's side, read from its log of accepted calls: the import, then per anomaly
    # acknowledge, the comment, the archive's comment (before the archive), the archive
    assert "✓ imported 196 anomalies from the platform (196 new, 0 updated, 0 unchanged)" in output
    written = sorted(k for k in by_ticket if re.fullmatch(r"\d+", k))
    assert len(written) == 2, output
    archived_as = set()
    for anomaly_id in written:
        calls = by_ticket[anomaly_id]
        assert len(calls) == 4, calls
        assert calls[0] == f"status Acknowledged  (PUT /api/anomalies/{anomaly_id})", calls
        for comment in calls[1:3]:
            assert re.fullmatch(r"comment: .+  \(POST /api/comments\)", comment), calls
        archive = re.fullmatch(
            rf"archived as (\w+)  \(DELETE /api/anomalies/{anomaly_id}\?archive=true&status=\1\)",
            calls[3],
        )
        assert archive, calls
        archived_as.add(archive.group(1))
    assert archived_as == {"Resolved", "Duplicate"}
    assert "comment: Owner: data platform — Zoë is on it  (POST /api/comments)" in output

    assert "== Sync log" in output
    done = SYNC_LOG_DONE.findall(output)
    assert len([key for key, _ in done if not key.startswith("platform")]) == 16, output
    writes = [kind for key, kind in done if key.startswith("platform") and kind != "enrich"]
    # the tour's 8, and alice's comment and Done passed on to the platform
    assert sorted(writes) == ["comment"] * 5 + ["status"] * 5, output
    assert "Demo tour" in output  # the summary tables
    assert "Platform write-back (Qualytics)" in output
    assert "Two-way: a person on the ticket" in output
    assert "MISSING" not in output
    assert "✗" not in output
    assert (
        "Demo passed: 2 tickets raised by 2 rules for 6 anomalies, each once and linked; 17 "
        "notes on 4 tickets and 8 writes to Qualytics for 2 anomalies, each exactly once and in "
        "order; 196 anomalies imported from the platform; alice's comment and Done on DQ-4 came "
        "to anomaly 10250 and Qualytics once each, and nothing was echoed." in output
    )

    # two-way: alice, through Jira's own API, comments on a third anomaly's issue and moves it
    # to Done; the desk follows (archive, her comment), the platform too, nothing comes back
    checked = re.findall(r"^✓ (.+)$", two_way.partition("\n== Sync log")[0], re.MULTILINE)
    assert checked == [
        "DQ-4 alice moved it to Done → anomaly 10250 archived as Resolved",
        "alice's comment is on the anomaly, once",
        "the platform archived it too",
        "nothing was echoed back to DQ-4: its comments are alice's only",
        "our own notes did not come back: 10233 and 10240 have only the comments made in the desk",
    ], two_way
    assert re.search(r"history: Active → Resolved by DQ-4 \(\w+\)", two_way), two_way
    assert "from DQ-4 (alice@example.com): Looking at the loader now — alice" in two_way
    assert "archived as Resolved  (DELETE /api/anomalies/10250?archive=true&status=Resolved)" in (
        two_way
    )

    assert_stopped(output)
    data = Path(DATA_DIR.search(output).group(1))  # type: ignore[union-attr]
    assert not data.parent.exists()  # the temporary directory is gone


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_everything_the_demo_started(tmp_path: Path, signum: int) -> None:
    """Ctrl+C or a kill mid-replay (slowed right down): the demo still stops its children."""
    proc = demo("--headless", "--speed", "0.05", "--data-dir", str(tmp_path / "kept"))
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("== Replay"):
                break
        assert any(line.startswith("== Replay") for line in seen), "".join(seen)
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    assert proc.returncode == 128 + signum, output
    name = signal.Signals(signum).name
    assert f"stopped by {name}; everything it started is stopped" in output
    assert_stopped(output)
    assert (tmp_path / "kept").is_dir()  # a data directory the user chose is kept


# -- the pieces the demo's platform side is made of -------------------------------------------


def test_the_fixtures_anomalies_go_to_the_platform_as_it_first_sent_them() -> None:
    """Each id once, with the status of its first appearance in replay order."""
    payloads = load_payloads(collect_files([default_fixtures()]))
    found = {item["id"]: item for item in platform_anomalies(payloads)}
    assert sorted(found) == [
        10231, 10232, 10233, 10240, 10250, 10260, 10261, 10270, 10271, 10272, 10273, 10280,
    ]  # fmt: skip
    assert found[10231]["status"] == "Active"  # 08 acknowledges it later: not the platform's past
    assert found[10232]["status"] == "Active"  # 09 resolves it later
    assert found[10240]["status"] == "Active"  # "active" in the payload
    assert found[10261]["status"] == "Acknowledged"
    assert found[10271]["status"] == "Duplicate"
    # what the payloads say plainly comes along: the envelope's datastore, a container by id
    assert found[10231]["datastore"] == {"id": 12, "name": "warehouse_prod"}
    assert found[10231]["container"] == {"id": 301, "name": "orders"}
    assert found[10231]["fields"] == ["customer_id"]
    assert found[10240]["fields"] == ["currency"]  # the one-field variant
    assert found[10280]["datastore"] == {"id": 15, "name": "données_ventes"}


def test_items_without_an_integer_id_are_left_out() -> None:
    payloads = [
        Payload("list.json", json.dumps([{"id": "7", "status": "Active"}, {"id": 8}]).encode()),
        Payload("one.json", json.dumps({"id": 9, "status": "Invalid", "weight": True}).encode()),
        Payload(
            "flow.json", json.dumps({"context": {"anomalies": [{"status": "Active"}]}}).encode()
        ),
        Payload("again.json", json.dumps({"id": 9, "status": "Active"}).encode()),
    ]
    assert platform_anomalies(payloads) == [
        {"id": 8, "status": "Active"},  # no status: a detected anomaly is Active
        {"id": 9, "status": "Invalid"},  # a bool is no weight; the later Active is not its first
    ]


def test_the_demo_config_turns_on_import_and_write_back(tmp_path: Path) -> None:
    config = write_config(tmp_path / "anomaly-desk.toml", "http://127.0.0.1:9")
    env = {"DEMO_JIRA_TOKEN": "j", "DEMO_SNOW_PASSWORD": "s", "DEMO_PLATFORM_TOKEN": "t"}
    settings = load_settings(config, env=env)
    assert settings.platform.url == "http://127.0.0.1:9"
    assert settings.platform.import_on_start
    assert settings.platform.writes_back
    assert "demo-platform-token" not in config.read_text()  # the secret is named, never written


def test_the_demo_config_turns_on_two_way_sync(tmp_path: Path) -> None:
    """Jira: statuses and comments both ways, Done archives as Resolved; ServiceNow: comments
    both ways; the desk's own archive only notes the tickets (their workflow stays theirs)."""
    config = write_config(tmp_path / "anomaly-desk.toml", "http://127.0.0.1:9")
    env = {"DEMO_JIRA_TOKEN": "j", "DEMO_SNOW_PASSWORD": "s", "DEMO_PLATFORM_TOKEN": "t"}
    jira, snow = load_settings(config, env=env).connections
    assert (jira.status, jira.comments, jira.on_ticket_done) == ("both", "both", "archive:Resolved")
    assert (snow.status, snow.comments) == ("to_ticket", "both")
    assert jira.on_anomaly_archived == snow.on_anomaly_archived == "note"
    assert jira.poll_s == snow.poll_s == 2
    assert not jira.fan_out_ticket_comments


def test_the_demo_config_has_rules_templates_ticket_types_and_an_operator(tmp_path: Path) -> None:
    """What `anomaly-desk rules test fixtures/webhooks --config <demo config>` says the rules do
    with the fixtures: a Jira Bug for 10231 that 10232 joins (dedup by container), a ServiceNow
    problem for 10260; tickets raised for alice; ServiceNow's title and status note templated."""
    config = write_config(tmp_path / "anomaly-desk.toml", "http://127.0.0.1:9")
    env = {"DEMO_JIRA_TOKEN": "j", "DEMO_SNOW_PASSWORD": "s", "DEMO_PLATFORM_TOKEN": "t"}
    settings = load_settings(config, env=env)
    assert settings.operator_email == "alice@example.com"
    snow = settings.connections[1]
    assert isinstance(snow, ServiceNowConnection)
    assert snow.tables == ["incident", "problem", "change_request"]
    assert snow.templates is not None
    assert sorted(snow.templates.defined()) == ["status_note", "title"]
    out = io.StringIO()
    assert DryRun(settings).run(payload_files([default_fixtures()]), out) == 0
    text = out.getvalue()
    assert (
        "anomaly 10231 (warehouse_prod › orders, record, weight 54, Active)\n"
        "  rule 'warehouse orders': create a ticket on jira (jira): Bug" in text
    ), text
    assert "rule 'warehouse orders': link the ticket of anomaly 10231 (same container" in text
    assert "rule 'CRM personal data': create a ticket on servicenow (servicenow): problem" in text
    assert "rule 'warehouse orders': 1 to create, 1 to link, 0 throttled" in text
    assert "rule 'CRM personal data': 1 to create, 0 to link, 0 throttled" in text
    assert "10250 (warehouse_prod › orders, shape, weight 90, Active)\n  no rule matches" in text


def _two_way(
    comments: list[tuple[str, str]] | None = None,
    writes: list[Call] | None = None,
    after: list[str] | None = None,
    by: str = "DQ-3 (5b10a2844c20165700ede21f)",
) -> TwoWay:
    """Anomaly 10250 after alice's comment and Done on DQ-3, as the desk and the platform show
    it; each argument replaces one part of the good picture."""
    link = TicketLinkView(
        id="L1", connection="jira", provider="jira", ticket_key="DQ-3", ticket_id="10003"
    )
    said = comments if comments is not None else [(PERSON_SAYS, "from DQ-3 (alice@example.com)")]
    detail = AnomalyDetail.model_validate(
        {
            "id": 10250,
            "status": "Resolved",
            "comments": [{"at": "2030-01-01T00:00:00Z", "text": t, "by": b, "origin": "L1"} for t, b in said],
            "history": [{"at": "2030-01-01T00:00:00Z", "kind": "status", "from": "Active", "to": "Resolved", "by": by}],
        }
    )  # fmt: skip
    good = [
        {"method": "POST", "path": "/api/comments", "query": {}, "body": {"message": f"{PERSON_SAYS}\n— alice@example.com on DQ-3", "anomaly_id": 10250}},
        {"method": "DELETE", "path": "/api/anomalies/10250", "query": {"archive": "true", "status": "Resolved"}, "body": None},
    ]  # fmt: skip
    own = {10233: ["a", "b"]}
    return TwoWay(
        10250,
        link,
        own,
        before=[],
        after=after if after is not None else [PERSON_SAYS],
        detail=detail,
        writes=writes if writes is not None else good,
        others=dict(own),
        followed_s=1.5,
    )


def test_two_way_counts_only_when_followed_once_and_nothing_echoed() -> None:
    good = _two_way()
    assert good.complete
    assert [c.ok for c in good.checks()] == [True] * 5
    calls = good.writes
    assert not _two_way(by="DQ-3").complete  # archived, but not by a person on DQ-3
    twice = [(PERSON_SAYS, "from DQ-3 (alice@example.com)")] * 2
    assert not _two_way(comments=twice).complete  # her comment taken twice
    assert not _two_way(comments=[]).complete
    assert not _two_way(writes=[calls[0], *calls]).complete  # written to the platform twice
    assert not _two_way(writes=calls[:1]).complete  # the platform was not archived
    assert not _two_way(after=[PERSON_SAYS, "Comment from Qualytics: " + PERSON_SAYS]).complete
    echoed = _two_way()
    echoed.others = {10233: ["a", "b", "a"]}  # one of our own notes came back as a comment
    assert not echoed.own_notes_stayed().ok
    late = _two_way()
    late.followed_s = None  # not within the time allowed
    assert not late.complete


def _calls(anomaly_id: int) -> list[Call]:
    return [
        {"method": "PUT", "path": f"/api/anomalies/{anomaly_id}", "query": {}, "body": {"status": "Acknowledged"}},
        {"method": "POST", "path": "/api/comments", "query": {}, "body": {"message": "first", "anomaly_id": anomaly_id}},
        {"method": "POST", "path": "/api/comments", "query": {}, "body": {"message": "why", "anomaly_id": anomaly_id}},
        {"method": "DELETE", "path": f"/api/anomalies/{anomaly_id}", "query": {"archive": "true", "status": "Resolved"}, "body": None},
    ]  # fmt: skip


def test_write_back_counts_only_when_exactly_once_and_in_order() -> None:
    step = Step("first", "Resolved", "why")
    calls = _calls(7)
    assert PlatformExpect(7, step, calls).complete
    assert not PlatformExpect(7, step, calls[:3]).complete  # the archive is missing
    assert not PlatformExpect(7, step, [*calls[:2], calls[1], *calls[2:]]).complete  # doubled
    assert not PlatformExpect(7, step, [calls[0], calls[2], calls[1], calls[3]]).complete
    assert not PlatformExpect(7, step, [*calls[:3], calls[2]]).complete  # comment for archive
    assert not PlatformExpect(8, step, calls).complete  # another anomaly's writes
    assert call_text(calls[3]) == (
        "archived as Resolved  (DELETE /api/anomalies/7?archive=true&status=Resolved)"
    )


def test_a_rule_ticket_counts_only_when_once_of_its_type_raised_for_alice_and_noted_once() -> None:
    link = TicketLinkView(
        id="L1", connection="jira", provider="jira", ticket_key="DQ-1", ticket_id="10001"
    )
    note = "Anomaly 10231 matched rule 'warehouse orders' (same container as anomaly 20070)"

    good = RuleTicket(
        "warehouse orders",
        link,
        created_for=[20070],
        joined=[10231],
        marked=["DQ-1"],
        type_name="Bug",
        raised_for="alice@example.com",
        notes=["[…] Qualytics Anomaly Status: Active", note],
    )
    ticket = functools.partial(dataclasses.replace, good)

    assert ticket().complete
    assert not ticket(marked=["DQ-1", "DQ-5"]).complete  # created twice in Jira
    assert not ticket(marked=[]).complete  # not found by the integration's mark
    assert not ticket(created_for=[20070, 20075]).complete  # two anomalies claim to have made it
    assert not ticket(type_name="Task").complete  # not the rule's issue type
    assert not ticket(raised_for="demo@example.com").complete  # not for the operator
    assert not ticket(notes=[note, note]).complete  # the dedup's note twice
    assert not ticket(notes=[]).complete  # ... or not at all
    assert ticket(joined=[]).complete  # a ticket nobody joined needs no note


def test_a_ticket_is_raised_for_the_operator_only_without_warnings() -> None:
    link = TicketLinkView(
        id="L2", connection="servicenow", provider="servicenow", ticket_key="INC0010001",
        ticket_id="abc",
    )  # fmt: skip
    assert RaisedFor(link, "alice@example.com").ok
    assert not RaisedFor(link, None).ok
    warned = link.model_copy(update={"warnings": ["caller left empty: 2 active users"]})
    assert not RaisedFor(warned, "alice@example.com").ok
