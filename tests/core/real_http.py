"""Helpers of the real-HTTP tests: runs through litellm against a `fleetbench serve` process, and what they stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from fleetbench.config import compose_config, resolve_run
from fleetbench.runner import RunSummary, run
from fleetbench.testing.server.environment import served_environment
from fleetbench.testing.server.process import RunningServer

FAST_RETRIES = ["scheduler.backoff_base_s=0.01", "scheduler.backoff_max_s=0.05"]


def environment(server: RunningServer) -> dict[str, str]:
    """The environment pointing every real-model catalog entry at `server` (what `serve --print-env` prints)."""
    return served_environment(compose_config([]).models, server.url)


def run_through(
    server: RunningServer, db: Path, overrides: Sequence[str], extra_env: Mapping[str, str] | None = None
) -> RunSummary:
    """One in-process `fleetbench run` into the SQLite file `db`, its real-model entries pointed at `server`."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**environment(server), **(extra_env or {})}.items():
            patch.setenv(name, value)
        spec = resolve_run(compose_config([f"storage.url=sqlite:///{db}", "run.progress=off", *overrides]))
        return run(spec)


def rows(db: Path, query: str) -> list[dict[str, Any]]:
    """The rows of a query on a run's database, as dicts."""
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(query)]
    finally:
        connection.close()


def outcomes(db: Path) -> dict[str, str]:
    """Unit key -> outcome of every stored unit."""
    return {row["unit_key"]: row["outcome"] for row in rows(db, "select unit_key, outcome from units")}


def planned(db: Path) -> int:
    """Units the newest run planned."""
    return int(rows(db, "select planned_units from runs order by started_at desc limit 1")[0]["planned_units"])


def completed(db: Path) -> dict[str, str]:
    """Unit key -> outcome of the units that are done (infrastructure errors excluded)."""
    return {key: outcome for key, outcome in outcomes(db).items() if outcome != "infra_error"}


def assert_same_model_results(db: Path, baseline: Mapping[str, str]) -> None:
    """Every completed unit has exactly the outcome it has in a fault-free run: infrastructure failures changed
    nothing the model did, and none was counted as a model failure."""
    done = completed(db)
    assert done, "nothing completed"
    assert {key: baseline[key] for key in done} == done


def by_deployment(entries: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Request-log entries grouped by deployment, in arrival order."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for entry in sorted(entries, key=lambda e: e["received_at"]):
        grouped.setdefault(str(entry.get("deployment")), []).append(entry)
    return grouped
