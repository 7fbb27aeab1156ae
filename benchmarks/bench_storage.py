"""Throughput of the `sql` storage on a SQLite file: write rate, and checking a million stored keys.

    .venv/bin/python benchmarks/bench_storage.py [--units 20000] [--keys 1000000] [--batch 512] [--postgres]
    .venv/bin/python benchmarks/bench_storage.py --other /path/to/other/checkout [--rounds 2] [--batch 1,4,15,60]

Prints figures only; never part of the test run's pass/fail. Writes go through `SqlStorage.write` exactly as the
pipeline calls it (one call record and a small transcript per unit). The million keys are then topped up with one
bulk INSERT ... SELECT (not the storage's write path), and every one is looked up with `stored_among` in chunks of
1,024, as the planner does while it streams missing units, in a fresh process so that its peak RSS is its own.

With `--other`, only the write rate is timed, on SQLite, for each batch size, this checkout and the other one in
alternating rounds (each in a process of its own, the other checkout's `framework` and `plugins` ahead on
`PYTHONPATH`): a change to the write path shows against the machine's minute-to-minute speed.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from fleetbench.testing.databases import fresh_postgres_database
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

MODEL = "DeepSeek-V3-0324"
SUITE = "workflow"
RUN = "bench"


def make_storage(url: str) -> SqlStorage:
    catalog = Catalog((ModelSpec(MODEL, "simulated", (DeploymentSpec(MODEL), DeploymentSpec(f"{MODEL}-2"))),))
    return SqlStorage(SqlOptions(url=url), naming=CatalogNaming(CatalogNamingOptions(), catalog=catalog))


def unit_result(n: int) -> tuple[UnitResult, CallRecord]:
    key = hashlib.sha256(f"unit-{n}".encode()).hexdigest()
    factors = (("prompt_type", "optimal"), ("difficulty", "easy"), ("tool_success_rate", 0.8), ("task_type", "x"))
    deployment = f"{MODEL}-{1 + n % 2}" if n % 2 else MODEL
    episode = Episode(
        Outcome.SUCCESS if n % 3 else Outcome.FAILURE,
        {"workflow_score": 0.5, "phase2_score": 0.7, "quality_score": 0.6, "final_score": 0.65},
        task_id=f"task-{n % 500}",
        turns=5,
        transcript={"messages": [{"role": "user", "content": f"task {n}"}, {"role": "assistant", "content": "ok"}]},
    )
    unit = make_unit(key, Cell(SUITE, MODEL, factors), n, n)
    result = UnitResult(unit, RUN, deployment, "lane-0", 1.0, 2.0, episode)
    call = CallRecord(key, RUN, "lane-0", deployment, "cred-0", 1, 1.0, 0.5, CallStatus.OK, 100, 20, 200)
    return result, call


def bench_writes(store: SqlStorage, units: int, batch: int) -> None:
    pairs = [unit_result(n) for n in range(units)]
    started = time.perf_counter()
    written = 0
    for first in range(0, units, batch):
        chunk = pairs[first : first + batch]
        written += store.write([r for r, _ in chunk], [c for _, c in chunk])
    elapsed = time.perf_counter() - started
    print(
        f"write: {written} units (+1 call, +transcript each) in {elapsed:.2f} s = {written / elapsed:,.0f} units/s "
        f"(batches of {batch})"
    )
    again = time.perf_counter()
    repeated = sum(store.write([r for r, _ in pairs[i : i + batch]], []) for i in range(0, units, batch))
    elapsed = time.perf_counter() - again
    print(f"rewrite of the same units (all already stored, returns {repeated}): {units / elapsed:,.0f} units/s")


def top_up(url: str, existing: int, wanted: int) -> None:
    """Copy the first stored unit under new keys until `wanted` rows exist (a bulk fill, not the write path)."""
    started = time.perf_counter()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
                "INSERT INTO units (unit_key, suite, base_model, factors, instance_index, seed, task_id, outcome, "
                "metrics, turns, error_category, infra_status, deployment, lane_id, run_id, started_at, duration_s, "
                "suite_scope, model_scope, cell_key) "
                "SELECT printf('%064x', n.i), u.suite, u.base_model, u.factors, n.i, n.i, u.task_id, u.outcome, "
                "u.metrics, u.turns, u.error_category, u.infra_status, u.deployment, u.lane_id, u.run_id, "
                "u.started_at, u.duration_s, u.suite_scope, u.model_scope, u.cell_key "
                "FROM n, (SELECT * FROM units LIMIT 1) AS u"
            ),
            {"first": existing, "last": wanted - 1},
        )
    engine.dispose()
    print(f"(bulk fill to {wanted:,} units: {time.perf_counter() - started:.1f} s)")


def check_keys(url: str, total: int) -> None:
    """Runs in a fresh process: look every stored key up in chunks of 1,024, report time and peak RSS."""
    store = make_storage(url)
    store.migrate()
    keys = [unit_result(n)[0].key for n in range(min(total, 20_000))] + [f"{i:064x}" for i in range(20_000, total)]
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    found = sum(len(store.stored_among(keys[i : i + 1024])) for i in range(0, len(keys), 1024))
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store.close()
    print(
        f"stored_among: {len(keys):,} keys checked ({found:,} stored) in {elapsed:.2f} s = "
        f"{len(keys) / elapsed:,.0f} keys/s; peak RSS {peak / 1024:.0f} MiB (before {baseline / 1024:.0f} MiB, "
        "which holds the key list)"
    )


def write_only(url: str, units: int, batch: int) -> None:
    """The write benchmark alone, on any database URL."""
    store = make_storage(url)
    store.migrate()
    store.begin_run(RunRecord(RUN, 0.0, SUITE, (MODEL,), {}, "bench", "bench"))
    bench_writes(store, units, batch)
    store.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--batch", default="512", help="units per write; several, comma-separated, timed in turn")
    parser.add_argument("--postgres", action="store_true", help="also time writes to a fresh PostgreSQL database")
    parser.add_argument("--other", help="another checkout to time in alternating rounds (writes only, SQLite)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --other")
    parser.add_argument("--writes-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batches = [int(size) for size in str(args.batch).split(",")]
    if args.other:
        compare(Path(args.other).resolve(), args.units, args.batch, args.rounds)
        return
    if args.writes_only:
        for batch in batches:
            with tempfile.TemporaryDirectory() as directory:
                write_only(f"sqlite:///{Path(directory) / 'bench.db'}", args.units, batch)
        return
    if args.postgres:
        for batch in batches:
            with fresh_postgres_database(prefix="fleetbench_bench") as url:
                print("PostgreSQL", end=" ")
                write_only(url, args.units, batch)
    for batch in batches[1:]:
        with tempfile.TemporaryDirectory() as directory:
            print("SQLite", end=" ")
            write_only(f"sqlite:///{Path(directory) / 'bench.db'}", args.units, batch)
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        print("SQLite", end=" ")
        write_only(url, args.units, batches[0])
        # Two thirds of the written units succeeded and a third failed: all of them count as completed keys.
        top_up(url, args.units, args.keys)
        child = multiprocessing.get_context("spawn").Process(target=check_keys, args=(url, args.keys))
        child.start()
        child.join()


def compare(other: Path, units: int, batches: str, rounds: int) -> None:
    """The write rate of this checkout and of `other`, in alternating rounds."""
    if not (other / "framework" / "fleetbench").is_dir():
        raise SystemExit(f"--other: {other} holds no framework/fleetbench")
    variants = [("this", {}), ("other", {"PYTHONPATH": f"{other / 'framework'}:{other / 'plugins'}"})]
    command = [sys.executable, __file__, "--writes-only", "--units", str(units), "--batch", batches]
    for round_ in range(rounds):
        for name, extra in variants if round_ % 2 == 0 else list(reversed(variants)):
            done = subprocess.run(command, env={**os.environ, **extra}, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{name}: {done.stderr.strip()[-500:]}")
            for line in done.stdout.splitlines():
                if line.startswith("write:"):
                    print(f"round {round_ + 1}, {name}: {line}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
