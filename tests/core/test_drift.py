"""The deployment drift audit: the statistics on fixed counts, and `fleetbench drift` on real runs where one
deployment of the simulated model serves the weak profile (flagged) or none does (nothing flagged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbench.report.drift import audit_counts
from tests.core.exported import cli, database

WEAK = "models.sim_agent.deployments.2.params.profile=weak"
# Optimal prompts, four tool success rates, five task types: 20 cells of 80 units, 1,600 units (about 12 s here). The
# strong profile succeeds fully about 64% of the time on optimal prompts, the weak one about 40%. At 800 units the
# audit found exactly the weak deployment in 89 of 100 seeds (benchmarks/bench_drift.py), and dynamic sharding makes
# each run a new draw: twice the units leaves the pairwise tests far from the threshold.
DEMO = [
    "suite=workflow", "suite.prompt_types=[optimal]", "suite.difficulties=[easy]",
    "suite.tool_success_rates=[0.9,0.8,0.7,0.6]", "run.instances=80", "run.progress=off",
]  # fmt: skip


def _cells(rate: float, per_cell: int, cells: int = 20) -> dict[tuple[int], tuple[int, int]]:
    """Counts per cell: `rate` of `per_cell` units fully successful in each of `cells` cells."""
    return {(cell,): (round(rate * per_cell), per_cell) for cell in range(cells)}


def test_the_deployment_serving_another_model_is_flagged_and_its_siblings_are_not() -> None:
    counts = {"M": {"M": _cells(0.8, 10), "M-2": _cells(0.8, 10), "M-3": _cells(0.4, 10)}}
    result = audit_counts(counts, alpha=0.01, min_units=20)
    verdicts = {d.deployment: d for d in result.deployments}
    assert [d.deployment for d in result.flagged] == ["M-3"]
    assert verdicts["M-3"].differs_from == ("M", "M-2")
    assert verdicts["M"].differs_from == ("M-3",), "an honest one differs only from the odd one: not flagged"
    assert verdicts["M-3"].success_rate == pytest.approx(0.4)
    assert verdicts["M-3"].reference_rate == pytest.approx(0.8), "compared with the unflagged siblings only"
    assert verdicts["M-3"].rate_difference == pytest.approx(-40.0)
    assert verdicts["M-3"].odds_ratio == pytest.approx((0.4 / 0.6) / (0.8 / 0.2))
    by_pair = {(p.first, p.second): p for p in result.pairs}
    assert not by_pair[("M", "M-2")].significant
    for pair in result.pairs:
        assert pair.p_adjusted is not None and pair.p_value is not None
        assert pair.p_adjusted >= pair.p_value, "Holm never lowers a p-value"


def test_identical_deployments_are_never_flagged() -> None:
    counts = {"M": {"M": _cells(0.5, 10), "M-2": _cells(0.5, 10), "M-3": _cells(0.5, 10)}}
    result = audit_counts(counts, alpha=0.01, min_units=20)
    assert result.flagged == []
    assert all(p.p_value is not None and p.p_value > 0.5 for p in result.pairs)


def test_cells_are_strata_so_a_different_mix_of_cells_is_not_drift() -> None:
    # Both deployments succeed 90% on easy cells and 10% on hard ones, but M-2 ran mostly hard cells: pooled, M-2
    # looks much worse (26% vs 74%); within each cell they are the same model.
    easy, hard = ("easy",), ("hard",)
    counts = {"M": {"M": {easy: (72, 80), hard: (2, 20)}, "M-2": {easy: (18, 20), hard: (8, 80)}}}
    result = audit_counts(counts, alpha=0.01, min_units=20)
    assert result.flagged == []


def test_two_deployments_that_differ_are_both_flagged_with_a_note() -> None:
    counts = {"M": {"M": _cells(0.9, 10), "M-2": _cells(0.3, 10)}}
    result = audit_counts(counts, alpha=0.01, min_units=20)
    assert [d.deployment for d in result.flagged] == ["M", "M-2"]
    assert all("cannot tell which" in d.note for d in result.flagged)


def test_too_few_shared_units_are_not_tested_and_a_lone_deployment_is_not_compared() -> None:
    counts = {"M": {"M": _cells(0.9, 1, cells=5), "M-2": _cells(0.1, 1, cells=5)}, "N": {"N": _cells(0.5, 10)}}
    result = audit_counts(counts, alpha=0.01, min_units=20)
    assert result.flagged == []
    (pair,) = result.pairs
    assert pair.p_value is None and pair.units == 10
    notes = {d.deployment: d.note for d in result.deployments}
    assert notes == {"M": "too few shared units to test", "M-2": "too few shared units to test",
                     "N": "only deployment of its model: nothing to compare"}  # fmt: skip


def test_holm_controls_the_family_over_every_model() -> None:
    # Many models whose deployments differ a little: unadjusted, some pairs would pass 0.01; Holm holds them back.
    counts = {f"M{i}": {f"M{i}": {("c",): (70, 200)}, f"M{i}-2": {("c",): (98, 200)}} for i in range(8)}
    result = audit_counts(counts, alpha=0.01, min_units=20)
    assert all(p.p_value is not None and 0.01 / 8 < p.p_value < 0.01 for p in result.pairs)
    assert all(not p.significant and p.p_adjusted is not None and p.p_adjusted > 0.01 for p in result.pairs)
    assert result.flagged == []


def _drift(folder: Path, url: str) -> dict:  # type: ignore[type-arg]
    process = cli(folder, "drift", *DEMO, f"storage.url={url}", "drift.format=json")
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_fleetbench_drift_flags_the_deployment_serving_the_weak_profile(backend: str, tmp_path: Path) -> None:
    with database(backend, tmp_path) as url:
        process = cli(tmp_path, "run", *DEMO, WEAK, f"storage.url={url}")
        assert process.returncode == 0, process.stderr
        result = _drift(tmp_path, url)
        # The drift fixture is not part of any unit key: the same plan without it finds every unit stored.
        again = cli(tmp_path, "run", *DEMO, f"storage.url={url}")
        assert "planned 1600 units: 1600 already stored, 0 executed" in again.stdout, again.stdout + again.stderr
    verdicts = {d["deployment"]: d for d in result["deployments"]}
    assert [name for name, d in verdicts.items() if d["flagged"]] == ["Sim-Agent-3"], result
    weak = verdicts["Sim-Agent-3"]
    assert weak["rate_difference"] < -5 and weak["p_adjusted"] < 0.01
    assert weak["success_rate"] < weak["reference_rate"]


@pytest.mark.slow
def test_fleetbench_drift_flags_nothing_when_every_deployment_is_honest(tmp_path: Path) -> None:
    with database("sqlite", tmp_path) as url:
        assert cli(tmp_path, "run", *DEMO, f"storage.url={url}").returncode == 0
        result = _drift(tmp_path, url)
        table = cli(tmp_path, "drift", *DEMO, f"storage.url={url}")
    assert [d["deployment"] for d in result["deployments"] if d["flagged"]] == []
    assert len(result["pairs"]) == 3 and all(p["p_value"] is not None for p in result["pairs"])
    assert "0 of 3 deployments flagged" in table.stdout


@pytest.mark.slow
def test_bad_drift_settings_fail_with_one_line(tmp_path: Path) -> None:
    for override, line in {
        "drift.alpha=1.5": "error: drift.alpha: must be within (0, 1), got 1.5",
        "drift.format=xml": "error: drift.format: 'xml' is not valid; choices: json, table",
        "drift.min_units=1": "error: drift.min_units: must be at least 2, got 1",
    }.items():
        process = cli(tmp_path, "drift", override)
        assert process.returncode == 2
        assert process.stderr.strip().splitlines() == [line]
