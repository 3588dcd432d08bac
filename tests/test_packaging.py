"""One import root: the wheel installs `anomaly_desk` and nothing else at the top level."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import ROOT


def test_the_wheel_has_one_top_level_package_and_ships_its_data(tmp_path: Path) -> None:
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("anomaly_desk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "anomaly_desk",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }
    for module in ("core/store.py", "receiver/app.py", "tui/app.py", "sandbox/jira.py"):
        assert f"anomaly_desk/{module}" in names
    assert "anomaly_desk/fixtures/webhooks/01-flow-anomalies-detected.json" in names
    assert "anomaly_desk/tui/dashboard.tcss" in names
    assert "anomaly_desk/sandbox/adf-schema-v1-full.json" in names


def test_the_packages_import_from_any_directory(tmp_path: Path) -> None:
    code = (
        "import anomaly_desk, anomaly_desk.core.store, anomaly_desk.receiver.app, "
        "anomaly_desk.tui.app, anomaly_desk.sandbox.app; print(anomaly_desk.__version__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() not in ("", "0+unknown")
