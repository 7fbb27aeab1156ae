"""`fleetbench export`: every format, read back with its own reader, against the units of a real `fleetbench run`
(workflow suite, simulated model) in a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from tests.core.exported import WORKFLOW, cli, database, stored_calls, stored_units

pytestmark = pytest.mark.slow

LEAF_FIELDS = 44
HIERARCHY = ("prompt_type", "tool_success_rate", "difficulty", "task_type")


class Filled:
    """A database filled by one real run, and the directory the tests export into."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder, self.url = folder, url
        self.units = stored_units(url)

    def export(self, fmt: str, *extra: str) -> Path:
        out = self.folder / f"out-{fmt}"
        out.mkdir(exist_ok=True)
        process = cli(self.folder, "export", *WORKFLOW, f"storage.url={self.url}", f"export.format={fmt}",
                      f"export.output={out}", *extra)  # fmt: skip
        assert process.returncode == 0, process.stderr
        return out


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    folder = tmp_path_factory.mktemp(f"exports-{request.param}")
    with database(request.param, folder) as url:
        process = cli(folder, "run", *WORKFLOW, f"storage.url={url}", "run.instances=3", "run.progress=off")
        assert process.returncode == 0, process.stderr
        yield Filled(folder, url)


def _done(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [u for u in units if u["outcome"] != "infra_error"]


def test_parquet_holds_every_unit_and_every_call(filled: Filled) -> None:
    import pyarrow.parquet as pq

    out = filled.export("parquet")
    units = pq.read_table(out / "units.parquet").to_pylist()
    assert sorted(u["unit_key"] for u in units) == sorted(u["unit_key"] for u in filled.units)
    stored = {u["unit_key"]: u for u in filled.units}
    for row in units:
        unit = stored[row["unit_key"]]
        assert (row["outcome"], row["deployment"], row["base_model"]) == (
            unit["outcome"], unit["deployment"], unit["base_model"],
        )  # fmt: skip
        assert row["prompt_type"] == unit["factors"]["prompt_type"]
        assert row["tool_success_rate"] == pytest.approx(unit["factors"]["tool_success_rate"])
        assert row["workflow_score"] == pytest.approx(unit["metrics"].get("workflow_score"))
    calls = pq.read_table(out / "calls.parquet")
    assert calls.num_rows == stored_calls(filled.url)
    statuses = Counter(calls.column("status").to_pylist())
    assert statuses["rate_limited"] > 0, "deployment 0 answers 20% of requests 429"
    assert set(calls.column("base_model").to_pylist()) == {"Sim-Agent"}


def test_master_database_matches_hand_counts_of_the_stored_units(filled: Filled) -> None:
    document = json.loads((filled.export("master_json") / "master_database.json").read_text())
    assert document["version"] == "3.0"
    assert set(document) == {"version", "created_at", "last_updated", "test_groups", "models", "summary"}
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for unit in _done(filled.units):
        factors = unit["factors"]
        key = (unit["base_model"], factors["prompt_type"], str(round(float(factors["tool_success_rate"]), 4)),
               factors["difficulty"], factors["task_type"])  # fmt: skip
        groups[key].append(unit)
    leaves = {}
    for model, entry in document["models"].items():
        for prompt, by_prompt in entry["by_prompt_type"].items():
            for rate, by_rate in by_prompt["by_tool_success_rate"].items():
                for difficulty, by_difficulty in by_rate["by_difficulty"].items():
                    for task_type, leaf in by_difficulty["by_task_type"].items():
                        leaves[(model, prompt, rate, difficulty, task_type)] = leaf
    assert set(leaves) == set(groups)
    for key, units in groups.items():
        leaf = leaves[key]
        outcomes = Counter(u["outcome"] for u in units)
        assert len(leaf) == LEAF_FIELDS
        assert leaf["total"] == len(units)
        assert leaf["full_success"] == outcomes["success"]
        assert leaf["partial_success"] == leaf["partial"] == outcomes["partial"]
        assert leaf["success"] == outcomes["success"] + outcomes["partial"], "success = full + partial (JSON mode)"
        assert leaf["failed"] == outcomes["failure"]
        assert leaf["total"] == leaf["full_success"] + leaf["partial"] + leaf["failed"]
        assert leaf["total_errors"] == outcomes["partial"] + outcomes["failure"]
        assert leaf["avg_workflow_score"] == pytest.approx(
            sum(u["metrics"]["workflow_score"] for u in units) / len(units)
        )
        assert leaf["weighted_success_score"] == pytest.approx(
            (outcomes["success"] + 0.5 * outcomes["partial"]) / len(units)
        )
    summary = document["summary"]
    done = _done(filled.units)
    assert summary["total_tests"] == len(done)
    assert summary["total_success"] == sum(u["outcome"] in ("success", "partial") for u in done)
    assert summary["models_tested"] == ["Sim-Agent"]


def test_the_50_column_csv_has_one_row_per_leaf_of_the_master_database(filled: Filled) -> None:
    document = json.loads((filled.export("master_json") / "master_database.json").read_text())
    rows = list(csv.DictReader(io.StringIO((filled.export("csv50") / "test_results_complete.csv").read_text())))
    assert len(rows[0]) == 50
    assert list(rows[0])[:6] == ["model", *HIERARCHY, "timestamp"]
    for row in rows:
        leaf = document["models"][row["model"]]["by_prompt_type"][row["prompt_type"]]["by_tool_success_rate"][
            row["tool_success_rate"]]["by_difficulty"][row["difficulty"]]["by_task_type"][row["task_type"]]  # fmt: skip
        assert set(row) - {"model", *HIERARCHY, "timestamp"} == set(leaf)
        assert int(row["total"]) == leaf["total"]
        assert float(row["avg_phase2_score"]) == pytest.approx(leaf["avg_phase2_score"])
    assert sum(int(r["total"]) for r in rows) == document["summary"]["total_tests"]


def _report_header(filled: Filled) -> list[str]:
    process = cli(filled.folder, "report", *WORKFLOW, f"storage.url={filled.url}", "report.format=markdown")
    assert process.returncode == 0, process.stderr
    head = next(line for line in process.stdout.splitlines() if line.startswith("|"))  # after the scope line
    return [cell.strip() for cell in head.strip("|").split("|")]


def test_table_exports_use_the_report_tables_column_names(filled: Filled) -> None:
    header = _report_header(filled)
    assert header[:2] == ["model", "units"]
    table = next(csv.reader(io.StringIO((filled.export("csv") / "report.csv").read_text())))
    assert table == header
    document = json.loads((filled.export("json") / "report.json").read_text())
    assert document["columns"] == header
    (row,) = document["rows"]
    assert row["model"] == "Sim-Agent"
    assert row["units"] == len(_done(filled.units))
    assert row["full %"] == pytest.approx(100 * sum(u["outcome"] == "success" for u in filled.units) / row["units"])
    assert document["scope"].startswith("scope: ")
    markdown = (filled.export("markdown") / "report.md").read_text().splitlines()
    assert markdown[:2] == [document["scope"], ""], "the scope line, as `report.format=markdown` prints it"
    assert [cell.strip() for cell in markdown[2].strip("|").split("|")] == header


def _calls_per_unit(url: str) -> Counter[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return Counter(key for (key,) in connection.execute(sqlalchemy.text("SELECT unit_key FROM calls")))
    finally:
        engine.dispose()


def test_table_exports_grouped_by_report_by_carry_each_rows_calls(filled: Filled) -> None:
    per_unit = _calls_per_unit(filled.url)
    expected: Counter[str] = Counter()
    for unit in filled.units:
        expected[unit["factors"]["prompt_type"]] += per_unit[unit["unit_key"]]
    document = json.loads((filled.export("json", "report.by=[prompt_type]") / "report.json").read_text())
    assert {row["prompt_type"]: row["calls"] for row in document["rows"]} == dict(expected)
    assert sum(expected.values()) == stored_calls(filled.url) > len(filled.units), "retries after 429s counted too"


def test_a_widened_export_splits_its_rows_by_scope_and_seed_as_the_report_does(filled: Filled) -> None:
    document = json.loads((filled.export("json", "report.scope=all") / "report.json").read_text())
    assert document["columns"][:4] == ["model", "suite_scope", "model_scope", "seed"]
    assert [row["units"] for row in document["rows"]] == [len(_done(filled.units))]


def test_inspect_logs_read_back_with_inspect_ais_own_reader(filled: Filled) -> None:
    from inspect_ai.log import read_eval_log

    (path,) = sorted(filled.export("inspect").glob("*.json"))
    log = read_eval_log(str(path))
    assert log.status == "success"
    assert log.eval.model == "fleetbench/Sim-Agent"
    assert log.eval.task == "workflow"
    done = {u["unit_key"]: u for u in _done(filled.units)}
    assert log.samples is not None
    assert {str(s.id) for s in log.samples} == set(done)
    codes = {"success": "C", "partial": "P", "failure": "I"}
    for sample in log.samples:
        unit = done[str(sample.id)]
        assert sample.scores is not None
        assert sample.scores["outcome"].value == codes[unit["outcome"]]
        assert [m.role for m in sample.messages[:3]] == ["system", "user", "assistant"]
        assert sample.metadata["deployment"] == unit["deployment"]
        assert sample.metadata["factors"]["prompt_type"] == unit["factors"]["prompt_type"]
    assert log.results is not None
    full = sum(u["outcome"] == "success" for u in done.values()) / len(done)
    assert log.results.scores[0].metrics["full_success_rate"].value == pytest.approx(full)


def test_bad_export_settings_fail_with_one_line_and_write_nothing(filled: Filled) -> None:
    out = filled.folder / "nothing-here"
    out.mkdir(exist_ok=True)
    base = ["export", *WORKFLOW, f"storage.url={filled.url}"]
    cases = {
        ("export.format=xlsx", f"export.output={out}"): "error: export.format: 'xlsx' is not valid; choices: csv, "
        "csv50, inspect, json, markdown, master_json, parquet",
        (f"export.output={out}",): "error: export.format: missing; choices: csv, csv50, inspect, json, markdown, "
        "master_json, parquet",
        ("export.format=parquet",): "error: export.output: missing; give the directory to write into "
        "(export.output=DIR)",
        ("export.format=parquet", f"export.output={out / 'no' / 'dir'}"): f"error: export.output: "
        f"'{out / 'no' / 'dir'}' does not exist; create it first",
        # A directory that refuses files (procfs): the write fails, one line, no traceback.
        ("export.format=csv", "export.output=/proc"): "error: export.output: cannot write into '/proc': No such file "
        "or directory",
    }
    for overrides, line in cases.items():
        process = cli(filled.folder, *base, *overrides)
        assert process.returncode == 2, process.stderr
        assert process.stderr.strip().splitlines() == [line]
    assert list(out.iterdir()) == []


def test_master_json_refuses_a_suite_without_the_workflow_factors(filled: Filled) -> None:
    out = filled.folder / "jsonl-out"
    out.mkdir(exist_ok=True)
    process = cli(filled.folder, "export", "suite=jsonl", f"storage.url={filled.url}", "export.format=master_json",
                  f"export.output={out}")  # fmt: skip
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[0].startswith("error: export.format=master_json: the suite lacks")
    assert list(out.iterdir()) == []


def test_inspect_logs_of_the_jsonl_suite_carry_its_prompt_and_answer(tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log

    assert cli(tmp_path, "run", "run.instances=2", "run.progress=off").returncode == 0
    out = tmp_path / "logs"
    out.mkdir()
    process = cli(tmp_path, "export", "export.format=inspect", f"export.output={out}")
    assert process.returncode == 0, process.stderr
    (path,) = out.glob("*.json")
    log = read_eval_log(str(path))
    assert log.samples is not None and len(log.samples) == 10
    for sample in log.samples:
        assert [m.role for m in sample.messages] == ["system", "user", "assistant"]
        assert sample.input == sample.messages[1].text
        assert sample.scores is not None and sample.scores["outcome"].value in ("C", "I")
        assert sample.metadata["metrics"]["correct"] == (1.0 if sample.scores["outcome"].value == "C" else 0.0)


def test_a_models_inspect_logs_are_split_every_samples_per_log_units(
    filled: Filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspect_ai.log import read_eval_log

    from fleetbench import registry
    from fleetbench.config import compose_config, resolve_common
    from fleetbench.report.exports import export, inspect_log
    from fleetbench.types import ReportFilter

    monkeypatch.setattr(inspect_log, "SAMPLES_PER_LOG", 7)
    cfg = compose_config([*WORKFLOW, f"storage.url={filled.url}"])
    common = resolve_common(cfg)
    suite = registry.load("suites", cfg.suite, "suite").create()
    storage = common.storage.create(naming=common.naming)
    out = filled.folder / "parts"
    out.mkdir(exist_ok=True)
    try:
        paths = export("inspect", out, storage, suite, ReportFilter(suite.name))
    finally:
        storage.close()
    done = _done(filled.units)
    assert len(paths) == -(-len(done) // 7)
    assert paths[1].name.endswith("_Sim-Agent_part2.json")
    logs = [read_eval_log(str(path)) for path in paths]
    assert all(log.samples is not None and len(log.samples) <= 7 for log in logs)
    assert sorted(str(s.id) for log in logs for s in log.samples or ()) == sorted(u["unit_key"] for u in done)


def test_master_database_test_times_span_the_runs_that_stored_its_units(tmp_path: Path) -> None:
    """Runs of another suite before and after the workflow run lent their times to the workflow model's entry."""
    url = f"sqlite:///{tmp_path / 'times.db'}"
    model = ["run.models=[Sim-Agent]", f"storage.url={url}", "run.progress=off"]
    for suite in (
        ["suite=jsonl", "run.instances=1"],
        [*WORKFLOW, "run.instances=1"],
        ["suite=jsonl", "run.instances=2"],
    ):
        process = cli(tmp_path, "run", *suite, *model)
        assert process.returncode == 0, process.stderr
    out = tmp_path / "out"
    out.mkdir()
    process = cli(tmp_path, "export", *WORKFLOW, *model, "export.format=master_json", f"export.output={out}")
    assert process.returncode == 0, process.stderr
    (entry,) = json.loads((out / "master_database.json").read_text())["models"].values()
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        started, finished = connection.execute(
            sqlalchemy.text("select started_at, finished_at from runs where suite = 'workflow'")
        ).one()
    engine.dispose()
    stamp = datetime.fromisoformat
    assert stamp(entry["first_test_time"]).timestamp() == pytest.approx(started, abs=0.01)
    assert stamp(entry["last_test_time"]).timestamp() == pytest.approx(finished, abs=0.01)
