"""Shared fixtures: run the real `fleetbench` command in a subprocess, in a scratch working directory.

`sqlite_url`, `postgres_url` and `simulated_provider` come from fleetbench's own pytest plugin
(`fleetbench.testing.pytest_plugin`, entry point `pytest11`), as they do for any plugin author's tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests run hypothesis's default 100 examples; the mutation run (benchmarks/mutation.py) runs them once per
# mutant, so it asks for fewer (`--hypothesis-profile=mutation`): example-based tests carry most of its kills.
settings.register_profile("mutation", max_examples=25)

pytest_plugins = ["pytester"]  # tests/core/test_contract_kits.py runs the kits in sessions of their own

CLI = [sys.executable, "-m", "fleetbench.entry"]

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: no colour codes, no terminal width games."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"}
    env.update(extra or {})
    return env


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """`run_cli("run", "run.instances=3")` runs fleetbench in `tmp_path` and returns the finished process."""

    def _run(
        *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], cwd=cwd or tmp_path, env=cli_env(env), capture_output=True, text=True, timeout=timeout
        )

    return _run


def stderr_lines(process: subprocess.CompletedProcess[str]) -> Sequence[str]:
    """Non-empty stderr lines."""
    return [line for line in process.stderr.splitlines() if line.strip()]


def plugin_rows(stdout: str) -> dict[tuple[str, str], dict[str, str]]:
    """The table `fleetbench plugins` prints, as {(kind, name): {distribution, status, options}}; a cell that the table
    wrapped over several lines is joined back into one line."""
    rows: list[list[str]] = []
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) != 5:
            continue
        if cells[0]:
            rows.append(cells)
        elif rows:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells, strict=True)]
    return {
        (kind, name): {"distribution": distribution, "status": status, "options": options}
        for kind, name, distribution, status, options in rows
    }
