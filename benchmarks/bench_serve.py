"""The real HTTP path: fleetbench through litellm against a `fleetbench serve` process on 127.0.0.1.

1. Throughput: 3 deployments x 25 requests in flight x 0.5 s latency (ideal 150 calls/s); achieved / ideal.
   Target (issue 8): >= 0.95. Measured for one `fleetbench run`, for bare `litellm.acompletion` calls, and for two and
   three `fleetbench run` worker processes sharing the plan (`run.worker`), which spread litellm's CPU over the cores.
2. CPU per call: process CPU time of a fleetbench run divided by its calls, against bare `litellm.acompletion` calls
   at the same concurrency on the same server (the same litellm arguments). Target: fleetbench adds <= 10%.
3. Sharding: deployments answering in 0.1 / 0.3 / 0.9 s, 5 requests in flight each; makespan of `dynamic` and of
   `even` divided by the lower bound (total work / total capacity). Target: dynamic <= 1.05. Also divided by the
   bound at the latencies bare `litellm.acompletion` calls see on the same server at the same concurrency (what the
   client's and the server's CPU add to each request on this machine), and by the bound of the latencies the run
   itself measured (how busy the scheduler kept each lane's slots).
4. Start-up: `fleetbench run` (a subprocess) from start to the server receiving its first request. Target: <= 2 s.
5. Ramp: part 1's run with the lanes' start ramp (`scheduler.ramp_step_s`, default 0.02 s) and without it (0),
   alternating, three rounds each, at the fixed and at the spread latency: achieved / ideal per round.
6. Loop: part 1's run at the fixed latency, counting the times the event loop's thread waited for a claim or a write
   still running on the storage thread (each holds every request of the run), and how long in all.

Run: `python benchmarks/bench_serve.py` (`--only SECTION`, repeatable, for some of them; `--quick` for smaller runs:
the sharding part then misses its target only because its tail is a larger share of a shorter run).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from fleetbench.config import RunSpec, compose_config, resolve_run
from fleetbench.config.schema import RAMP_STEP_S
from fleetbench.runner import RunSummary, run
from fleetbench.testing.requests import request_of
from fleetbench.testing.server.environment import served_environment
from fleetbench.testing.server.process import RunningServer, served
from fleetbench.types import Lane
from fleetbench_plugins.providers.litellm import loader, wire
from installed import compile_like_pip
from machine import cpu_speed_note

DEPLOYMENTS = ("DeepSeek-V3-0324", "DeepSeek-V3-0324-2", "DeepSeek-V3-0324-3")


def _environment(server: RunningServer) -> None:
    import os

    os.environ.update(served_environment(compose_config([]).models, server.url))


def _spec(db: Path, overrides: Sequence[str]) -> RunSpec:
    settings = [f"storage.url=sqlite:///{db}", "run.progress=off", "suite.items=cycle", "run.models=[DeepSeek-V3-0324]"]
    return resolve_run(compose_config([*settings, *overrides]))


def _run(db: Path, overrides: Sequence[str]) -> RunSummary:
    return run(_spec(db, overrides))


def _slots(count: int) -> list[str]:
    return [f"models.deepseek_v3_0324.deployments.{i}.max_concurrency={count}" for i in range(3)]


def throughput(scratch: Path, units: int) -> None:
    """Part 1 at a fixed 0.5 s (the target's setting), then at 0.25-0.75 s (the same mean, so the same ideal)."""
    fixed = {"latency": 0.5}
    spread = {"latency": {"mean_s": 0.5, "spread_s": 0.25, "distribution": "uniform"}}
    for label, latency in (("fixed 0.5 s", fixed), ("uniform 0.25-0.75 s", spread)):
        with served(scratch / f"s1-{len(label)}", {"defaults": latency}) as server:
            _environment(server)
            summary = _run(scratch / f"throughput-{len(label)}.db", [f"run.instances={units // 5}", *_slots(25)])
            served_rate = _served_rate(server)
            started = time.perf_counter()
            asyncio.run(_bare(_lanes(server), 75, calls=units))
            bare = units / (time.perf_counter() - started)
        calls = sum(summary.calls_by_deployment.values())
        achieved = calls / summary.wall_s
        print(
            f"throughput, latency {label}: {calls} calls in {summary.wall_s:.2f} s = {achieved:.1f} calls/s; ideal "
            f"150 (3 x 25 in flight / 0.5 s): achieved / ideal = {achieved / 150:.3f} (target >= 0.95), at the "
            f"server from the first request to the last {served_rate / 150:.3f}; bare "
            f"litellm.acompletion, same server and concurrency: {bare:.1f} calls/s = {bare / 150:.3f} of ideal"
        )


def _served_rate(server: RunningServer) -> float:
    """Requests per second the server received from its first request to its last (the run's start-up and its
    last replies' latency left out)."""
    stamps = sorted(float(entry["received_at"]) for entry in server.requests())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def throughput_workers(scratch: Path, units: int, workers: int) -> None:
    """Part 1 again with the plan shared by `workers` `fleetbench run` processes (`run.worker`), each lane's 25 slots
    split among them: litellm's CPU per call then spreads over the cores."""
    with served(scratch / f"s1w{workers}", {"defaults": {"latency": 0.5}}) as server:
        _environment(server)
        db = scratch / f"throughput{workers}.db"
        job = [f"storage.url=sqlite:///{db}", "run.progress=off", "suite.items=cycle", "run.models=[DeepSeek-V3-0324]"]
        job += [f"run.instances={units // 5}", *_slots(25)]
        command = [sys.executable, "-m", "fleetbench.entry", "run", *job]
        crew = [
            subprocess.Popen([*command, f"run.worker={i}"], cwd=scratch, stdout=subprocess.DEVNULL)
            for i in range(workers)
        ]
        for process in crew:
            process.wait()
        calls, achieved = len(server.requests()), _served_rate(server)
    print(
        f"throughput with {workers} worker processes on one plan: {calls} calls, {achieved:.1f} calls/s from "
        f"the first request to the last = {achieved / 150:.3f} of ideal (target >= 0.95)"
    )


def _lanes(server: RunningServer) -> list[Lane]:
    return [
        Lane(d, "DeepSeek-V3-0324", d, "litellm", "key0", 25, route="azure_ai", endpoint=server.url, api_key="k")
        for d in DEPLOYMENTS
    ]


async def _bare(
    lanes: Sequence[Lane], concurrency: int, calls: int | None = None, seconds: float | None = None
) -> dict[str, list[float]]:
    """Bare `litellm.acompletion` calls, `concurrency` in flight spread round robin over `lanes` (the same litellm
    arguments fleetbench sends), until `calls` have been sent or `seconds` have passed; each call's latency per
    deployment (what a request costs on this machine without fleetbench: litellm's and the server's CPU included)."""
    module = loader.litellm()
    request = request_of([{"role": "user", "content": "What is 12 + 30?"}], protocol="jsonl")
    remaining = [calls]
    end = time.perf_counter() + (seconds or 0.0)
    latencies: dict[str, list[float]] = {lane.deployment: [] for lane in lanes}

    def more() -> bool:
        if remaining[0] is None:
            return time.perf_counter() < end
        remaining[0] -= 1
        return remaining[0] >= 0

    async def worker(lane: Lane) -> None:
        arguments = wire.call_arguments(lane, request, protocol_headers=True, drop_params=False)
        while more():
            started = time.perf_counter()
            await module.acompletion(**arguments)
            latencies[lane.deployment].append(time.perf_counter() - started)

    await asyncio.gather(*(worker(lanes[i % len(lanes)]) for i in range(concurrency)))
    return latencies


def cpu_per_call(scratch: Path, units: int, rounds: int = 3) -> None:
    """CPU per call of bare litellm calls and of fleetbench runs, at two sizes: the whole CPU of the larger run per
    call (fixed costs included: a fresh event loop and connections; for a run also migrating the database, planning,
    starting its threads), and the marginal CPU of a call (the difference between the two sizes per extra call),
    which is what fleetbench adds to each call. Bare and fleetbench alternate for `rounds` rounds and the median
    round is printed with the range: one round's figure moves by several percent with the machine's other work."""
    small = units // 5
    whole: list[float] = []
    marginal: list[tuple[float, float, float, float]] = []
    with served(scratch / "s2", {"defaults": {"latency": 0.1}}) as server:
        _environment(server)
        lanes = _lanes(server)
        asyncio.run(_bare(lanes, 75, calls=200))  # warm up: imports, clients, connections
        for round_ in range(rounds):
            bare, ours, made, stored = {}, {}, {}, {}
            for size in (small, units):
                cpu = time.process_time()
                asyncio.run(_bare(lanes, 75, calls=size))
                bare[size] = time.process_time() - cpu
                spec = _spec(scratch / f"cpu{round_}-{size}.db", [f"run.instances={size // 5}", *_slots(25)])
                cpu = time.process_time()
                summary = run(spec)  # composing the config is not timed
                ours[size] = time.process_time() - cpu
                made[size] = sum(summary.calls_by_deployment.values())
                stored[size] = summary.storage_cpu_s
            whole.append((ours[units] / made[units]) / (bare[units] / units) - 1)
            marginal_bare = (bare[units] - bare[small]) / (units - small)
            marginal_ours = (ours[units] - ours[small]) / (made[units] - made[small])
            marginal_storage = (stored[units] - stored[small]) / (made[units] - made[small])
            marginal.append((marginal_ours / marginal_bare - 1, marginal_bare, marginal_ours, marginal_storage))
    marginal.sort()
    added, per_bare, per_ours, per_storage = marginal[len(marginal) // 2]
    print(
        f"CPU per call at 75 in flight, median of {rounds} rounds: whole run of {units} calls (planning, scoring and "
        f"SQLite writes included): fleetbench adds {statistics.median(whole) * 100:+.1f}% to bare "
        f"litellm.acompletion; marginal CPU of a call (between {small} and {units} calls): bare {per_bare * 1000:.2f} "
        f"ms, fleetbench {per_ours * 1000:.2f} ms, of which its storage thread (SQLite writes, claims) "
        f"{per_storage * 1000:.2f} ms: fleetbench adds {added * 100:+.1f}% (rounds: "
        f"{', '.join(f'{m[0] * 100:+.1f}%' for m in marginal)}; target <= 10%)"
    )


def sharding(scratch: Path, units: int) -> None:
    latencies = dict(zip(DEPLOYMENTS, (0.1, 0.3, 0.9), strict=True))
    config = {"deployments": {name: {"latency": seconds} for name, seconds in latencies.items()}}
    capacity = sum(5 / seconds for seconds in latencies.values())
    bound = units / capacity
    results = {}
    with served(scratch / "s3", config) as server:
        _environment(server)
        for strategy in ("dynamic", "even"):
            summary = _run(
                scratch / f"{strategy}.db", [f"sharding={strategy}", f"run.instances={units // 5}", *_slots(5)]
            )
            results[strategy] = summary
        bare_calls = asyncio.run(_bare(_lanes(server), 5 * len(DEPLOYMENTS), seconds=10.0))
        bare = {deployment: statistics.mean(values) for deployment, values in bare_calls.items()}
    bare_bound = units / sum(5 / mean for mean in bare.values())
    print(f"sharding: {units} units, capacity {capacity:.1f} calls/s, lower bound {bound:.2f} s")
    print(
        "  bare litellm.acompletion, 5 in flight per deployment for 10 s on the same server, mean latency: "
        + ", ".join(f"{d} {mean * 1000:.1f} ms" for d, mean in bare.items())
        + f" (against 100/300/900 ms served): lower bound at these latencies {bare_bound:.2f} s"
    )
    for strategy, summary in results.items():
        shares = ", ".join(f"{d} {n}" for d, n in sorted(summary.units_by_deployment.items()))
        measured = _measured_bound(scratch / f"{strategy}.db")
        print(
            f"  {strategy:>7}: makespan {summary.wall_s:.2f} s = {summary.wall_s / bound:.3f} x bound ({shares}); "
            f"{summary.wall_s / bare_bound:.3f} x the bound at bare litellm's latencies; "
            f"{summary.wall_s / measured:.3f} x the bound of the latencies the client measured"
        )


def _measured_bound(db: Path) -> float:
    """The lower bound recomputed from each deployment's mean request latency as the runner measured it (server
    latency plus client and server CPU time and scheduling delays on this machine)."""
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute("select count(*), avg(latency_s) from calls group by deployment").fetchall()
    finally:
        connection.close()
    total = sum(count for count, _ in rows)
    return total / sum(5 / mean for _, mean in rows)


def startup(scratch: Path, trials: int) -> None:
    seconds = []
    with served(scratch / "s4") as server:
        env = {**__import__("os").environ, **served_environment(compose_config([]).models, server.url)}
        for trial in range(trials):
            before = len(server.requests())
            started = time.time()
            command = [sys.executable, "-m", "fleetbench.entry", "run", "run.models=[DeepSeek-V3-0324]"]
            command += ["run.instances=1", "run.progress=off", f"run.seed={trial}"]
            subprocess.run(command, cwd=scratch, env=env, capture_output=True, check=True)
            first = min(entry["received_at"] for entry in server.requests()[before:])
            seconds.append(first - started)
    paused, plain = _import_seconds(paused=True), _import_seconds(paused=False)
    print(
        f"start-up: fleetbench run to its first request, median of {trials}: {statistics.median(seconds):.2f} s "
        f"(all: {', '.join(f'{s:.2f}' for s in seconds)}; importing litellm alone takes {paused:.2f} s as "
        f"fleetbench imports it, the garbage collector paused, and {plain:.2f} s plainly) (target <= 2 s)"
    )


def _import_seconds(paused: bool) -> float:
    """Seconds `import litellm` takes in a fresh interpreter: plainly, or as the provider's loader imports it."""
    code = "import os, time; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'; "
    code += "from fleetbench.gcpause import collector_paused; t = time.perf_counter(); "
    code += "\nwith collector_paused(): import litellm\n" if paused else "import litellm; "
    code += "print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def ramp(scratch: Path, units: int, rounds: int = 3) -> None:
    """Part 1's single run with the start ramp off (0) and at its default, alternating, at both latencies."""
    fixed = {"latency": 0.5}
    spread = {"latency": {"mean_s": 0.5, "spread_s": 0.25, "distribution": "uniform"}}
    for label, latency in (("fixed 0.5 s", fixed), ("uniform 0.25-0.75 s", spread)):
        ratios: dict[str, list[float]] = {"0": [], str(RAMP_STEP_S): []}
        with served(scratch / f"s5-{len(label)}", {"defaults": latency}) as server:
            _environment(server)
            for round_ in range(rounds):
                for step in ratios:
                    db = scratch / f"ramp-{len(label)}-{round_}-{step}.db"
                    spec = _spec(db, [f"run.instances={units // 5}", *_slots(25), f"scheduler.ramp_step_s={step}"])
                    started = time.perf_counter()
                    summary = run(spec)
                    calls = sum(summary.calls_by_deployment.values())
                    ratios[step].append(calls / (time.perf_counter() - started) / 150)
        print(
            f"ramp, latency {label}: achieved / ideal per round (alternating, composing excluded): "
            + "; ".join(f"ramp_step_s={step}: {', '.join(f'{r:.3f}' for r in rs)}" for step, rs in ratios.items())
        )


def loop_held(scratch: Path, units: int, rounds: int = 2) -> None:
    """Part 1's run at a fixed 0.5 s, counting how often and how long the event loop's thread waited for a
    `concurrent.futures.Future` still running (a claim or a write on the storage thread): each such wait holds every
    request of the run. Measured by wrapping `Future.result` for the run's duration."""
    held = [0, 0.0]
    original = Future.result

    def timed(self: Future[Any], timeout: float | None = None) -> Any:
        if threading.current_thread() is not threading.main_thread() or self.done():
            return original(self, timeout)
        started = time.perf_counter()
        try:
            return original(self, timeout)
        finally:
            held[0] += 1
            held[1] += time.perf_counter() - started

    with served(scratch / "s6", {"defaults": {"latency": 0.5}}) as server:
        _environment(server)
        for round_ in range(rounds):
            held[:] = [0, 0.0]
            Future.result = timed  # type: ignore[method-assign]
            try:
                summary = _run(scratch / f"loop{round_}.db", [f"run.instances={units // 5}", *_slots(25)])
            finally:
                Future.result = original  # type: ignore[method-assign]
            calls = sum(summary.calls_by_deployment.values())
            print(
                f"event loop held waiting for the storage thread, {calls} calls at a fixed 0.5 s (round {round_ + 1}): "
                f"{held[0]} times, {held[1] * 1000:.0f} ms in all, of a {summary.wall_s:.2f} s run"
            )


SECTIONS = ["throughput", "workers", "cpu", "sharding", "startup", "ramp", "loop"]


def main(argv: Sequence[str] | None = None) -> None:
    compile_like_pip()
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()) if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller runs (a few seconds each)")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable; default: all of them)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the cpu section (its median is printed)")
    args: Any = parser.parse_args(argv)
    units = int(1500 * (0.2 if args.quick else 1.0))
    chosen = args.only or SECTIONS
    loader.litellm()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if "throughput" in chosen:
            throughput(folder, units)
        if "workers" in chosen:
            for workers in (2, 3):
                throughput_workers(folder, units, workers)
        if "cpu" in chosen:
            cpu_per_call(folder, units, args.rounds)
        if "sharding" in chosen:
            sharding(folder, units)
        if "startup" in chosen:
            startup(folder, 3)
        if "ramp" in chosen:
            ramp(folder, units)
        if "loop" in chosen:
            loop_held(folder, units)
    print(cpu_speed_note())


if __name__ == "__main__":
    main()
