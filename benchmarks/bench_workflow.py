"""The original's full plan on the in-process simulated provider with SQLite: wall time and episodes per second.

Phases 5.1-5.5 (conf/experiment/phase5_*.yaml) over the eight open-source models of the original, 20 runs per task type
per configuration: 800 + 1,000 + 5,600 + 2,400 + 1,600 = 11,400 episodes. The catalog's real entries are switched to
the `simulated` provider (DeepSeek/Llama with the `strong` profile, the Qwen sizes with `unclosed-tags`, like the
original's qwen serving stack), keeping their real deployments and lanes (three Azure deployments each; three API keys
for each Qwen size), so sharding and lanes are exercised as in a real run. Target (issue 3): under 60 s on 2 cores.
Optionally (`--closed`) phase 5.1 for the six closed-source models is added (600 more episodes).

Run: `python benchmarks/bench_workflow.py [--closed]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fleetbench.config import compose_config, resolve_run
from fleetbench.runner import run

OPEN = {
    "deepseek_v3_0324": "strong",
    "deepseek_r1_0528": "strong",
    "llama_3_3_70b_instruct": "strong",
    **{f"qwen2_5_{size}b_instruct": "unclosed-tags" for size in (72, 32, 14, 7, 3)},
}
CLOSED = {
    handle: "strong"
    for handle in ("gpt_4o_mini", "gpt_5_mini", "o3_0416_global", "gemini_2_5_flash", "kimi_k2", "claude_sonnet4")
}
PHASES = ["phase5_1", "phase5_2", "phase5_3", "phase5_4", "phase5_5"]
DUMMY_ENV = (
    "AZURE_AI_ENDPOINT",
    "AZURE_AI_API_KEY",
    "GATEWAY_BASE_URL",
    "GATEWAY_API_KEY_0",
    "GATEWAY_API_KEY_1",
    "GATEWAY_API_KEY_2",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
)


SINGLE_DEPLOYMENT = {
    "gpt_4o_mini",
    "gpt_5_mini",
    "o3_0416_global",
    "gemini_2_5_flash",
    "kimi_k2",
    "claude_sonnet4",
    *(f"qwen2_5_{size}b_instruct" for size in (72, 32, 14, 7, 3)),
}


def simulated(profiles: dict[str, str]) -> list[str]:
    """Overrides that put catalog models on the simulated provider with a profile each.

    The gateway's real limits (one request in flight and 120 rpm per lane) are lifted: the simulator answers in
    microseconds, and this benchmark measures fleetbench itself, not the provider's quota.
    """
    overrides = []
    for handle, profile in profiles.items():
        overrides += [f"models.{handle}.provider=simulated", f"+models.{handle}.params.profile={profile}"]
        if handle in SINGLE_DEPLOYMENT:
            overrides += [f"models.{handle}.deployments.0.rpm=null", f"models.{handle}.deployments.0.max_concurrency=8"]
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--closed", action="store_true", help="add phase 5.1 for the six closed-source models")
    args = parser.parse_args()
    for name in DUMMY_ENV:  # the simulated provider ignores endpoints and keys, but lanes resolve them
        os.environ.setdefault(name, "simulated")
    phases = [(phase, OPEN) for phase in PHASES]
    if args.closed:
        phases.append(("phase5_1_closed", CLOSED))
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "plan.db"
        total, started = 0, time.perf_counter()
        for phase, profiles in phases:
            overrides = [f"experiment={phase}", f"storage.url=sqlite:///{db}", "run.progress=off", *simulated(profiles)]
            summary = run(resolve_run(compose_config(overrides)))
            total += summary.executed
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))
            print(f"{phase:>16}: {summary.executed:>6,} episodes in {summary.wall_s:6.2f} s ({outcomes})")
        wall = time.perf_counter() - started
    print(
        f"{'whole plan':>16}: {total:>6,} episodes in {wall:6.2f} s = {total / wall:,.0f} episodes/s "
        "(target: 11,400 in under 60 s; includes planning, validation and SQLite writes)"
    )


if __name__ == "__main__":
    main()
