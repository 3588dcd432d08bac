"""The README's "Templates" example is a valid configuration and renders against the fixture."""

from __future__ import annotations

import re
from pathlib import Path

from anomaly_desk.core.config import load_settings
from anomaly_desk.core.templates import TemplateSet
from anomaly_desk.template_check import check_templates
from tests.support import ROOT

CONNECTION = """provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
token_env = "JIRA_TOKEN"
project = "DQ"
"""


def test_the_readme_example_renders_without_errors(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Templates\n", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example is not None
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(example[1].replace("# … as above …\n", CONNECTION), encoding="utf-8")
    settings = load_settings(path, overrides={"data_dir": tmp_path}, env={"JIRA_TOKEN": "t"})
    (conn,) = settings.connections
    assert conn.templates is not None
    assert set(conn.templates.defined()) == set(TemplateSet.FIELDS)
    results = check_templates(settings)
    assert [(r.field, r.error, r.bare_error) for r in results] == [
        (field, None, None) for field in TemplateSet.FIELDS
    ]
    assert results[0].text == "[crm_replica] accounts: 312 records fail satisfiesExpression"
