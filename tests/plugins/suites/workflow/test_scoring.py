"""Scoring: the legacy figures of §4.2/§4.3, the corrected variant, the executor level and the label thresholds."""

from __future__ import annotations

import pytest

from fleetbench.types import Outcome
from fleetbench_plugins.suites.workflow.scoring import (
    LEVEL_FAILURE,
    LEVEL_FULL,
    LEVEL_PARTIAL,
    ScoreInputs,
    executor_level,
    expected_for,
    label_for,
    lcs_length,
    score,
    tool_coverage_rate,
    workflow_components,
)

REQUIRED = ("file_operations_reader", "data_processing_transformer", "file_operations_writer")


def inputs(
    executed: tuple[str, ...] = REQUIRED,
    attempts: tuple[tuple[str, bool], ...] | None = None,
    *,
    task_type: str = "data_pipeline",
    expected: tuple[str, ...] = REQUIRED,
    signal: bool = True,
) -> ScoreInputs:
    history = attempts if attempts is not None else tuple((t, True) for t in executed)
    return ScoreInputs(task_type, REQUIRED, expected, executed, history, signal)


def test_legacy_perfect_run_reproduces_the_stored_figures() -> None:
    # §4.3 [EVIDENCE]: every required tool once, in order, no failures -> 0.92 / 0.804 / 0.902.
    # workflow = 0.4 + 0.3 + 0.2·1.0 + 0.1·0.2 = 0.92 (the exact bonus is weighted twice)
    # EQ = 0.4·0.8 (no history: fallback) + 0.3·1.0 + 0.2·0.92 + 0.1·0 = 0.804; TA = 1.0; phase2 = (1 + 0.804) / 2
    result = score(inputs(), "legacy")
    assert result.workflow_score == 0.92  # scores are rounded to 9 decimals, so these are exact
    assert result.quality_score == 0.804
    assert result.phase2_score == 0.902
    assert result.final_score == result.phase2_score
    assert result.exec_success_rate == pytest.approx(0.8)
    assert result.error_recovery == 0.0
    assert result.executor_level == LEVEL_FULL
    assert result.label is Outcome.SUCCESS


def test_corrected_perfect_run_fixes_only_the_documented_bugs() -> None:
    # §4.2: the exact bonus counted once -> workflow 0.4 + 0.3 + 0.2 + 0.1 = 1.0.
    # §4.3 with the history passed: success rate 1.0, error recovery 0 (nothing failed, nothing recovered), so
    # EQ = 0.4 + 0.3·1.0 + 0.2·1.0 + 0.1·0 = 0.9, TA = 1.0, phase2 = 0.95.
    result = score(inputs(), "corrected")
    assert (result.workflow_score, result.quality_score, result.phase2_score) == (1.0, 0.9, 0.95)
    assert (result.exec_success_rate, result.error_recovery) == (1.0, 0.0)
    assert result.label is Outcome.SUCCESS


def test_clean_run_recovery_is_its_own_option() -> None:
    clean = score(inputs(), "corrected", clean_run_recovery=True)
    assert (clean.workflow_score, clean.quality_score, clean.phase2_score, clean.error_recovery) == (1.0, 1.0, 1.0, 1.0)
    # a run with a failure is scored by the original formula, with or without the option
    attempts = (("file_operations_reader", False), ("file_operations_reader", True), *((t, True) for t in REQUIRED[1:]))
    assert score(inputs(attempts=attempts), "corrected", clean_run_recovery=True) == score(
        inputs(attempts=attempts), "corrected"
    )
    nothing = score(inputs((), ()), "corrected", clean_run_recovery=True)
    assert nothing.error_recovery == 0.0  # no attempt: nothing was clean either
    with pytest.raises(ValueError, match="clean_run_recovery applies to scoring=corrected only"):
        score(inputs(), "legacy", clean_run_recovery=True)


def test_corrected_uses_the_real_history() -> None:
    attempts = (
        ("file_operations_reader", False),
        ("file_operations_reader", True),
        ("data_processing_transformer", True),
        ("file_operations_writer", False),
        ("file_operations_writer", True),
    )
    corrected = score(inputs(attempts=attempts), "corrected")
    legacy = score(inputs(attempts=attempts), "legacy")
    assert corrected.exec_success_rate == pytest.approx(3 / 5)
    assert corrected.error_recovery == pytest.approx(0.6)  # §4.3: +0.3 per "same tool failed then succeeded"
    assert legacy.exec_success_rate == pytest.approx(0.8)  # legacy never saw the history
    assert legacy.error_recovery == 0.0
    # workflow_score always used the history: 0.4 + 0.3 + 0.2·0.6 + 0.1·bonus
    assert corrected.workflow_score == pytest.approx(0.4 + 0.3 + 0.12 + 0.1)
    assert legacy.workflow_score == pytest.approx(0.4 + 0.3 + 0.12 + 0.02)


def test_error_recovery_is_the_originals_formula() -> None:
    # +0.3 per recovery, capped at 1; a failure that is never recovered adds nothing
    def recovery(*attempts: tuple[str, bool]) -> float:
        return score(inputs(("file_operations_reader",), attempts), "corrected").error_recovery

    assert recovery(("file_operations_reader", False), ("file_operations_reader", True)) == pytest.approx(0.3)
    assert recovery(("a", False), ("a", True), ("b", False)) == pytest.approx(0.3)
    assert recovery(("a", False), ("a", False), ("a", True)) == pytest.approx(0.3)  # one recovery, not two
    assert recovery(("a", False), ("a", True), ("a", False), ("a", True)) == pytest.approx(0.6)
    assert recovery(*((("a", False), ("a", True)) * 4)) == 1.0


def test_a_run_that_executed_only_its_first_tool() -> None:
    # The independent check's example (3 required tools, only the first ran, executor level failure): quality 0.565
    # legacy, 0.709 under the old corrected variant, which gave a run without failures full error recovery.
    # workflow = 0.4/3 + 0.3/3 + 0.2 = 0.4333; EQ = 0.4·rate + 0.3·1 + 0.2·0.4333 + 0.1·recovery, then ×0.8.
    one = inputs(("file_operations_reader",), signal=False)
    legacy, corrected = score(one, "legacy"), score(one, "corrected")
    assert legacy.executor_level == LEVEL_FAILURE
    assert legacy.quality_score == pytest.approx(0.565, abs=1e-3)  # rate 0.8 (fallback), recovery 0
    assert corrected.quality_score == pytest.approx(0.8 * (0.4 + 0.3 + 0.2 * 1.3 / 3), abs=1e-9)  # rate 1, recovery 0
    assert corrected.quality_score == pytest.approx(0.629, abs=1e-3)
    assert score(one, "corrected", clean_run_recovery=True).quality_score == pytest.approx(0.709, abs=1e-3)


def test_workflow_components_coverage_order_and_empty_cases() -> None:
    wf, coverage, order, exact = workflow_components(("a", "b", "c"), ("b", "a"), (("b", True), ("a", True)), "legacy")
    assert coverage == pytest.approx(2 / 3) and order == pytest.approx(1 / 3) and not exact
    assert wf == pytest.approx(0.4 * 2 / 3 + 0.3 / 3 + 0.2)
    assert workflow_components((), ("a",), (), "legacy") == (0.0, 0.0, 0.0, False)
    assert workflow_components(("a",), (), (), "corrected") == (0.0, 0.0, 0.0, False)


def test_lcs_and_coverage() -> None:
    assert lcs_length("abcbdab", "bdcaba") == 4
    assert lcs_length([], ["a"]) == 0
    assert tool_coverage_rate(("a", "b", "c", "d"), ("a", "a", "c", "x")) == pytest.approx(0.5)
    assert tool_coverage_rate((), ("a",)) == 0.0


@pytest.mark.parametrize(
    ("workflow", "phase2", "label"),
    [
        (0.8, 0.8, Outcome.SUCCESS),
        (0.8, 0.79, Outcome.PARTIAL),
        (0.79, 0.9, Outcome.PARTIAL),
        (0.5, 0.1, Outcome.PARTIAL),
        (0.1, 0.5, Outcome.PARTIAL),
        (0.49, 0.49, Outcome.FAILURE),
    ],
)
def test_label_thresholds(workflow: float, phase2: float, label: Outcome) -> None:
    assert label_for(workflow, phase2) is label


def test_executor_level_full_requires_first_successes_in_order() -> None:
    assert executor_level(inputs()) == LEVEL_FULL
    shuffled = ("data_processing_transformer", "file_operations_reader", "file_operations_writer")
    assert executor_level(inputs(shuffled)) == LEVEL_PARTIAL  # coverage, writer keyword, count, signal
    repeated = ("file_operations_reader", "file_operations_reader", *REQUIRED[1:])
    assert executor_level(inputs(repeated)) == LEVEL_FULL


def test_executor_level_partial_needs_two_of_four() -> None:
    # coverage 1/3 < 0.6; no output keyword; 1 success < min 2 for data_pipeline; signal -> only 1 criterion
    assert executor_level(inputs(("file_operations_reader",), signal=True)) == LEVEL_FAILURE
    # writer keyword + signal
    assert executor_level(inputs(("file_operations_writer",), signal=True)) == LEVEL_PARTIAL
    assert executor_level(inputs((), (), signal=False)) == LEVEL_FAILURE


def test_level_adjustments_of_phase2() -> None:
    nothing = score(inputs((), ()), "corrected")
    assert (nothing.phase2_score, nothing.workflow_score, nothing.label) == (0.0, 0.0, Outcome.FAILURE)
    # failure with progress: TA/EQ = max(0.8·x, 0.2)
    one = score(inputs(("file_operations_reader",), signal=False), "legacy")
    assert one.executor_level == LEVEL_FAILURE
    ta_raw = 0.5 * 1 + 0.3 * (1 / 3) + 0.2 * (1 / 3)
    assert one.task_achievement == pytest.approx(max(0.8 * ta_raw, 0.2))


def test_flawed_plan_is_the_default_comparison() -> None:
    flawed = ("file_operations_reader", "file_operations_writer")  # a missing_step plan
    assert expected_for(flawed, REQUIRED, "prompt_plan") == flawed
    assert expected_for(flawed, REQUIRED, "reference") == REQUIRED
    assert expected_for(None, REQUIRED, "prompt_plan") == REQUIRED  # baseline/cot show no plan
    with pytest.raises(ValueError, match="empty plan"):  # never a silent switch to the reference
        expected_for((), REQUIRED, "prompt_plan")
    following_plan = score(inputs(flawed, expected=flawed), "corrected")
    assert following_plan.workflow_score == pytest.approx(1.0)
    assert following_plan.tool_coverage_rate == pytest.approx(2 / 3)  # coverage is always against required tools
    with pytest.raises(ValueError, match="score_against must be one of prompt_plan, reference"):
        expected_for(flawed, REQUIRED, "plan")


def test_unknown_variant_is_rejected() -> None:
    with pytest.raises(ValueError, match="scoring must be one of legacy, corrected"):
        score(inputs(), "fixed")
