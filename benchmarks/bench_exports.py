"""Wall time of `fleetbench export` (every format), `fleetbench drift` and the HTML report on a filled SQLite file.

    .venv/bin/python benchmarks/bench_exports.py [--units 50000]

Fills a SQLite file through `SqlStorage.write` with workflow-suite units of `Sim-Agent` (10 prompt types × 4 tool
success rates × 5 task types, outcomes and every workflow metric varied, a small workflow-shaped transcript and three
calls per unit over the three deployments, one in ten answered 429), then runs each command as a user would, in a
subprocess, command start included, and prints its wall time and peak RSS. Figures only; not part of the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleetbench.testing.units import make_unit
from fleetbench.types import (
    CallRecord,
    CallStatus,
    Catalog,
    Cell,
    DeploymentSpec,
    Episode,
    ModelSpec,
    Outcome,
    RunRecord,
    UnitResult,
)
from fleetbench_plugins.naming.catalog import CatalogNaming, CatalogNamingOptions
from fleetbench_plugins.storage.sql import SqlOptions, SqlStorage
from fleetbench_plugins.suites.workflow.metrics import WORKFLOW_METRICS
from installed import compile_like_pip

MODEL = "Sim-Agent"
DEPLOYMENTS = (MODEL, f"{MODEL}-2", f"{MODEL}-3")
RUN = "bench-exports"
PROMPTS = ("baseline", "cot", "optimal", "flawed_sequence_disorder", "flawed_tool_misuse", "flawed_parameter_error",
           "flawed_missing_step", "flawed_redundant_operations", "flawed_logical_inconsistency",
           "flawed_semantic_drift")  # fmt: skip
RATES = (0.9, 0.8, 0.7, 0.6)
TASKS = ("simple_task", "basic_task", "data_pipeline", "api_integration", "multi_stage_pipeline")
OUTCOMES = (Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILURE, Outcome.SUCCESS)


def unit_result(n: int) -> tuple[UnitResult, list[CallRecord]]:
    key = hashlib.sha256(f"export-{n}".encode()).hexdigest()
    factors = (("prompt_type", PROMPTS[n % 10]), ("difficulty", "easy"), ("tool_success_rate", RATES[n // 10 % 4]),
               ("task_type", TASKS[n // 40 % 5]))  # fmt: skip
    outcome = OUTCOMES[n * 7 % 4]
    metrics = {spec.name: float((n * 31 + i) % 97) / 97 for i, spec in enumerate(WORKFLOW_METRICS)}
    transcript = {
        "prompt": {"system": "You are a workflow agent.", "user": f"Task {n}: run the pipeline."},
        "turns": [{"turn": 1, "assistant": "<tool_call>reader</tool_call>", "feedback": ["ok"]}],
    }
    episode = Episode(outcome, metrics, task_id=f"task-{n % 500}", turns=3, transcript=transcript)
    deployment = DEPLOYMENTS[n % 3]
    unit = make_unit(key, Cell("workflow", MODEL, factors), n, 0)
    result = UnitResult(unit, RUN, deployment, f"{deployment}#key0", 1000.0 + n, 2.0, episode)
    calls = [
        CallRecord(
            key,
            RUN,
            f"{deployment}#key0",
            deployment,
            "key0",
            attempt,
            1000.0 + n,
            0.1 + (n % 13) / 10,
            CallStatus.RATE_LIMITED if (n + attempt) % 10 == 0 else CallStatus.OK,
            300,
            40,
            200,
        )
        for attempt in (1, 2, 3)
    ]
    return result, calls


def fill(db: Path, units: int) -> None:
    catalog = Catalog((ModelSpec(MODEL, "simulated", tuple(DeploymentSpec(d) for d in DEPLOYMENTS)),))
    store = SqlStorage(SqlOptions(url=f"sqlite:///{db}"), naming=CatalogNaming(CatalogNamingOptions(), catalog=catalog))
    store.migrate()
    config = {"run": {"label": "", "models": [MODEL]}, "suite": {"plugin": "workflow"}}
    store.begin_run(RunRecord(RUN, 1000.0, "workflow", (MODEL,), config, "bench", "bench-host", units, pid=1))
    started = time.perf_counter()
    for first in range(0, units, 2000):
        pairs = [unit_result(n) for n in range(first, min(units, first + 2000))]
        store.write([r for r, _ in pairs], [c for _, calls in pairs for c in calls])
    store.finish_run(RUN, "completed", 2000.0, units)
    store.close()
    print(f"(filled {units:,} units and {3 * units:,} calls in {time.perf_counter() - started:.1f} s)")


def timed(folder: Path, *args: str) -> None:
    """Run one command; print its wall time and its own peak RSS (from `wait4`, not the children's maximum)."""
    command = [sys.executable, "-m", "fleetbench.entry", *args]
    with tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(args)} failed: {errors.read().strip().splitlines()[-1]}")
    print(f"fleetbench {' '.join(args)}: {elapsed:.2f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB")


def main() -> None:
    compile_like_pip()
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--units", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        fill(folder / "fleetbench.db", args.units)
        (folder / "out").mkdir()
        # The filled units carry no configuration's scope: every command reads them all.
        common = ["suite=workflow", "report.scope=all"]
        for fmt in ("csv", "parquet", "master_json", "csv50", "inspect"):
            timed(folder, "export", *common, f"export.format={fmt}", "export.output=out")
        timed(folder, "drift", *common)
        timed(folder, "report", *common, "report.format=html", "report.output=report.html")
        logs = [p for p in sorted((folder / "out").glob("*.json")) if p.name != "master_database.json"]
        print(
            f"inspect: {len(logs)} logs, {sum(p.stat().st_size for p in logs) / 1e6:.1f} MB; "
            + ", ".join(
                f"{name} {(folder / 'out' / name).stat().st_size / 1e6:.1f} MB"
                for name in ("units.parquet", "calls.parquet", "master_database.json", "test_results_complete.csv")
            )
            + f", report.html {(folder / 'report.html').stat().st_size / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
