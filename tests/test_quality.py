"""The code base stays lint-clean, type-clean, layered and packaged (these run in the README's test command)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    process = _tool("ruff", "check", "framework", "plugins", "tests", "benchmarks")
    assert process.returncode == 0, process.stdout + process.stderr


def test_mypy_strict_is_clean() -> None:
    process = _tool("mypy")
    assert process.returncode == 0, process.stdout + process.stderr


def test_core_never_imports_plugins() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "framework").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.match(r"\s*(from|import)\s+fleetbench_plugins", line)
    ]
    assert offenders == []


def test_every_package_directory_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    roots = {
        "fleetbench": ROOT / "framework" / "fleetbench",
        "fleetbench_plugins": ROOT / "plugins" / "fleetbench_plugins",
    }
    found = {"fleetbench_conf"}
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            found.add(".".join([name, *relative.parts]))
    assert found - listed == set(), "add these packages to [tool.setuptools] packages"
