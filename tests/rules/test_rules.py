"""Rules on their own: matching, dedup keys, windows, the token bucket, the config's checks."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from anomaly_desk.core.config import ConfigError, load_settings
from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.rules import (
    RuleDedup,
    RuleMatch,
    dedup_key,
    matches,
    parse_window,
    take_token,
)
from anomaly_desk.core.webhooks import parse_delivery
from anomaly_desk.rules_cli import DryRun, payload_files
from tests.support import FIXTURES

ENV = {"JIRA_TOKEN": "demo-token", "SNOW_PASSWORD": "demo"}


def fixture_anomalies() -> dict[int, Anomaly]:
    found: dict[int, Anomaly] = {}
    for path in sorted((FIXTURES / "webhooks").glob("*.json")):
        for anomaly in parse_delivery(path.read_bytes()).anomalies:
            found.setdefault(anomaly.id, anomaly)
    return found


ANOMALIES = fixture_anomalies()
ISSUE_EXAMPLE = RuleMatch(
    datastores=["warehouse_prod"],
    containers=["orders*", "payments"],
    tags_all=["finance"],
    check_types=["between", "notNull"],
    min_weight=40,
    types=["record"],
)


def matched(match: RuleMatch) -> list[int]:
    return sorted(i for i, a in ANOMALIES.items() if matches(match, a))


def test_the_issue_example_matches_only_the_finance_orders_anomaly() -> None:
    assert matched(ISSUE_EXAMPLE) == [10231]


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        (RuleMatch(), [10231, 10232, 10233, 10240, 10250, 10260, 10261, 10280]),  # open ones
        (RuleMatch(datastores=["WAREHOUSE_*"]), [10231, 10232, 10233, 10240, 10250]),
        (RuleMatch(datastores=["14"]), [10260, 10261]),  # the id works too
        (RuleMatch(containers=["orders*", "pay?ents"]), [10231, 10232, 10240, 10250]),
        (RuleMatch(tags_any=["PII", "finance"]), [10231, 10260]),
        (RuleMatch(tags_all=["crm", "pii"]), [10260]),
        (RuleMatch(tags_all=["crm", "finance"]), []),
        (RuleMatch(check_types=["notnull"]), [10231, 10261]),
        (RuleMatch(min_weight=60), [10240, 10250, 10261]),
        (RuleMatch(types=["shape"]), [10250, 10261]),
        (RuleMatch(statuses=["acknowledged"]), [10261]),
        (RuleMatch(statuses=["Resolved", "Duplicate"]), [10270, 10271]),
        (RuleMatch(datastores=["données_*"], containers=["clients_*"]), [10280]),
    ],
)
def test_each_key_narrows_the_match(match: RuleMatch, expected: list[int]) -> None:
    assert matched(match) == expected


def test_a_weight_floor_refuses_an_anomaly_without_a_weight() -> None:
    bare = Anomaly.model_validate({"id": 1, "status": "Active"})
    assert matches(RuleMatch(), bare)
    assert not matches(RuleMatch(min_weight=1), bare)
    assert not matches(RuleMatch(datastores=["*"]), bare)  # no datastore: no name to match


def test_dedup_keys() -> None:
    a, b, c = ANOMALIES[10231], ANOMALIES[10232], ANOMALIES[10250]
    assert dedup_key("container", a) == dedup_key("container", b) == "ct:301"
    assert dedup_key("container+check", a) == "ct:301|chk:9001"
    assert dedup_key("container+check", a) != dedup_key("container+check", b)
    assert dedup_key("datastore+container", c) == "ds:12|ct:301"
    assert dedup_key("fingerprint", a) == "fp:883127731"
    assert dedup_key("check", ANOMALIES[10261]) == "chk:9101"
    # what the key is made of is missing: the anomaly shares with no other
    assert dedup_key("fingerprint", ANOMALIES[10240]) == "anomaly:10240"
    assert dedup_key("container+check", ANOMALIES[10240]) == "anomaly:10240"
    # a container known only by name is told apart by its datastore
    named = Anomaly.model_validate(
        {"id": 5, "datastore": "dw", "container": "orders", "failed_checks": [{"rule": "x"}]}
    )
    assert dedup_key("container+check", named) == "ct:ds:dw/orders|type:x"


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400.0), ("30m", 1800.0), ("7d", 604800.0), (" 90s ", 90.0)]
)
def test_windows(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds
    assert RuleDedup(window=text).window_s == seconds


@pytest.mark.parametrize("text", ["24", "1w", "h", "0m", "-1h", "100d"])
def test_bad_windows_are_refused_with_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)


def test_the_token_bucket_takes_max_per_hour_then_refills() -> None:
    tokens, at = None, 0.0
    taken = []
    for _ in range(4):
        ok, tokens, at = take_token(2, tokens, at, 1000.0)
        taken.append(ok)
    assert taken == [True, True, False, False]
    ok, tokens, at = take_token(2, tokens, at, 1000.0 + 1800)  # half an hour: one token back
    assert ok
    ok, _, _ = take_token(2, tokens, at, 1000.0 + 1801)
    assert not ok
    assert take_token(None, None, 0.0, 5.0) == (True, None, 5.0)  # no limit


RULES = """
[[rules]]
name = "finance anomalies to Jira"
match = { datastores = ["warehouse_prod"], containers = ["orders*", "payments"], tags_all = ["finance"], check_types = ["between", "notNull"], min_weight = 40, types = ["record"] }
action = { connection = "jira", issue_type = "Bug", fields = { priority = "High", labels = ["dq"] } }
dedup = { key = "container+check", window = "24h" }
max_per_hour = 20
"""

CONNECTIONS = """
[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "demo@example.com"
token_env = "JIRA_TOKEN"

[[connections]]
name = "servicenow"
provider = "servicenow"
url = "https://acme.service-now.com"
username = "admin"
password_env = "SNOW_PASSWORD"
"""


def config(tmp_path: Path, rules: str) -> Path:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(CONNECTIONS + rules, encoding="utf-8")
    return path


def test_the_issue_example_loads(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, RULES), env=ENV)
    (rule,) = settings.rules
    assert rule.action.issue_type == "Bug"
    assert rule.dedup is not None
    assert rule.dedup.window_s == 86400
    assert rule.max_per_hour == 20
    assert rule.pause_after == 3


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            RULES.replace('connection = "jira"', 'connection = "jra"'),
            "rules[0] (finance anomalies to Jira).action.connection: no connection named 'jra' "
            "(known: jira, servicenow)",
        ),
        (RULES + RULES, "rules[1] (finance anomalies to Jira).name: duplicate rule name"),
        (
            RULES.replace('issue_type = "Bug"', 'table = "problem"'),
            "action.table: jira is jira; a Jira ticket type is given as issue_type",
        ),
        (RULES.replace('"24h"', '"1 day"'), "rules[0].dedup.window: window '1 day'"),
        (RULES.replace('"container+check"', '"table"'), "rules[0].dedup.key: Input should be"),
        (RULES.replace("max_per_hour = 20", "max_per_hour = 0"), "rules[0].max_per_hour"),
        (RULES.replace("min_weight", "min_wieght"), "rules[0].match.min_wieght"),
        (RULES.replace('"finance anomalies to Jira"', '"a/b"'), "rules[0].name"),
        (
            RULES.replace(
                'connection = "jira", issue_type = "Bug"',
                'connection = "servicenow", table = "u_dq_issue"',
            ),
            "action.table: u_dq_issue is not one of servicenow's tables (incident, problem, "
            "change_request); add it to that connection's tables",
        ),
    ],
)
def test_config_mistakes_are_named(tmp_path: Path, rules: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config(tmp_path, rules), env=ENV)
    assert message in str(caught.value)


def test_the_dry_run_prints_what_each_rule_would_do(tmp_path: Path) -> None:
    rules = (
        RULES
        + """
[[rules]]
name = "warehouse"
match = { datastores = ["warehouse_prod"], min_weight = 30, types = ["record"] }
action = { connection = "jira" }
dedup = { key = "container", window = "24h" }
max_per_hour = 2

[[rules]]
name = "crm"
match = { datastores = ["crm_replica"] }
action = { connection = "servicenow", table = "problem" }
"""
    )
    settings = load_settings(config(tmp_path, rules), env=ENV)
    out = io.StringIO()
    status = DryRun(settings).run(payload_files([FIXTURES / "webhooks"]), out)
    text = out.getvalue()
    assert status == 0
    assert (
        "rule 'finance anomalies to Jira': create a ticket on jira (jira): Bug, "
        'priority="High", labels=["dq"]'
    ) in text
    assert "rule 'warehouse': link the ticket of anomaly 10231 (same container" in text
    assert "rule 'warehouse': throttled: max_per_hour = 2 spent" in text
    assert "rule 'crm': create a ticket on servicenow (servicenow): problem" in text
    assert "already stored earlier in this run" in text
    assert "rule 'warehouse': 1 to create, 1 to link, 1 throttled" in text


def test_the_dry_run_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from anomaly_desk.cli import main

    path = config(tmp_path, RULES)
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.MonkeyPatch.context() as env:
        for name, value in ENV.items():
            env.setenv(name, value)
        good = FIXTURES / "webhooks" / "01-flow-anomalies-detected.json"
        assert main(["rules", "test", str(good), "--config", str(path)]) == 0
        assert "create a ticket on jira" in capsys.readouterr().out
        assert main(["rules", "test", str(good), str(bad), "--config", str(path)]) == 1
        assert "bad.json: refused" in capsys.readouterr().out
        assert main(["rules", "test", str(tmp_path / "none"), "--config", str(path)]) == 2


def test_the_readme_examples_load(tmp_path: Path) -> None:
    from tests.support import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Rules\n", 1)[1].split("\n## ", 1)[0]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    settings = load_settings(config(tmp_path, example), env=ENV)
    assert [rule.name for rule in settings.rules] == [
        "finance anomalies to Jira",
        "CRM to ServiceNow",
    ]
    crm = settings.rules[1]
    assert crm.action.table == "problem"
    assert crm.action.templates is not None
    assert crm.action.templates.title


def test_check_reads_paused_rules_from_a_data_directory_no_receiver_holds(
    tmp_path: Path,
) -> None:
    import asyncio

    from anomaly_desk.core.documents import RuleState
    from anomaly_desk.core.store import Put, Store
    from anomaly_desk.rules_cli import paused_rules

    data = tmp_path / "data"
    settings = load_settings(config(tmp_path, RULES), overrides={"data_dir": data}, env=ENV)
    assert paused_rules(settings) == ([], None)  # no data directory yet: nothing paused

    async def pause() -> None:
        store = Store(data).open()
        reason = "jira refused the ticket: Specify a valid issue type (HTTP 400)"
        state = RuleState(name="finance anomalies to Jira", paused=True, paused_reason=reason)
        await store.commit([Put("rules", state.name, state)])
        await store.close()

    asyncio.run(pause())
    (view,), unknown = paused_rules(settings)
    assert unknown is None
    assert (view.name, view.connection, view.paused) == ("finance anomalies to Jira", "jira", True)
    assert "Specify a valid issue type" in (view.paused_reason or "")


def test_the_dry_run_needs_no_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run connects nowhere: it works where the tokens are not set (a laptop, CI)."""
    from anomaly_desk.cli import main

    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    good = FIXTURES / "webhooks" / "01-flow-anomalies-detected.json"
    assert main(["rules", "test", str(good), "--config", str(config(tmp_path, RULES))]) == 0
    assert "create a ticket on jira" in capsys.readouterr().out
