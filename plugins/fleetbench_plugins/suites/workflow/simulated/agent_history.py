"""How the simulated agent reads the conversation so far: what it did on each earlier turn and what came back.

The agent is stateless, so this is its memory: its own earlier replies (the action, and the step it said it was on)
and the executor's feedback (tool outcomes, search results, dependencies, format help). Parses of individual
messages are cached, because an episode re-reads the same messages on every turn.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench.types import ChatMessage, Role, ToolCall
from fleetbench_plugins.suites.workflow.simulated.agent_knowledge import knowledge

SEARCH = "search"
INFO = "info"
CALL = "call"
NONE = "none"

# What the executor's feedback was, as the agent understands it.
OK = "ok"
FAILED = "failed"
UNKNOWN_TOOL = "unknown_tool"
RESULTS = "results"
DETAILS = "details"
NO_ACTION = "no_action"
FORMAT_HELP = "format_help"
NUDGE = "nudge"
OTHER = "other"
ADOPT_MARKER = "I will follow the task description's steps"
"""Said once, when the agent decides the description's steps replace a plan that contradicts them."""


@dataclass(frozen=True)
class Exchange:
    """One earlier turn: the agent's action (first one in the reply) and the executor's answer to it."""

    kind: str
    target: str
    step: int | None
    skipped: tuple[int, ...]
    completion: bool
    feedback: str
    results: tuple[str, ...] = ()
    dependencies: tuple[tuple[str, tuple[str, ...]], ...] = ()
    revealed: tuple[str, ...] = ()
    """Every required tool, when format help listed them."""
    hinted: str = ""
    """The first required tool, when a no-action message named it."""
    follows_description: bool = False

    @property
    def succeeded(self) -> bool:
        """A tool call that executed successfully."""
        return self.kind == CALL and self.feedback == OK


@dataclass(frozen=True)
class _Reply:
    kind: str
    target: str
    step: int | None
    skipped: tuple[int, ...]
    completion: bool
    adopts: bool = False


@dataclass(frozen=True)
class _Feedback:
    kind: str
    results: tuple[str, ...] = ()
    dependencies: tuple[tuple[str, tuple[str, ...]], ...] = ()
    revealed: tuple[str, ...] = ()
    hinted: str = ""


_TAG_RE = re.compile(r"<\s*(tool_search|tool_info|tool_call)\s*>\s*([^<\n]*)", re.IGNORECASE)
_NAME_RE = re.compile(r"[A-Za-z_][\w.\-]*")
_STEP_RE = re.compile(r"\bStep (\d+) of \d+")
_SKIP_RE = re.compile(r"\bskipping step (\d+)", re.IGNORECASE)
_COMPLETION_RE = re.compile(r"TASK_COMPLETED")
_OUTCOME_RE = re.compile(r"(✅|❌) ([A-Za-z_][\w.\-]*) (?:executed successfully|failed)")
_RESULT_LINE_RE = re.compile(r"^\s*\d+\.\s+([A-Za-z_][\w\-]*)\s*$")
_INFO_TOOL_RE = re.compile(r"^Tool:\s*([A-Za-z_][\w\-]*)", re.MULTILINE)
_REVEALED_RE = re.compile(r"you need to use these tools:\s*([^\n]+)", re.IGNORECASE)
_FIRST_TOOL_RE = re.compile(r"required tool NOW:\s*<tool_call>\s*([A-Za-z_][\w\-]*)", re.IGNORECASE)
_FUNCTIONS = {"tool_search": SEARCH, "tool_info": INFO}


def read_history(messages: Sequence[ChatMessage]) -> tuple[Exchange, ...]:
    """Every earlier turn of the conversation, oldest first (messages before the first reply are the prompt)."""
    exchanges: list[Exchange] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        if message.role is not Role.ASSISTANT:
            continue
        answers: list[str] = []
        while index < len(messages) and messages[index].role is not Role.ASSISTANT:
            answers.append(messages[index].content)
            index += 1
        reply = _read_reply(message)
        fed = _read_feedback("\n\n".join(answers))
        exchanges.append(
            Exchange(reply.kind, reply.target, reply.step, reply.skipped, reply.completion, fed.kind, fed.results,
                     fed.dependencies, fed.revealed, fed.hinted, reply.adopts)
        )  # fmt: skip
    return tuple(exchanges)


def _read_reply(message: ChatMessage) -> _Reply:
    if message.tool_calls:
        kind, target = _native_action(message.tool_calls[0])
        return _annotated(message.content, kind, target)
    return _read_text_reply(message.content)


@functools.lru_cache(maxsize=4096)
def _read_text_reply(text: str) -> _Reply:
    match = _TAG_RE.search(text)
    if match is None:
        return _annotated(text, NONE, "")
    tag, body = match.group(1).lower(), match.group(2).strip()
    if tag == "tool_search":
        return _annotated(text, SEARCH, body)
    name = _NAME_RE.match(body)
    return _annotated(text, INFO if tag == "tool_info" else CALL, name.group(0) if name else "")


def _annotated(text: str, kind: str, target: str) -> _Reply:
    step = _STEP_RE.search(text)
    skipped = tuple(int(s) - 1 for s in _SKIP_RE.findall(text))
    number = int(step.group(1)) - 1 if step else None
    return _Reply(kind, target, number, skipped, bool(_COMPLETION_RE.search(text)), ADOPT_MARKER in text)


def _native_action(call: ToolCall) -> tuple[str, str]:
    name, raw = call.name, call.arguments
    kind = _FUNCTIONS.get(name, CALL)
    if kind == CALL:
        return kind, name
    arguments = _json_object(raw)
    return kind, str(arguments.get("query" if kind == SEARCH else "tool_name", ""))


def _json_object(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(str(raw or "{}"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@functools.lru_cache(maxsize=4096)
def _read_feedback(text: str) -> _Feedback:
    outcome = _OUTCOME_RE.search(text)
    if outcome is not None:
        if outcome.group(1) == "✅":
            return _Feedback(OK)
        return _Feedback(UNKNOWN_TOOL if "TOOL_NOT_FOUND" in text else FAILED)
    if text.startswith("Search results for"):
        return _search_feedback(text)
    info = _INFO_TOOL_RE.search(text)
    if info is not None:
        deps = _dependencies_line(text)
        return _Feedback(DETAILS, (info.group(1),), ((info.group(1), deps),))
    revealed = _revealed(text)
    first = _FIRST_TOOL_RE.search(text)
    hinted = first.group(1) if first else ""
    if "NO ACTION DETECTED" in text:
        return _Feedback(NO_ACTION, revealed=revealed, hinted=hinted)
    if "FORMAT HELP" in text:
        return _Feedback(FORMAT_HELP, revealed=revealed, hinted=hinted)
    if "No tool was executed" in text:
        return _Feedback(NUDGE)
    if text.startswith("No tools matched"):
        return _Feedback(RESULTS)
    return _Feedback(OTHER)


def _search_feedback(text: str) -> _Feedback:
    names: list[str] = []
    dependencies: list[tuple[str, tuple[str, ...]]] = []
    for line in text.splitlines():
        listed = _RESULT_LINE_RE.match(line)
        if listed is not None:
            names.append(listed.group(1))
        elif names and line.lstrip().startswith("Dependencies:"):
            dependencies.append((names[-1], tuple(knowledge().mentioned(line))))
    return _Feedback(RESULTS, tuple(names), tuple(dependencies))


def _dependencies_line(text: str) -> tuple[str, ...]:
    for line in text.splitlines():
        if line.lstrip().startswith("Dependencies:"):
            return tuple(knowledge().mentioned(line))
    return ()


def _revealed(text: str) -> tuple[str, ...]:
    listed = _REVEALED_RE.search(text)
    return tuple(knowledge().mentioned(listed.group(1))) if listed else ()
