"""The WorkflowSuite plugin end to end, with the shipped registry and tasks and scripted models (test doubles for the
*model* only: prompts, executor, simulator, scoring and classification are all real)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from fleetbench.errors import InfraFailure
from fleetbench.interfaces import EpisodeContext
from fleetbench.testing import units as test_units
from fleetbench.testing.requests import wire
from fleetbench.types import Completion, DeploymentSpec, Episode, ModelSpec, Request, ToolCall, Unit
from fleetbench_plugins.suites.workflow import FACTORS, WorkflowOptions, WorkflowSuite, unit_seed
from fleetbench_plugins.suites.workflow.metrics import WORKFLOW_METRICS
from fleetbench_plugins.suites.workflow.model import ERROR_CATEGORIES, FLAW_TYPES, TASK_TYPES
from fleetbench_plugins.suites.workflow.prompts import SYSTEM_PROMPT_NATIVE, plan_tools
from fleetbench_plugins.suites.workflow.transcript import render_text

SUCCESS_RE = re.compile(r"✅ (\S+) executed successfully")


def context(tool_calling: str = "text", judge: Any = None) -> EpisodeContext:
    model = ModelSpec("TestModel", "simulated", (DeploymentSpec("TestModel-1"),), tool_calling=tool_calling)
    return EpisodeContext(model=model, lane_id="lane-0", deployment="TestModel-1", judge=judge)


class PlanFollower:
    """A scripted model: executes the plan in the user prompt one tool per turn, retrying failures, then completes.

    `infra_at` raises an InfraFailure on that request (1-based); `native` answers with function calls.
    """

    def __init__(self, *, native: bool = False, infra_at: int | None = None) -> None:
        self.native, self.infra_at, self.requests = native, infra_at, 0
        self.seen_tools: list[Sequence[Mapping[str, Any]] | None] = []

    async def __call__(self, request: Request) -> Completion:
        messages, tools = wire(request)
        self.requests += 1
        self.seen_tools.append(tools)
        if self.requests == self.infra_at:
            raise InfraFailure("timeout", "no reply within 150 s")
        done = {m for msg in messages if msg["role"] in ("user", "tool") for m in SUCCESS_RE.findall(msg["content"])}
        remaining = [t for t in plan_tools(str(messages[1]["content"])) if t not in done]
        if not remaining:
            return Completion("All steps done. TASK_COMPLETED", prompt_tokens=100, completion_tokens=5)
        if self.native:
            call = ToolCall(remaining[0], '{"source": "data/input.json"}', f"id{self.requests}")
            return Completion("", tool_calls=(call,), prompt_tokens=100, completion_tokens=5)
        return Completion(f"<tool_call>{remaining[0]}</tool_call>", prompt_tokens=100, completion_tokens=5)


class Mute:
    """A scripted model that never acts."""

    async def __call__(self, request: Request) -> Completion:
        return Completion("Let me think about which tool might be appropriate here before acting on anything.")


class Judge:
    async def __call__(self, request: Request) -> Completion:
        return Completion('{"error_type": "tool_call_format_errors", "reasoning": "never acted", "confidence": 0.9}')


def all_keys(value: Any) -> list[str]:
    """Every mapping key anywhere inside a JSON-like value."""
    if isinstance(value, Mapping):
        return [str(k) for k in value] + [k for v in value.values() for k in all_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in all_keys(v)]
    return []


def make_unit(suite: WorkflowSuite, name: str, cell_index: int = 0) -> Unit:
    cell = list(suite.cells("TestModel"))[cell_index]
    return test_units.make_unit(hashlib.sha256(name.encode()).hexdigest(), cell, 0, 7)


def play(suite: WorkflowSuite, unit: Unit, chat: Any, ctx: EpisodeContext | None = None) -> Episode:
    return asyncio.run(suite.run_episode(unit, chat, ctx or context()))


@pytest.fixture(scope="module")
def suite() -> WorkflowSuite:
    return WorkflowSuite(WorkflowOptions(task_types=["data_pipeline", "simple_task"]))


def test_cells_follow_the_grid_order() -> None:
    options = WorkflowOptions(
        prompt_types=["optimal", "cot"], difficulties=["easy", "medium"], tool_success_rates=[0.8, 0.123456],
        task_types=["simple_task", "basic_task"],
    )  # fmt: skip
    cells = list(WorkflowSuite(options).cells("M"))
    assert len(cells) == 16 and {c.suite for c in cells} == {"workflow"} and {c.base_model for c in cells} == {"M"}
    assert cells[0].factors == (
        ("prompt_type", "optimal"), ("difficulty", "easy"), ("tool_success_rate", 0.8), ("task_type", "simple_task")
    )  # fmt: skip
    assert [c.factor("task_type") for c in cells[:2]] == ["simple_task", "basic_task"]
    assert cells[2].factor("tool_success_rate") == 0.1235
    assert cells[-1].as_dict() == {"prompt_type": "cot", "difficulty": "medium", "tool_success_rate": 0.1235,
                                   "task_type": "basic_task"}  # fmt: skip


def test_options_defaults_expansion_and_validation() -> None:
    default = WorkflowOptions()
    assert (default.prompt_types, default.difficulties, default.tool_success_rates) == (["optimal"], ["easy"], [0.8])
    assert default.task_types == list(TASK_TYPES) and default.scoring == "corrected" and default.classifier == "rules"
    assert (default.substring_match, default.validate_arguments, default.clean_run_recovery, default.native_tools) == (
        False, True, False, "discovered"
    )  # fmt: skip
    assert WorkflowOptions(prompt_types=["flawed"]).prompt_types == [f"flawed_{f}" for f in FLAW_TYPES]
    assert WorkflowOptions(prompt_types=["all", "optimal"]).prompt_types == ["baseline", "cot", "optimal"]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"prompt_types": ["great"]}, r"^prompt_types: unknown value 'great'; valid choices: .*flawed_tool_misuse"),
        ({"difficulties": []}, r"^difficulties: must not be empty"),
        ({"task_types": ["file_processing"]}, r"^task_types: unknown value 'file_processing'"),
        ({"tool_success_rates": [1.2]}, r"^tool_success_rates: 1.2 is outside \[0, 1\]"),
        ({"severity": "extreme"}, r"^severity: unknown value 'extreme'; valid choices: light, medium, severe"),
        ({"scoring": "fixed"}, r"^scoring: unknown value 'fixed'; valid choices: corrected, legacy"),
        ({"score_against": "plan"}, r"^score_against: .*valid choices: prompt_plan, reference"),
        ({"multi_call": "many"}, r"^multi_call: .*valid choices: all, first, reject"),
        ({"classifier": "ai"}, r"^classifier: .*valid choices: llm, rules"),
        ({"max_turns": 0}, r"^max_turns: must be from 1 to 1000, got 0"),
        ({"max_turns": 100_000_000}, r"^max_turns: must be from 1 to 1000, got 100000000"),
        ({"native_tools": "some"}, r"^native_tools: unknown value 'some'; valid choices: all, discovered"),
        ({"scoring": "legacy", "clean_run_recovery": True}, r"^clean_run_recovery: applies to scoring=corrected only"),
    ]
    for kwargs, pattern in bad:
        with pytest.raises(ValueError, match=pattern):
            WorkflowOptions(**kwargs)


def test_identity_metrics_and_factors(suite: WorkflowSuite) -> None:
    identity = suite.identity()
    assert re.fullmatch(r"[0-9a-f]{64}", identity["tool_registry_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", identity["task_file_sha256"])
    # Data digests only: the options that change results are classified by `option` (tests/core/test_result_identity).
    assert set(identity) <= {"tool_registry_sha256", "task_file_sha256", "phrases_sha256"}
    assert suite.metrics() == WORKFLOW_METRICS and suite.factor_names() == FACTORS
    names = [m.name for m in WORKFLOW_METRICS]
    assert len(names) == len(set(names)) and {f"error_{c}" for c in ERROR_CATEGORIES} <= set(names)
    assert {m.aggregate for m in WORKFLOW_METRICS} == {"mean", "sum"}


def test_a_scored_episode(suite: WorkflowSuite) -> None:
    unit = make_unit(suite, "unit-a")
    episode = play(suite, unit, PlanFollower())
    transcript = episode.transcript
    assert transcript is not None
    task = suite.library.sample("data_pipeline", unit_seed(unit.key, "task"))
    assert episode.task_id == task.task_id == transcript["task"]["task_id"]
    assert episode.outcome.value == transcript["label"] and episode.infra_status is None
    assert set(episode.metrics) == {m.name for m in WORKFLOW_METRICS}
    assert all(isinstance(v, float) for v in episode.metrics.values())
    assert episode.turns == len(transcript["turns"]) == episode.metrics["turns"]
    assert transcript["prompt"]["expected_sequence"] == list(task.required_tools)  # optimal plan = reference
    assert (episode.error_category is None) == (episode.outcome.value == "success")
    text = render_text(transcript)
    assert "=== Turn 1 ===" in text and f"<tool_call>{task.required_tools[0]}</tool_call>" in text
    assert not [k for k in all_keys(transcript) if "time" in k.lower() or "duration" in k.lower()]


def test_same_unit_and_model_give_identical_results(suite: WorkflowSuite) -> None:
    unit = make_unit(suite, "unit-b")
    first, second = play(suite, unit, PlanFollower()), play(suite, unit, PlanFollower())
    assert first == second
    assert json.dumps(first.transcript, sort_keys=True) == json.dumps(second.transcript, sort_keys=True)
    other = play(suite, make_unit(suite, "unit-c"), PlanFollower())
    assert other.transcript != first.transcript


def test_a_failing_unit_gets_an_error_category(suite: WorkflowSuite) -> None:
    episode = play(suite, make_unit(suite, "unit-d"), Mute())
    assert episode.outcome.value == "failure"
    assert episode.error_category == "tool_call_format_errors"  # no tool call at all, with no-action feedback
    assert episode.metrics["error_tool_call_format_errors"] == 1.0 and episode.metrics["assisted"] == 1.0
    assert episode.metrics["format_error_count"] == 10.0 and episode.metrics["error_total"] == 1.0
    assert episode.transcript is not None and episode.transcript["error"]["source"] == "rules"


def test_infra_failure_mid_episode_is_not_a_model_outcome(suite: WorkflowSuite) -> None:
    episode = play(suite, make_unit(suite, "unit-e"), PlanFollower(infra_at=3))
    assert episode.outcome.value == "infra_error" and episode.infra_status == "timeout"
    assert episode.error_category is None
    transcript = episode.transcript
    assert transcript is not None and len(transcript["turns"]) == 2 and transcript["scores"] is None
    assert transcript["api_issues"] == [{"turn": 3, "status": "timeout", "detail": "no reply within 150 s"}]
    assert transcript["error"] is None and episode.turns == 2
    assert not any(name.startswith("error_") for name in episode.metrics)


def test_native_mode(suite: WorkflowSuite) -> None:
    model = PlanFollower(native=True)
    episode = play(suite, make_unit(suite, "unit-f"), model, context("native"))
    transcript = episode.transcript
    assert transcript is not None and transcript["prompt"]["system"] == SYSTEM_PROMPT_NATIVE
    first_tools = model.seen_tools[0]
    assert first_tools is not None
    names = [t["function"]["name"] for t in first_tools]
    # `discovered`: the helpers and the tools the prompt names (here the plan's), not the whole registry
    plan = transcript["prompt"]["expected_sequence"]
    assert names == [*(n for n in suite.registry.names if n in suite.registry.names_in(transcript["prompt"]["user"])),
                     "tool_search", "tool_info"]  # fmt: skip
    assert set(plan) <= set(names) and len(names) < len(suite.registry.names)
    assert transcript["turns"][0]["native_calls"][0]["name"] == transcript["task"]["required_tools"][0]
    assert transcript["execution_history"][0]["arguments"] == {"source": "data/input.json"}


def test_llm_judge_classifies_when_configured() -> None:
    suite = WorkflowSuite(WorkflowOptions(task_types=["simple_task"], classifier="llm"))
    assert suite.needs_judge
    episode = play(suite, make_unit(suite, "unit-g"), Mute(), context(judge=Judge()))
    assert episode.error_category == "tool_call_format_errors"
    assert episode.transcript is not None
    assert episode.transcript["error"]["source"] == "llm" and episode.transcript["error"]["confidence"] == 0.9


def test_legacy_scoring_caps_the_workflow_score() -> None:
    suite = WorkflowSuite(WorkflowOptions(task_types=["simple_task"], scoring="legacy", tool_success_rates=[1.0]))
    for name in ("unit-h", "unit-i", "unit-j", "unit-k"):
        episode = play(suite, make_unit(suite, name), PlanFollower())
        assert episode.metrics["workflow_score"] <= 0.92
        assert episode.transcript is not None and episode.transcript["scores"]["variant"] == "legacy"


def test_native_all_offers_the_whole_registry() -> None:
    suite = WorkflowSuite(WorkflowOptions(task_types=["simple_task"], native_tools="all"))
    model = PlanFollower(native=True)
    play(suite, make_unit(suite, "unit-all"), model, context("native"))
    first = model.seen_tools[0]
    assert first is not None and [t["function"]["name"] for t in first][:-2] == list(suite.registry.names)


FLAWS_NEEDING_TWO = ("missing_step", "sequence_disorder", "semantic_drift")


def test_flawed_cells_sample_only_tasks_their_flaw_applies_to() -> None:
    """The planner's rule: missing_step, sequence_disorder and semantic_drift are never paired with a one-tool task;
    the other prompt types keep sampling every task of the type."""
    prompt_types = ["optimal", *(f"flawed_{f}" for f in FLAWS_NEEDING_TWO), "flawed_tool_misuse"]
    suite = WorkflowSuite(WorkflowOptions(prompt_types=prompt_types, task_types=["simple_task", "basic_task"]))
    one_step = {t.task_id for t in suite.library if len(t.required_tools) == 1}
    # the README's figures: 54 simple_task and 46 basic_task tasks have one tool (66 and 74 of 120 qualify)
    assert Counter(suite.library.get(task_id).task_type for task_id in one_step) == {
        "simple_task": 54,
        "basic_task": 46,
    }
    for cell in suite.cells("M"):
        sampled = {suite.sample_task(cell, f"key-{i}").task_id for i in range(300)}
        flaw = str(cell.factor("prompt_type")).removeprefix("flawed_")
        if flaw in FLAWS_NEEDING_TWO:
            assert not sampled & one_step, cell
        else:
            assert sampled & one_step, cell
    cell = next(c for c in suite.cells("M") if c.factor("prompt_type") == "flawed_missing_step")
    unit = test_units.make_unit("k" * 64, cell, 0, 1)
    episode = play(suite, unit, PlanFollower())
    assert episode.transcript is not None
    assert len(episode.transcript["task"]["required_tools"]) >= 2
    # scored against the (non-empty) plan the prompt showed
    assert episode.transcript["prompt"]["expected_sequence"] == plan_tools(episode.transcript["prompt"]["user"])


def test_a_flawed_cell_without_applicable_tasks_is_a_one_line_error(tmp_path: Any) -> None:
    path = tmp_path / "single.json"
    tasks = [{"id": f"s{i}", "task_type": "simple_task", "required_tools": ["utility_cache"]} for i in range(3)]
    path.write_text(json.dumps({"tasks": tasks}), encoding="utf-8")
    options = {"task_file": str(path), "task_types": ["simple_task"]}
    WorkflowSuite(WorkflowOptions(prompt_types=["optimal", "flawed_tool_misuse"], **options))  # these apply
    message = (
        r"^prompt_types: flawed_missing_step needs tasks whose reference plan has at least two steps; "
        r"single\.json has no such simple_task task$"
    )
    with pytest.raises(ValueError, match=message):
        WorkflowSuite(WorkflowOptions(prompt_types=["flawed_missing_step"], **options))
    with pytest.raises(ValueError, match=r"^task_types: single\.json has no basic_task task$"):
        WorkflowSuite(WorkflowOptions(task_file=str(path), task_types=["simple_task", "basic_task"]))


def test_settings_record_every_option_that_changes_results(suite: WorkflowSuite) -> None:
    episode = play(suite, make_unit(suite, "unit-settings"), PlanFollower())
    assert episode.transcript is not None
    settings = episode.transcript["settings"]
    assert {"substring_match", "validate_arguments", "clean_run_recovery", "native_tools", "native_mode"} <= set(
        settings
    )
