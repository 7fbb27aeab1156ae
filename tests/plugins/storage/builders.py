"""Real fleetbench values for the storage tests: a catalog, its naming policy, results and calls."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from fleetbench.testing.units import make_unit
from fleetbench.types import (
    CallRecord,
    CallStatus,
    Catalog,
    Cell,
    DeploymentSpec,
    Episode,
    FactorValue,
    ModelSpec,
    Outcome,
    RunRecord,
    Unit,
    UnitResult,
)
from fleetbench_plugins.naming.catalog import CatalogNaming, CatalogNamingOptions
from fleetbench_plugins.storage.sql import SqlOptions, SqlStorage

DEEPSEEK = "DeepSeek-V3-0324"
LLAMA = "Llama-3.3-70B-Instruct"
SUITE = "workflow"
RUN = "run-1"


def naming() -> CatalogNaming:
    """Two base models; DeepSeek has two deployments, Llama an alias."""
    catalog = Catalog(
        (
            ModelSpec(DEEPSEEK, "simulated", (DeploymentSpec(DEEPSEEK), DeploymentSpec(f"{DEEPSEEK}-2"))),
            ModelSpec(LLAMA, "simulated", (DeploymentSpec(LLAMA),), aliases=("llama-3.3-70b",)),
        )
    )
    return CatalogNaming(CatalogNamingOptions(), catalog=catalog)


def storage(url: str, *, migrate: bool = True, run: str | None = RUN) -> SqlStorage:
    """A storage on `url`, migrated and with `run` begun unless told otherwise."""
    store = SqlStorage(SqlOptions(url=url), naming=naming())
    if migrate:
        store.migrate()
    if run is not None:
        store.begin_run(run_record(run))
    return store


def run_record(run_id: str = RUN, models: tuple[str, ...] = (DEEPSEEK, LLAMA)) -> RunRecord:
    return RunRecord(run_id, 1000.0, SUITE, models, {"storage": {"url": "***"}}, "0.1.0", "test-host", 10)


def key(name: str) -> str:
    """A 64-character unit key, as the planner makes them."""
    return hashlib.sha256(name.encode()).hexdigest()


def result(
    name: str,
    outcome: Outcome | str = Outcome.SUCCESS,
    *,
    model: str = DEEPSEEK,
    deployment: str | None = None,
    factors: Mapping[str, FactorValue] | None = None,
    metrics: Mapping[str, float] | None = None,
    duration_s: float = 10.0,
    turns: int = 3,
    transcript: Mapping[str, Any] | None = None,
    run_id: str = RUN,
    index: int = 0,
) -> UnitResult:
    """The result of unit `name` (its key is `key(name)`)."""
    default: dict[str, FactorValue] = {"prompt_type": "optimal", "tool_success_rate": 0.8}
    cell_factors = factors if factors is not None else default
    cell = Cell(SUITE, model, tuple(cell_factors.items()))
    episode = Episode(
        Outcome(outcome),
        metrics=dict(metrics if metrics is not None else {"score": 1.0}),
        task_id=f"task-{name}",
        turns=turns,
        error_category="timeout" if outcome == Outcome.INFRA_ERROR else None,
        infra_status="timeout" if outcome == Outcome.INFRA_ERROR else None,
        transcript=transcript,
    )
    return UnitResult(
        make_unit(key(name), cell, index, seed=7),
        run_id,
        deployment or model,
        f"{deployment or model}#0",
        1000.0 + index,
        duration_s,
        episode,
    )


def result_for(unit: Unit, run_id: str = RUN, *, infra: bool = False) -> UnitResult:
    """A finished result (a success, or an infra error) for a planned unit."""
    outcome = Outcome.INFRA_ERROR if infra else Outcome.SUCCESS
    episode = Episode(outcome, infra_status="timeout" if infra else None)
    model = unit.cell.base_model
    return UnitResult(unit, run_id, model, f"{model}#0", 1000.0, 1.0, episode)


def call(
    name: str, deployment: str, *, attempt: int = 1, status: CallStatus = CallStatus.OK, run_id: str = RUN
) -> CallRecord:
    """One request made for unit `name` on `deployment`."""
    return CallRecord(
        unit_key=key(name),
        run_id=run_id,
        lane_id=f"{deployment}#0",
        deployment=deployment,
        credential_id="cred-0",
        attempt=attempt,
        started_at=1000.0,
        latency_s=0.25,
        status=status,
        prompt_tokens=100,
        completion_tokens=20,
        http_status=200 if status == CallStatus.OK else 429,
        error=None if status == CallStatus.OK else "rate limited",
    )
