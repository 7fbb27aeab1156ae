"""How long `fleetbench report` takes over a million stored units, command start included.

    .venv/bin/python benchmarks/bench_report.py [--instances 417] [--postgres] [--repeat 3] [--keep DIR]

Prints figures only; never part of the test run's pass/fail. The database is built by bulk insert, not by running:
the units a `fleetbench run` of the configuration below would store (4 simulated models × 600 cells of the workflow
suite × `--instances`; 417 gives 1,000,800 units), with random outcomes and every workflow metric, written together
with their running totals by `totals.insert_rows` — the same totals the storage's write path keeps. The calls table
is left empty (a million units' calls would only add load time; the report counts them per deployment).

Then, in a fresh process each time, the full hierarchy (model → prompt type → tool success rate → difficulty →
task type, every metric) is reported with the same configuration (so the report reads exactly those units), once
as csv and once as the terminal table written to a file (`report.output`). The wall time and the CPU time (user +
system) of each command are printed: on a shared, loaded machine the wall time is mostly time spent waiting for a
CPU, so both are shown, with the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine

from fleetbench.config import compose_config, resolve_run
from fleetbench.plan import cell_key
from fleetbench.testing.databases import fresh_postgres_database
from fleetbench.types import RunRecord
from fleetbench_plugins.storage.sql import SqlOptions, SqlStorage
from fleetbench_plugins.storage.sql.totals import insert_rows
from installed import compile_like_pip
from machine import cpu_speed_note

CONFIG = [
    "suite=workflow",
    "run.models=[Sim-Agent,Sim-Weak,Sim-Qwen,Sim-Native]",
    "suite.prompt_types=[all_with_flawed]",
    "suite.difficulties=[very_easy,easy,medium]",
    "suite.tool_success_rates=[0.6,0.7,0.8,0.9]",
]
HIERARCHY = "report.by=[prompt_type,tool_success_rate,difficulty,task_type]"
CHUNK = 20_000
RUN = "bench-report"


def build(url: str, instances: int) -> int:
    """Fill the database at `url` with the configuration's units; return how many."""
    spec = resolve_run(compose_config([*CONFIG, f"run.instances={instances}", f"storage.url={url}"]))
    storage = SqlStorage(SqlOptions(url=url), naming=spec.common.naming)
    storage.migrate()
    models = tuple(m.name for m in spec.models)
    storage.begin_run(RunRecord(RUN, time.time(), "workflow", models, {}, "bench", "bench", 0, 0,
                                spec.scopes.descriptions))  # fmt: skip
    storage.close()
    metrics = [m.name for m in spec.suite.metrics()]
    rng = random.Random(0)
    engine = create_engine(url)
    written = 0
    rows = []
    for model in spec.models:
        scope = spec.scopes.by_model[model.name]
        deployments = [d.name for d in model.deployments]
        for cell in spec.suite.cells(model.name):
            key = cell_key(cell)
            factors = cell.as_dict()
            for index in range(instances):
                outcome = rng.choices(["success", "partial", "failure", "infra_error"], [50, 30, 18, 2])[0]
                rows.append({
                    "unit_key": f"{key[:16]}{model.name[:6]}{index:010d}{written:020d}"[:64], "suite": "workflow",
                    "base_model": model.name, "factors": factors, "instance_index": index, "seed": spec.run.seed,
                    "task_id": f"task-{index % 50}", "outcome": outcome,
                    "metrics": {name: round(rng.random(), 3) for name in metrics}, "turns": rng.randrange(1, 11),
                    "error_category": None, "infra_status": "timeout" if outcome == "infra_error" else None,
                    "deployment": deployments[index % len(deployments)], "lane_id": "bench", "run_id": RUN,
                    "started_at": 0.0, "duration_s": rng.random() * 30, "suite_scope": scope.suite,
                    "model_scope": scope.model, "cell_key": key, "experiment": None,
                })  # fmt: skip
                written += 1
                if len(rows) >= CHUNK:
                    with engine.begin() as connection:
                        insert_rows(connection, rows)
                    rows = []
    if rows:
        with engine.begin() as connection:
            insert_rows(connection, rows)
    engine.dispose()
    return written


def analyze(url: str) -> None:
    """`VACUUM ANALYZE`, as PostgreSQL's autovacuum does within a minute of a bulk insert: measured before it, a
    report would time the query planner without table statistics, competing with autovacuum for the CPU."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def timed_report(url: str, instances: int, *extra: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one `fleetbench report` process over the configuration's units."""
    command = [str(Path(sys.executable).with_name("fleetbench")), "report", *CONFIG, f"run.instances={instances}",
               f"storage.url={url}", HIERARCHY, *extra]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"report failed: {process.stderr.strip()}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@contextlib.contextmanager
def database(postgres: bool, keep: str | None) -> Iterator[str]:
    if postgres:
        with fresh_postgres_database(prefix="fleetbench_bench") as url:
            yield url
        return
    with tempfile.TemporaryDirectory(dir=keep) as folder:
        yield f"sqlite:///{os.path.join(folder, 'report.db')}"


def main() -> None:
    compile_like_pip()
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--instances", type=int, default=417, help="units per cell (417 → 1,000,800 units)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL at 127.0.0.1:5432 instead of SQLite")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", default=None, help="directory for the SQLite file (default: a temporary one)")
    parser.add_argument("--phases-only", action="store_true", help="only where a report's start-up time goes")
    args = parser.parse_args()
    if args.phases_only:
        print(_phases(args.postgres))
        return
    with database(args.postgres, args.keep) as url, tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        units = build(url, args.instances)
        if args.postgres:
            analyze(url)
        backend = "postgresql" if args.postgres else "sqlite"
        print(f"{backend}: built {units:,} units (with their totals) in {time.perf_counter() - started:.1f}s")
        for label, extra in (
            ("csv", ("report.format=csv",)),
            ("table to report.output", (f"report.output={out}/report.txt",)),
        ):
            _print(f"full hierarchy, every metric, {label}", backend,
                   [timed_report(url, args.instances, *extra) for _ in range(args.repeat)])  # fmt: skip
        baseline = [timed_report(url, args.instances, "report.format=csv", "--help") for _ in range(args.repeat)]
        _print("`fleetbench report --help` (interpreter and imports only)", backend, baseline)
        print(_phases(args.postgres))
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(cpu_speed_note())


PHASES = """
import sys, time
started = time.perf_counter()
from fleetbench.gcpause import collector_paused
with collector_paused():  # as the `fleetbench` command imports its CLI
    import fleetbench.cli
imported = time.perf_counter()
from fleetbench.config import compose_config
compose_config(sys.argv[1:])
composed = time.perf_counter()
import fleetbench_plugins.storage.sql.database
if "storage=postgres" in sys.argv:
    import psycopg
storage = time.perf_counter()
print(imported - started, composed - imported, storage - composed)
"""


def _phases(postgres: bool) -> str:
    """Where a report's fixed start-up time goes, best of 3 fresh processes: the command's imports, Hydra's
    composition of the benchmark's configuration, and the SQL storage plugin's imports (SQLAlchemy; psycopg too
    for PostgreSQL)."""
    overrides = [*CONFIG, "run.instances=417", HIERARCHY, *(["storage=postgres"] if postgres else [])]
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", PHASES, *overrides], capture_output=True, text=True, check=True)
        runs.append([float(value) for value in out.stdout.split()])
    best = [min(run[i] for run in runs) for i in range(3)]
    libraries = "SQLAlchemy, psycopg" if postgres else "SQLAlchemy"
    return (
        f"start-up phases, best of 3 fresh processes: the command's imports {best[0]:.2f} s, composing the "
        f"configuration {best[1]:.2f} s, importing the SQL storage plugin ({libraries}) {best[2]:.2f} s"
    )


def _print(what: str, backend: str, runs: list[tuple[float, float]]) -> None:
    """Best wall time and best CPU time (on a loaded machine the wall time mostly measures waiting for a CPU)."""
    walls = ", ".join(f"{wall:.2f}" for wall, _ in runs)
    print(f"{backend}: {what}: wall best {min(w for w, _ in runs):.2f}s (runs: {walls}); "
          f"CPU (user+sys) best {min(c for _, c in runs):.2f}s")  # fmt: skip


if __name__ == "__main__":
    main()
