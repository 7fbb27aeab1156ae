"""Report queries of the `sql` storage, checked against numbers computed by hand from a small fixture."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbench.types import CallStatus, MetricSpec, Outcome, ReportFilter
from fleetbench_plugins.storage.sql import SqlStorage

from .builders import DEEPSEEK, LLAMA, RUN, SUITE, call, key, result, run_record, storage

DEEPSEEK_2 = f"{DEEPSEEK}-2"
METRICS = (MetricSpec("score", "quality", "mean"), MetricSpec("tool_calls", "tool calls", "sum"))


def factors(prompt_type: str, rate: float) -> dict[str, str | float]:
    return {"prompt_type": prompt_type, "tool_success_rate": rate}


@pytest.fixture
def filled(database_url: str) -> SqlStorage:
    """Six units (one infra error) of two models over two deployments, and their calls.

    name  model     deployment  prompt   rate  outcome      duration turns score tool_calls
    a1    DeepSeek  DeepSeek    optimal  0.8   success      10       4     1.0   3
    a2    DeepSeek  DeepSeek-2  optimal  0.6   partial      20       6     0.5   2
    a3    DeepSeek  DeepSeek-2  cot      0.8   failure      30       8     0.0   5
    a4    DeepSeek  DeepSeek    cot      0.6   infra_error  99       1     0.9   7   (never counted)
    b1    Llama     Llama       optimal  0.8   success      5        2     0.8   1
    b2    Llama     Llama       cot      0.8   failure      15       4     0.2   4
    """
    store = storage(database_url)
    spec = [
        ("a1", DEEPSEEK, DEEPSEEK, "optimal", 0.8, Outcome.SUCCESS, 10, 4, 1.0, 3),
        ("a2", DEEPSEEK, DEEPSEEK_2, "optimal", 0.6, Outcome.PARTIAL, 20, 6, 0.5, 2),
        ("a3", DEEPSEEK, DEEPSEEK_2, "cot", 0.8, Outcome.FAILURE, 30, 8, 0.0, 5),
        ("a4", DEEPSEEK, DEEPSEEK, "cot", 0.6, Outcome.INFRA_ERROR, 99, 1, 0.9, 7),
        ("b1", LLAMA, LLAMA, "optimal", 0.8, Outcome.SUCCESS, 5, 2, 0.8, 1),
        ("b2", LLAMA, LLAMA, "cot", 0.8, Outcome.FAILURE, 15, 4, 0.2, 4),
    ]
    results = [
        result(
            name,
            outcome,
            model=model,
            deployment=deployment,
            factors=factors(prompt, rate),
            metrics={"score": score, "tool_calls": tools},
            duration_s=duration,
            turns=turns,
        )
        for name, model, deployment, prompt, rate, outcome, duration, turns, score, tools in spec
    ]
    calls = [
        call("a1", DEEPSEEK),
        call("a2", DEEPSEEK, status=CallStatus.RATE_LIMITED),
        call("a2", DEEPSEEK_2, attempt=2),
        call("a3", DEEPSEEK_2),
        *(call("a4", DEEPSEEK, attempt=n, status=CallStatus.TIMEOUT) for n in (1, 2, 3)),
        call("b1", LLAMA),
        call("b2", LLAMA),
        call("b2", LLAMA, attempt=2),
    ]
    assert store.write(results, calls) == 5
    return store


def test_aggregate_by_base_model(filled: SqlStorage) -> None:
    deepseek, llama = filled.aggregate(["base_model"], ReportFilter(suite=SUITE), METRICS)
    assert deepseek == {
        "base_model": DEEPSEEK,
        "total": 3,
        "success": 1,
        "partial": 1,
        "failure": 1,
        "infra_error": 1,
        "timeout": 1,
        "mean_duration_s": pytest.approx(20.0),
        "mean_turns": pytest.approx(6.0),
        "score": pytest.approx(0.5),
        "tool_calls": pytest.approx(10.0),
    }
    assert llama == {
        "base_model": LLAMA,
        "total": 2,
        "success": 1,
        "partial": 0,
        "failure": 1,
        "infra_error": 0,
        "timeout": 0,
        "mean_duration_s": pytest.approx(10.0),
        "mean_turns": pytest.approx(3.0),
        "score": pytest.approx(0.5),
        "tool_calls": pytest.approx(5.0),
    }


def test_aggregate_by_numeric_factor_keeps_numbers(filled: SqlStorage) -> None:
    low, high = filled.aggregate(["tool_success_rate"], ReportFilter(), METRICS)
    assert isinstance(low["tool_success_rate"], float) and low["tool_success_rate"] == pytest.approx(0.6)
    assert (low["total"], low["partial"], low["infra_error"]) == (1, 1, 1)
    assert low["mean_duration_s"] == pytest.approx(20.0) and low["tool_calls"] == pytest.approx(2.0)
    assert high["tool_success_rate"] == pytest.approx(0.8)
    assert (high["total"], high["success"], high["failure"], high["infra_error"]) == (4, 2, 2, 0)
    assert high["mean_duration_s"] == pytest.approx(15.0)
    assert high["mean_turns"] == pytest.approx(4.5)
    assert high["score"] == pytest.approx(0.5)
    assert high["tool_calls"] == pytest.approx(13.0)


def test_aggregate_by_column_and_factor(filled: SqlStorage) -> None:
    groups = filled.aggregate(["base_model", "prompt_type"], ReportFilter(), METRICS)
    summary = [(g["base_model"], g["prompt_type"], g["total"], g["infra_error"], g["score"]) for g in groups]
    assert summary == [
        (DEEPSEEK, "cot", 1, 1, pytest.approx(0.0)),
        (DEEPSEEK, "optimal", 2, 0, pytest.approx(0.75)),
        (LLAMA, "cot", 1, 0, pytest.approx(0.2)),
        (LLAMA, "optimal", 1, 0, pytest.approx(0.8)),
    ]


def test_aggregate_group_of_only_infra_errors_has_no_means(database_url: str) -> None:
    store = storage(database_url)
    store.write([result("x", Outcome.INFRA_ERROR)], [])
    (group,) = store.aggregate(["deployment"], ReportFilter(), METRICS)
    assert (group["total"], group["infra_error"], group["score"], group["mean_turns"]) == (0, 1, None, None)


def test_filters(filled: SqlStorage) -> None:
    def totals(flt: ReportFilter) -> dict[str, int]:
        return {g["base_model"]: g["total"] for g in filled.aggregate(["base_model"], flt)}

    assert totals(ReportFilter(base_models=("llama-3.3-70b",))) == {LLAMA: 2}
    assert totals(ReportFilter(factors={"prompt_type": ("cot",)})) == {DEEPSEEK: 1, LLAMA: 1}
    assert totals(ReportFilter(factors={"tool_success_rate": (0.6,)})) == {DEEPSEEK: 1}
    # Numbers compare as numbers; a string never matches a number (and never breaks a numeric cast).
    assert totals(ReportFilter(factors={"tool_success_rate": (0.60, "0.8")})) == {DEEPSEEK: 1}
    assert totals(ReportFilter(factors={"prompt_type": (1.0, "optimal")})) == {DEEPSEEK: 2, LLAMA: 1}
    assert totals(ReportFilter(factors={"prompt_type": ()})) == {}
    assert totals(ReportFilter(run_id="other-run")) == {}
    assert totals(ReportFilter(run_id=RUN, suite=SUITE)) == {DEEPSEEK: 3, LLAMA: 2}


def test_aggregate_rejects_ambiguous_names(filled: SqlStorage) -> None:
    with pytest.raises(ValueError, match="clashes"):
        filled.aggregate(["base_model"], ReportFilter(), [MetricSpec("total", "")])
    with pytest.raises(ValueError, match="aggregate 'median'"):
        filled.aggregate(["base_model"], ReportFilter(), [MetricSpec("score", "", "median")])
    with pytest.raises(ValueError, match="names must match"):
        filled.aggregate(["prompt type"], ReportFilter())


def test_deployment_shares(filled: SqlStorage) -> None:
    assert filled.deployment_shares(ReportFilter()) == [
        {"base_model": DEEPSEEK, "deployment": DEEPSEEK, "units": 1, "calls": 5},
        {"base_model": DEEPSEEK, "deployment": DEEPSEEK_2, "units": 2, "calls": 2},
        {"base_model": LLAMA, "deployment": LLAMA, "units": 2, "calls": 3},
    ]
    assert filled.deployment_shares(ReportFilter(base_models=(DEEPSEEK_2,), factors={"prompt_type": ("cot",)})) == [
        {"base_model": DEEPSEEK, "deployment": DEEPSEEK, "units": 0, "calls": 3},
        {"base_model": DEEPSEEK, "deployment": DEEPSEEK_2, "units": 1, "calls": 1},
    ]


def test_deployment_shares_by_run_counts_the_calls_of_that_run(filled: SqlStorage) -> None:
    # A second run completes the infra error a4: the unit now belongs to run-2, its earlier calls to run-1.
    filled.begin_run(run_record("run-2"))
    retry = result("a4", model=DEEPSEEK, deployment=DEEPSEEK_2, factors=factors("cot", 0.6), run_id="run-2")
    assert filled.write([retry], [call("a4", DEEPSEEK_2, run_id="run-2")]) == 1
    assert filled.deployment_shares(ReportFilter(run_id="run-2")) == [
        {"base_model": DEEPSEEK, "deployment": DEEPSEEK_2, "units": 1, "calls": 1},
    ]
    first = {(s["base_model"], s["deployment"]): s for s in filled.deployment_shares(ReportFilter(run_id=RUN))}
    assert first[(DEEPSEEK, DEEPSEEK)] == {"base_model": DEEPSEEK, "deployment": DEEPSEEK, "units": 1, "calls": 5}


def test_report_label_selects_the_units_and_calls_of_runs_carrying_that_label(filled: SqlStorage) -> None:
    for run_id, label in (("run-2", "nightly"), ("run-3", "nightly"), ("run-4", "nightly-2")):
        filled.begin_run(dataclasses.replace(run_record(run_id), config={"run": {"label": label, "seed": 0}}))
    # run-2 completes the infra error a4 (its three earlier calls stay with run-1); run-3 and run-4 add a unit each.
    for name, model, deployment, run_id in (
        ("a4", DEEPSEEK, DEEPSEEK_2, "run-2"),
        ("a5", DEEPSEEK, DEEPSEEK, "run-3"),
        ("b3", LLAMA, LLAMA, "run-4"),
    ):
        unit = result(name, model=model, deployment=deployment, factors=factors("cot", 0.6), run_id=run_id)
        assert filled.write([unit], [call(name, deployment, run_id=run_id)]) == 1

    def totals(label: str | None) -> dict[str, int]:
        return {g["base_model"]: g["total"] for g in filled.aggregate(["base_model"], ReportFilter(run_label=label))}

    assert totals("nightly") == {DEEPSEEK: 2}
    assert totals("nightly-2") == {LLAMA: 1}
    assert totals("night") == {}, "labels match exactly, never by prefix"
    assert totals(None) == {DEEPSEEK: 5, LLAMA: 3}, "without a label every unit counts, as before"
    assert filled.deployment_shares(ReportFilter(run_label="nightly")) == [
        {"base_model": DEEPSEEK, "deployment": DEEPSEEK, "units": 1, "calls": 1},
        {"base_model": DEEPSEEK, "deployment": DEEPSEEK_2, "units": 1, "calls": 1},
    ]
    assert [row["unit_key"] for row in filled.export_rows(ReportFilter(run_label="nightly-2"))] == [key("b3")]


def test_export_rows(filled: SqlStorage) -> None:
    exported = list(filled.export_rows(ReportFilter(base_models=(DEEPSEEK,))))
    assert [r["unit_key"] for r in exported] == sorted(key(n) for n in ("a1", "a2", "a3", "a4"))
    first = next(r for r in exported if r["unit_key"] == key("a1"))
    assert first["prompt_type"] == "optimal" and first["tool_success_rate"] == pytest.approx(0.8)
    assert first["score"] == pytest.approx(1.0) and first["tool_calls"] == pytest.approx(3.0)
    assert (first["base_model"], first["deployment"], first["outcome"]) == (DEEPSEEK, DEEPSEEK, "success")
    assert {r["outcome"] for r in exported} == {"success", "partial", "failure", "infra_error"}
    assert "factors" not in first and "metrics" not in first


def test_export_prefixes_names_that_clash_with_columns(database_url: str) -> None:
    store = storage(database_url)
    store.write([result("a", factors={"outcome": "x"}, metrics={"turns": 2.0})], [])
    (row,) = store.export_rows(ReportFilter())
    assert (row["outcome"], row["factor.outcome"], row["turns"], row["metric.turns"]) == ("success", "x", 3, 2.0)
