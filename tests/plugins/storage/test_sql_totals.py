"""Scoped aggregates of the `sql` storage, read from its running totals: hand-computed numbers over a fixed set of
units (partials, timeouts, other infra errors, two datasets, two scoring variants, two seeds), the plan filter, and
agreement with an independent implementation (`MemoryStorage`) over random writes."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, func, select

from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.testing.units import make_unit
from fleetbench.types import Cell, Episode, MetricSpec, Outcome, PlanScope, ReportFilter, UnitResult, UnitScope
from fleetbench_plugins.storage.sql import SqlStorage
from fleetbench_plugins.storage.sql.schema import call_totals, unit_totals
from fleetbench_plugins.storage.sql.totals import rebuild

from .builders import DEEPSEEK, LLAMA, RUN, SUITE, call, key, naming, run_record, storage

METRICS = (MetricSpec("score", "quality", "mean"), MetricSpec("tool_calls", "tool calls", "sum"))
MODEL_SCOPE = "m" * 32
# Two datasets (data digests) and two scoring variants of one suite: four suite scopes.
SCOPES = {
    (dataset, scoring): f"{dataset[0]}{scoring[0]}".ljust(32, "0")
    for dataset in ("builtin", "mine")
    for scoring in ("corrected", "legacy")
}
DESCRIPTIONS = {
    digest: {"kind": "suite", "suite": SUITE, "version": "2", "data": {"tasks": f"{dataset}-digest-0123456789"},
             "options": {"scoring": scoring}}
    for (dataset, scoring), digest in SCOPES.items()
}  # fmt: skip
BASE = SCOPES[("builtin", "corrected")]


def unit_result(
    name: str,
    outcome: Outcome,
    *,
    model: str = DEEPSEEK,
    prompt: str = "optimal",
    scope: str = BASE,
    seed: int = 0,
    index: int = 0,
    score: float | None = None,
    tools: float = 1.0,
    duration: float = 10.0,
    turns: int = 2,
    infra_status: str | None = None,
    run_id: str = RUN,
) -> UnitResult:
    cell = Cell(SUITE, model, (("prompt_type", prompt), ("tool_success_rate", 0.8)))
    metrics = {"tool_calls": tools} | ({} if score is None else {"score": score})
    status = infra_status if outcome is Outcome.INFRA_ERROR else None
    episode = Episode(outcome, metrics=metrics, task_id=f"t-{name}", turns=turns, infra_status=status)
    unit = make_unit(key(name), cell, index, seed=seed, scope=UnitScope(scope, MODEL_SCOPE))
    return UnitResult(unit, run_id, model, f"{model}#0", 1000.0, duration, episode)


# name, outcome, prompt, index, score, tools, duration, infra status — all under BASE, seed 0, DeepSeek
FIXED = [
    ("s1", Outcome.SUCCESS, "optimal", 0, 1.0, 3, 10.0, None),
    ("s2", Outcome.SUCCESS, "optimal", 1, 0.8, 1, 20.0, None),
    ("p1", Outcome.PARTIAL, "optimal", 2, 0.5, 2, 30.0, None),
    ("f1", Outcome.FAILURE, "cot", 0, 0.0, 4, 40.0, None),
    ("p2", Outcome.PARTIAL, "cot", 1, None, 5, 50.0, None),  # no score: the mean skips it
    ("t1", Outcome.INFRA_ERROR, "cot", 2, None, 9, 99.0, "timeout"),
    ("t2", Outcome.INFRA_ERROR, "optimal", 3, None, 9, 99.0, "episode_timeout"),
    ("r1", Outcome.INFRA_ERROR, "optimal", 4, None, 9, 99.0, "rate_limited"),
]
# Units that must never share a row with the fixed ones: the other dataset, the other scoring, the other seed.
OTHERS = [
    ("o1", SCOPES[("mine", "corrected")], 0),
    ("o2", SCOPES[("builtin", "legacy")], 0),
    ("o3", SCOPES[("mine", "legacy")], 0),
    ("o4", BASE, 1),
]


@pytest.fixture
def filled(database_url: str) -> SqlStorage:
    store = storage(database_url, run=None)
    store.begin_run(dataclasses.replace(run_record(RUN), scopes=DESCRIPTIONS))
    results = [
        unit_result(name, outcome, prompt=prompt, index=index, score=score, tools=tools, duration=duration,
                    infra_status=status)
        for name, outcome, prompt, index, score, tools, duration, status in FIXED
    ]  # fmt: skip
    results += [unit_result(name, Outcome.SUCCESS, scope=scope, seed=seed, score=0.1) for name, scope, seed in OTHERS]
    store.write(results[:4], [])  # two transactions: totals add up across writes
    store.write(results[4:], [])
    return store


def plan(scope: str = BASE, seed: int = 0, instances: int = 5) -> PlanScope:
    cells = {
        make_unit("x", Cell(SUITE, DEEPSEEK, (("prompt_type", p), ("tool_success_rate", 0.8)))).cell_key: instances
        for p in ("optimal", "cot")
    }
    return PlanScope(scope, MODEL_SCOPE, seed, cells)


def scoped(*plans: PlanScope) -> ReportFilter:
    return ReportFilter(SUITE, plans=plans)


def test_the_planned_scope_matches_hand_computed_aggregates(filled: SqlStorage) -> None:
    (row,) = filled.aggregate(["base_model"], scoped(plan()), METRICS)
    assert row == {
        "base_model": DEEPSEEK,
        "total": 5,  # s1 s2 p1 f1 p2; infra errors are not done
        "success": 2,
        "partial": 2,
        "failure": 1,
        "infra_error": 3,
        "timeout": 2,  # t1 (request timeout) and t2 (episode timeout), not r1
        "mean_duration_s": pytest.approx((10 + 20 + 30 + 40 + 50) / 5),
        "mean_turns": pytest.approx(2.0),
        "score": pytest.approx((1.0 + 0.8 + 0.5 + 0.0) / 4),
        "tool_calls": pytest.approx(3 + 1 + 2 + 4 + 5),
    }


def test_by_prompt_type_every_row_adds_up(filled: SqlStorage) -> None:
    cot, optimal = filled.aggregate(["prompt_type"], scoped(plan()), METRICS)
    assert (cot["prompt_type"], cot["success"], cot["partial"], cot["failure"], cot["timeout"]) == ("cot", 0, 1, 1, 1)
    assert cot["score"] == pytest.approx(0.0) and cot["tool_calls"] == pytest.approx(9.0)
    assert (optimal["success"], optimal["partial"], optimal["failure"], optimal["infra_error"]) == (2, 1, 0, 2)
    assert optimal["score"] == pytest.approx((1.0 + 0.8 + 0.5) / 3)
    for row in (cot, optimal):
        assert row["total"] == row["success"] + row["partial"] + row["failure"]


def test_instances_beyond_the_plan_are_not_counted(filled: SqlStorage) -> None:
    (row,) = filled.aggregate(["base_model"], scoped(plan(instances=2)), METRICS)
    # index < 2: s1 s2 (optimal), f1 p2 (cot); p1, t1, t2, r1 have index 2 and above.
    assert (row["total"], row["success"], row["partial"], row["failure"], row["infra_error"]) == (4, 2, 1, 1, 0)
    assert row["tool_calls"] == pytest.approx(3 + 1 + 4 + 5)


def test_other_datasets_scorings_and_seeds_never_share_a_row(filled: SqlStorage) -> None:
    (row,) = filled.aggregate(["base_model"], scoped(plan()), METRICS)
    assert row["total"] == 5, "nothing of another scope or seed in the configuration's scope"
    for scope, seed in [(SCOPES[("mine", "corrected")], 0), (SCOPES[("builtin", "legacy")], 0), (BASE, 1)]:
        (other,) = filled.aggregate(["base_model"], scoped(plan(scope, seed)), METRICS)
        assert (other["total"], other["score"]) == (1, pytest.approx(0.1))
    everything = filled.aggregate(["base_model", "suite_scope", "seed"], ReportFilter(SUITE), METRICS)
    assert sorted((r["suite_scope"][:2], r["seed"], r["total"]) for r in everything) == [
        ("bc", 0, 5), ("bc", 1, 1), ("bl", 0, 1), ("mc", 0, 1), ("ml", 0, 1),
    ]  # fmt: skip


def test_scope_properties_group_as_asked(filled: SqlStorage) -> None:
    rows = filled.aggregate(["dataset", "suite.scoring", "seed"], ReportFilter(SUITE), METRICS)
    assert [(r["dataset"], r["suite.scoring"], r["seed"], r["total"]) for r in rows] == [
        ("builtin-dige", "corrected", 0, 5),
        ("builtin-dige", "corrected", 1, 1),
        ("builtin-dige", "legacy", 0, 1),
        ("mine-digest-", "corrected", 0, 1),
        ("mine-digest-", "legacy", 0, 1),
    ]
    by_dataset = filled.aggregate(["dataset"], ReportFilter(SUITE), ())
    assert [(r["dataset"], r["total"]) for r in by_dataset] == [("builtin-dige", 7), ("mine-digest-", 2)]


def test_a_replaced_infra_error_leaves_the_totals(filled: SqlStorage) -> None:
    rerun = unit_result("t1", Outcome.SUCCESS, prompt="cot", index=2, score=1.0, tools=1.0, duration=5.0)
    assert filled.write([rerun], []) == 1
    (row,) = filled.aggregate(["base_model"], scoped(plan()), METRICS)
    assert (row["total"], row["success"], row["infra_error"], row["timeout"]) == (6, 3, 2, 1)
    assert row["score"] == pytest.approx((1.0 + 0.8 + 0.5 + 0.0 + 1.0) / 5)


def test_rebuilding_the_totals_from_units_gives_the_same_numbers(filled: SqlStorage, database_url: str) -> None:
    filled.write([], [call("s1", DEEPSEEK), call("s1", f"{DEEPSEEK}-2"), call("f1", DEEPSEEK)])
    before = filled.aggregate(["base_model", "prompt_type"], scoped(plan()), METRICS)
    shares = filled.deployment_shares(scoped(plan()))
    assert [(s["deployment"], s["calls"]) for s in shares] == [(DEEPSEEK, 2), (f"{DEEPSEEK}-2", 1)]
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for table in (unit_totals, call_totals):
            connection.execute(delete(table))
            assert connection.execute(select(func.count()).select_from(table)).scalar_one() == 0
        rebuild(connection, chunk=3)
    engine.dispose()
    filled.close()
    assert filled.aggregate(["base_model", "prompt_type"], scoped(plan()), METRICS) == before
    assert filled.deployment_shares(scoped(plan())) == shares


def test_calls_stored_before_their_unit_count_once_it_is_stored(filled: SqlStorage) -> None:
    early = [call("late", DEEPSEEK), call("late", DEEPSEEK, attempt=2)]
    filled.write([], early)
    assert sum(s["calls"] for s in filled.deployment_shares(scoped(plan()))) == 0
    filled.write([unit_result("late", Outcome.SUCCESS, prompt="cot", index=3)], [call("late", DEEPSEEK, attempt=3)])
    assert [(s["deployment"], s["calls"]) for s in filled.deployment_shares(scoped(plan()))] == [(DEEPSEEK, 3)]
    # Beyond the plan's instance count the unit (index 3) is left out, and so are its calls.
    assert sum(s["calls"] for s in filled.deployment_shares(scoped(plan(instances=3)))) == 0


def _random_results(rng: random.Random, count: int) -> list[UnitResult]:
    outcomes = list(Outcome)
    results = []
    for _ in range(count):
        outcome = rng.choice(outcomes)
        results.append(
            unit_result(
                f"u{rng.randrange(count)}",  # repeated keys: later writes of a key may replace an infra error
                outcome,
                model=rng.choice([DEEPSEEK, LLAMA]),
                prompt=rng.choice(["optimal", "cot", "baseline"]),
                scope=rng.choice(list(SCOPES.values())),
                seed=rng.choice([0, 1]),
                index=rng.randrange(4),
                score=rng.choice([None, rng.random()]),
                tools=float(rng.randrange(5)),
                duration=rng.random() * 10,
                turns=rng.randrange(1, 6),
                infra_status=rng.choice(["timeout", "rate_limited", "episode_timeout"]),
            )
        )
    return results


@pytest.mark.parametrize("seed", [1, 2])
def test_totals_agree_with_an_independent_count_over_random_writes(database_url: str, seed: int) -> None:
    rng = random.Random(seed)
    sql = storage(database_url, run=None)
    memory = MemoryStorage(naming=naming())
    for store in (sql, memory):
        store.begin_run(dataclasses.replace(run_record(RUN), scopes=DESCRIPTIONS))
    results = _random_results(rng, 120)
    for start in range(0, len(results), 17):
        batch = results[start : start + 17]
        calls = [
            dataclasses.replace(call("x", rng.choice([r.unit.cell.base_model, f"{DEEPSEEK}-2"])), unit_key=r.key)
            for r in batch
            for _ in range(rng.randrange(3))
        ]
        assert sql.write(batch, calls) == memory.write(batch, calls)
    plans = (plan(BASE, 0, 3), plan(SCOPES[("mine", "legacy")], 1, 2))
    for group_by, flt in [
        (["base_model"], scoped(*plans)),
        (["base_model", "prompt_type", "seed"], ReportFilter(SUITE)),
        (["dataset", "suite.scoring", "deployment"], ReportFilter(SUITE)),
        (["prompt_type"], ReportFilter(SUITE, (LLAMA,), plans=plans)),
    ]:
        assert _rounded(sql.aggregate(group_by, flt, METRICS)) == _rounded(memory.aggregate(group_by, flt, METRICS))
    assert sql.deployment_shares(scoped(*plans)) == memory.deployment_shares(scoped(*plans))


def _rounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(v, 9) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
