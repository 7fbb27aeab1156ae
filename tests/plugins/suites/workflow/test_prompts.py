"""Prompt builders (§2): golden snapshots of all ten prompt types, and proof that every condition renders differently.

Update the snapshots with `FLEETBENCH_UPDATE_GOLDEN=1 .venv/bin/pytest tests/plugins/suites/workflow/test_prompts.py`
and review the diff.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

from fleetbench_plugins.suites.workflow.difficulty import render_description
from fleetbench_plugins.suites.workflow.flaws import FlawNotApplicable, flaw_applies, inject_flaw
from fleetbench_plugins.suites.workflow.model import DIFFICULTIES, FLAW_TYPES, PROMPT_TYPES, SEVERITIES, TASK_TYPES
from fleetbench_plugins.suites.workflow.prompts import (
    ANCHOR_LINE,
    ANCHOR_LINE_NATIVE,
    COT_HEADER,
    PLAN_HEADER,
    SYSTEM_PROMPT,
    SYSTEM_PROMPT_NATIVE,
    PromptBundle,
    build_prompt,
    plan_tools,
)
from fleetbench_plugins.suites.workflow.reference import reference_workflow, step_annotations
from fleetbench_plugins.suites.workflow.registry import load_registry
from fleetbench_plugins.suites.workflow.tasks import load_tasks

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_TASKS = {
    "simple_task": "wf_simple_task_0035",
    "basic_task": "wf_basic_task_0045",
    "data_pipeline": "wf_data_pipeline_0000",
    "api_integration": "wf_api_integration_0000",
    "multi_stage_pipeline": "wf_multi_stage_pipeline_0000",
}
GOLDEN_DIFFICULTY = "easy"
REGISTRY = load_registry()
LIBRARY = load_tasks()
TOOL_WORDS = [*REGISTRY.names, *(alias for tool in REGISTRY for alias in tool.aliases)]


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("FLEETBENCH_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"missing golden file {path}; create it with FLEETBENCH_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = difflib.unified_diff(expected.splitlines(), text.splitlines(), "golden", "rendered", lineterm="")
        pytest.fail(f"{name} differs from its golden snapshot:\n" + "\n".join(diff))


def _snapshot(bundle: PromptBundle) -> str:
    header = [
        f"prompt_type: {bundle.prompt_type}",
        f"flaw_type: {bundle.flaw_type}",
        f"severity: {bundle.severity}",
        f"expected_sequence: {', '.join(bundle.expected_sequence)}",
    ]
    return "\n".join(header) + "\n\n" + bundle.user + "\n"


@pytest.mark.parametrize("prompt_type", PROMPT_TYPES)
@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_golden_prompts(task_type: str, prompt_type: str) -> None:
    task = LIBRARY.get(GOLDEN_TASKS[task_type])
    bundle = build_prompt(task, prompt_type, GOLDEN_DIFFICULTY, REGISTRY, severity="severe", seed=0)
    _check_golden(f"{task_type}__{prompt_type}.txt", _snapshot(bundle))


def test_golden_system_prompts() -> None:
    _check_golden("system_prompt.txt", SYSTEM_PROMPT + "\n")
    _check_golden("system_prompt_native.txt", SYSTEM_PROMPT_NATIVE + "\n")


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_every_prompt_type_renders_differently(task_type: str) -> None:
    task = LIBRARY.get(GOLDEN_TASKS[task_type])
    users = {p: build_prompt(task, p, GOLDEN_DIFFICULTY, REGISTRY).user for p in PROMPT_TYPES}
    assert len(set(users.values())) == len(PROMPT_TYPES)
    assert all(users[p] != users["optimal"] for p in PROMPT_TYPES if p != "optimal")


@pytest.mark.parametrize("severity", SEVERITIES)
def test_every_flawed_prompt_differs_from_optimal_for_every_task(severity: str) -> None:
    """The original rendered three flaw types exactly like optimal (§2.4); no flawed prompt may do that here."""
    for task in LIBRARY:
        optimal = build_prompt(task, "optimal", "medium", REGISTRY).user
        for flaw in FLAW_TYPES:
            if not flaw_applies(flaw, reference_workflow(task)):
                with pytest.raises(FlawNotApplicable):  # never a silently different condition
                    build_prompt(task, f"flawed_{flaw}", "medium", REGISTRY, severity=severity, seed=3)
                continue
            flawed = build_prompt(task, f"flawed_{flaw}", "medium", REGISTRY, severity=severity, seed=3)
            assert flawed.user != optimal, (task.task_id, flaw, severity)
            assert flawed.plan is not None and flawed.plan and plan_tools(flawed.user) == list(flawed.plan)


def test_template_text_never_names_a_tool() -> None:
    """Outside the (difficulty-worded) description, baseline and cot leak no tool; the original leaked basic_task's."""
    for task in LIBRARY:
        for difficulty in ("very_easy", "very_hard"):
            description = render_description(task, difficulty, REGISTRY)
            for prompt_type in ("baseline", "cot"):
                for native in (False, True):
                    bundle = build_prompt(task, prompt_type, difficulty, REGISTRY, native_tools=native)
                    template = bundle.user.replace(f"Task: {description}", "")
                    assert template != bundle.user
                    assert not [w for w in TOOL_WORDS if w in template], (task.task_id, prompt_type)
    for system in (SYSTEM_PROMPT, SYSTEM_PROMPT_NATIVE):
        assert not [word for word in TOOL_WORDS if word in system]


def test_layout_follows_the_original_order() -> None:
    task = LIBRARY.get(GOLDEN_TASKS["data_pipeline"])
    user = build_prompt(task, "optimal", "medium", REGISTRY).user
    markers = [
        "Execute a data pipeline task.",
        "Task: ",
        "Task Goals:",
        "## Tool Search Available",
        "IMPORTANT - DEFAULT PARAMETERS:",
        "EXECUTION MODE:",
        "Instructions:\n1. ",
        "7. When every step is done, reply with TASK_COMPLETED.",
        PLAN_HEADER,
        "Execution Summary:",
        "Execution Strategy:",
        ANCHOR_LINE,
    ]
    positions = [user.index(marker) for marker in markers]
    assert positions == sorted(positions)
    assert user.startswith(markers[0]) and user.endswith(ANCHOR_LINE)
    assert "source: data/input.json" in user and "DO NOT ask for clarification" in user


def test_task_lines_read_naturally() -> None:
    lines = {
        t: build_prompt(LIBRARY.get(i), "baseline", "easy", REGISTRY).user.splitlines()[0]
        for t, i in GOLDEN_TASKS.items()
    }
    assert lines == {
        "simple_task": "Execute a simple task.",
        "basic_task": "Execute a basic task.",
        "data_pipeline": "Execute a data pipeline task.",
        "api_integration": "Execute an api integration task.",
        "multi_stage_pipeline": "Execute a multi stage pipeline task.",
    }


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_blocks_per_prompt_type(difficulty: str) -> None:
    task = LIBRARY.get(GOLDEN_TASKS["multi_stage_pipeline"])
    reference = reference_workflow(task)
    baseline = build_prompt(task, "baseline", difficulty, REGISTRY)
    optimal = build_prompt(task, "optimal", difficulty, REGISTRY)
    cot = build_prompt(task, "cot", difficulty, REGISTRY)
    assert PLAN_HEADER not in baseline.user and COT_HEADER not in baseline.user
    assert COT_HEADER in cot.user and PLAN_HEADER not in cot.user and "Begin your reply with 'Reasoning:'" in cot.user
    assert plan_tools(optimal.user) == list(reference) and plan_tools(baseline.user) == plan_tools(cot.user) == []
    for bundle in (baseline, optimal, cot):
        assert bundle.expected_sequence == reference and bundle.flaw_type is None and bundle.severity is None
        assert bundle.system == SYSTEM_PROMPT
    for annotation in step_annotations(task, REGISTRY):
        assert f"{annotation.index + 1}. Execute {annotation.tool}" in optimal.user
        assert f"Confidence: {annotation.confidence} ({annotation.confidence_pct}%)" in optimal.user


def test_flawed_prompts_show_the_flaw_without_naming_it() -> None:
    task = LIBRARY.get(GOLDEN_TASKS["data_pipeline"])
    optimal = build_prompt(task, "optimal", "easy", REGISTRY).user
    for flaw in FLAW_TYPES:
        bundle = build_prompt(task, f"flawed_{flaw}", "easy", REGISTRY, severity="medium", seed=9)
        plan = inject_flaw(reference_workflow(task), flaw, "medium", REGISTRY, 9)
        assert bundle.expected_sequence == plan.sequence and bundle.flaw_type == flaw and bundle.severity == "medium"
        for note in plan.step_notes.values():
            assert all(f"   - {line}" in bundle.user for line in note.splitlines())
        lowered = bundle.user.lower()
        assert not re.search(r"\b(flaw|flawed|wrong|incorrect|mistake|inconsisten\w*|drift)\b", lowered), flaw
        # same layout as optimal: everything outside the plan block is identical
        assert bundle.user.split(PLAN_HEADER)[0] == optimal.split(PLAN_HEADER)[0]
    parameter = build_prompt(task, "flawed_parameter_error", "easy", REGISTRY).user
    assert "   - Parameters: " in parameter
    logic = build_prompt(task, "flawed_logical_inconsistency", "easy", REGISTRY).user
    assert "   - Output: save the result as " in logic and "   - Input: read the " in logic


def test_a_one_step_task_shows_no_plan_that_cannot_carry_its_flaw() -> None:
    task = next(t for t in LIBRARY.by_type("simple_task") if len(t.required_tools) == 1)
    for flaw in ("missing_step", "sequence_disorder", "semantic_drift"):
        with pytest.raises(FlawNotApplicable, match=f"{flaw} needs a plan of at least two"):
            build_prompt(task, f"flawed_{flaw}", "easy", REGISTRY)
    for flaw in ("tool_misuse", "parameter_error", "redundant_operations", "logical_inconsistency"):
        bundle = build_prompt(task, f"flawed_{flaw}", "easy", REGISTRY)
        assert bundle.plan and bundle.user != build_prompt(task, "optimal", "easy", REGISTRY).user


def test_native_mode() -> None:
    task = LIBRARY.get(GOLDEN_TASKS["api_integration"])
    bundle = build_prompt(task, "optimal", "easy", REGISTRY, native_tools=True)
    assert bundle.system == SYSTEM_PROMPT_NATIVE and bundle.user.endswith(ANCHOR_LINE_NATIVE)
    assert "<tool_search>" not in bundle.user and "<tool_call>" not in bundle.user
    assert plan_tools(bundle.user) == list(reference_workflow(task))


def test_native_prompts_say_which_tools_are_offered() -> None:
    task = LIBRARY.get(GOLDEN_TASKS["api_integration"])
    discovered = build_prompt(task, "baseline", "easy", REGISTRY, native_tools=True).user
    every = build_prompt(task, "baseline", "easy", REGISTRY, native_tools=True, tool_list="all").user
    assert "offered as functions once you have come across them" in discovered and "with tool_search" in discovered
    assert "Every tool is available to you as a function" in every and "their functions are listed" in every
    assert discovered.split("## Tools Available")[0] == every.split("## Tools Available")[0]
    with pytest.raises(ValueError, match="tool_list 'some'"):
        build_prompt(task, "baseline", "easy", REGISTRY, native_tools=True, tool_list="some")


def test_system_prompt_states_the_protocol() -> None:
    for needle in ("<tool_search>", "<tool_info>tool_name</tool_info>", "<tool_call>tool_name</tool_call>",
                   '<tool_call>{"tool": "tool_name", "arguments": {', "ONE tool at a time", "TASK_COMPLETED",
                   "file_operations:", "utility:"):  # fmt: skip
        assert needle in SYSTEM_PROMPT, needle
    assert len(re.findall(r"^\d\. ", SYSTEM_PROMPT, flags=re.MULTILINE)) == 9
    assert "TASK_COMPLETED" in SYSTEM_PROMPT_NATIVE and "<tool_call>" not in SYSTEM_PROMPT_NATIVE
    assert "not executed" in SYSTEM_PROMPT and "plain text" in SYSTEM_PROMPT  # tags in code/quotes/reasoning


def test_invalid_arguments_are_rejected() -> None:
    task = LIBRARY.get(GOLDEN_TASKS["basic_task"])
    with pytest.raises(ValueError, match="prompt type 'flawed'"):
        build_prompt(task, "flawed", "easy", REGISTRY)
    with pytest.raises(ValueError, match="difficulty 'simple'"):
        build_prompt(task, "optimal", "simple", REGISTRY)
    with pytest.raises(ValueError, match="severity 'harsh'"):
        build_prompt(task, "optimal", "easy", REGISTRY, severity="harsh")


def test_a_pre_generated_workflow_is_the_plan() -> None:
    base = LIBRARY.get(GOLDEN_TASKS["basic_task"])
    from dataclasses import replace

    task = replace(base, workflow=("utility_cache", "utility_logger"))
    bundle = build_prompt(task, "optimal", "easy", REGISTRY)
    assert bundle.expected_sequence == ("utility_cache", "utility_logger")
    assert plan_tools(bundle.user) == ["utility_cache", "utility_logger"]
