"""`run.label` names runs (a sweep's jobs included); `report.label` reports the units those runs executed."""

from __future__ import annotations

import json

import pytest

from tests.conftest import RunCli

pytestmark = pytest.mark.slow


def _totals(run_cli: RunCli, *overrides: str) -> dict[str, int]:
    """Units per model (a labelled report has one row per seed: they are summed here)."""
    process = run_cli("report", "report.format=json", *overrides)
    assert process.returncode == 0, process.stderr
    totals: dict[str, int] = {}
    for row in json.loads(process.stdout)["rows"]:
        totals[row["base_model"]] = totals.get(row["base_model"], 0) + row["total"]
    return totals


def test_report_label_reports_the_units_of_the_runs_carrying_it(run_cli: RunCli) -> None:
    assert run_cli("run", "run.label=pilot", "run.instances=1").returncode == 0
    sweep = run_cli("run", "-m", "run.label=ablation", "run.seed=1,2", "run.instances=2")
    assert sweep.returncode == 0, sweep.stderr
    # A labelled rerun of stored units executes nothing, so it adds nothing under its own label.
    assert run_cli("run", "run.label=rerun", "run.instances=1").returncode == 0
    assert _totals(run_cli, "report.label=pilot") == {"Sim-Agent": 5}
    assert _totals(run_cli, "report.label=ablation") == {"Sim-Agent": 20}, "both jobs of the sweep"
    assert _totals(run_cli, "report.label=rerun") == {}
    assert _totals(run_cli, "report.scope=all") == {"Sim-Agent": 25}
    assert _totals(run_cli) == {"Sim-Agent": 5}, "the default scope: seed 0 (the sweep ran seeds 1 and 2)"
    document = json.loads(run_cli("report", "report.format=json", "report.label=pilot").stdout)
    assert document["scope"].startswith("scope: every stored unit of suite jsonl from the runs labelled 'pilot', ")
    shares = document["deployment_shares"]
    assert sum(share["units"] for share in shares) == 5
    assert sum(share["calls"] for share in shares) >= 5
    unknown = run_cli("report", "report.label=pilott")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: report.label: no run has label 'pilott'; labels: ablation, pilot, rerun"


def test_runs_shows_a_label_as_stored_never_as_markup_or_terminal_controls(run_cli: RunCli) -> None:
    """A label is the user's text: `[/x]` once made `fleetbench runs` fail with rich's MarkupError, and a
    right-to-left override reached the terminal raw (it reverses what follows it on screen)."""
    assert run_cli("run", "run.label='[/x] [red]r'", "run.instances=1").returncode == 0
    assert run_cli("run", "run.label='ab\u202ecd'", "run.instances=2").returncode == 0
    listed = run_cli("runs")
    assert listed.returncode == 0, listed.stderr
    assert "[/x] [red]r" in listed.stdout
    assert "ab\\u202ecd" in listed.stdout and "\u202e" not in listed.stdout
