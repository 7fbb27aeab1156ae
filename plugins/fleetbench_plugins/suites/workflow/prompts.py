"""Prompt builders for the ten prompt types (§2): baseline, optimal, cot and flawed_<type>.

User message layout (§2.1): the task line, the task (description worded at the difficulty) and generic goals, the tool
search help, the default parameters, the execution mode, seven numbered instructions, then the anchor line. optimal
and flawed_* insert a "## Workflow Execution Plan" before the anchor; cot inserts a "Think step by step" block.

Differences from the original, on purpose:
- goals are generic per task type; the original listed basic_task's required tools there, leaking the answer;
- flawed_* plans use exactly the optimal layout and boilerplate, so the plan contents are the only difference;
- every flaw is visible in the plan (see flaws.py), so no flawed condition renders like optimal;
- "Execute a simple task." rather than the original's "Execute a simple task task.".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetbench_plugins.suites.workflow.difficulty import task_description
from fleetbench_plugins.suites.workflow.flaws import FlawedPlan, inject_flaw
from fleetbench_plugins.suites.workflow.model import DIFFICULTIES, PROMPT_TYPES, SEVERITIES, TOOL_CATEGORIES, Task
from fleetbench_plugins.suites.workflow.reference import reference_workflow, step_annotations
from fleetbench_plugins.suites.workflow.registry import ToolRegistry

ANCHOR_LINE = "Begin by searching for the first tool you need."
ANCHOR_LINE_NATIVE = "Begin by calling the first tool you need."
PLAN_HEADER = "## Workflow Execution Plan"
PLAN_END = "Execution Summary:"
COT_HEADER = "## Think step by step about which tools to use and why"
COMPLETION_SIGNAL = "TASK_COMPLETED"
DEFAULT_PARAMETERS = {
    "source": "data/input.json",
    "destination": "data/output.json",
    "format": "json",
    "url": "https://api.example.com/data",
}
PLAN_STEP_PATTERN = re.compile(r"^(\d+)\. Execute ([A-Za-z0-9_-]+)\s*$", re.MULTILINE)

_CATEGORY_TEXT = {
    "file_operations": "reading, writing, scanning, compressing and converting files",
    "data_processing": "parsing, transforming, validating, aggregating and filtering data",
    "network": "fetching, posting, monitoring, validating and routing network requests",
    "computation": "calculating, analyzing, optimizing, simulating and predicting",
    "integration": "connecting, authenticating, mapping, queueing and scheduling with external systems",
    "utility": "logging, caching, notifying, tracking and general helpers",
}
_CATEGORIES = "\n".join(f"- {name}: {_CATEGORY_TEXT[name]}" for name in TOOL_CATEGORIES)
_GUIDELINES = """GUIDELINES:
1. Read the task carefully and identify every step it needs.
2. Search for tools when you are unsure which tool fits a step.
3. Check a tool's parameters and dependencies when you need them.
4. Execute tools in a logical order; run a tool's dependencies before it.
5. Execute exactly ONE tool per response, then wait for its result.
6. Use the default parameters; never ask for input or clarification.
7. If a tool fails, retry it or use a suitable alternative.
8. Do not execute tools the task does not need.
9. When every step is done, reply with TASK_COMPLETED."""

_ENVIRONMENT = """You are an AI assistant that completes workflow tasks by executing tools in a simulated test
environment.

TEST ENVIRONMENT RULES:
- Every tool is simulated; no real files, services or people are affected.
- Nobody will answer questions: do not ask for clarification. Use the default parameters given in the task.
- Tool results are reported back to you after each call.
"""

SYSTEM_PROMPT = f"""{_ENVIRONMENT}
CRITICAL EXECUTION MODE: ONE tool at a time.
- Each response may contain at most ONE <tool_call>.
- After each call, wait for its result before choosing the next step.

TOOL DISCOVERY:
- Search for tools: <tool_search>keywords describing what you need</tool_search>
- Get a tool's full specification: <tool_info>tool_name</tool_info>

TOOL EXECUTION:
- Execute a tool: <tool_call>tool_name</tool_call>
- Arguments are optional and may be given as JSON inside the tag, either
  <tool_call>{{"tool": "tool_name", "arguments": {{"source": "data/input.json"}}}}</tool_call>
  or <tool_call>tool_name {{"source": "data/input.json"}}</tool_call>
- Always close the tag with </tool_call>.
- Write the tag as plain text: a tag inside a code block, a quotation or <think> reasoning is not executed.

{_GUIDELINES}

TOOL CATEGORIES:
{_CATEGORIES}

COMPLETION: when the task is finished, include the exact word {COMPLETION_SIGNAL} in your reply."""

SYSTEM_PROMPT_NATIVE = f"""{_ENVIRONMENT}
CRITICAL EXECUTION MODE: ONE tool at a time.
- The tools are provided as functions; their descriptions list parameters and dependencies.
- The function tool_search finds tools for an operation, tool_info gives a tool's full specification.
- Call at most ONE function per response, then wait for its result before choosing the next step.

{_GUIDELINES}

TOOL CATEGORIES:
{_CATEGORIES}

COMPLETION: when the task is finished, reply with the exact word {COMPLETION_SIGNAL} and no function call."""

_GOALS = {
    "simple_task": ("Complete the processing the task describes", "Produce the expected output"),
    "basic_task": (
        "Obtain the input the task refers to",
        "Apply the processing the task describes",
        "Deliver the result to the expected destination",
    ),
    "data_pipeline": (
        "Identify each processing stage the task describes",
        "Run the stages in a sensible order",
        "Make sure every stage succeeds before moving on",
        "Deliver the final output",
    ),
    "api_integration": (
        "Identify the external systems involved",
        "Carry out each interaction the task describes",
        "Recover from failed calls by retrying or using an alternative",
        "Deliver the final result",
    ),
    "multi_stage_pipeline": (
        "Break the task into its stages",
        "Execute the stages in dependency order",
        "Confirm each stage completes successfully",
        "Deliver the final output",
    ),
}
_SEARCH_HELP = """## Tool Search Available
You have access to a tool search system. Search for the tools you need by describing the operation:
<tool_search>read csv file</tool_search>
<tool_search>send data to an api</tool_search>
Get the full specification of a tool with <tool_info>tool_name</tool_info>.
Execute a tool with <tool_call>tool_name</tool_call>."""
_NATIVE_HELP = {
    "all": """## Tools Available
Every tool is available to you as a function. Pick the function that fits each step and call it; the function
descriptions list each tool's parameters and dependencies.""",
    "discovered": """## Tools Available
Tools are offered as functions once you have come across them: tool_search (find tools for an operation) and
tool_info (a tool's specification) are always available, and every tool named in this task or in their results is
added. The function descriptions list each tool's parameters and dependencies.""",
}
_DEFAULTS = "\n".join(
    ["IMPORTANT - DEFAULT PARAMETERS:"]
    + [f"- {name}: {value}" for name, value in DEFAULT_PARAMETERS.items()]
    + ["Use these defaults whenever a parameter is needed. DO NOT ask for clarification."]
)
_EXECUTION_MODE = """EXECUTION MODE:
Execute ONE tool at a time. After each tool, wait for its result before deciding the next step."""
_STRATEGY = """Execution Strategy:
1. Follow the steps in the order listed.
2. Use the default parameters unless a step specifies otherwise.
3. Wait for each tool's result before the next call.
4. If a tool fails, retry it once before moving on.
5. Reply with TASK_COMPLETED after the last step."""


@dataclass(frozen=True)
class PromptBundle:
    """Everything one run needs from the prompt: both messages, the plan it shows and where its description came from.

    `plan` is the plan rendered in the user message (None for baseline and cot); `expected_sequence` is what the
    prompt asks for: the plan, else the task's reference workflow.
    """

    system: str
    user: str
    plan: tuple[str, ...] | None
    reference: tuple[str, ...]
    prompt_type: str
    flaw_type: str | None
    severity: str | None
    description_source: str

    @property
    def expected_sequence(self) -> tuple[str, ...]:
        return self.plan if self.plan is not None else self.reference


def _task_line(task_type: str) -> str:
    words = task_type.removesuffix("_task").replace("_", " ")
    article = "an" if words[0] in "aeiou" else "a"
    return f"Execute {article} {words} task."


def _instructions(native: bool, tool_list: str) -> str:
    find = "Search for the tools you need"
    if native:
        find = (
            "Identify the tools you need (their functions are listed)"
            if tool_list == "all"
            else f"{find} with tool_search"
        )
    call = (
        "Call ONE tool per response"
        if native
        else "Execute ONE tool per response with <tool_call>tool_name</tool_call>"
    )
    steps = (
        "Read the task and decide which operations it needs.",
        f"{find}.",
        f"{call}.",
        "Wait for each tool's result before choosing the next tool.",
        "Use the default parameters; do not ask for clarification.",
        "If a tool fails, retry it or choose an alternative.",
        f"When every step is done, reply with {COMPLETION_SIGNAL}.",
    )
    return "Instructions:\n" + "\n".join(f"{number}. {text}" for number, text in enumerate(steps, 1))


def _plan_block(task: Task, sequence: tuple[str, ...], notes: dict[int, str], registry: ToolRegistry) -> str:
    lines = [PLAN_HEADER, "Follow this plan, executing one tool per response:", ""]
    annotations = step_annotations(task, registry, sequence)
    for step in annotations:
        lines.append(f"{step.index + 1}. Execute {step.tool}")
        lines.append(f"   - Reason: {step.reason}")
        if step.requires:
            lines.append(f"   - Requires: {', '.join(step.requires)}")
        if step.alternatives:
            lines.append(f"   - Alternatives: {', '.join(step.alternatives)}")
        lines.append(f"   - Confidence: {step.confidence} ({step.confidence_pct}%)")
        lines += [f"   - {note}" for note in notes.get(step.index, "").splitlines()]
    high = sum(step.confidence == "High" for step in annotations)
    average = round(sum(s.confidence_pct for s in annotations) / len(annotations))
    lines += ["", PLAN_END, f"- Total steps: {len(annotations)}", f"- High-confidence steps: {high}"]
    lines += [f"- Average confidence: {average}%", "", _STRATEGY]
    return "\n".join(lines)


_COT_BLOCK = f"""{COT_HEADER}
Before acting:
1. Explain your reasoning first: what the task needs, which kinds of tools fit, and in which order.
2. Then execute only the FIRST tool.
3. Use the default parameters: {", ".join(f"{k}={v}" for k, v in DEFAULT_PARAMETERS.items())}.
Begin your reply with 'Reasoning:'."""


def _check(prompt_type: str, difficulty: str, severity: str) -> None:
    if prompt_type not in PROMPT_TYPES:
        raise ValueError(f"prompt type {prompt_type!r} is not one of {', '.join(PROMPT_TYPES)}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty {difficulty!r} is not one of {', '.join(DIFFICULTIES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")


def build_prompt(
    task: Task,
    prompt_type: str,
    difficulty: str,
    registry: ToolRegistry,
    *,
    severity: str = "severe",
    seed: int = 0,
    native_tools: bool = False,
    tool_list: str = "discovered",
) -> PromptBundle:
    """Render the system and user messages of one run and the sequence its workflow score is measured against.

    `seed` drives flaw injection (flawed_* only); the description's wording is seeded by task id and difficulty.
    `tool_list` (native mode only) says which functions are offered: `discovered` (found so far) or `all`.
    """
    _check(prompt_type, difficulty, severity)
    if tool_list not in _NATIVE_HELP:
        raise ValueError(f"tool_list {tool_list!r} is not one of {', '.join(_NATIVE_HELP)}")
    reference = reference_workflow(task)
    flaw: FlawedPlan | None = None
    if prompt_type.startswith("flawed_"):
        flaw = inject_flaw(reference, prompt_type.removeprefix("flawed_"), severity, registry, seed)
    description = task_description(task, difficulty, registry)
    goals = "\n".join(f"- {goal}" for goal in _GOALS[task.task_type])
    sections = [
        _task_line(task.task_type),
        f"Task: {description.text}",
        f"Task Goals:\n{goals}",
        _NATIVE_HELP[tool_list] if native_tools else _SEARCH_HELP,
        _DEFAULTS,
        _EXECUTION_MODE,
        _instructions(native_tools, tool_list),
    ]
    plan: tuple[str, ...] | None = None
    if prompt_type == "optimal":
        plan = reference
        sections.append(_plan_block(task, reference, {}, registry))
    elif flaw is not None:
        plan = flaw.sequence
        sections.append(_plan_block(task, flaw.sequence, dict(flaw.step_notes), registry))
    elif prompt_type == "cot":
        sections.append(_COT_BLOCK)
    sections.append(ANCHOR_LINE_NATIVE if native_tools else ANCHOR_LINE)
    return PromptBundle(
        system=SYSTEM_PROMPT_NATIVE if native_tools else SYSTEM_PROMPT,
        user="\n\n".join(sections),
        plan=plan,
        reference=reference,
        prompt_type=prompt_type,
        flaw_type=flaw.flaw_type if flaw is not None else None,
        severity=severity if flaw is not None else None,
        description_source=description.source,
    )


def plan_tools(user_prompt: str) -> list[str]:
    """The tool names of the plan rendered in a user prompt, in order (empty if the prompt has no plan)."""
    start = user_prompt.find(PLAN_HEADER)
    if start < 0:
        return []
    end = user_prompt.find(PLAN_END, start)
    block = user_prompt[start : end if end >= 0 else len(user_prompt)]
    return [match.group(2) for match in PLAN_STEP_PATTERN.finditer(block)]
