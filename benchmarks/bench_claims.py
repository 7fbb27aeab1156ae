"""Many workers on one plan: what claims cost, how the call rate scales with worker processes, and how fast
`fleetbench status` answers on a big database.

1. Claim overhead: `Storage.claim` on fresh units, per unit, at `run.claim_batch` 1, 4, 16 (the default) and 64, on
   SQLite and on PostgreSQL (skipped when no server answers at 127.0.0.1:5432).
2. Scaling: call rate (calls received per second, from the request log of `fleetbench serve`, zero latency) of
   `fleetbench run` through litellm with 2 worker processes on one plan, divided by the rate with 1. On a 2-core
   machine the client's CPU is the bottleneck. Target (issue 9): >= 1.8. The rate is taken while every worker calls
   (from the last worker's first call to the first worker's last call), and also from the first call to the last.
   For reference, the same two processes as two runs that share nothing (each its own database, no claims): what
   the machine itself allows two processes of this work.
3. `fleetbench status` on a 1,000,000-unit plan (5 cells x 200,000) whose units are all stored in SQLite, with a few
   live claims and a few thousand recent calls: wall time of the whole command (a subprocess: start-up, config, the
   queries, rendering) and of the queries alone. Target: <= 2 s.

Run: `python benchmarks/bench_claims.py` (`--quick`: 100,000 units in part 3 and smaller runs in part 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import create_engine, text

from fleetbench.claims import plan_digest
from fleetbench.config import compose_config, resolve_run
from fleetbench.interfaces import Storage
from fleetbench.plan import ModelPlan
from fleetbench.report.status import gather
from fleetbench.runner import plans
from fleetbench.testing.contracts.storage import kit_units
from fleetbench.testing.databases import fresh_postgres_database
from fleetbench.testing.server.environment import served_environment
from fleetbench.testing.server.process import served
from fleetbench.types import CallRecord, CallStatus, Episode, Outcome, RunRecord, Unit, UnitResult
from installed import compile_like_pip
from machine import cpu_speed_note

CLI = [sys.executable, "-m", "fleetbench.entry"]


def _storage(url: str) -> Storage:
    common = resolve_run(compose_config([f"storage.url={url}", *(["storage=postgres"] if "postgres" in url else [])]))
    storage = common.common.storage.create(naming=common.common.naming)
    storage.migrate()
    return storage


def claim_overhead(scratch: Path) -> None:
    urls = {"SQLite": f"sqlite:///{scratch / 'claims.db'}"}
    with contextlib.ExitStack() as stack:
        try:
            urls["PostgreSQL"] = stack.enter_context(fresh_postgres_database(prefix="fleetbench_bench"))
        except BaseException as exc:
            print(f"claim overhead on PostgreSQL: skipped ({type(exc).__name__}: {str(exc)[:80]})")
        for name, url in urls.items():
            storage = _storage(url)
            run = RunRecord("bench-claims", time.time(), "kit", ("Sim-Agent",), {}, "bench", "bench-host")
            storage.begin_run(run)
            for batch in (1, 4, 16, 64):
                units = kit_units("Sim-Agent", instances=1000, seed=batch, levels=("a",))  # 1,000 fresh units
                started = time.perf_counter()
                for low in range(0, len(units), batch):
                    now = time.time()
                    storage.claim(run.run_id, units[low : low + batch], now, now + 60)
                per_unit = (time.perf_counter() - started) / len(units)
                print(f"claim overhead on {name}, claim_batch={batch}: {per_unit * 1e6:,.0f} us per unit")
            storage.close()


def _rate(requests: Sequence[dict[str, object]]) -> float:
    stamps = sorted(float(str(e["received_at"])) for e in requests)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _steady_rate(urls: Sequence[str]) -> tuple[float, float]:
    """The call rate while every worker was calling, and how long that was: calls answered from the last worker's
    first answer to the first worker's last (each worker is a run of its own in the calls table; a call's answer is
    `started_at + latency_s`, after the lazy import of litellm that delays the first requests). Start-up skew and the
    tail, where one worker has finished and the other goes on alone, are left out."""
    ends = []
    for url in urls:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                ends += connection.execute(text("select run_id, started_at + latency_s from calls")).all()
        finally:
            engine.dispose()
    by_run: dict[str, list[float]] = {}
    for run_id, answered in ends:
        by_run.setdefault(run_id, []).append(float(answered))
    start = max(min(stamps) for stamps in by_run.values())
    end = min(max(stamps) for stamps in by_run.values())
    inside = sum(start <= answered <= end for stamps in by_run.values() for answered in stamps)
    return (inside - 1) / (end - start), end - start


def scaling(scratch: Path, instances: int, postgres: bool) -> None:
    job = [
        "run.models=[DeepSeek-V3-0324]", f"run.instances={instances}", "suite.items=cycle", "run.progress=off",
        *(f"models.deepseek_v3_0324.deployments.{i}.max_concurrency=16" for i in range(3)),
    ]  # fmt: skip
    rates, whole = {}, {}
    for label, workers, shared in (("1", 1, True), ("2", 2, True), ("2 apart", 2, False)):
        with served(scratch / f"serve{label}", {"defaults": {"latency": 0.0}}) as server:
            env = {**os.environ, **served_environment(compose_config([]).models, server.url), "AZURE_AI_API_KEY": "k"}
            with contextlib.ExitStack() as stack:
                urls = [
                    _database(stack, scratch, f"scale{label}-{i}", postgres) for i in range(1 if shared else workers)
                ]
                launched, server_cpu = time.perf_counter(), _process_cpu(server.pid)
                crew = [
                    subprocess.Popen([*CLI, "run", *job, *_storage_overrides(urls[i % len(urls)], postgres),
                                      *([f"run.worker={i}"] if shared else [])],
                                     cwd=scratch, env=env, stdout=subprocess.DEVNULL)
                    for i in range(workers)
                ]  # fmt: skip
                cpu = busy = 0.0
                for process in crew:
                    _, _, usage = os.wait4(process.pid, 0)
                    process.returncode = 0
                    cpu += usage.ru_utime + usage.ru_stime
                    busy = max(busy, cpu / (time.perf_counter() - launched))
                server_busy = (_process_cpu(server.pid) - server_cpu) / (time.perf_counter() - launched)
                requests = server.requests()
                rates[label], window = _steady_rate(urls)
        whole[label] = _rate(requests)
        how = "on one plan" if shared else "each on a database of its own (nothing shared but the machine)"
        print(
            f"{workers} worker process(es) {how}: {len(requests)} calls; {rates[label]:,.0f} calls/s while all "
            f"{workers} called ({window:.1f} s), {whole[label]:,.0f} calls/s from first call to last; "
            f"{cpu / len(requests) * 1e3:.2f} ms of worker CPU per call, start-up included; the workers kept "
            f"{busy:.2f} of {os.cpu_count()} CPUs busy on average from launch to exit and the server "
            f"{server_busy:.2f} (load average {os.getloadavg()[0]:.1f})"
        )
    where = "PostgreSQL" if postgres else "SQLite"
    print(
        f"call rate on {where}, 2 workers / 1: {rates['2'] / rates['1']:.2f} while both called (target >= 1.8); "
        f"{whole['2'] / whole['1']:.2f} from first call to last. Two runs that share nothing: "
        f"{rates['2 apart'] / rates['1']:.2f} while both called, {whole['2 apart'] / whole['1']:.2f} from first call "
        "to last (what this machine allows two processes of this work)"
    )


def _database(stack: contextlib.ExitStack, scratch: Path, name: str, postgres: bool) -> str:
    if postgres:
        return stack.enter_context(fresh_postgres_database(prefix="fleetbench_bench"))
    return f"sqlite:///{scratch / f'{name}.db'}"


def _storage_overrides(url: str, postgres: bool) -> list[str]:
    return [f"storage.url={url}", *(["storage=postgres"] if postgres else [])]


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fill(storage: Storage, units: Iterator[Unit], run: RunRecord, chunk: int = 20_000) -> int:
    episode = Episode(Outcome.SUCCESS, {"score": 1.0}, turns=1)
    stored, batch = 0, []
    for unit in units:
        batch.append(UnitResult(unit, run.run_id, "Sim-Agent", "Sim-Agent", 1.0, 0.01, episode))
        if len(batch) == chunk:
            stored += storage.write(batch, [])
            batch = []
    return stored + storage.write(batch, [])


def status(scratch: Path, instances: int) -> None:
    db = scratch / "status.db"
    plan = [f"storage.url=sqlite:///{db}", f"run.instances={instances}", "suite.items=cycle"]
    spec = resolve_run(compose_config(plan))
    model_plans = plans(spec)
    storage = spec.common.storage.create(naming=spec.common.naming)
    storage.migrate()
    if storage.runs():  # kept from an earlier `--scratch` run: time it again
        _time_status(storage, model_plans, plan, scratch)
        return
    digest = plan_digest(model_plans)
    run = RunRecord("bench-run", time.time(), "jsonl", ("Sim-Agent",), {}, "bench", "bench-host",
                    planned_units=sum(p.planned for p in model_plans), pid=1, plan=digest)  # fmt: skip
    storage.begin_run(run)
    started = time.perf_counter()
    units = model_plans[0].units()
    stored = _fill(storage, units, run)
    first = next(model_plans[0].units())
    now = time.time()
    calls = [
        CallRecord(first.key, run.run_id, f"Sim-Agent-{i % 3 + 1}", f"Sim-Agent-{i % 3 + 1}", "key0", 1, now - i % 200,
                   0.01 * (i % 50), CallStatus.RATE_LIMITED if i % 20 == 0 else CallStatus.OK)
        for i in range(5_000)
    ]  # fmt: skip
    storage.write([], calls)
    print(f"status: stored {stored:,} units in {time.perf_counter() - started:.0f} s (setting up)")
    _time_status(storage, model_plans, plan, scratch)


def _time_status(storage: Storage, model_plans: list[ModelPlan], plan: list[str], scratch: Path) -> None:
    gather(storage, model_plans, plan_digest(model_plans), 300.0)  # warm the page cache, as a second look would
    timed = time.perf_counter()
    found = gather(storage, model_plans, plan_digest(model_plans), 300.0)
    queries = time.perf_counter() - timed
    storage.close()
    done = sum(c.done for c in found.cells)
    timed = time.perf_counter()
    process = subprocess.run([*CLI, "status", *plan], capture_output=True, text=True, cwd=scratch)
    command = time.perf_counter() - timed
    assert process.returncode == 0, process.stderr
    stored = sum(c.planned for c in found.cells)
    timed = time.perf_counter()
    empty = subprocess.run([*CLI, "status", "run.instances=1", f"storage.url=sqlite:///{scratch / 'empty.db'}"],
                           capture_output=True, text=True, cwd=scratch)  # fmt: skip
    baseline = time.perf_counter() - timed
    assert empty.returncode in (0, 1), empty.stderr
    print(
        f"fleetbench status on a {stored:,}-unit plan ({done:,} done): {command:.2f} s for the command, "
        f"{queries:.2f} s for its queries (target <= 2 s); the same command against no database (start-up, "
        f"config and plan alone): {baseline:.2f} s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    compile_like_pip()
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("claims", "scaling", "status"))
    parser.add_argument("--postgres", action="store_true", help="part 2 on PostgreSQL instead of SQLite")
    parser.add_argument("--instances", type=int, default=400, help="part 2: units per cell (5 cells)")
    parser.add_argument("--scratch", type=Path, help="keep the databases here (a second run reuses the big one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.scratch or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        if args.only in (None, "claims"):
            claim_overhead(root)
        if args.only in (None, "scaling"):
            scaling(root, 100 if args.quick else args.instances, args.postgres)
        if args.only in (None, "status"):
            status(root, 20_000 if args.quick else 200_000)
    print(cpu_speed_note())


if __name__ == "__main__":
    main()
