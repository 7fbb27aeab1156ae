"""How the simulated agent reads a task prompt: the plan if there is one, otherwise the steps the description implies.

Only the prompt text is used (the task's answer key is never consulted). A prompt is read once and cached, since every
turn of an episode starts from the same prompt.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from fleetbench_plugins.suites.workflow.prompts import PLAN_END, PLAN_HEADER, plan_tools
from fleetbench_plugins.suites.workflow.simulated.agent_knowledge import Knowledge, knowledge

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
    told: bool = False
    """The executor's help named this tool: no reason to search for it."""


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
    arguments: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Arguments the plan's notes give per step (0-based), e.g. a wrong `source` or a contradicting format."""


_TASK_LINE_RE = re.compile(r"^\s*\**Task\**:\s*(.+)$", re.MULTILINE)
_GOALS_RE = re.compile(r"Task Goals:?\s*\n((?:[ \t]*[-*\d].*\n?)+)", re.IGNORECASE)
_PLAN_STEP_RE = re.compile(r"^\s*\d+\.\s+Execute\s+([A-Za-z_][\w-]*)")
_PARAM_RE = re.compile(r"\b([A-Za-z_]\w*)=")
_FORMAT_RE = re.compile(r"\b(CSV|JSON|XML|YAML|PARQUET)\b")
_JSON = json.JSONDecoder()
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


@functools.lru_cache(maxsize=1024)
def read_task(user: str) -> TaskView:
    """The agent's reading of a user prompt (cached: every turn of an episode starts from the same prompt)."""
    vocab = knowledge()
    description = _description(user)
    goals = _goals(user)
    mentioned = tuple(vocab.mentioned(f"{description}\n{goals}"))
    plan = plan_tools(user)
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
    requires, arguments = plan_notes(user)
    return TaskView(description, steps, True, cot, mentioned, requires, lures, repaired, arguments)


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


def plan_notes(user: str) -> tuple[dict[str, tuple[str, ...]], dict[int, dict[str, Any]]]:
    """What the plan's step notes say: each tool's "Requires:" dependencies, and per step (0-based) the arguments
    its "Parameters:", "Input:" and "Output:" notes ask for."""
    start = user.find(PLAN_HEADER)
    requires: dict[str, tuple[str, ...]] = {}
    arguments: dict[int, dict[str, Any]] = {}
    if start < 0:
        return requires, arguments
    current, index = "", -1
    for line in user[start:].splitlines():
        step, note = _PLAN_STEP_RE.match(line), line.strip()
        if step is not None:
            current, index = step.group(1), index + 1
        elif line.startswith(PLAN_END):
            break
        elif current and note.startswith("- Requires:"):
            requires[current] = tuple(knowledge().mentioned(note))
        elif current and (found := _note_arguments(note)):
            arguments.setdefault(index, {}).update(found)
    return requires, arguments


def _note_arguments(note: str) -> dict[str, Any]:
    """Arguments a plan note asks for: `Parameters: a="x", b=1`, or the format of `Input:` / `Output:`."""
    if note.startswith("- Parameters:"):
        body, found = note.removeprefix("- Parameters:"), {}
        for match in _PARAM_RE.finditer(body):
            try:
                found[match.group(1)], _ = _JSON.raw_decode(body, match.end())
            except ValueError:
                continue  # not a JSON value: the note is unreadable here, as it would be to a model
        return found
    fmt = _FORMAT_RE.search(note)
    if fmt is not None and note.startswith(("- Input:", "- Output:")):
        key = "input_format" if note.startswith("- Input:") else "output_format"
        return {key: fmt.group(1).lower()}
    return {}


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
