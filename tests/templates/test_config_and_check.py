"""Templates as configuration: a syntax error is a precise config error; ``anomaly-desk check``
renders every template against a fixture and reports an error with the template's line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from anomaly_desk.core.config import ConfigError, load_settings
from anomaly_desk.core.templates import TemplateSet
from tests.support import ThreadedServer
from tests.test_check import config, run_check, secrets


def test_a_syntax_error_names_the_template_and_its_line() -> None:
    with pytest.raises(ValidationError) as caught:
        TemplateSet(title="ok", description="first\n{% if anomaly.weight %}\nheavy")
    (error,) = caught.value.errors()
    assert error["loc"] == ("description",)
    assert error["msg"].startswith("Value error, line 3: Unexpected end of template.")
    with pytest.raises(ValidationError, match=r"line 1: No filter named 'shout'"):
        TemplateSet(title="{{ anomaly.id|shout }}")
    with pytest.raises(ValidationError, match="summary"):
        TemplateSet.model_validate({"summary": "{{ anomaly.id }}"})  # not a template name


def test_a_config_file_with_a_broken_template_is_refused(tmp_path: Path) -> None:
    path = config(
        tmp_path / "anomaly-desk.toml",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        '[connections.templates]\ntitle = "{{ anomaly.id }}"\nstatus_note = "{{ status }\\n"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=secrets())
    message = str(caught.value)
    assert "connections[1].templates.status_note: line 1: unexpected '}'" in message, message


def test_check_renders_every_template_and_reports_an_error(
    sandbox: ThreadedServer, tmp_path: Path
) -> None:
    templates = (
        "[connections.templates]\n"
        'title = "[DQ] {{ anomaly.container.name }}: {{ anomaly.failed_checks[0].message }}"\n'
        'description = """{{ anomaly.message }}\n'
        "Tags: {{ anomaly.global_tags }}\n"
        'Owner: {{ anomaly.container.owner }}"""\n'
        "status_note = \"{{ status }} in {{ platform.name }} ({{ author or 'the platform' }})\"\n"
    )
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, templates)
    done = run_check("--config", str(path), env=secrets(), data_dir=tmp_path / "data")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "2 connections: all ok" in out, out
    lines = out.splitlines()
    title = next(line for line in lines if "title" in line)
    assert title.split()[:4] == ["ok", "connection", "servicenow", "title"], title
    assert title.endswith("  [DQ] accounts: 312 records fail satisfiesExpression"), title
    # the title needs a failed check: an anomaly without one gets the default title
    assert "warning: an anomaly without these values gets the default text" in out
    description = next(line for line in lines if " description " in line)
    assert description.startswith("FAIL  connection servicenow  description")
    assert description.endswith("line 3: datastore/container has no attribute 'owner'")
    assert "ok    connection servicenow  status_note  Acknowledged in Qualytics (ana)" in out
    assert lines[-1] == "3 templates: 1 failed"


def test_check_passes_with_good_templates(sandbox: ThreadedServer, tmp_path: Path) -> None:
    templates = (
        "[connections.templates]\n"
        "title = \"{{ anomaly.container.name or 'no container' }} #{{ anomaly.id }}\"\n"
    )
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, templates)
    done = run_check("--config", str(path), env=secrets(), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    connection servicenow  title  accounts #10260" in done.stdout
    assert done.stdout.splitlines()[-1] == "1 template: all ok"


def test_check_renders_a_rule_s_templates(sandbox: ThreadedServer, tmp_path: Path) -> None:
    rule = (
        '[[rules]]\nname = "p1-to-jira"\n[rules.action]\nconnection = "jira"\n'
        "[rules.action.templates]\n"
        'title = "{{ rule.name }}: {{ anomaly.id }}"\n'
        "description = \"{{ anomaly.weight + ' heavy' }}\"\n"
    )
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, rule)
    done = run_check("--config", str(path), env=secrets(), data_dir=tmp_path / "data")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ok    rule p1-to-jira  title        p1-to-jira: 10260" in done.stdout, done.stdout
    assert (
        "FAIL  rule p1-to-jira  description  line 1: TypeError: unsupported operand type(s) for +:"
        " 'int' and 'str'"
    ) in done.stdout
