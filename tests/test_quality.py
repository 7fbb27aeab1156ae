"""The code base stays lint-clean, type-clean, layered and packaged (these run in the README's test command)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    process = _tool("ruff", "check", "framework", "plugins", "tests", "benchmarks", "examples")
    assert process.returncode == 0, process.stdout + process.stderr


def test_ruff_format_is_clean() -> None:
    process = _tool("ruff", "format", "--check", "framework", "plugins", "tests", "benchmarks", "examples")
    assert process.returncode == 0, process.stdout + process.stderr


def test_mypy_strict_is_clean() -> None:
    process = _tool("mypy")
    assert process.returncode == 0, process.stdout + process.stderr


def test_import_linter_contracts_are_kept() -> None:
    """The layering (core without plugins, plugins on the public core only, plugins independent of each other,
    planning and execution stages apart) as configured in pyproject.toml's [tool.importlinter]."""
    lint = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    process = subprocess.run([sys.executable, "-c", lint], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout + process.stderr
    assert "0 broken" in process.stdout


def _contract(contract_id: str) -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract: dict[str, Any] = next(c for c in config["contracts"] if c["id"] == contract_id)
    return contract


PUBLIC_CORE = {"interfaces", "types", "errors", "testing", "limits", "secrets", "scope_groups", "gcpause", "data_files"}


def test_plugins_are_forbidden_every_core_module_but_the_public_ones() -> None:
    """A new core module is private to plugins until it is deliberately made public (added to PUBLIC_CORE)."""
    core = ROOT / "framework" / "fleetbench"
    modules = {p.stem for p in core.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in core.glob("*/__init__.py")
    }
    forbidden = {
        name.removeprefix("fleetbench.") for name in _contract("plugins-import-public-core")["forbidden_modules"]
    }
    assert forbidden == modules - PUBLIC_CORE


def test_every_plugin_kind_package_is_in_the_independence_contract() -> None:
    """A new kind of plugin (a new package under fleetbench_plugins) must be listed, or its plugins could import
    each other unnoticed; packages within a listed kind are covered by its wildcard."""
    listed = {
        name.removeprefix("fleetbench_plugins.").removesuffix(".*")
        for name in _contract("plugins-independent")["modules"]
    }
    kinds = {p.parent.name for p in (ROOT / "plugins" / "fleetbench_plugins").glob("*/__init__.py")}
    assert kinds <= listed


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


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    """`.ci/run` is the README's test command verbatim, and that command installs the example plugin package."""
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.endswith(".venv/bin/python -m pytest -q"))
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
    assert "-e examples/fleetbench-example" in command


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_core_tests_import_no_plugin() -> None:
    """Core tests run on the fakes of `fleetbench.testing`; a built-in plugin is reached only as a user reaches it
    (the CLI, or the registry through its entry point), never imported (nor are the plugin tests' helpers). The
    example third-party package is another matter: test_example_package.py drives it as its author would."""
    plugin_packages = ("fleetbench_plugins", "tests.plugins")
    offenders = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "tests" / "core").rglob("*.py"))
        for module in _imported_modules(path)
        if module.startswith(plugin_packages)
    }
    assert offenders == set()
