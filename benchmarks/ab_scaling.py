"""A/B of the call rate on a shared plan: this checkout against another one, in alternating rounds.

    .venv/bin/python benchmarks/ab_scaling.py --other /path/to/other/checkout [--rounds 3] [--workers 1,2]

For a change meant to move the scaling figure of `bench_claims.py`: on this machine the same code measures up to
±15% apart from one run to the next, so a single before/after pair decides nothing. Each round runs, for every worker
count, both checkouts one after the other (the order alternates between rounds) with the job of `bench_claims.py`'s
scaling part: `fleetbench run` through litellm against one `fleetbench serve` at zero latency, 4,000 calls, the
workers sharing one plan on a SQLite file. It prints each run's call rate while every worker called, then the
medians.

The other checkout is imported ahead of the installed one (`PYTHONPATH` holds its `framework` and `plugins`), so it
needs no install of its own; the configuration files are this checkout's. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_claims import _steady_rate
from fleetbench.config import compose_config
from fleetbench.testing.server.environment import served_environment
from fleetbench.testing.server.process import served
from installed import compile_like_pip

JOB = [
    "run.models=[DeepSeek-V3-0324]", "run.instances=800", "suite.items=cycle", "run.progress=off",
    *(f"models.deepseek_v3_0324.deployments.{i}.max_concurrency=16" for i in range(3)),
]  # fmt: skip


def main() -> None:
    compile_like_pip()
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--other", required=True, help="the other checkout (a git worktree, say)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    args = parser.parse_args()
    other = Path(args.other).resolve()
    if not (other / "framework" / "fleetbench").is_dir():
        raise SystemExit(f"--other: {other} holds no framework/fleetbench")
    variants = {"this": {}, "other": {"PYTHONPATH": f"{other / 'framework'}:{other / 'plugins'}"}}
    counts = [int(count) for count in args.workers.split(",")]
    rates: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        with served(scratch / "serve", {"defaults": {"latency": 0.0}}) as server:
            environment = {**os.environ, **served_environment(compose_config([]).models, server.url)}
            environment["AZURE_AI_API_KEY"] = "k"
            for round_ in range(args.rounds):
                order = list(variants.items()) if round_ % 2 == 0 else list(reversed(variants.items()))
                for workers in counts:
                    for name, extra in order:
                        url = f"sqlite:///{scratch / f'{name}-{workers}-{round_}.db'}"
                        command = [sys.executable, "-m", "fleetbench.entry", "run", *JOB, f"storage.url={url}"]
                        crew = [
                            subprocess.Popen([*command, f"run.worker={i}"], cwd=scratch,
                                             env={**environment, **extra}, stdout=subprocess.DEVNULL)
                            for i in range(workers)
                        ]  # fmt: skip
                        for process in crew:
                            process.wait()
                        rate, _ = _steady_rate([url])
                        rates.setdefault((name, workers), []).append(rate)
                        print(f"round {round_ + 1}: {name}, {workers} worker(s): {rate:,.0f} calls/s", flush=True)
    for (name, workers), values in sorted(rates.items()):
        listed = ", ".join(f"{value:,.0f}" for value in values)
        print(f"{name}, {workers} worker(s): median {statistics.median(values):,.0f} calls/s ({listed})")


if __name__ == "__main__":
    main()
