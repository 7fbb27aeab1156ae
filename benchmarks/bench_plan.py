"""Planning and diffing 1,000,000 units against 1,000,000 stored keys: wall time and peak memory.

Targets (issue 2): under 10 s and 500 MB on a 2-core machine. The stored keys live in a real SQLite file written
through the `sql` storage plugin's schema; half of them belong to the plan (so half the plan is missing), half are
other experiments' units. Setup runs in a child process so the measured process's peak RSS covers only the measured
work: `set(storage.stored_keys(...))` then `diff(iter_units(...), stored)`, exactly what the runner does.

Run: `python benchmarks/bench_plan.py` (about a minute, most of it setup).
"""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleetbench.config import compose_config, resolve_common
from fleetbench.plan import diff, iter_units
from fleetbench_plugins.suites.jsonl import JsonlOptions, JsonlSuite

UNITS = 1_000_000
CELLS = 5  # the built-in jsonl dataset's categories
INSTANCES = UNITS // CELLS  # far beyond 24 items per category: `items="cycle"` repeats them on purpose


def _storage(db: Path):  # type: ignore[no-untyped-def]
    common = resolve_common(compose_config([f"storage.url=sqlite:///{db}"]))
    return common.storage.create(naming=common.naming)


def setup(db: Path) -> None:
    """Store 500,000 keys of the plan and 500,000 foreign keys (bulk insert; not measured)."""
    storage = _storage(db)
    storage.migrate()
    storage.close()
    suite = JsonlSuite(JsonlOptions(items="cycle"))
    planned = (u.key for u in iter_units(suite, ["Sim-Agent"], INSTANCES, 0))
    ours = [next(planned) for _ in range(UNITS)][::2]
    foreign = [f"{i:032x}" for i in range(UNITS - len(ours))]
    with sqlite3.connect(db) as connection:
        connection.executemany(
            "insert into units (unit_key, suite, base_model, factors, instance_index, seed, outcome, metrics, turns,"
            " deployment, lane_id, run_id, started_at, duration_s) values (?, 'jsonl', 'Sim-Agent', '{}', 0, 0,"
            " 'success', '{}', 1, 'Sim-Agent', 'Sim-Agent', 'bench', 0, 0)",
            ((key,) for key in ours + foreign),
        )


def measure(db: Path) -> None:
    suite = JsonlSuite(JsonlOptions(items="cycle"))
    storage = _storage(db)
    start = time.perf_counter()
    stored = set(storage.stored_keys("jsonl", ["Sim-Agent"]))
    loaded = time.perf_counter()
    missing = diff(iter_units(suite, ["Sim-Agent"], INSTANCES, 0), stored).missing_count
    done = time.perf_counter()
    storage.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"stored keys loaded:  {len(stored):,} in {loaded - start:.2f} s")
    print(f"planned and diffed:  {UNITS:,} units -> {missing:,} missing in {done - loaded:.2f} s")
    print(f"total:               {done - start:.2f} s (target < 10 s)")
    print(f"peak RSS:            {peak_mb:.0f} MB (target < 500 MB; includes the interpreter and imports)")


def main() -> None:
    if len(sys.argv) == 3:
        {"--setup": setup, "--measure": measure}[sys.argv[1]](Path(sys.argv[2]))
        return
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "bench.db"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--setup", str(db)], check=True)
        print(f"setup: {UNITS:,} stored rows in {time.perf_counter() - t0:.1f} s (not part of the figures)")
        subprocess.run([sys.executable, __file__, "--measure", str(db)], check=True)


if __name__ == "__main__":
    main()
