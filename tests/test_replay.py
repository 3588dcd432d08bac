"""``anomaly-desk replay`` against a real receiver on loopback, configured with a secret."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from anomaly_desk.cli import main
from anomaly_desk.core.config import load_settings
from anomaly_desk.receiver.app import create_app
from anomaly_desk.replay import Auth, Payload, Result, Sender
from anomaly_desk.replay import replay as replay_payloads
from anomaly_desk.sandbox.server import make_tls
from tests.support import FIXTURES, ROOT, ThreadedServer, free_port

WEBHOOKS = FIXTURES / "webhooks"
SECRET = "right-secret-4f9a"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FILES = sorted(p.name for p in WEBHOOKS.glob("*.json"))
ANOMALIES_IN_FIXTURES = 12


@pytest.fixture
def receiver(start_receiver: Callable[..., ThreadedServer]) -> ThreadedServer:
    return start_receiver({"ANOMALY_DESK_WEBHOOK_SECRET": SECRET})


def stored(server: ThreadedServer) -> int:
    return int(httpx.get(f"{server.url}/healthz").json()["anomalies"])


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_fixture_is_accepted_with_the_right_secret(receiver: ThreadedServer) -> None:
    """The real command line, as a user runs it against a running receiver."""
    command = [sys.executable, "-m", "anomaly_desk", "replay", str(WEBHOOKS)]
    done = subprocess.run(
        [*command, "--url", receiver.url, "--secret", SECRET],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"9 of 9 deliveries to {receiver.url}/webhooks/qualytics" in done.stdout
    assert "200 ×9" in done.stdout
    assert "failed" not in done.stdout
    # one plain progress line per delivery (stderr is not a terminal here), in file order
    lines = [line for line in done.stderr.splitlines() if line.startswith("200  ")]
    assert [line.split()[1] for line in lines] == FILES
    assert SECRET not in done.stdout + done.stderr
    assert stored(receiver) == ANOMALIES_IN_FIXTURES


def test_a_wrong_secret_reports_401s_and_fails(
    receiver: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = replay(
        capsys,
        str(WEBHOOKS),
        "--url",
        f"{receiver.url}/webhooks/qualytics",  # the full webhook URL works as well
        "--secret",
        "wrong-secret-77c1",
    )
    assert code == 1
    assert "401 ×9" in out
    assert "failed (9):" in out
    failures = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert sorted(failures) == FILES
    for line in failures.values():
        assert line.split(None, 1)[1].strip() == (
            "401  Unauthorized: the shared secret does not match"
        )
    assert "wrong-secret-77c1" not in out + err
    assert stored(receiver) == 0


def test_standard_webhooks_signatures_are_accepted(
    start_receiver: Callable[[dict[str, str]], ThreadedServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = start_receiver({"ANOMALY_DESK_SIGNING_SECRET": SIGNING})
    code, out, err = replay(
        capsys, str(WEBHOOKS), "--url", server.url, "--sign-standard", SIGNING, "--repeat", "2"
    )
    assert code == 0, out + err
    assert "200 ×18" in out
    # every signed delivery has a fresh webhook-id: none is taken for a redelivery
    assert "redeliver" not in out + err
    assert SIGNING not in out + err
    assert stored(server) == ANOMALIES_IN_FIXTURES

    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    code, out, _ = replay(
        capsys, str(WEBHOOKS / FILES[0]), "--url", server.url, "--sign-standard", other
    )
    assert code == 1
    assert "401  Unauthorized: Standard Webhooks signature rejected" in out


def test_an_https_receiver_with_a_private_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As against a production receiver behind TLS: verified, never silently trusted."""
    tls = make_tls(tmp_path)
    settings = load_settings(
        overrides={"data_dir": tmp_path / "data"}, env={"ANOMALY_DESK_WEBHOOK_SECRET": SECRET}
    )
    app = create_app(settings)
    with ThreadedServer(app, ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key)) as server:
        assert server.url.startswith("https://")
        code, out, err = replay(capsys, str(WEBHOOKS), "--url", server.url, "--secret", SECRET)
        assert code == 1
        assert "TLS certificate not trusted (pass its CA with --ca-bundle)" in err
        code, out, err = replay(
            capsys,
            str(WEBHOOKS),
            "--url",
            server.url,
            "--secret",
            SECRET,
            "--ca-bundle",
            str(tls.ca),
        )
        assert code == 0, out + err
        assert "200 ×9" in out


def test_a_bearer_token_is_accepted_as_the_shared_secret(
    receiver: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = replay(
        capsys, str(WEBHOOKS / FILES[0]), "--url", receiver.url, "--bearer", SECRET
    )
    assert code == 0, out + err
    assert "1 of 1 deliveries" in out
    assert "200 ×1" in out


def test_a_file_that_is_not_json_is_named_and_nothing_is_sent(
    receiver: ThreadedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "hooks"
    folder.mkdir()
    (folder / "01-good.json").write_bytes((WEBHOOKS / FILES[0]).read_bytes())
    (folder / "02-broken.json").write_text(
        '{\n  "event": "qualytics.flow.triggered",\n  "flow": }\n'
    )
    (folder / "notes.txt").write_text("not a payload, not picked up")
    code, out, err = replay(capsys, str(folder), "--url", receiver.url, "--secret", SECRET)
    assert code == 2
    assert out == ""
    assert (
        f"{folder / '02-broken.json'}: not valid JSON: Expecting value (line 3, column 11)" in err
    )
    assert "nothing was sent" in err
    assert stored(receiver) == 0  # not even the good file that sorts first


def test_a_payload_the_receiver_rejects_is_listed_with_its_problem(
    receiver: ThreadedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "odd.json"
    odd.write_text('{"id": "not-a-number", "type": "record"}')
    code, out, _ = replay(
        capsys, str(WEBHOOKS / FILES[0]), str(odd), "--url", receiver.url, "--secret", SECRET
    )
    assert code == 1
    assert "200 ×1" in out
    assert "422 ×1" in out
    failure = next(line for line in out.splitlines() if line.strip().startswith("odd.json"))
    assert "422" in failure
    assert "id" in failure.split("422", 1)[1]  # the receiver's field path comes through


def test_an_unreachable_receiver_is_a_clear_failure(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = replay(capsys, str(WEBHOOKS), "--url", url, "--secret", SECRET)
    assert code == 1
    assert f"cannot connect to {url}/webhooks/qualytics: connection refused" in err
    assert "is the receiver running?" in err
    assert "0 of 9 deliveries" in out


def test_repeat_and_rate(receiver: ThreadedServer, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code, out, err = replay(
        capsys,
        str(WEBHOOKS),
        "--url",
        receiver.url,
        "--secret",
        SECRET,
        "--repeat",
        "2",
        "--rate",
        "50",
    )
    elapsed = time.monotonic() - started
    assert code == 0, out + err
    assert "18 of 18 deliveries" in out
    assert "200 ×18" in out
    # the second round has the same bodies and no webhook-id: processed, nothing changes
    assert "9 carried nothing new" in out
    assert len([line for line in err.splitlines() if line.startswith("200  ")]) == 18
    assert elapsed >= 17 / 50  # 18 starts, evenly spaced at 50 per second
    assert stored(receiver) == ANOMALIES_IN_FIXTURES


class StartRecorder(Sender):
    """A sender that only notes when each delivery started (no receiver needed)."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1", Auth())
        self.starts: list[float] = []

    async def send(self, payload: Payload, label: str | None = None) -> Result:
        self.starts.append(time.monotonic())
        await asyncio.sleep(0.001)
        return Result(label or payload.name, 200)


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_rate_spaces_starts_evenly_without_a_burst(concurrency: int) -> None:
    payloads = [Payload(f"{n}.json", b"{}") for n in range(6)]
    sender = StartRecorder()
    async with sender:
        results = await replay_payloads(payloads, sender, rate=20, concurrency=concurrency)
    assert len(results) == 6
    gaps = [later - earlier for earlier, later in itertools.pairwise(sender.starts)]
    assert min(gaps) >= 1 / 20 - 0.005, gaps  # none at once, even with workers to spare


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "ftp://example.com"], "--url: 'ftp://example.com' is not an http(s):// URL"),
        (["--url", "http://127.0.0.1:1", "--rate", "0"], "--rate: must be more than 0"),
        (["--url", "http://127.0.0.1:1", "--repeat", "0"], "--repeat: must be 1 or more"),
        (
            ["--url", "http://127.0.0.1:1", "--sign-standard", "not-a-key"],
            "--sign-standard: a Standard Webhooks key starts with whsec_",
        ),
        (
            ["--url", "http://127.0.0.1:1", "--secret", "env:ANOMALY_DESK_TEST_UNSET_VAR"],
            "--secret: environment variable ANOMALY_DESK_TEST_UNSET_VAR is unset or empty",
        ),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = replay(capsys, str(WEBHOOKS), *args)
    assert code == 2
    assert message in err
