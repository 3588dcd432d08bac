"""The two trees the scale benchmark compares, each run as its own code in child processes.

*today* is a commit (before the work the benchmark judges) extracted with ``git archive`` into a
temporary directory; *now* is the working tree. The venv has an editable install of the working
tree, so a child of either tree runs with ``PYTHONPATH`` naming a link farm that maps
``anomaly_desk.*`` onto that tree's folders (as its ``pyproject.toml`` says), and checks where it
imported ``anomaly_desk`` from before doing anything (``scale_child.check_tree``).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tests.support import ROOT

HERE = Path(__file__).resolve().parent
CHILD_FILES = ("scale_child.py", "scale_docs.py")


class ChildFailed(RuntimeError):
    """A child process exited non-zero or said nothing readable."""


@dataclass
class Tree:
    name: str  # today | now
    label: str  # what the tables call it
    root: Path  # the source tree
    farm: Path  # PYTHONPATH entry mapping anomaly_desk.* onto root
    launcher: Path  # the directory the child scripts run from
    commands: list[str] = field(default_factory=list)  # the tree's CLI subcommands

    def env(self, **more: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ANOMALY_DESK"))}
        env["PYTHONPATH"] = f"{self.farm}{os.pathsep}{self.root}"
        env["SCALE_TREE"] = str(self.root)
        env["PYTHONUNBUFFERED"] = "1"
        return {**env, **more}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, str(self.launcher / "scale_child.py"), *args]

    def run(self, *args: str, timeout: float) -> tuple[str, str]:
        """A child to completion; its stdout and stderr."""
        proc = subprocess.Popen(
            self.command(*args),
            cwd=self.launcher,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise ChildFailed(f"{self.name} {args[0]}: no answer within {timeout:.0f} s") from None
        except BaseException:  # interrupted: the child has its own session, nothing else stops it
            kill_group(proc)
            raise
        said = out.decode(errors="replace") + err.decode(errors="replace")
        if proc.returncode:
            tail = said.strip()[-1500:]
            raise ChildFailed(f"{self.name} {' '.join(args[:2])} exited {proc.returncode}: {tail}")
        return out.decode(errors="replace"), err.decode(errors="replace")

    def ask(self, *args: str, timeout: float) -> dict[str, object]:
        """A child's answer: the last line of its stdout, read as JSON."""
        lines = self.run(*args, timeout=timeout)[0].strip().splitlines()
        try:
            answer = orjson.loads(lines[-1]) if lines else None
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise ChildFailed(f"{self.name} {args[0]}: no JSON answer in {lines[-3:]!r}")
        return answer


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a child started with ``start_new_session`` and everything it started."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def link_farm(root: Path, farm: Path) -> None:
    """``farm/anomaly_desk`` with the tree's folders where its package-dir puts them."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    mapping: dict[str, str] = pyproject["tool"]["setuptools"]["package-dir"]
    package = farm / "anomaly_desk"
    package.mkdir(parents=True)
    for entry in (root / mapping["anomaly_desk"]).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        parts = name.split(".")
        if len(parts) == 2 and not (package / parts[1]).exists():
            (package / parts[1]).symlink_to(root / folder)


def extract_commit(commit: str, into: Path) -> Path:
    """The tree of ``commit`` as plain files (``git archive``: the repository is not touched)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def prepare(name: str, label: str, root: Path, work: Path) -> Tree:
    """The tree's link farm and launcher directory, and a check that a child imports it."""
    farm = work / f"{name}-farm"
    launcher = work / f"{name}-launcher"
    link_farm(root, farm)
    launcher.mkdir()
    for file in CHILD_FILES:
        shutil.copy(HERE / file, launcher / file)
    tree = Tree(name, label, root.resolve(), farm, launcher)
    where = tree.ask("where", timeout=60)
    commands = where.get("commands")
    tree.commands = [str(c) for c in commands] if isinstance(commands, list) else []
    return tree
