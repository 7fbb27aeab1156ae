"""Planning a 1,000,000-unit plan against a database holding 1,000,000 units: wall time and peak memory.

Targets: under 10 s and 500 MB on a 2-core machine. The stored units live in a real SQLite file with the `sql`
storage plugin's schema: half of the plan's units (every other instance of every cell) plus 500,000 units of other
experiments. Setup runs in a child process so the measured process's peak RSS covers only the measured work, which is
exactly what the runner does: count what each cell misses (`diff`), then stream every missing unit, checking keys in
chunks (`MissingUnits.stream`, what the lanes pull from). A second figure: the same plan once it is complete (a rerun
that has nothing to do).

Run: `python benchmarks/bench_plan.py` (about a minute, most of it setup).
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleetbench.config import compose_config, resolve_run
from fleetbench.plan import ModelPlan, diff, model_plan
from installed import compile_like_pip

UNITS = 1_000_000
CELLS = 5  # the built-in jsonl dataset's categories
INSTANCES = UNITS // CELLS  # far beyond 24 items per category: `items=cycle` repeats them on purpose


def _plan(db: Path):  # type: ignore[no-untyped-def]
    spec = resolve_run(
        compose_config([f"storage.url=sqlite:///{db}", "suite.items=cycle", f"run.instances={INSTANCES}"])
    )
    cells = [(cell, INSTANCES) for cell in spec.suite.cells("Sim-Agent")]
    return spec, model_plan("Sim-Agent", cells, spec.scopes.by_model["Sim-Agent"], 0)


def _insert(db: Path, plan: ModelPlan, every: int, offset: int) -> None:
    rows = (
        (u.key, u.index, u.scope.suite, u.scope.model, u.cell_key)
        for i, u in enumerate(plan.units())
        if i % every == offset
    )
    with sqlite3.connect(db) as connection:
        connection.executemany(
            "insert into units (unit_key, suite, base_model, factors, instance_index, seed, outcome, metrics, turns,"
            " deployment, lane_id, run_id, started_at, duration_s, suite_scope, model_scope, cell_key) values"
            " (?, 'jsonl', 'Sim-Agent', '{}', ?, 0, 'success', '{}', 1, 'Sim-Agent', 'Sim-Agent', 'bench', 0, 0,"
            " ?, ?, ?)",
            rows,
        )


def setup(db: Path) -> None:
    """Store every other unit of the plan and 500,000 foreign units (bulk insert; not measured)."""
    spec, plan = _plan(db)
    storage = spec.common.storage.create(naming=spec.common.naming)
    storage.migrate()
    storage.close()
    _insert(db, plan, 2, 0)
    foreign = model_plan("Sim-Agent", [(c.cell, INSTANCES // 2) for c in plan.cells], _other_scope(plan), 0)
    _insert(db, foreign, 1, 0)


def _other_scope(plan: ModelPlan):  # type: ignore[no-untyped-def]
    from fleetbench.types import UnitScope

    return UnitScope("f" * 32, plan.scope.model)


def measure(db: Path) -> None:
    spec, plan = _plan(db)
    storage = spec.common.storage.create(naming=spec.common.naming)
    start = time.perf_counter()
    planned = diff([plan], storage)
    counted = time.perf_counter()
    streamed = sum(1 for _ in planned.missing["Sim-Agent"].stream())
    done = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = f"{planned.planned:,} planned, {planned.missing_count:,} missing"
    print(f"counted per cell:    {counts} in {counted - start:.2f} s")
    print(f"streamed missing:    {streamed:,} units, keys checked in chunks, in {done - counted:.2f} s")
    print(f"total:               {done - start:.2f} s (target < 10 s)")
    print(f"peak RSS:            {peak_mb:.0f} MB (target < 500 MB; includes the interpreter and imports)")
    _insert(db, plan, 2, 1)  # now the plan is complete
    start = time.perf_counter()
    rerun = diff([plan], storage)
    elapsed = time.perf_counter() - start
    print(f"complete plan:       {rerun.missing_count:,} missing of {rerun.planned:,} in {elapsed:.2f} s")
    storage.close()


def main() -> None:
    compile_like_pip()
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--setup", type=Path, help=argparse.SUPPRESS)  # the child processes' own parts
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup or args.measure:
        setup(args.setup) if args.setup else measure(args.measure)
        return
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "bench.db"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--setup", str(db)], check=True)
        print(f"setup: {UNITS:,} stored rows in {time.perf_counter() - t0:.1f} s (not part of the figures)")
        subprocess.run([sys.executable, __file__, "--measure", str(db)], check=True)


if __name__ == "__main__":
    main()
