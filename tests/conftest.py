"""Shared fixtures: run the real `fleetbench` command in a subprocess, in a scratch working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from fleetbench.testing.databases import fresh_postgres_database

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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test (skips when no server answers, unless
    FLEETBENCH_REQUIRE_POSTGRES=1, which CI sets)."""
    with fresh_postgres_database() as url:
        yield url
