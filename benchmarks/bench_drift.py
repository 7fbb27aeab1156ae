"""False-positive rate and power of the deployment drift audit (`fleetbench drift`), over many seeds.

For each seed, two real runs of the workflow suite on the simulated `Sim-Agent` (three deployments), each into its
own SQLite file, through the real runner:

- honest: every deployment serves the `strong` profile. Any flag is a false positive.
- drifted: `Sim-Agent-3` serves the `weak` profile (`models.sim_agent.deployments.2.params.profile=weak`, the
  simulated provider's drift fixture). A run counts as detected when `Sim-Agent-3` is flagged and nothing else is.

Prints, at the audit's default alpha (0.01, Holm over the three pairwise tests of each run): the share of honest
runs with any deployment flagged (family-wise false-positive rate, with its 95% Wilson interval), the share of
honest deployments flagged, the share of honest pairwise tests significant, and the detection rate of the drifted
runs. First, for comparison, the same audit on simulated independent units (`--null-runs` runs of 20 cells of 40
units spread at random over three identical deployments, no fleetbench run): what the test does when its
assumptions hold.

Run: `python benchmarks/bench_drift.py [--seeds 100] [--instances 40] [--every 10]` (each run: optimal prompts, easy,
four tool success rates, five task types = 20 cells; the figures so far are printed every `--every` seeds).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from statsmodels.stats.proportion import proportion_confint

from fleetbench.config import compose_config, resolve_common, resolve_run
from fleetbench.report.drift import DriftAudit, audit, audit_counts
from fleetbench.runner import run
from fleetbench.types import ReportFilter

GRID = [
    "suite=workflow",
    "suite.prompt_types=[optimal]",
    "suite.difficulties=[easy]",
    "suite.tool_success_rates=[0.9,0.8,0.7,0.6]",
    "run.progress=off",
    *(f"models.sim_agent.deployments.{i}.params.latency_ms=0" for i in range(3)),
]
WEAK = "models.sim_agent.deployments.2.params.profile=weak"


def _audit(db: Path, seed: int, instances: int, *extra: str) -> DriftAudit:
    overrides = [*GRID, f"storage.url=sqlite:///{db}", f"run.seed={seed}", f"run.instances={instances}", *extra]
    spec = resolve_run(compose_config(overrides))
    run(spec)
    common = resolve_common(compose_config(overrides))
    storage = common.storage.create(naming=common.naming)
    try:
        return audit(storage, ReportFilter(spec.suite.name), spec.suite.factor_names())
    finally:
        storage.close()


def null_simulation(runs: int) -> None:
    """The audit's own error rate on independent units: per cell a success probability drawn from [0.3, 0.9], 40
    units each sent to one of three identical deployments at random (no fleetbench run involved)."""
    rng = random.Random(1)
    significant = flagged = 0
    for _ in range(runs):
        counts: dict[str, dict[str, dict[tuple[Any, ...], tuple[int, int]]]] = {"M": {d: {} for d in "ABC"}}
        for cell in range(20):
            p = rng.uniform(0.3, 0.9)
            tallies = {d: [0, 0] for d in "ABC"}
            for _ in range(40):
                tally = tallies[rng.choice("ABC")]
                tally[0] += rng.random() < p
                tally[1] += 1
            for deployment, (hits, total) in tallies.items():
                if total:
                    counts["M"][deployment][(cell,)] = (hits, total)
        result = audit_counts(counts, 0.01, 20)
        significant += sum(pair.significant for pair in result.pairs)
        flagged += bool(result.flagged)
    pairs = _wilson(significant, 3 * runs)
    print(f"independent binomial units, {runs} simulated runs: runs with a deployment flagged "
          f"{_wilson(flagged, runs)}; pairwise tests significant {pairs}", flush=True)  # fmt: skip


def _wilson(hits: int, total: int) -> str:
    low, high = proportion_confint(hits, total, alpha=0.05, method="wilson")
    return f"{hits}/{total} = {100 * hits / total:.1f}% (95% CI {100 * low:.1f}–{100 * high:.1f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--every", type=int, default=10, help="print the running figures every N seeds")
    parser.add_argument("--null-runs", type=int, default=1500, help="simulated runs of independent units (0: none)")
    args = parser.parse_args()
    if args.null_runs:
        null_simulation(args.null_runs)
    runs_flagged = deployments_flagged = deployments = pairs_significant = pairs = detected = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(args.seeds):
            honest = _audit(Path(scratch) / f"honest_{seed}.db", seed, args.instances)
            runs_flagged += bool(honest.flagged)
            deployments_flagged += len(honest.flagged)
            deployments += len(honest.deployments)
            pairs_significant += sum(p.significant for p in honest.pairs)
            pairs += len(honest.pairs)
            drifted = _audit(Path(scratch) / f"drifted_{seed}.db", seed, args.instances, WEAK)
            detected += [d.deployment for d in drifted.flagged] == ["Sim-Agent-3"]
            done = seed + 1
            if done % args.every and done != args.seeds:
                continue
            print(f"drift audit over {done} seeds, {20 * args.instances} units per run (3 deployments), alpha 0.01 "
                  f"(Holm), {time.perf_counter() - started:.0f} s")  # fmt: skip
            print(f"honest runs with any deployment flagged (false positives): {_wilson(runs_flagged, done)}")
            print(f"honest deployments flagged: {_wilson(deployments_flagged, deployments)}")
            print(f"honest pairwise tests significant: {_wilson(pairs_significant, pairs)}")
            print(f"drifted runs where exactly the weak deployment is flagged (power): {_wilson(detected, done)}")
            print(flush=True)


if __name__ == "__main__":
    main()
