"""The dependency direction core ← receiver ← tui, checked by importing every module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT

IMPORT_ALL = """
import importlib, pkgutil, sys
package = importlib.import_module({package!r})
for module in pkgutil.walk_packages(package.__path__, {package!r} + "."):
    importlib.import_module(module.name)
loaded = sorted(name for name in {forbidden!r} if name in sys.modules)
assert not loaded, f"{package} imports {{loaded}}"
"""


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("anomaly_desk.core", ("textual", "starlette")), ("anomaly_desk.receiver", ("textual",))],
)
def test_package_stays_below_its_layer(package: str, forbidden: tuple[str, ...]) -> None:
    code = IMPORT_ALL.format(package=package, forbidden=forbidden)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
