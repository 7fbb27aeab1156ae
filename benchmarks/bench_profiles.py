"""What the simulated models score on the workflow suite, per condition: the demo's numbers, reproducible.

Each simulated catalog model runs the grid 10 prompt types × 5 difficulties × 4 tool success rates × 5 task types
× 6 instances (6,000 episodes) through the real pipeline into SQLite; the figures are the storage's SQL aggregates of
the full-success label (`full_success` mean) per condition. `Sim-Native` runs twice: natively and forced into text mode.

Run: `python benchmarks/bench_profiles.py` (about two minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fleetbench.config import compose_config, resolve_common, resolve_run
from fleetbench.runner import run
from fleetbench.types import MetricSpec, ReportFilter

GRID = [
    "suite=workflow",
    "suite.prompt_types=[all_with_flawed]",
    "suite.difficulties=[very_easy,easy,medium,hard,very_hard]",
    "suite.tool_success_rates=[0.9,0.8,0.7,0.6]",
    "run.instances=6",
    "run.progress=off",
]
COLUMNS = [
    ("Sim-Agent", "strong", []),
    ("Sim-Weak", "weak", []),
    ("Sim-Qwen", "unclosed-tags", []),
    ("Sim-Native", "native-only, text mode", ["models.sim_native.tool_calling=text"]),
    ("Sim-Native", "native-only, native mode", []),
]
FULL = (MetricSpec("full_success", "", "mean"),)
FLAWS = ("sequence_disorder", "tool_misuse", "parameter_error", "missing_step", "redundant_operations",
         "logical_inconsistency", "semantic_drift")  # fmt: skip


def _rates(db: Path, model: str, factor: str | None) -> dict[object, float]:
    common = resolve_common(compose_config([f"storage.url=sqlite:///{db}", *GRID]))
    storage = common.storage.create(naming=common.naming)
    try:
        rows = storage.aggregate(
            ["base_model", *([factor] if factor else [])], ReportFilter("workflow", (model,)), FULL
        )
    finally:
        storage.close()
    return {row.get(factor, "all") if factor else "all": float(row["full_success"]) for row in rows}


def main() -> None:
    argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split())).parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for index, (model, label, extra) in enumerate(COLUMNS):
            db = Path(scratch) / f"{index}.db"
            summary = run(
                resolve_run(compose_config([f"storage.url=sqlite:///{db}", *GRID, f"run.models=[{model}]", *extra]))
            )
            overall = _rates(db, model, None)["all"]
            prompts = _rates(db, model, "prompt_type")
            difficulty = _rates(db, model, "difficulty")
            rate = _rates(db, model, "tool_success_rate")
            print(
                f"{label} ({model}, {summary.executed:,} episodes, {summary.wall_s:.1f} s): full success {overall:.3f}"
            )
            print(
                "  baseline / optimal / cot: " + " / ".join(f"{prompts[p]:.3f}" for p in ("baseline", "optimal", "cot"))
            )
            print("  flawed:                   " + " ".join(f"{f} {prompts[f'flawed_{f}']:.3f}" for f in FLAWS))
            print(
                "  very_easy .. very_hard:   "
                + " ".join(f"{difficulty[d]:.3f}" for d in ("very_easy", "easy", "medium", "hard", "very_hard"))
            )
            print("  tool success 0.9 .. 0.6:  " + " ".join(f"{rate[r]:.3f}" for r in (0.9, 0.8, 0.7, 0.6)))


if __name__ == "__main__":
    main()
