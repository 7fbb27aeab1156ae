"""Scores, the executor-level success evaluation, and the stored label (reference §3.5, §4.1–§4.4).

Two variants:

- `legacy` reproduces the original exactly: the exact-match bonus is 0.2 *and* weighted 0.1, so workflow_score peaks at
  0.92; the phase-2 scorer never saw the execution history, so its execution success rate falls back to 0.8 whenever a
  tool was called and error recovery is always 0. A perfect run scores workflow 0.92, quality 0.804, phase2 0.902.
- `corrected` (default) fixes exactly these two documented bugs and nothing else: the exact bonus is weighted once, and
  execution quality sees the real history (success rate = successes / attempts; error recovery = the original's
  +0.3 per "same tool failed, then succeeded", at most 1). A perfect run scores workflow 1.0, quality 0.9, phase2 0.95:
  nothing failed, so nothing was recovered.

`clean_run_recovery` (corrected only, off by default) is a further change, kept apart: a run that attempted tools and
never failed gets error recovery 1.0, because under the original formula a flawless run can never earn that 10% of
execution quality while a run that failed and retried can.

Both variants: the original's "best embedding similarity" credit for an uncalled required tool is 0 (no embedding model
is involved in scoring), and the output check without any tool call ("semantic detection") is 0. Task achievement's
progress is unique tools over the type's minimum (§4.3), so a perfect run of a task with fewer unique required tools
than that minimum (basic_task with one tool, data_pipeline with two) stays below the figures above.
Scores are rounded to 9 decimals so that float noise can never move a score across a label threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fleetbench.types import Outcome

SCORING_VARIANTS = ("legacy", "corrected")
SCORE_AGAINST = ("prompt_plan", "reference")
LEVEL_FULL = "full"
LEVEL_PARTIAL = "partial"
LEVEL_FAILURE = "failure"
LEVEL_VALUES = {LEVEL_FULL: 1.0, LEVEL_PARTIAL: 0.5, LEVEL_FAILURE: 0.0}

# StableScorer's task_min_requirements (data_pipeline: 3, unlike the executor's 2 - kept as the original had it).
SCORER_MIN_TOOLS = {
    "simple_task": 1, "basic_task": 2, "data_pipeline": 3, "api_integration": 2, "multi_stage_pipeline": 3,
}  # fmt: skip
EXECUTOR_MIN_TOOLS = {
    "simple_task": 1, "basic_task": 2, "data_pipeline": 2, "api_integration": 2, "multi_stage_pipeline": 3,
}  # fmt: skip
OUTPUT_KEYWORDS = (
    "writer", "export", "save", "output", "post", "publish", "store", "emit", "notify", "report", "generate", "filter",
    "aggregator", "compressor",
)  # fmt: skip
FULL_THRESHOLD = 0.8
PARTIAL_THRESHOLD = 0.5
_DIGITS = 9


@dataclass(frozen=True)
class ScoreInputs:
    """What the scorer sees of one episode. `attempts` is every execution attempt as (tool, success), in order."""

    task_type: str
    required_tools: tuple[str, ...]
    expected_sequence: tuple[str, ...]
    executed_tools: tuple[str, ...]
    attempts: tuple[tuple[str, bool], ...]
    completion_signal_seen: bool


@dataclass(frozen=True)
class Scores:
    """Every score of one episode, plus the label they imply."""

    variant: str
    workflow_score: float
    phase2_score: float
    final_score: float
    quality_score: float
    task_achievement: float
    tool_coverage_rate: float
    coverage: float
    order_similarity: float
    exact_match: bool
    exec_success_rate: float
    error_recovery: float
    executor_level: str
    label: Outcome

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the label as its string value)."""
        data = asdict(self)
        data["label"] = self.label.value
        return data


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def tool_coverage_rate(required: Sequence[str], executed: Sequence[str]) -> float:
    """|set(required) ∩ set(executed)| / |set(required)| (§4.4); 0 without required tools."""
    wanted = set(required)
    return len(wanted & set(executed)) / len(wanted) if wanted else 0.0


def label_for(workflow: float, phase2: float) -> Outcome:
    """The stored label (§4.1): full if both ≥ 0.8, partial if either ≥ 0.5, else failure."""
    if workflow >= FULL_THRESHOLD and phase2 >= FULL_THRESHOLD:
        return Outcome.SUCCESS
    if workflow >= PARTIAL_THRESHOLD or phase2 >= PARTIAL_THRESHOLD:
        return Outcome.PARTIAL
    return Outcome.FAILURE


def expected_for(plan: Sequence[str] | None, reference: Sequence[str], score_against: str) -> tuple[str, ...]:
    """The sequence workflow_score compares against: with `prompt_plan`, the plan the prompt showed (for flawed
    prompts the flawed plan, as the original did); with `reference`, the task's reference workflow. A prompt that shows
    no plan (`plan` None: baseline, cot) is scored against the reference. A shown plan is never empty (flaws that
    would empty it do not apply to such tasks), and an empty one is an error rather than a silent switch."""
    if score_against not in SCORE_AGAINST:
        raise ValueError(f"score_against must be one of {', '.join(SCORE_AGAINST)}, got {score_against!r}")
    if score_against == "reference" or plan is None:
        return tuple(reference)
    if not plan:
        raise ValueError("the prompt showed an empty plan: there is nothing to score it against")
    return tuple(plan)


def executor_level(inputs: ScoreInputs) -> str:
    """The executor's own success evaluation (§3.5): full, partial (2 of 4 criteria) or failure."""
    required = list(dict.fromkeys(inputs.required_tools))
    done = set(inputs.executed_tools)
    first_successes = [t for t in dict.fromkeys(inputs.executed_tools) if t in set(required)]
    if required and set(required) <= done and first_successes == required:
        return LEVEL_FULL
    criteria = (
        tool_coverage_rate(required, inputs.executed_tools) >= 0.6,
        any(keyword in name for name in done for keyword in OUTPUT_KEYWORDS),
        len(inputs.executed_tools) >= EXECUTOR_MIN_TOOLS.get(inputs.task_type, 1),
        inputs.completion_signal_seen,
    )
    return LEVEL_PARTIAL if sum(criteria) >= 2 else LEVEL_FAILURE


def _success_rate(attempts: Sequence[tuple[str, bool]]) -> float:
    return sum(1 for _, ok in attempts if ok) / len(attempts) if attempts else 1.0


def workflow_components(
    expected: Sequence[str], actual: Sequence[str], attempts: Sequence[tuple[str, bool]], variant: str
) -> tuple[float, float, float, bool]:
    """(workflow_score, coverage, order_similarity, exact match) per §4.2."""
    if not expected or not actual:
        return 0.0, 0.0, 0.0, False
    coverage = len(set(expected) & set(actual)) / len(set(expected))
    order = lcs_length(expected, actual) / len(expected)
    exact = list(actual) == list(expected)
    # legacy: a bonus of 0.2, weighted 0.1 again (max 0.92). corrected: the bonus is the 0.1 weight itself.
    bonus = (0.2 if variant == "legacy" else 1.0) if exact else 0.0
    score = min(1.0, 0.4 * coverage + 0.3 * order + 0.2 * _success_rate(attempts) + 0.1 * bonus)
    return score, coverage, order, exact


def _task_achievement(inputs: ScoreInputs) -> tuple[float, float]:
    """(raw task achievement, progress)."""
    calls = inputs.executed_tools
    output = 1.0 if calls else 0.0
    progress = min(1.0, len(set(calls)) / SCORER_MIN_TOOLS.get(inputs.task_type, 1))
    required = inputs.required_tools
    required_cov = sum(1.0 for r in required if r in set(calls)) / len(required) if required else 0.0
    if output > 0.8:
        weights = (0.5, 0.3, 0.2)
    elif required:
        weights = (0.3, 0.3, 0.4)
    else:
        weights = (0.4, 0.4, 0.2)
    return weights[0] * output + weights[1] * progress + weights[2] * required_cov, progress


RECOVERY_CREDIT = 0.3  # the original's credit per "same tool failed, then succeeded" (§4.3)


def recoveries(attempts: Sequence[tuple[str, bool]]) -> int:
    """How often a tool succeeded right after its own previous attempt had failed."""
    failing: set[str] = set()
    count = 0
    for tool, ok in attempts:
        if not ok:
            failing.add(tool)
        elif tool in failing:
            failing.discard(tool)
            count += 1
    return count


def _recovery(attempts: Sequence[tuple[str, bool]], clean_run_recovery: bool) -> float:
    """The original's error recovery, +0.3 per recovery, at most 1; optionally 1.0 for a run that never failed."""
    if clean_run_recovery and attempts and all(ok for _, ok in attempts):
        return 1.0
    return min(1.0, RECOVERY_CREDIT * recoveries(attempts))


def _efficiency(calls: Sequence[str]) -> float:
    total, unique = len(calls), len(set(calls))
    if total == 0:
        return 0.0
    return min(1.0, 1.2 * unique / total) if total <= 2 * unique else 0.8 * unique / total


def _execution_quality(
    inputs: ScoreInputs, workflow: float, variant: str, clean_run_recovery: bool
) -> tuple[float, float, float]:
    """(raw execution quality, exec success rate used, error recovery used)."""
    calls = inputs.executed_tools
    if variant == "legacy":
        # The batch scorer got no history: 0.8 whenever a tool was called, and no recovery could be seen.
        rate, recovery = (0.8 if calls else 0.0), 0.0
    else:
        rate = _success_rate(inputs.attempts) if inputs.attempts else 0.0
        recovery = _recovery(inputs.attempts, clean_run_recovery)
    quality = 0.4 * rate + 0.3 * _efficiency(calls) + 0.2 * workflow + 0.1 * recovery
    return quality, rate, recovery


def _adjust(level: str, ta: float, eq: float, progress: float) -> tuple[float, float]:
    """The adjustment of task achievement and execution quality by executor level (§4.3)."""
    if level == LEVEL_FULL:
        return max(ta, 0.8), max(eq, 0.7)
    if level == LEVEL_PARTIAL:
        return max(ta, 0.5), eq
    if progress > 0:
        return max(0.8 * ta, 0.2), max(0.8 * eq, 0.2)
    return ta / 2, eq / 2


def score(inputs: ScoreInputs, variant: str = "corrected", *, clean_run_recovery: bool = False) -> Scores:
    """Score one episode with the given variant (`clean_run_recovery` applies to `corrected` only)."""
    if variant not in SCORING_VARIANTS:
        raise ValueError(f"scoring must be one of {', '.join(SCORING_VARIANTS)}, got {variant!r}")
    if clean_run_recovery and variant == "legacy":
        raise ValueError("clean_run_recovery applies to scoring=corrected only")
    workflow, coverage, order, exact = workflow_components(
        inputs.expected_sequence, inputs.executed_tools, inputs.attempts, variant
    )
    level = executor_level(inputs)
    ta, progress = _task_achievement(inputs)
    eq, rate, recovery = _execution_quality(inputs, workflow, variant, clean_run_recovery)
    ta, eq = _adjust(level, ta, eq, progress)
    phase2 = 0.5 * ta + 0.5 * eq
    if phase2 == 0 and inputs.executed_tools:
        phase2 = 0.05
    r = _round
    workflow, phase2 = r(workflow), r(phase2)
    return Scores(
        variant, workflow, phase2, phase2, r(eq), r(ta),
        r(tool_coverage_rate(inputs.required_tools, inputs.executed_tools)), r(coverage), r(order), exact, r(rate),
        r(recovery), level, label_for(workflow, phase2),
    )  # fmt: skip


def _round(value: float) -> float:
    return round(value, _DIGITS)
