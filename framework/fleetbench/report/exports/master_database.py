"""The original WorkflowBench's statistics layouts (reference §5.1 and §8): `master_database.json` (version 3.0,
model → prompt type → tool success rate → difficulty → task type → 44 leaf fields) and the 50-column CSV
(`test_results_5_1_2_3_4_5_complete.csv`: 5 key columns, a timestamp and the 44 leaf fields).

Every number comes from `Storage.aggregate` over the stored units, so none of the original's distortions carry over:
`success` is full + partial (its JSON mode), `full_success` and `partial_success` are counted once each, and the
top-level `summary` totals are the sums of the leaves. Two fields differ by design: `timeout_errors` is always 0,
because fleetbench never counts an infrastructure timeout as a model failure (the unit is not done and is re-run),
and `avg_execution_time` is the unit's wall-clock duration in seconds.

Needs a suite with the workflow factors (prompt_type, tool_success_rate, difficulty, task_type) and metrics.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fleetbench.errors import UserError
from fleetbench.interfaces import Storage
from fleetbench.types import MetricSpec, ReportFilter

HIERARCHY = ("prompt_type", "tool_success_rate", "difficulty", "task_type")
KEY_COLUMNS = ("model", *HIERARCHY)
# The eight error categories of the original (§4.6), with the stored metric that counts each (timeouts: none).
ERROR_FIELDS = (
    ("tool_call_format_errors", "error_tool_call_format_errors"),
    ("timeout_errors", None),
    ("max_turns_errors", "error_max_turns_errors"),
    ("tool_selection_errors", "error_tool_selection_errors"),
    ("parameter_config_errors", "error_parameter_config_errors"),
    ("sequence_order_errors", "error_sequence_order_errors"),
    ("dependency_errors", "error_dependency_errors"),
    ("other_errors", "error_other_errors"),
)
ERROR_RATES = (
    ("tool_selection_error_rate", "tool_selection_errors"),
    ("parameter_error_rate", "parameter_config_errors"),
    ("sequence_error_rate", "sequence_order_errors"),
    ("dependency_error_rate", "dependency_errors"),
    ("timeout_error_rate", "timeout_errors"),
    ("format_error_rate", "tool_call_format_errors"),
    ("max_turns_error_rate", "max_turns_errors"),
    ("other_error_rate", "other_errors"),
)
MEANS = (
    ("avg_execution_time", "mean_duration_s"),
    ("avg_turns", "mean_turns"),
    ("avg_tool_calls", "tool_calls"),
    ("tool_coverage_rate", "tool_coverage_rate"),
    ("avg_workflow_score", "workflow_score"),
    ("avg_phase2_score", "phase2_score"),
    ("avg_quality_score", "quality_score"),
    ("avg_final_score", "final_score"),
)
NEEDED_METRICS = (
    "tool_calls", "tool_coverage_rate", "workflow_score", "phase2_score", "quality_score", "final_score",
    "error_total", "format_error_count", "assisted", "assisted_success", "assisted_failure",
    *(metric for _, metric in ERROR_FIELDS if metric),
)  # fmt: skip
LEAF_FIELDS = (
    "total", "success", "partial", "failed", "full_success", "partial_success",
    "success_rate", "partial_rate", "failure_rate", "full_success_rate", "partial_success_rate",
    "weighted_success_score",
    *(name for name, _ in MEANS),
    "total_errors", *(name for name, _ in ERROR_FIELDS),
    *(name for name, _ in ERROR_RATES),
    "assisted_success", "assisted_failure", "total_assisted_turns", "tests_with_assistance", "avg_assisted_turns",
    "assisted_success_rate", "assistance_rate",
)  # fmt: skip
CSV_COLUMNS = (*KEY_COLUMNS, "timestamp", *LEAF_FIELDS)


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _count(row: Mapping[str, Any], name: str) -> int:
    return round(row.get(name) or 0)


def leaf(row: Mapping[str, Any]) -> dict[str, Any]:
    """The 44 leaf fields of one aggregate row (counts over completed units)."""
    total, full, partial, failed = (int(row[name]) for name in ("total", "success", "partial", "failure"))
    out: dict[str, Any] = {
        "total": total, "success": full + partial, "partial": partial, "failed": failed,
        "full_success": full, "partial_success": partial,
        "success_rate": _ratio(full + partial, total), "partial_rate": _ratio(partial, total),
        "failure_rate": _ratio(failed, total), "full_success_rate": _ratio(full, total),
        "partial_success_rate": _ratio(partial, total), "weighted_success_score": _ratio(full + 0.5 * partial, total),
    }  # fmt: skip
    out.update({name: float(row.get(source) or 0.0) for name, source in MEANS})
    out["total_errors"] = _count(row, "error_total")
    out.update({name: _count(row, metric) if metric else 0 for name, metric in ERROR_FIELDS})
    out.update({name: _ratio(out[count], out["total_errors"]) for name, count in ERROR_RATES})
    assisted = _count(row, "assisted")
    turns = _count(row, "format_error_count")
    out.update({
        "assisted_success": _count(row, "assisted_success"), "assisted_failure": _count(row, "assisted_failure"),
        "total_assisted_turns": turns, "tests_with_assistance": assisted,
        "avg_assisted_turns": _ratio(turns, assisted),
        "assisted_success_rate": _ratio(_count(row, "assisted_success"), assisted),
        "assistance_rate": _ratio(assisted, total),
    })  # fmt: skip
    return out


def check_suite(factors: Sequence[str], metrics: Sequence[MetricSpec], fmt: str) -> None:
    """Refuse a suite without the workflow factors and metrics, naming what is missing."""
    names = {m.name for m in metrics}
    missing = [f for f in HIERARCHY if f not in factors] + [m for m in NEEDED_METRICS if m not in names]
    if missing:
        raise UserError(
            f"export.format={fmt}: the suite lacks {', '.join(missing[:4])}; this layout is the workflow suite's "
            "(suite=workflow)"
        )


def rate_key(value: Any) -> str:
    """The original's tool-success-rate bucket key: `str(round(rate, 4))`."""
    return str(round(float(value), 4))


def _stamp(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def master_database(
    storage: Storage, filter: ReportFilter, metrics: Sequence[MetricSpec], now: float | None = None
) -> dict[str, Any]:
    """The `master_database.json` document of the filtered units (two aggregate queries and the run list)."""
    wanted = [m for m in metrics if m.name in NEEDED_METRICS]
    leaves = storage.aggregate(["base_model", *HIERARCHY], filter, wanted)
    summaries = storage.aggregate(["base_model", "prompt_type"], filter, wanted)
    runs = _contributing_runs(storage, filter)
    stamp = _stamp(time.time() if now is None else now)
    models: dict[str, Any] = {}
    for row in summaries:
        if not row["total"]:
            continue
        model = _model_entry(models, str(row["base_model"]), runs.get(str(row["base_model"]), []))
        model["by_prompt_type"][str(row["prompt_type"])] = {"summary": leaf(row), "by_tool_success_rate": {}}
        model["total_tests"] += int(row["total"])
    for row in leaves:
        if not row["total"]:
            continue
        prompt = models[str(row["base_model"])]["by_prompt_type"][str(row["prompt_type"])]
        rate = prompt["by_tool_success_rate"].setdefault(rate_key(row["tool_success_rate"]), {"by_difficulty": {}})
        difficulty = rate["by_difficulty"].setdefault(str(row["difficulty"]), {"by_task_type": {}})
        difficulty["by_task_type"][str(row["task_type"])] = leaf(row)
    counted = [leaf(row) for row in leaves if row["total"]]
    return {
        "version": "3.0",
        "created_at": stamp,
        "last_updated": stamp,
        "test_groups": {},
        "models": models,
        "summary": {
            "total_tests": sum(c["total"] for c in counted),
            "total_success": sum(c["success"] for c in counted),
            "total_partial": sum(c["partial"] for c in counted),
            "total_failure": sum(c["failed"] for c in counted),
            "models_tested": sorted(models),
            "last_test_time": max((m["last_test_time"] for m in models.values() if m["last_test_time"]), default=None),
        },
    }


def _contributing_runs(storage: Storage, filter: ReportFilter) -> dict[str, list[Mapping[str, Any]]]:
    """By base model, the runs that stored the exported units: a model's test times span these runs only (every run
    that listed the model once lent its times, those of another suite or scope included)."""
    recorded = {str(run["run_id"]): run for run in storage.runs()}
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for row in storage.aggregate(["base_model", "run_id"], filter):
        if row["total"] and str(row["run_id"]) in recorded:
            runs.setdefault(str(row["base_model"]), []).append(recorded[str(row["run_id"])])
    return runs


def _model_entry(models: dict[str, Any], name: str, own: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if name not in models:
        first = min((float(run["started_at"]) for run in own), default=None)
        last = max((float(run.get("finished_at") or run["started_at"]) for run in own), default=None)
        models[name] = {
            "model_name": name, "first_test_time": _stamp(first), "last_test_time": _stamp(last), "total_tests": 0,
            "overall_stats": {}, "by_prompt_type": {},
        }  # fmt: skip
    entry: dict[str, Any] = models[name]
    return entry


def csv50(document: Mapping[str, Any]) -> str:
    """The 50-column CSV: one row per leaf of a `master_database` document."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for model, entry in document["models"].items():
        for prompt, by_prompt in entry["by_prompt_type"].items():
            for rate, by_rate in by_prompt["by_tool_success_rate"].items():
                for difficulty, by_difficulty in by_rate["by_difficulty"].items():
                    for task_type, values in by_difficulty["by_task_type"].items():
                        keys = (model, prompt, rate, difficulty, task_type, document["last_updated"])
                        writer.writerow([*keys, *(values[name] for name in LEAF_FIELDS)])
    return buffer.getvalue()
