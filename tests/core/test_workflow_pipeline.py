"""The workflow suite through the whole pipeline: conditions give different results, and runs are reproducible."""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

from fleetbench.config import compose_config, resolve_run
from fleetbench.runner import run

pytestmark = pytest.mark.slow
# Hard descriptions: there the plan in an optimal prompt matters most, so the conditions differ far beyond noise.
GRID = ["experiment=workflow_demo", "suite.difficulties=[hard]", "run.instances=5", "run.progress=off"]


def _run(db: Path, *extra: str) -> None:
    summary = run(resolve_run(compose_config([f"storage.url=sqlite:///{db}", *GRID, *extra])))
    assert summary.executed == 10 * 5 * 4 * 5
    assert summary.outcomes["infra_error"] == 0


def _rows(db: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        units = connection.execute(
            "select unit_key, outcome, metrics, task_id, turns, error_category, factors from units"
        ).fetchall()
        transcripts = dict(connection.execute("select unit_key, data from transcripts").fetchall())
    return {
        key: (
            outcome,
            json.loads(metrics),
            task_id,
            turns,
            category,
            json.loads(factors),
            json.loads(zlib.decompress(transcripts[key])),
        )
        for key, outcome, metrics, task_id, turns, category, factors in units
    }


def _mean(rows: dict[str, tuple[Any, ...]], factor: str, value: Any, metric: str = "weighted_success") -> float:
    values = [row[1][metric] for row in rows.values() if row[5][factor] == value]
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    scratch = tmp_path_factory.mktemp("workflow")
    _run(scratch / "first.db")
    _run(scratch / "second.db", "sharding=even")  # other lanes run other units: results must not care
    return _rows(scratch / "first.db"), _rows(scratch / "second.db")


def test_same_seed_stores_identical_outcomes_scores_task_ids_and_transcripts(two_runs: Any) -> None:
    first, second = two_runs
    assert first.keys() == second.keys()
    assert first == second


def test_optimal_beats_baseline_for_the_strong_profile(two_runs: Any) -> None:
    rows, _ = two_runs
    assert _mean(rows, "prompt_type", "optimal") > _mean(rows, "prompt_type", "baseline")


def test_less_reliable_tools_give_lower_success(two_runs: Any) -> None:
    rows, _ = two_runs
    assert _mean(rows, "tool_success_rate", 0.6) < _mean(rows, "tool_success_rate", 0.9)


def test_every_prompt_type_is_a_distinct_condition(two_runs: Any) -> None:
    rows, _ = two_runs
    prompts: dict[str, set[str]] = {}
    for row in rows.values():
        factors, transcript = row[5], row[6]
        prompts.setdefault(factors["prompt_type"], set()).add(json.dumps(transcript["prompt"], sort_keys=True))
    assert len(prompts) == 10
    optimal = prompts.pop("optimal")
    for prompt_type, rendered in prompts.items():
        assert rendered.isdisjoint(optimal), f"{prompt_type} rendered a prompt identical to optimal"
