"""Helpers of the export, drift and HTML tests: a real `fleetbench run` into a real database, read back by hand."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy

from fleetbench.testing.databases import fresh_postgres_database
from tests.conftest import CLI, cli_env

# The workflow suite on a small grid with a flaw type, two tool success rates and 429s on one deployment.
WORKFLOW = [
    "suite=workflow",
    "suite.prompt_types=[optimal,flawed_sequence_disorder]",
    "suite.difficulties=[easy]",
    "suite.tool_success_rates=[0.8,0.6]",
    "models.sim_agent.deployments.0.params.rate_limit_rate=0.2",
    "models.sim_agent.deployments.0.params.retry_after_s=0.01",
]


def cli(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`fleetbench ARGS` in `cwd`, finished."""
    return subprocess.run([*CLI, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout)


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file in `folder`, or a new PostgreSQL database (skips without a server)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'fleetbench.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def stored_units(url: str) -> list[dict[str, Any]]:
    """Every row of `units`, factors and metrics decoded, read with plain SQL."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT unit_key, base_model, deployment, outcome, factors, metrics FROM units")
            ).mappings()
            return [
                {
                    **row,
                    "factors": json.loads(row["factors"]) if isinstance(row["factors"], str) else row["factors"],
                    "metrics": json.loads(row["metrics"]) if isinstance(row["metrics"], str) else row["metrics"],
                }
                for row in rows
            ]
    finally:
        engine.dispose()


def stored_calls(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sqlalchemy.text("SELECT count(*) FROM calls")).scalar_one())
    finally:
        engine.dispose()
