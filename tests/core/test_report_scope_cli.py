"""`fleetbench report` covers the composed configuration's scope; runs by id prefix; errors in one line.

Every test runs the real command line on a real SQLite file (runs of the built-in simulated model, no network).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli, stderr_lines

pytestmark = pytest.mark.slow

CATEGORIES = 5  # the built-in dataset's categories: one cell each


def _report(run_cli: RunCli, *overrides: str) -> dict[str, Any]:
    process = run_cli("report", "report.format=json", *overrides)
    assert process.returncode == 0, process.stderr
    document: dict[str, Any] = json.loads(process.stdout)
    return document


def _totals(document: dict[str, Any]) -> list[int]:
    return [row["total"] for row in document["rows"]]


def _run(run_cli: RunCli, *overrides: str) -> None:
    process = run_cli("run", "run.progress=off", *overrides)
    assert process.returncode == 0, process.stderr


def _user_dataset(tmp_path: Path) -> Path:
    """A user's dataset: the built-in arithmetic items, one category."""
    builtin = Path(__file__).parents[2] / "plugins/fleetbench_plugins/suites/jsonl/data/builtin.jsonl"
    lines = [line for line in builtin.read_text().splitlines() if '"arithmetic"' in line]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_datasets_scorings_seeds_and_instance_counts_never_share_a_row(run_cli: RunCli, tmp_path: Path) -> None:
    mine = _user_dataset(tmp_path)
    _run(run_cli, "run.instances=2")
    _run(run_cli, "run.instances=3", "run.seed=1")
    _run(run_cli, "run.instances=2", "suite.scorer=contains")
    _run(run_cli, "run.instances=2", f"suite.dataset={mine}")
    # The default configuration's scope: built-in dataset, exact scorer, seed 0 — and its instance count.
    assert _totals(_report(run_cli, "run.instances=2")) == [2 * CATEGORIES]
    assert _totals(_report(run_cli, "run.instances=1")) == [CATEGORIES]
    assert _totals(_report(run_cli, "run.instances=3", "run.seed=1")) == [3 * CATEGORIES]
    assert _totals(_report(run_cli, "run.instances=2", "suite.scorer=contains")) == [2 * CATEGORIES]
    assert _totals(_report(run_cli, "run.instances=2", f"suite.dataset={mine}")) == [2]
    # Widened: one row per scope and seed, whatever report.by asks.
    document = _report(run_cli, "report.scope=all", "report.by=[dataset,suite.scorer]")
    rows = sorted((r["seed"], r["suite.scorer"], r["total"]) for r in document["rows"])
    assert rows == [(0, "contains", 10), (0, "exact", 2), (0, "exact", 10), (1, "exact", 15)]
    assert len({r["dataset"] for r in document["rows"]}) == 2
    assert "every stored unit" in document["scope"]
    by_seed = _report(run_cli, "report.scope=all", "report.by=[seed,category]", "run.instances=2")
    assert all(row["total"] <= 3 for row in by_seed["rows"])


def test_nothing_in_scope_is_explained(run_cli: RunCli) -> None:
    _run(run_cli, "run.instances=1")
    process = run_cli("report", "run.seed=5")
    assert process.returncode == 0
    assert "none of the 5 stored units of suite 'jsonl' is in this configuration's scope" in process.stderr


def test_a_database_of_other_suites_says_so(run_cli: RunCli) -> None:
    _run(run_cli, "run.instances=1")
    process = run_cli("report", "suite=workflow")
    assert process.returncode == 2
    assert stderr_lines(process) == [
        "error: report: the database holds no units of suite 'workflow', only of jsonl (5 units); "
        "choose one with suite=NAME"
    ]
    # A preset of real models composes its scope without their API keys (a scope never depends on credentials):
    # what stops it is the database, not a missing AZURE_AI_API_KEY.
    preset = run_cli("report", "experiment=phase5_3")
    assert preset.returncode == 2 and "holds no units of suite 'workflow'" in preset.stderr, preset.stderr


def _run_ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        return [row[0] for row in connection.execute("SELECT run_id FROM runs ORDER BY started_at")]


def test_run_ids_work_by_unique_prefix_and_bad_ones_fail_in_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    _run(run_cli, "run.instances=1")
    _run(run_cli, "run.instances=2")
    first, second = _run_ids(tmp_path)
    assert _totals(_report(run_cli, f"report.run_id={first[:12]}")) == [CATEGORIES]
    scope = _report(run_cli, f"report.run_id={first[:7]}")["scope"]
    assert f"of suite jsonl from run {first[:12]}, one row per" in scope, "the scope line names the run"
    assert _totals(_report(run_cli, f"report.run_id={second[:6]}")) == [CATEGORIES], "the second run added index 1"
    unknown = run_cli("report", "report.run_id=zzzz")
    assert unknown.returncode == 2 and len(stderr_lines(unknown)) == 1
    assert stderr_lines(unknown)[0].startswith("error: report.run_id: no run id starts with 'zzzz'; recent runs:")
    # A recorded run whose id shares the first run's first five characters makes that prefix ambiguous.
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        connection.execute(
            "INSERT INTO runs (run_id, started_at, status, suite, models, config, version, host, planned_units) "
            "VALUES (?, 0, 'finished', 'jsonl', '[]', '{}', 'x', 'h', 0)",
            (first[:5] + "f" * (len(first) - 5),),
        )
    ambiguous = run_cli("report", f"report.run_id={first[:5]}")
    assert ambiguous.returncode == 2 and len(stderr_lines(ambiguous)) == 1
    assert f"report.run_id: {first[:5]!r} matches 2 runs" in ambiguous.stderr
    listing = run_cli("runs")
    assert listing.returncode == 0 and first[:12] in listing.stdout and second[:12] in listing.stdout
    # `runs` narrows to the run a prefix names, and refuses one that names none, as `report` does.
    one = run_cli("runs", f"report.run_id={second[:6]}")
    assert one.returncode == 0 and second[:12] in one.stdout and first[:12] not in one.stdout
    for refused in (run_cli("runs", "report.run_id=zzzz"), run_cli("runs", f"report.run_id={first[:5]}")):
        assert refused.returncode == 2 and len(stderr_lines(refused)) == 1 and "report.run_id: " in refused.stderr
    # Grouped by run: the table shows ids as `runs` does, the json carries them whole.
    by_run = run_cli("report", "report.by=[run_id]", "report.format=markdown")
    assert by_run.returncode == 0, by_run.stderr
    assert f"| {first[:12]} |" in by_run.stdout and first not in by_run.stdout
    assert {row["run_id"] for row in _report(run_cli, "report.by=[run_id]")["rows"]} == {first, second}


def test_a_run_id_prefix_that_looks_like_a_number_is_taken_as_typed(run_cli: RunCli, tmp_path: Path) -> None:
    """Hex ids can read as numbers (`0012`, `12e345`): the prefix is matched as typed, not as Hydra parses it."""
    _run(run_cli, "run.instances=1")
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        for run_id in ("0012" + "a" * 28, "12e345" + "b" * 26):
            connection.execute(
                "INSERT INTO runs (run_id, started_at, status, suite, models, config, version, host, planned_units) "
                "VALUES (?, 0, 'finished', 'jsonl', '[]', '{}', 'x', 'h', 0)",
                (run_id,),
            )
    for prefix in ("0012", "12e345"):
        process = run_cli("report", f"report.run_id={prefix}")
        assert process.returncode == 0, process.stderr  # found (it stored no units: an empty report)


def test_report_output_takes_every_format_and_a_missing_directory_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    _run(run_cli, "run.instances=1")
    missing = run_cli("report", f"report.output={tmp_path}/nowhere/report.txt")
    assert missing.returncode == 2
    assert stderr_lines(missing) == [
        f"error: report.output: cannot write '{tmp_path}/nowhere/report.txt': directory '{tmp_path}/nowhere' does "
        "not exist; create it or choose another path"
    ]
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    under_a_file = run_cli("report", f"report.output={tmp_path}/notes.txt/sub/report.txt")
    assert under_a_file.returncode == 2
    assert stderr_lines(under_a_file) == [
        f"error: report.output: cannot write '{tmp_path}/notes.txt/sub/report.txt': '{tmp_path}/notes.txt' is a file, "
        "not a directory"
    ]
    assert run_cli("report", "report.output=table.txt").returncode == 0
    table = (tmp_path / "table.txt").read_text()
    assert "fleetbench report" in table and "full %" in table and "Sim-Agent" in table
    assert "full % = success / units" in table
    assert "success_rate" not in table, "the jsonl suite has no success_rate metric to explain"
    assert run_cli("report", "report.output=report.md", "report.format=markdown").returncode == 0
    assert (tmp_path / "report.md").read_text().splitlines()[2].startswith("| model | units | calls | success")


def test_show_lists_unit_keys_and_renders_without_suite(run_cli: RunCli) -> None:
    _run(run_cli, "suite=workflow", "suite.prompt_types=[optimal]", "suite.task_types=[basic_task]",
         "run.instances=2")  # fmt: skip
    listing = run_cli("show")
    assert listing.returncode == 0, listing.stderr
    assert "2 of 2 stored units" in listing.stdout
    keys = [line.split("│")[1].strip() for line in listing.stdout.splitlines() if line.count("│") == 6]
    assert len(keys) == 2 and all(len(key) == 32 for key in keys)
    assert "prompt_type=optimal" in listing.stdout
    assert run_cli("show", "units").stdout == listing.stdout
    shown = run_cli("show", keys[0][:10])  # the configured suite is jsonl: the workflow suite renders it anyway
    assert shown.returncode == 0, shown.stderr
    assert f"unit {keys[0]}" in shown.stdout and "Task" in shown.stdout


def test_report_models_narrow_the_scope_and_an_unknown_one_is_named_under_its_own_key(run_cli: RunCli) -> None:
    _run(run_cli, "run.instances=1", "run.models=[Sim-Agent,Sim-Weak]")
    narrowed = run_cli("report", "run.instances=1", "run.models=[Sim-Agent,Sim-Weak]", "report.models=[sim]",
                       "report.format=csv")  # fmt: skip
    assert narrowed.returncode == 0, narrowed.stderr
    assert {row.split(",")[0] for row in narrowed.stdout.splitlines()[1:]} == {"Sim-Agent"}
    unknown = run_cli("report", "run.instances=1", "report.models=[Nope]")
    assert unknown.returncode == 2
    [line] = stderr_lines(unknown)
    assert line.startswith("error: report.models[0]: unknown model 'Nope'; known base models: ")


def test_a_run_id_or_label_of_another_suite_names_the_suite_to_add(run_cli: RunCli) -> None:
    _run(run_cli, "suite=workflow", "run.instances=1", "run.label=wf")
    runs = run_cli("runs")
    run_id = re.findall(r"│ ([0-9a-f]{12}) ", runs.stdout)[0]
    for key, value, what in (("report.label", "wf", "the runs labelled 'wf'"), ("report.run_id", run_id[:6], "run")):
        refused = run_cli("report", f"{key}={value}")  # the configured suite is jsonl
        assert refused.returncode == 2
        [line] = stderr_lines(refused)
        assert line.startswith(f"error: {key}: {what}") and line.endswith(
            "ran suite workflow, not 'jsonl'; add suite=workflow"
        )
        shown = run_cli("report", f"{key}={value}", "suite=workflow", "report.format=csv")
        assert shown.returncode == 0 and "Sim-Agent" in shown.stdout
    labelled = run_cli("runs", "report.label=wf")
    assert labelled.returncode == 0 and run_id in labelled.stdout
    unknown = run_cli("runs", "report.label=nope")
    assert unknown.returncode == 2 and stderr_lines(unknown) == [
        "error: report.label: no run has label 'nope'; labels: wf"
    ]


def test_a_report_of_a_plan_not_yet_complete_says_how_much_is_missing(run_cli: RunCli, tmp_path: Path) -> None:
    """A report of part of a plan looked complete (a new user's finding: 200 units of an 800-unit plan, nothing said
    about the other 600). It says so on stderr now, the report itself unchanged; not once the plan is complete, nor
    for a report narrowed to a run on purpose."""
    _run(run_cli, "run.instances=1")
    partial = run_cli("report", "run.instances=3")
    assert partial.returncode == 0, partial.stderr
    assert stderr_lines(partial) == [
        f"note: {CATEGORIES} of the {3 * CATEGORIES} units this configuration plans have a result; `fleetbench run` "
        f"with the same settings runs the other {2 * CATEGORIES} (`fleetbench status` shows them per cell)"
    ]
    assert _totals(_report(run_cli, "run.instances=3")) == [CATEGORIES]
    complete = run_cli("report", "run.instances=1")
    assert complete.returncode == 0 and stderr_lines(complete) == [], complete.stderr
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        (run_id,) = connection.execute("select run_id from runs").fetchone()
    narrowed = run_cli("report", "run.instances=3", f"report.run_id={run_id[:8]}")
    assert narrowed.returncode == 0 and stderr_lines(narrowed) == [], narrowed.stderr
