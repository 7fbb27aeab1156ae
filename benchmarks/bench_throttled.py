"""Dynamic sharding with one throttled lane: how long a run takes, and how many units each deployment ran.

    .venv/bin/python benchmarks/bench_throttled.py [--rounds 2] [--other /path/to/other/checkout]

The simulated model's three deployments answer in 0.2 s, 20 requests in flight each; `Sim-Agent` answers half of its
requests 429 (Retry-After 0.1 s), which lowers its concurrency limit to 1–3. 500 units on a fresh SQLite file per run.
The lower bound is the two healthy lanes alone: 500 units / (2 × 20 / 0.2 s) = 2.5 s of requests. With `--other`, a
second checkout (its `framework` and `plugins` imported ahead of the installed ones) runs the same job in
alternating rounds. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from installed import compile_like_pip

JOB = [
    "run.instances=100", "run.progress=off", "suite.items=cycle",
    *(f"models.sim_agent.deployments.{i}.params.latency_ms=200" for i in range(3)),
    *(f"models.sim_agent.deployments.{i}.max_concurrency=20" for i in range(3)),
    "models.sim_agent.deployments.0.params.rate_limit_rate=0.5",
    "models.sim_agent.deployments.0.params.retry_after_s=0.1",
]  # fmt: skip
STORED_IN = re.compile(r"newly stored in ([\d.]+)s")


def one_run(folder: Path, name: str, extra: dict[str, str]) -> str:
    """Run the job once; its time and units per deployment, as one line."""
    database = folder / f"{name}.db"
    database.unlink(missing_ok=True)
    command = [sys.executable, "-m", "fleetbench.entry", "run", *JOB, f"storage.url=sqlite:///{database}"]
    done = subprocess.run(command, cwd=folder, env={**os.environ, **extra}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name}: the run failed: {done.stderr.strip()[-500:]}")
    found = STORED_IN.search(done.stdout)
    seconds = found.group(1) if found else "?"
    with sqlite3.connect(database) as connection:
        rows = connection.execute("select deployment, count(*) from units group by deployment order by deployment")
        units = ", ".join(f"{deployment} {count}" for deployment, count in rows)
    return f"{name}: {seconds} s ({units})"


def main() -> None:
    compile_like_pip()
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--other", help="another checkout to run in alternating rounds (a git worktree, say)")
    args = parser.parse_args()
    variants: list[tuple[str, dict[str, str]]] = [("this", {})]
    if args.other:
        other = Path(args.other).resolve()
        if not (other / "framework" / "fleetbench").is_dir():
            raise SystemExit(f"--other: {other} holds no framework/fleetbench")
        variants.append(("other", {"PYTHONPATH": f"{other / 'framework'}:{other / 'plugins'}"}))
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else list(reversed(variants))
            for name, extra in order:
                print(f"round {round_ + 1}, {one_run(Path(scratch), name, extra)}", flush=True)


if __name__ == "__main__":
    main()
