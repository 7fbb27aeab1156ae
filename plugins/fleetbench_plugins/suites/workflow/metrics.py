"""Every per-unit metric of the workflow suite (reference §4.4, §4.7, §4.8), declared so reports can aggregate them.

0/1 outcome flags aggregate as means (a mean of `full_success` is the full-success rate); counts that the original
reported as totals (assisted runs and turns, error counts per category) aggregate as sums, so rates such as
`assisted_success / assisted` or error shares of `error_total` are ratios of two sums.
"""

from __future__ import annotations

from fleetbench.types import MetricSpec, Outcome
from fleetbench_plugins.suites.workflow.classify import ErrorVerdict
from fleetbench_plugins.suites.workflow.model import ERROR_CATEGORIES
from fleetbench_plugins.suites.workflow.scoring import LEVEL_FULL, LEVEL_PARTIAL, LEVEL_VALUES, Scores
from fleetbench_plugins.suites.workflow.transcript import EpisodeLog

_MEAN = (
    ("success_rate", "1 if full or partial success: its mean is the original's overall success rate (总体成功率)"),
    ("weighted_success", "1 for full, 0.5 for partial, 0 for failure"),
    ("workflow_score", "Adherence to the expected sequence (§4.2)"),
    ("phase2_score", "Task achievement and execution quality, 0.5/0.5 (§4.3)"),
    ("final_score", "Equal to phase2_score, as in the original"),
    ("quality_score", "Adjusted execution quality (§4.3)"),
    ("task_achievement", "Adjusted task achievement (§4.3)"),
    ("tool_coverage_rate", "Share of required tools executed successfully (§4.4)"),
    ("order_similarity", "LCS of expected and executed sequences over the expected length"),
    ("exec_success_rate", "Execution success rate the scorer used (legacy: 0.8 fallback)"),
    ("error_recovery", "Error recovery the scorer used (legacy: always 0)"),
    ("turns", "LLM calls made"),
    ("tool_calls", "Successful tool executions (the original's tool_calls)"),
    ("tool_attempts", "Tool execution attempts, failed ones included"),
    ("failed_executions", "Failed tool execution attempts"),
    ("unique_tools", "Distinct tools executed successfully"),
    ("searches", "Tool searches"),
    ("infos", "Tool info requests"),
    ("prompt_tokens", "Prompt tokens sent by the unit's calls (mean per unit)"),
    ("completion_tokens", "Completion tokens received by the unit's calls (mean per unit)"),
    ("full_success", "1 if the stored label is full success"),
    ("partial_success", "1 if the stored label is partial success"),
    ("failure_rate", "1 if the stored label is failure"),
    ("executor_full", "1 if the executor-level evaluation is full (§3.5)"),
    ("executor_partial", "1 if the executor-level evaluation is partial (§3.5)"),
    ("executor_level_score", "Executor level as 1 / 0.5 / 0"),
    ("completed", "1 if the executor saw completion (all required tools succeeded and a completion signal)"),
    ("completion_signal", "1 if any reply carried a completion phrase"),
)
_SUM = (
    ("format_error_count", "Assisted turns: no-action feedback and format help sent (§4.7 total_assisted_turns)"),
    ("assisted", "1 if the run received any assistance (§4.7 tests_with_assistance)"),
    ("assisted_success", "1 if assisted and full or partial success"),
    ("assisted_failure", "1 if assisted and failure"),
    ("nudge_count", "Nudges after short replies without an action (not assistance)"),
    ("parse_issue_count", "Parse issues (unclosed tags, bad JSON...), reported apart from model errors"),
    ("error_total", "1 for every non-full run (the original's total_errors)"),
)

WORKFLOW_METRICS: tuple[MetricSpec, ...] = (
    *(MetricSpec(name, text, "mean") for name, text in _MEAN),
    *(MetricSpec(name, text, "sum") for name, text in _SUM),
    *(MetricSpec(f"error_{c}", f"1 if the run's error category is {c}", "sum") for c in ERROR_CATEGORIES),
)
_LABEL_WEIGHT = {Outcome.SUCCESS: 1.0, Outcome.PARTIAL: 0.5, Outcome.FAILURE: 0.0}


def activity_metrics(log: EpisodeLog) -> dict[str, float]:
    """Counts that exist for every episode, infrastructure failures included."""
    attempts = log.attempts
    return {
        "turns": float(len(log.turns)),
        "tool_calls": float(len(log.executed_tools)),
        "tool_attempts": float(len(attempts)),
        "failed_executions": float(sum(1 for a in attempts if not a.success)),
        "unique_tools": float(len(set(log.executed_tools))),
        "searches": float(len(log.searches)),
        "infos": float(len(log.infos)),
        "prompt_tokens": float(log.prompt_tokens),
        "completion_tokens": float(log.completion_tokens),
        "format_error_count": float(log.format_error_count),
        "nudge_count": float(log.nudges),
        "parse_issue_count": float(log.parse_issue_count),
        "completed": float(log.completed),
        "completion_signal": float(log.completion_signal_seen),
    }


def episode_metrics(log: EpisodeLog, scores: Scores, verdict: ErrorVerdict | None) -> dict[str, float]:
    """Every metric of WORKFLOW_METRICS for one scored episode."""
    label = scores.label
    succeeded = label in (Outcome.SUCCESS, Outcome.PARTIAL)
    assisted = log.format_error_count > 0
    values = activity_metrics(log)
    values.update(
        {name: float(getattr(scores, name)) for name in (
            "workflow_score", "phase2_score", "final_score", "quality_score", "task_achievement",
            "tool_coverage_rate", "order_similarity", "exec_success_rate", "error_recovery")}
    )  # fmt: skip
    values.update({
        "success_rate": float(succeeded),
        "full_success": float(label == Outcome.SUCCESS),
        "partial_success": float(label == Outcome.PARTIAL),
        "failure_rate": float(label == Outcome.FAILURE),
        "weighted_success": _LABEL_WEIGHT[label],
        "executor_full": float(scores.executor_level == LEVEL_FULL),
        "executor_partial": float(scores.executor_level == LEVEL_PARTIAL),
        "executor_level_score": LEVEL_VALUES[scores.executor_level],
        "assisted": float(assisted),
        "assisted_success": float(assisted and succeeded),
        "assisted_failure": float(assisted and not succeeded),
        "error_total": float(label != Outcome.SUCCESS),
    })  # fmt: skip
    category = verdict.category if verdict is not None else None
    values.update({f"error_{c}": float(c == category) for c in ERROR_CATEGORIES})
    return values
