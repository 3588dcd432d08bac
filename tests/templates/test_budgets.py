"""A render is bounded: templates that expand a value (replace, join, ~, center…), loop over
loops or recurse fail fast to the default text, in ``anomaly-desk check`` (naming the template
and line) and over the wire (the receiver keeps answering; the ticket gets the default note)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from anomaly_desk.core.models import Anomaly
from anomaly_desk.core.template_sandbox import MAX_STEPS, MAX_WORK
from anomaly_desk.core.templates import (
    NoteVars,
    TemplateContext,
    TemplateSet,
    render_note,
    try_render,
    variables,
)
from tests.integration.conftest import ENV, Desk, start_receiver, status_note, write_config
from tests.support import FIXTURES, ThreadedServer
from tests.test_check import config, run_check, secrets

NESTS = (
    '{% set a = "x"*32000 %}{% set b = "x"*31999 ~ "x" %}'
    "{% set l1 = [a,a,a,a,a,a,a,a,a,a] %}{% set m1 = [b,b,b,b,b,b,b,b,b,b] %}"
    + "".join(
        f"{{% set l{i} = [{','.join([f'l{i - 1}'] * 10)}] %}}"
        f"{{% set m{i} = [{','.join([f'm{i - 1}'] * 10)}] %}}"
        for i in range(2, 8)
    )
)
TUPLES = "{% set t1 = (1,2,3,4,5,6,7,8,9,10) %}" + "".join(
    f"{{% set t{i} = ({','.join([f't{i - 1}'] * 10)}) %}}" for i in range(2, 10)
)
BOUND_S = 2.0  # generous: each of these fails in a few milliseconds on an idle machine
CONTEXT = TemplateContext(connection="jira", now=datetime(2026, 12, 1, 9, 30, tzinfo=UTC))
NOTE = NoteVars(at=datetime(2026, 12, 1, 9, 31, tzinfo=UTC), status="Acknowledged")
A = '{% set a = "x"*32000 %}'  # a value just under the cap
# The attack review's status note (/tmp/atk/r6.toml): a 1e9-character replace, then 32000².
R6 = (
    '{{ ("x"*32000)|replace("x", "x"*32000)|length }} '
    '{% for i in "x"*32000 %}{% for j in "y"*32000 %}{% endfor %}{% endfor %}'
    "status {{ status }}"
)

EXPLODING = {
    # the attack review's templates
    "replace filter": '{{ ("x"*32000)|replace("x", "x"*32000)|length }}',
    "tilde doubling": A + "{% set b = a~a %}{% set c = b~b %}{% set d = c~c %}{{ d|length }}",
    "join filter": A + "{{ [a,a,a,a,a,a,a,a]|join|length }}",
    "nested loops over strings": (
        '{% for i in "x"*3000 %}{% for j in "y"*3000 %}{% endfor %}{% endfor %}done'
    ),
    "a list of long strings": '{% set l = ["x"*32000] %}{{ (l*30000)|length }}',
    "str.format width": '{{ "{:>99999999}".format(1) }}',
    "strftime": '{{ now.strftime("%Y"*16000)|length }}',
    "tojson": A + '{{ {"a":[a,a,a,a,a,a,a]}|tojson|length }}',
    "urlize": '{{ ("http://a.b "*3000)|urlize|length }}',
    "map replace": '{{ (["x"*32000]*1)|map("replace","x","y"*32000)|join|length }}',
    "str.join": '{{ ("x"*32000).join(["a"]*3000)|length }}',
    "join of many": '{{ (["x"*32000]*3000)|join|length }}',
    "str.replace": '{{ ("x"*32000).replace("x", "y"*3000)|length }}',
    "tojson of many": '{{ (["x"*32000]*3000)|tojson|length }}',
    "pprint": '{{ (["x"*32000]*3000)|pprint|length }}',
    "string of a list": '{{ (["x"*32000]*3000)|string|length }}',
    "three loops": (
        '{% for a in "x"*100 %}{% for b in "x"*100 %}{% for c in "x"*100 %}'
        "{% endfor %}{% endfor %}{% endfor %}ok"
    ),
    "r6 status note": R6,
    # variations
    "four nested ranges": (
        "{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}"
        "{% for d in range(100) %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
    ),
    "namespace doubling by ~": (
        '{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}'
        "{% endfor %}{{ ns.s|length }}"
    ),
    "namespace doubling a list": (
        '{% set ns = namespace(s=["x"*32000]) %}{% for i in range(40) %}'
        "{% set ns.s = ns.s + ns.s %}{% endfor %}"
    ),
    "~ in a loop": A + "{% for i in range(10000) %}{{ (a ~ '')|length }}{% endfor %}",
    "a macro printing in a loop": (
        A + "{% macro m() %}{% for i in range(10000) %}{{ a }}{% endfor %}{% endmacro %}"
        "{{ m()|length }}"
    ),
    "a block set in a loop": (
        A + "{% set b %}{% for i in range(9000) %}{{ a }}{% endfor %}{% endset %}{{ b|length }}"
    ),
    "template text in a macro loop": (
        "{% macro m() %}{% for i in range(9000) %}" + "y" * 3000 + "{% endfor %}{% endmacro %}"
        "{{ m()|length }}"
    ),
    "binary recursion": (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    ),
    "recursive loop": (
        '{% for x in "x"*30 recursive %}{% if loop.depth < 7 %}{{ loop("x"*30) }}{% endif %}'
        "{% endfor %}"
    ),
    "nested literals": (
        A + "{% set b = [a,a,a,a,a,a,a,a,a,a] %}{% set c = [b,b,b,b,b,b,b,b,b,b] %}"
        "{% set d = [c,c,c,c,c,c,c,c,c,c] %}{{ d }}"
    ),
    "nested literals as text": A + "{% set b = [a,a,a,a,a,a,a,a,a,a] %}{{ '%s'|format([b,b]) }}",
    "center filter": "{{ 'x'|center(10**9) }}",
    "center method": '{{ "x".center(10**9) }}',
    "zfill method": '{{ "1".zfill(10**9) }}',
    "translate": A + "{{ a.translate({120: a}) }}",
    "wordwrap": A + '{{ a|wordwrap(1, wrapstring="x"*30000) }}',
    "indent": A + '{{ a|replace("x", "\\n")|indent("y"*1000) }}',
    "tojson indent": "{{ [[1,2]]|tojson(indent=30000) }}",
    "% widths": '{{ ("%99999s" * 300) % ((1,) * 300) }}',
    "squaring a number": (
        "{% set ns = namespace(n=(2**60)**16) %}{% for i in range(30) %}"
        "{% set ns.n = ns.n * ns.n %}{% endfor %}"
    ),
    "sorting in a loop": (
        A + "{% set l = a|list %}{% for i in range(10000) %}{{ l|sort|length }}{% endfor %}"
    ),
    "counting in a loop": A + '{% for i in range(10000) %}{{ a.count("x") }}{% endfor %}',
    "slicing in a loop": A + "{% for i in range(10000) %}{{ a[::-1]|length }}{% endfor %}",
    "sum of lists": A + "{{ a|list|batch(1)|list|sum(start=[])|length }}",
    "a long range as a list": "{{ range(99999)|list|length }}",
    "joining a long stream": '{{ range(99999)|map("string")|join|length }}',
    "batch filling": '{{ [1]|batch(10**9, "x")|list }}',
    "bytes padding": '{{ "x".encode().ljust(10**9) }}',
    # the second attack review: nests of one list ten wide cost nothing to write, and ==, <,
    # in, a test or hashing them (a dict key, ``in {}``) walked 10**7 items (34 s a render)
    "== on nested lists": NESTS + "{{ l7 == m7 }}",
    "< on nested lists": NESTS + "{{ l6 < m6 }}",
    "in on nested lists": NESTS + "{{ m5 in l6 }}",
    "is eq on nested lists": NESTS + "{{ l6 is eq m6 }}",
    "a nested tuple as a dict key": TUPLES + "{{ {t7: 1}|length }}",
    "a nested tuple in {}": TUPLES + "{% if t9 in {} %}y{% endif %}",
    "== in a loop": "{% set l = range(3000)|list %}{% for i in range(10000) %}"
    "{% if l == l %}{% endif %}{% endfor %}",
}


@pytest.fixture(scope="module")
def anomaly() -> Anomaly:
    path = FIXTURES / "webhooks" / "04-api-record-anomaly.json"
    return Anomaly.model_validate(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("source", EXPLODING.values(), ids=EXPLODING.keys())
def test_an_exploding_template_fails_fast_and_the_note_is_the_default(
    anomaly: Anomaly, source: str
) -> None:
    values = variables(anomaly, CONTEXT, NOTE)
    started = time.perf_counter()
    text, error = try_render(source, values)
    elapsed = time.perf_counter() - started
    assert text is None, text[:200] if text else text
    assert error is not None
    assert error.startswith("line "), error  # the template's line, for `check`
    assert elapsed < BOUND_S, (elapsed, error)
    started = time.perf_counter()
    note = render_note(
        [TemplateSet(status_note=source)], "status_note", anomaly, CONTEXT, NOTE, "default"
    )
    assert note == "default"
    assert time.perf_counter() - started < BOUND_S


def test_the_budgets_say_what_ran_out(anomaly: Anomaly) -> None:
    values = variables(anomaly, CONTEXT)
    _, loops = try_render("ok\n" + EXPLODING["four nested ranges"], values)
    assert loops == f"line 2: more than {MAX_STEPS:,} loop iterations and calls"
    _, work = try_render(EXPLODING["~ in a loop"], values)
    assert work == f"line 1: more than {MAX_WORK:,} characters handled in one text"
    _, expanding = try_render(EXPLODING["replace filter"], values)
    assert expanding == "line 1: replace would make more than 32,767 characters"


def test_templates_within_the_budgets_still_render(anomaly: Anomaly) -> None:
    """What real templates do: loops over the anomaly's lists, a few thousand iterations, long
    (but not too long) texts, joins, replaces and padding within the cap."""
    values = variables(anomaly, CONTEXT, NOTE)
    sources = {
        "{% for c in anomaly.failed_checks %}{{ loop.index }}. {{ c.message|upper }}"
        "{% if not loop.last %}; {% endif %}{% endfor %}": (
            "1. 312 RECORDS FAIL SATISFIESEXPRESSION"
        ),
        "{{ anomaly.global_tags|join(' #')|replace('#', '+') }}": "crm +pii",
        "{% for i in range(3000) %}{% endfor %}{{ ('x' * 20000)|length }}": "20000",
        "{{ ('x' * 30000)|center(32000)|length }} {{ '%05d'|format(anomaly.id) }}": "32000 10260",
        "{% set ns = namespace(n=0) %}{% for i in range(50) %}{% for j in range(50) %}"
        "{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}{{ ns.n }}": "2500",
        "{{ anomaly.failed_checks|map(attribute='rule_type')|join(', ') }}": "satisfiesExpression",
        "{{ [anomaly.container, anomaly.datastore] }}": "[accounts, crm_replica]",
    }
    for source, expected in sources.items():
        text, error = try_render(source, values)
        assert (text, error) == (expected, None), source


def test_check_fails_an_exploding_template_naming_it_and_its_line(
    sandbox: ThreadedServer, tmp_path: Path
) -> None:
    recursion = "first line\n" + EXPLODING["binary recursion"]
    templates = (
        "[connections.templates]\n"
        'title = "{{ anomaly.id }}"\n'
        f"status_note = {json.dumps(R6)}\n"
        f"description = {json.dumps(recursion)}\n"
    )
    path = config(tmp_path / "anomaly-desk.toml", sandbox.url, sandbox.url, templates)
    started = time.perf_counter()
    done = run_check("--config", str(path), env=secrets(), data_dir=tmp_path / "data")
    elapsed = time.perf_counter() - started
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    note = next(line for line in lines if " status_note " in line)
    assert note.startswith("FAIL  connection servicenow  status_note  line 1: "), note
    assert note.endswith("replace would make more than 32,767 characters"), note
    description = next(line for line in lines if " description " in line)
    assert description.startswith("FAIL  connection servicenow  description  line 2: ")
    assert description.endswith(f"more than {MAX_STEPS:,} loop iterations and calls")
    assert "ok    connection servicenow  title" in done.stdout
    assert lines[-1] == "3 templates: 2 failed"
    assert elapsed < 20, elapsed  # a Python start, a sandbox check and two failed renders


@pytest.fixture
def bombed(tmp_path: Path, sandbox: ThreadedServer) -> Iterator[Desk]:
    """A receiver whose Jira connection has the attack review's status note template."""
    templates = f"templates = {{ status_note = {json.dumps(R6)} }}"
    path = write_config(tmp_path / "anomaly-desk.toml", sandbox.url, jira=templates)
    receiver = start_receiver(path, tmp_path / "data", ENV)
    api = httpx.Client(base_url=receiver.url, timeout=30)
    try:
        yield Desk(receiver, sandbox, api, tmp_path / "data", path)
    finally:
        api.close()
        receiver.stop()


def test_the_receiver_answers_a_status_webhook_fast_and_sends_the_default_note(
    bombed: Desk,
) -> None:
    bombed.post_webhook("01-flow-anomalies-detected.json")
    created = bombed.api.post(
        "/api/anomalies/10231/tickets", json={"connection": "jira", "fields": {"summary": "s"}}
    )
    assert created.status_code == 201, created.text
    link = created.json()
    bombed.wait_idle()
    started = time.perf_counter()
    bombed.post_webhook("08-flow-status-acknowledged.json")  # renders the status note
    assert time.perf_counter() - started < BOUND_S
    assert bombed.api.get("/healthz").status_code == 200
    bombed.wait_idle()
    notes = bombed.notes(link)
    assert len(notes) == 1, notes
    assert re.match(status_note("Acknowledged"), notes[0]), notes
