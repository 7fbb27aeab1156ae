"""The simulated workflow agent: it plays the text and native protocols from the conversation alone, per profile.

Prompts come from the real `build_prompt`, parsing from the real protocol module; the environment replies are either
a small scripted executor (for single behaviours) or the real `WorkflowSuite` (for the integration test).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import re
from collections.abc import Sequence

import pytest

from fleetbench.interfaces import EpisodeContext
from fleetbench.testing.requests import request_of
from fleetbench.testing.units import make_unit
from fleetbench.types import Completion, DeploymentSpec, Lane, Message, ModelSpec, Outcome, Request, ToolSpec
from fleetbench_plugins.providers.simulated import SimulatedOptions, SimulatedProvider
from fleetbench_plugins.suites.workflow import WorkflowOptions, WorkflowSuite
from fleetbench_plugins.suites.workflow.model import Task
from fleetbench_plugins.suites.workflow.names import NameResolver
from fleetbench_plugins.suites.workflow.native import helper_tools
from fleetbench_plugins.suites.workflow.prompts import build_prompt, plan_tools
from fleetbench_plugins.suites.workflow.protocol import CALL, SEARCH, has_completion_signal, parse_turn
from fleetbench_plugins.suites.workflow.registry import ToolRegistry, load_registry
from fleetbench_plugins.suites.workflow.simulated import workflow_agent
from fleetbench_plugins.suites.workflow.simulated.profiles import PROFILES, Profile
from fleetbench_plugins.suites.workflow.tasks import load_tasks

STRONG = PROFILES["strong"]
# A profile without randomness in the decisions a test is about.
EXACT = dataclasses.replace(STRONG, follows_plan=1.0, checks_plan=0.0, repairs_plan=0.0, retries_failed_tool=1.0,
                            declares_completion=1.0, skips_search=1.0, uses_arguments=0.0)  # fmt: skip
TOOL_CALL_RE = re.compile(r"<tool_call>\s*([A-Za-z_]\w*)")


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return load_registry()


@pytest.fixture(scope="module")
def task(registry: ToolRegistry) -> Task:
    """A task with at least three required tools."""
    return next(t for t in load_tasks(registry=registry) if len(t.required_tools) >= 3)


def conversation(task: Task, registry: ToolRegistry, prompt_type: str, difficulty: str) -> list[Message]:
    bundle = build_prompt(task, prompt_type, difficulty, registry, seed=7)
    return [{"role": "system", "content": bundle.system}, {"role": "user", "content": bundle.user}]


def reply(messages: Sequence[Message], profile: Profile, seed: int = 1, tools: Sequence[ToolSpec] = ()) -> Completion:
    request = request_of(messages, protocol="workflow")
    return workflow_agent.respond(request.messages, tools, profile, random.Random(seed))


def environment(registry: ToolRegistry, text: str, fail: set[str] | None = None) -> str:
    """A scripted executor's answer to one text reply: searches, details, and calls (failing those in `fail`)."""
    actions = parse_turn(text, NameResolver(registry.tools.values())).actions
    if not actions:
        return "No tool was executed in your last response."
    action = actions[0]
    if action.kind == SEARCH:
        return registry.format_search_results(action.requested, registry.search(action.requested))
    if action.kind != CALL:
        return registry.describe(action.tool or action.requested)
    if action.tool in (fail or set()):
        return f"❌ {action.tool} failed.\nError: TIMEOUT: The operation timed out (after 30 seconds)"
    return f'✅ {action.tool} executed successfully.\nOutput: {{"status": "success", "tool": "{action.tool}"}}'


def play(
    messages: list[Message], registry: ToolRegistry, profile: Profile, turns: int = 10, fail: set[str] | None = None
) -> list[str]:
    """Play up to `turns` turns against the scripted executor; returns the assistant texts."""
    texts = []
    for turn in range(turns):
        text = reply(messages, profile, seed=turn).text
        texts.append(text)
        messages.append({"role": "assistant", "content": text})
        if has_completion_signal(text):
            break
        messages.append({"role": "user", "content": environment(registry, text, fail)})
    return texts


def called(texts: Sequence[str]) -> list[str]:
    return [m.group(1) for text in texts if (m := TOOL_CALL_RE.search(text))]


def test_identical_inputs_give_identical_replies(task: Task, registry: ToolRegistry) -> None:
    messages = conversation(task, registry, "baseline", "medium")
    first = play(list(messages), registry, STRONG)
    second = play(list(messages), registry, STRONG)
    assert first == second
    assert reply(messages, STRONG, seed=3) == reply(messages, STRONG, seed=3)


def test_follows_a_rendered_optimal_plan_and_declares_completion(task: Task, registry: ToolRegistry) -> None:
    messages = conversation(task, registry, "optimal", "hard")
    plan = plan_tools(str(messages[1]["content"]))
    texts = play(messages, registry, EXACT)
    assert plan == list(task.required_tools)
    assert called(texts) == plan
    assert "TASK_COMPLETED" in texts[-1] and TOOL_CALL_RE.search(texts[-1]) is None


def test_strong_profile_mostly_follows_the_plan(registry: ToolRegistry) -> None:
    tasks = list(load_tasks(registry=registry))[::40]
    followed = sum(
        called(play(conversation(t, registry, "optimal", "very_easy"), registry, STRONG)) == list(t.required_tools)
        for t in tasks
    )
    assert followed >= 0.8 * len(tasks)


def test_searches_when_the_description_names_no_tool(task: Task, registry: ToolRegistry) -> None:
    messages = conversation(task, registry, "baseline", "medium")
    assert not any(name in str(messages[1]["content"]).split("Task Goals")[0] for name in registry.names)
    first = reply(messages, EXACT).text
    query = re.search(r"<tool_search>(.+?)</tool_search>", first)
    assert query is not None and query.group(1).strip()
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": environment(registry, first)}]
    results = [t.name for t in registry.search(query.group(1))]
    second = reply(messages, EXACT).text
    assert called([second]) and called([second])[0] in results


def test_takes_tool_names_from_an_easy_description(task: Task, registry: ToolRegistry) -> None:
    texts = play(conversation(task, registry, "baseline", "very_easy"), registry, EXACT)
    assert called(texts) == list(task.required_tools)


def test_retries_a_failed_tool_or_moves_on(task: Task, registry: ToolRegistry) -> None:
    first_tool = task.required_tools[0]
    retrying = play(conversation(task, registry, "optimal", "easy"), registry, EXACT, turns=3, fail={first_tool})
    assert called(retrying) == [first_tool] * 3
    giving_up = dataclasses.replace(EXACT, retries_failed_tool=0.0)
    moving_on = play(conversation(task, registry, "optimal", "easy"), registry, giving_up, turns=2, fail={first_tool})
    assert called(moving_on) == [first_tool, task.required_tools[1]]
    assert "Skipping step 1" in moving_on[1]


def test_passes_a_flawed_plans_parameters_unless_it_notices(task: Task, registry: ToolRegistry) -> None:
    messages = conversation(task, registry, "flawed_parameter_error", "easy")
    written = re.search(r"- Parameters: (\w+)=", str(messages[1]["content"]))
    assert written is not None
    follower = reply(messages, EXACT).text
    assert follower.startswith("Step 1 of") and f'"{written.group(1)}"' in follower
    noticing = reply(messages, dataclasses.replace(EXACT, repairs_plan=1.0)).text
    assert "default parameters" in noticing and "{" not in noticing


def test_uses_the_tool_a_no_action_message_names(task: Task, registry: ToolRegistry) -> None:
    messages = conversation(task, registry, "baseline", "hard")
    hint = task.required_tools[0]
    nudge = f"NO ACTION DETECTED.\nExecute the first required tool NOW: <tool_call>{hint}</tool_call>"
    messages += [
        {"role": "assistant", "content": "Reasoning: I should think about which tools fit before doing anything."},
        {"role": "user", "content": nudge},
    ]
    assert called([reply(messages, STRONG).text]) == [hint]


def test_unclosed_tags_profile_omits_the_closing_tag(task: Task, registry: ToolRegistry) -> None:
    texts = play(conversation(task, registry, "optimal", "easy"), registry, PROFILES["unclosed-tags"])
    calls = [t for t in texts if "<tool_call>" in t]
    assert calls and all("</tool_call>" not in t for t in calls)
    parsed = parse_turn(calls[0], NameResolver(registry.tools.values()))
    assert parsed.actions[0].tool in task.required_tools and "unclosed <tool_call>" in parsed.issues


def test_native_only_answers_in_prose_in_text_mode(task: Task, registry: ToolRegistry) -> None:
    completion = reply(conversation(task, registry, "optimal", "easy"), PROFILES["native-only"])
    assert "<tool_" not in completion.text and len(completion.text) > 50 and not completion.tool_calls
    assert not has_completion_signal(completion.text)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_makes_native_calls(profile: str, task: Task, registry: ToolRegistry) -> None:
    tools = [*registry.tool_specs().values(), *helper_tools()]
    completion = reply(conversation(task, registry, "baseline", "medium"), PROFILES[profile], tools=tools)
    assert len(completion.tool_calls) == 1 and completion.finish_reason == "tool_calls"
    call = completion.tool_calls[0]
    assert call.name in {"tool_search", *registry.names} and call.call_id
    assert "<tool_" not in completion.text


def test_native_plan_run_calls_tools_and_completes(task: Task, registry: ToolRegistry) -> None:
    messages = conversation(task, registry, "optimal", "very_easy")
    tools = [*registry.tool_specs().values(), *helper_tools()]
    names = []
    for turn in range(8):
        completion = reply(messages, EXACT, seed=turn, tools=tools)
        if not completion.tool_calls:
            assert "TASK_COMPLETED" in completion.text
            break
        call = completion.tool_calls[0]
        names.append(call.name)
        function = {"name": call.name, "arguments": call.arguments}
        messages.append({"role": "assistant", "content": completion.text, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": function}]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": call.call_id,
                         "content": f"✅ {call.name} executed successfully.\nOutput: {{}}"})  # fmt: skip
    assert names == list(task.required_tools)


def test_cot_replies_start_with_reasoning(task: Task, registry: ToolRegistry) -> None:
    texts = play(conversation(task, registry, "cot", "easy"), registry, STRONG, turns=3)
    assert texts and all(text.startswith("Reasoning:") for text in texts)


def test_strong_optimal_beats_weak_baseline_through_the_real_suite() -> None:
    options = WorkflowOptions(prompt_types=["optimal", "baseline"], difficulties=["medium"], tool_success_rates=[0.8])
    suite = WorkflowSuite(options)
    provider = SimulatedProvider(SimulatedOptions())
    model = ModelSpec("Sim", "simulated", (DeploymentSpec("Sim"),))
    context = EpisodeContext(model=model, lane_id="sim-0", deployment="Sim")
    rates = {}
    for profile, prompt_type in (("strong", "optimal"), ("weak", "baseline")):
        lane = Lane("sim-0", "Sim", "Sim", "simulated", "c0", 1, model_params={"profile": profile, "qa_accuracy": None},
                    params={"latency_ms": 0, "jitter_ms": 0, "transient_error_rate": 0, "rate_limit_rate": 0,
                            "retry_after_s": 0.05})  # fmt: skip

        async def chat(request: Request, lane: Lane = lane) -> Completion:
            return await provider.complete(lane, request)

        cells = [c for c in suite.cells("Sim") if c.factor("prompt_type") == prompt_type]
        units = [
            make_unit(hashlib.sha256(f"{cell}:{i}".encode()).hexdigest(), cell, i) for cell in cells for i in range(8)
        ]
        episodes = [asyncio.run(suite.run_episode(unit, chat, context)) for unit in units]
        rates[profile] = sum(e.outcome is Outcome.SUCCESS for e in episodes) / len(episodes)
    assert rates["strong"] > rates["weak"] + 0.15
