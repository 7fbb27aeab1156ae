"""How the simulated agent reads a task prompt: the plan if there is one, otherwise the steps the description implies.

Only the prompt text is used (the task's answer key is never consulted). A prompt is read once and cached, since every
turn of an episode, and every episode of the same task and condition, starts from the same prompt.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from fleetbench_plugins.providers.simulated.agent_knowledge import Knowledge, knowledge
from fleetbench_plugins.suites.workflow.prompts import PLAN_END, PLAN_HEADER, plan_tools

# A description fragment must evoke a tool at least this strongly to count as a step on its own: an operation word
# (weight 3) does, a lone category or description word does not.
STEP_EVIDENCE = 3.0


@dataclass(frozen=True)
class Step:
    """One step the agent believes the task has.

    `tool` is the tool the prompt names for it (a plan step, or a tool written in the description), else None and the
    agent must find one. `text` is the description fragment the step is about; `support` says how clearly the
    description backs a plan step: 1.0 when it writes the tool's name, 0.5 when its wording evokes the tool, else 0.
    """

    tool: str | None
    text: str
    support: float = 0.0
    tentative: bool = False
    """Inferred from a side remark rather than the description's list of steps (possibly a misleading term)."""


@dataclass(frozen=True)
class TaskView:
    """Everything the agent takes from the prompt."""

    description: str
    steps: tuple[Step, ...]
    has_plan: bool
    cot: bool
    mentioned: tuple[str, ...]
    """Tools the description writes by name, in order."""
    requires: dict[str, tuple[str, ...]]
    """Dependencies the plan's "Requires:" lines state, per plan tool."""
    lures: tuple[str, ...] = ()
    """Tools that side remarks of the description evoke although the plan does not use them (misleading terms)."""
    repaired: tuple[Step, ...] | None = None
    """The description's own steps when they contradict the plan (a tool the plan lacks, a repeated or reordered
    step); None when they agree or the description names no tools to compare with."""


_TASK_LINE_RE = re.compile(r"^\s*\**Task\**:\s*(.+)$", re.MULTILINE)
_GOALS_RE = re.compile(r"Task Goals:?\s*\n((?:[ \t]*[-*\d].*\n?)+)", re.IGNORECASE)
_PLAN_STEP_RE = re.compile(r"^\s*\d+\.\s+Execute\s+([A-Za-z_][\w-]*)")
_COT_RE = re.compile(r"Reasoning:|step by step", re.IGNORECASE)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
# List separators inside one sentence: ", then", "; next,", ", and finally", " and then", "; finally,".
_LIST_SPLIT_RE = re.compile(
    r"\s*;\s*(?:next|after that|then|finally)?,?\s*"
    r"|,\s*(?:and\s+)?(?:then|finally|next)\s+"
    r"|\s+and\s+(?:then|finally)\s+"
    r"|,\s+",
    re.IGNORECASE,
)
# A sentence lists steps when it uses list separators between them.
_LISTING_RE = re.compile(r";|,\s*(?:and\s+)?(?:then|finally|next)\b|\band then\b", re.IGNORECASE)
# Hedges that read like list items but ask for nothing.
_HEDGE_RE = re.compile(r"^(?:ideally|if possible|as needed|where needed|in a sensible order)\b", re.IGNORECASE)
_LEAD_RE = re.compile(r"^(?:first|next|then|finally|after that|and)\s*,?\s*", re.IGNORECASE)
# Where a sentence starts listing its steps: after a colon, after "covers", after "The task is to".
_REGION_RE = re.compile(r":\s+|\bcovers\s+|\btask is to\s+", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)  # prompts repeat across the turns of an episode, rarely beyond
def read_task(user: str) -> TaskView:
    """The agent's reading of a user prompt (cached: prompts repeat across turns and episodes)."""
    vocab = knowledge()
    description = _description(user)
    goals = _goals(user)
    mentioned = tuple(vocab.mentioned(f"{description}\n{goals}"))
    plan = [name for name in plan_tools(user) if name in vocab.operations]
    described = _description_steps(description, vocab) or tuple(Step(tool, tool, 1.0) for tool in mentioned)
    cot = bool(_COT_RE.search(user))
    if not plan:
        return TaskView(description, described, False, cot, mentioned, {})
    evoked = {best[0] for step in described if (best := vocab.best(step.text)) is not None}
    steps = tuple(Step(tool, tool, 1.0 if tool in mentioned else 0.5 if tool in evoked else 0.0) for tool in plan)
    lures = tuple(
        dict.fromkeys(
            best[0]
            for step in described
            if step.tentative and (best := vocab.best(step.text)) is not None and best[0] not in plan
        )
    )
    repaired = _reconcile(plan, described, vocab)
    return TaskView(description, steps, True, cot, mentioned, plan_requirements(user), lures, repaired)


def _reconcile(plan: list[str], described: tuple[Step, ...], vocab: Knowledge) -> tuple[Step, ...] | None:
    """The description's steps, completed with the plan's tools, if they contradict the plan; else None."""
    listed = [step for step in described if not step.tentative]
    named = [step.tool for step in listed if step.tool is not None]
    if not named:
        return None
    merged = tuple(step if step.tool is not None else _plan_tool_for(step, plan, vocab) for step in listed)
    tools = [step.tool for step in merged if step.tool is not None]
    conflict = (
        any(name not in plan for name in named)
        or len(set(plan)) < len(plan)
        or any(name not in tools for name in plan)
        or [name for name in plan if name in named] != named
    )
    return merged if conflict else None


def _plan_tool_for(step: Step, plan: list[str], vocab: Knowledge) -> Step:
    """An unnamed description step, matched to the plan tool its wording evokes (if any)."""
    evoked = [name for name, _ in vocab.match(step.text) if name in plan]
    return Step(evoked[0], step.text) if evoked else step


def plan_requirements(user: str) -> dict[str, tuple[str, ...]]:
    """What the plan's "- Requires:" lines say each plan tool depends on."""
    start = user.find(PLAN_HEADER)
    if start < 0:
        return {}
    requires: dict[str, tuple[str, ...]] = {}
    current = ""
    for line in user[start:].splitlines():
        step = _PLAN_STEP_RE.match(line)
        if step is not None:
            current = step.group(1)
        elif current and line.strip().startswith("- Requires:"):
            requires[current] = tuple(knowledge().mentioned(line))
        elif line.startswith(PLAN_END):
            break
    return requires


def _description(user: str) -> str:
    match = _TASK_LINE_RE.search(user)
    return match.group(1).strip() if match else user


def _goals(user: str) -> str:
    match = _GOALS_RE.search(user)
    return match.group(1) if match else ""


def _description_steps(description: str, vocab: Knowledge) -> tuple[Step, ...]:
    """One step per operation the description asks for, in order; a named tool fixes its step's tool."""
    steps: list[Step] = []
    for sentence in _SENTENCE_RE.split(description):
        region = _REGION_RE.split(sentence, maxsplit=1)
        listed = len(region) == 2 or bool(_LISTING_RE.search(sentence))
        for fragment in _fragments(region[-1]):
            names = vocab.mentioned(fragment)
            if names:
                steps.extend(Step(name, fragment, 1.0) for name in names)
                continue
            best = vocab.best(fragment)
            # A fragment of a step list is a step even when it evokes nothing; elsewhere it must evoke a tool.
            if listed or (best is not None and best[1] >= STEP_EVIDENCE):
                steps.append(Step(None, fragment, tentative=not listed))
    return tuple(steps)


def _fragments(text: str) -> list[str]:
    text = text.strip().rstrip(".!?")
    parts = (_LEAD_RE.sub("", part).strip() for part in _LIST_SPLIT_RE.split(text))
    return [part for part in parts if len(part) > 2 and not _HEDGE_RE.match(part)]
