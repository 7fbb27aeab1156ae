"""End-to-end rate of the `jsonl` suite on the simulated provider with SQLite writes, and dynamic vs even sharding.

1. Rate: 20,000 units over the three `Sim-Agent` deployments with zero simulated latency, through the real runner
   (plan, diff, shard, execute, group-committed SQLite writes). Target (issue 2): 2,000 units/s or more.
2. Sharding: 600 units, `Sim-Agent-3` ten times slower (20 ms vs 2 ms per request), two slots per lane; wall time of
   `dynamic` divided by wall time of `even`, and each strategy's unit shares.
3. One dead deployment: 1,500 units at 10 ms per request, `Sim-Agent-2` answering every request 503; for `dynamic`
   and `even` (failover on): units not done, each lane's share of the units, and wall time against the healthy run.

Run: `python benchmarks/bench_pipeline.py`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fleetbench.config import compose_config, resolve_run
from fleetbench.runner import RunSummary, run


def _run(db: Path, *overrides: str) -> RunSummary:
    # Thousands of units per category from 24 items each: repeats on purpose (a load test, not a measurement).
    settings = [f"storage.url=sqlite:///{db}", "run.progress=off", "suite.items=cycle"]
    spec = resolve_run(compose_config([*settings, *overrides]))
    return run(spec)


def rate(scratch: Path) -> None:
    zero = [f"models.sim_agent.deployments.{i}.params.latency_ms=0" for i in range(3)]
    cpu = time.process_time()
    summary = _run(scratch / "rate.db", "run.instances=4000", *zero)
    cpu = time.process_time() - cpu  # all threads: less sensitive than wall time to a machine shared with others
    print(
        f"jsonl end to end: {summary.executed:,} units in {summary.wall_s:.2f} s = "
        f"{summary.executed / summary.wall_s:,.0f} units/s ({summary.transactions} transactions; target >= 2,000); "
        f"CPU {cpu / summary.executed * 1e6:.0f} us per unit"
    )


def sharding(scratch: Path) -> None:
    latency = [
        "models.sim_agent.deployments.0.params.latency_ms=2",
        "models.sim_agent.deployments.1.params.latency_ms=2",
        "models.sim_agent.deployments.2.params.latency_ms=20",
    ]
    slots = [f"models.sim_agent.deployments.{i}.max_concurrency=2" for i in range(3)]
    walls = {}
    for strategy in ("even", "dynamic"):
        summary = _run(scratch / f"{strategy}.db", f"sharding={strategy}", "run.instances=120", *latency, *slots)
        walls[strategy] = summary.wall_s
        shares = ", ".join(f"{d} {n}" for d, n in sorted(summary.units_by_deployment.items()))
        print(f"{strategy:>7}: {summary.executed} units in {summary.wall_s:.2f} s ({shares})")
    print(
        f"dynamic / even wall time: {walls['dynamic'] / walls['even']:.2f} "
        f"(dynamic finishes {walls['even'] / walls['dynamic']:.1f}x sooner)"
    )


def dead_deployment(scratch: Path) -> None:
    latency = [f"models.sim_agent.deployments.{i}.params.latency_ms=10" for i in range(3)]
    dead = "models.sim_agent.deployments.1.params.transient_error_rate=1.0"
    for strategy in ("dynamic", "even"):
        walls = {}
        for case, extra in (("healthy", []), ("one dead", [dead])):
            db = scratch / f"dead-{strategy}-{case.replace(' ', '-')}.db"
            summary = _run(db, f"sharding={strategy}", "run.instances=300", *latency, *extra)
            walls[case] = summary.wall_s
            shares = ", ".join(
                f"{d} {n / summary.executed:.0%}" for d, n in sorted(summary.units_by_deployment.items())
            )
            not_done = summary.outcomes.get("infra_error", 0)
            print(
                f"{strategy:>7}, {case:>8}: {summary.executed} units, {not_done} not done, "
                f"{summary.wall_s:.2f} s ({shares})"
            )
        print(
            f"{strategy:>7}: wall time with one dead deployment / healthy: {walls['one dead'] / walls['healthy']:.2f}"
        )


def main() -> None:
    argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split())).parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rate(Path(scratch))
        sharding(Path(scratch))
        dead_deployment(Path(scratch))


if __name__ == "__main__":
    main()
