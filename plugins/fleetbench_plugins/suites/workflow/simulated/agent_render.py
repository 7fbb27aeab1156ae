"""How the simulated agent words a decision: a short sentence plus one protocol tag, or a native function call.

The sentence carries the step marker ("Step 2 of 4") and any "skipping step N" that the next turn reads back, so the
wording here and the patterns in `agent_history` must stay in step.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from fleetbench_plugins.suites.workflow.protocol import INFO_FUNCTION, SEARCH_FUNCTION
from fleetbench_plugins.suites.workflow.simulated.agent_history import ADOPT_MARKER, CALL, INFO, SEARCH
from fleetbench_plugins.suites.workflow.simulated.agent_policy import COMPLETE, EXPLAIN, PROSE, WAIT, Decision, State
from fleetbench_plugins.suites.workflow.simulated.profiles import Profile

# The prompt's default parameters (§2.1), as a model would pass them.
_INPUT = "data/input.json"
_OUTPUT = "data/output.json"
_URL = "https://api.example.com/data"
_DESTINATION_OPS = ("writer", "compressor")
_REMOTE_SOURCE_OPS = ("fetcher", "monitor")
_REMOTE_DESTINATION_OPS = ("poster", "router")

_REASONS = {
    "plan": "Following the plan, I'll run {tool}.",
    "defaults": "Following the plan, I'll run {tool}, with the default parameters: the plan's values look wrong.",
    "task": "As the task describes, I'll run {tool}.",
    "retry": "{tool} failed; retrying it.",
    "dependency": "{tool} has to run before an earlier step that depends on it, so I'll run it first.",
    "swap": "I'll run {tool} now.",
    "similar": "{tool} should handle this step.",
    "named": "The task names {tool} for this.",
    "picked": "{tool} is the best match for this step.",
    "guess": "I'll try {tool} for this.",
    "extra": "The task description also names {tool}, which has not run yet.",
    "check": "Before starting, let me check what {tool} needs.",
}
_DONE = ("All steps have succeeded. TASK_COMPLETED", "Every step ran successfully. TASK_COMPLETED")
_WAIT = ("That should be everything.", "I think that was the last step.")


@dataclass(frozen=True)
class Rendered:
    """A reply: its text, and for native mode the function call (name, JSON arguments)."""

    text: str
    call: tuple[str, str] | None = None


def render(decision: Decision, state: State, rng: random.Random) -> Rendered:
    """The reply for `decision`, as text tags or (in native mode) a function call."""
    if decision.kind == PROSE:
        return Rendered(_prose(state, rng))
    if decision.kind == EXPLAIN:
        return Rendered(_explanation(state))
    lead = _lead(decision, state)
    if decision.kind in (COMPLETE, WAIT):
        closing = rng.choice(_DONE if decision.kind == COMPLETE else _WAIT)
        if decision.kind == COMPLETE and decision.skipped:
            closing = "Nothing else is left to do. TASK_COMPLETED"
        return Rendered(_join(lead, closing))
    sentence = _sentence(decision, state)
    if decision.finish:
        sentence += " This is the last step. TASK_COMPLETED"
    if state.native:
        return Rendered(_join(lead, sentence), _function_call(decision, state.profile, rng))
    return Rendered(_join(lead, sentence, _tag(decision, state.profile, rng)))


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _lead(decision: Decision, state: State) -> str:
    """What comes before the action: the cot opener, the plan decision, and the steps given up on."""
    parts = []
    if state.task.cot:
        parts.append("Reasoning:")
        if decision.step is not None and decision.kind in (SEARCH, CALL):
            about = state.steps[decision.step].text.rstrip(".")
            parts.append(f"the task has {decision.total} steps, and this one is to {about}.")
    if decision.adopt:
        parts.append(f"The plan does not match the task description, so {ADOPT_MARKER}.")
    parts += [f"Skipping step {index + 1}." for index in decision.skipped]
    return " ".join(parts)


def _sentence(decision: Decision, state: State) -> str:
    step = f"Step {decision.step + 1} of {decision.total}: " if decision.step is not None else ""
    if decision.kind == SEARCH:
        about = state.steps[decision.step].text if decision.step is not None else decision.target
        return f"{step}I need a tool to {about.rstrip('.')}."
    reason = _REASONS.get(decision.reason, "I'll run {tool}.").format(tool=decision.target)
    return f"{step}{reason}"


def _tag(decision: Decision, profile: Profile, rng: random.Random) -> str:
    if decision.kind == SEARCH:
        return f"<tool_search>{decision.target}</tool_search>"
    if decision.kind == INFO:
        return f"<tool_info>{decision.target}</tool_info>"
    body = decision.target
    if decision.arguments is not None:
        body += " " + json.dumps(dict(decision.arguments))
    elif rng.random() < profile.uses_arguments:
        body += " " + json.dumps(default_arguments(decision.target))
    # The qwen serving stack stripped `</tool_call>` as a special token; this profile reproduces that.
    return f"<tool_call>{body}" if profile.drops_closing_tags else f"<tool_call>{body}</tool_call>"


def _function_call(decision: Decision, profile: Profile, rng: random.Random) -> tuple[str, str]:
    if decision.kind == SEARCH:
        return SEARCH_FUNCTION, json.dumps({"query": decision.target})
    if decision.kind == INFO:
        return INFO_FUNCTION, json.dumps({"tool_name": decision.target})
    assert decision.kind == CALL
    arguments = decision.arguments if decision.arguments is not None else default_arguments(decision.target)
    return decision.target, json.dumps(dict(arguments))


def default_arguments(tool: str) -> dict[str, str]:
    """The prompt's default parameters that fit `tool`'s kind of work."""
    operation = tool.rsplit("_", 1)[-1]
    if tool.startswith("network_") and operation in _REMOTE_SOURCE_OPS:
        return {"source": _URL}
    if tool.startswith("network_") and operation in _REMOTE_DESTINATION_OPS:
        return {"destination": _URL}
    if operation in _DESTINATION_OPS:
        return {"source": _INPUT, "destination": _OUTPUT}
    return {"source": _INPUT}


def _explanation(state: State) -> str:
    wanted = "; ".join(step.text.rstrip(".") for step in state.steps[:3]) or state.task.description
    return (
        f"Reasoning: The task asks me to {wanted}. I need a suitable tool for each of these steps, and I should run "
        "them in that order, one per response, starting with the first."
    )


def _prose(state: State, rng: random.Random) -> str:
    """A native-only model in text mode: it describes the calls it would make, without any tag."""
    names = [step.tool or step.text.rstrip(".") for step in state.steps[:3]]
    plan = ", then ".join(names) or "the tools the task needs"
    opener = rng.choice(("To complete this task", "For this workflow", "Here is how I would approach this"))
    return (
        f"{opener}, I would call {plan} with the default parameters, one after another, and check each result "
        "before moving on. I'll proceed with the function calls as soon as the functions are available."
    )
