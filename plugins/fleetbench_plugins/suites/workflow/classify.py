"""Error classification of every non-full, non-infra unit into the 7 model error categories (reference §4.5, §4.6).

First the original's error message is generated (§4.5, kept for the record and the judge); then ordered rules look at
the message and at the structured episode state. The first rule that holds wins:

1. tool_call_format_errors - no tool call was attempted and there were format issues (assisted turns or parse issues);
2. max_turns_errors - no tool call was attempted and the turns ran out;
3. tool_selection_errors - tools outside the required set were called while a required tool never succeeded;
4. sequence_order_errors - required tools first succeeded out of order, or a required tool failed for lack of input
   while a preceding required tool had not run (§4.5 step 3);
5. dependency_errors - a tool failed, and never recovered, while one of its declared dependencies had not succeeded;
6. parameter_config_errors - a tool failed, and never recovered, with an input/parameter/permission error;
7. max_turns_errors - the turns ran out before the task was completed;
8. other_errors - everything else (tool TIMEOUT, OPERATION_FAILED, network errors, loops...).

The original's eighth category, `timeout_errors`, is not a model error category here: a request or episode timeout is
an infrastructure outcome (`infra_error`, never classified, re-run on resume), and a tool that *returned* TIMEOUT is a
simulated tool failure (other_errors). A judge verdict of timeout_errors is refused and the rules decide.

The original mapped "Required tools not completed" to sequence_order_errors; here a run that ran out of turns while
incomplete is max_turns_errors (rule 7) and one that stopped early for another reason is other_errors.
With `classifier: llm` and a judge chat, the judge's JSON verdict is used when it parses; otherwise the rules decide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from fleetbench.errors import InfraFailure
from fleetbench.interfaces import Chat
from fleetbench.types import ChatMessage, Purpose, Request, Role
from fleetbench_plugins.suites.workflow.executor import STOP_MAX_TURNS
from fleetbench_plugins.suites.workflow.model import ERROR_CATEGORIES, INFRASTRUCTURE_CATEGORY, Task
from fleetbench_plugins.suites.workflow.transcript import Attempt, EpisodeLog

CLASSIFIERS = ("rules", "llm")
_INPUT_WORDS = ("input", "missing", "no data", "not found", "empty")
_PARAMETER_CODES = ("INVALID_INPUT", "PERMISSION_DENIED")
_PARAMETER_WORDS = ("parameter", "argument", "invalid", "permission", "validation failed")
_FORMAT_WORDS = ("format errors detected", "tool call format", "invalid json", "malformed", "parse error")


@dataclass(frozen=True)
class Diagnosis:
    """The structured state the rules read, and the generated error message."""

    required_tools: tuple[str, ...]
    executed_tools: tuple[str, ...]
    attempts: tuple[Attempt, ...]
    format_error_count: int
    parse_issue_count: int
    turns: int
    max_turns: int
    out_of_turns: bool
    completed: bool
    message: str | None = None

    @classmethod
    def from_log(cls, task: Task, log: EpisodeLog, max_turns: int) -> Diagnosis:
        """Build the diagnosis of an episode, with its §4.5 error message."""
        base = cls(
            tuple(task.required_tools), log.executed_tools, tuple(log.attempts),
            log.format_error_count, log.parse_issue_count, len(log.turns), max_turns,
            log.stop_reason == STOP_MAX_TURNS, log.completed,
        )  # fmt: skip
        return replace(base, message=error_message(base))


@dataclass(frozen=True)
class ErrorVerdict:
    """One unit's error category and where it came from (`rules` or `llm`)."""

    category: str
    source: str
    message: str | None
    reasoning: str = ""
    confidence: float | None = None
    judge_issue: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_message(d: Diagnosis) -> str | None:
    """The original's error message (§4.5), in its priority order."""
    if not d.attempts:
        if d.format_error_count or d.parse_issue_count:
            return (f"Tool call format errors detected ({d.format_error_count + d.parse_issue_count} times) - "
                    "Model unable to use correct <tool_call> format")  # fmt: skip
        if d.out_of_turns:
            return f"Max turns reached ({d.turns}) with no tool calls"
        return f"No tool calls executed in {d.turns} turns"
    premature = _premature_input_failure(d)
    if premature is not None:
        return premature
    for words in (("timeout", "timed out"), ("dependency",), ("invalid", "parameter", "permission")):
        hit = next((a for a in d.attempts if not a.success and _has(a.error, words)), None)
        if hit is not None:
            return f"{hit.error} (tool: {hit.tool})"
    return _summary_message(d)


def _summary_message(d: Diagnosis) -> str:
    missing = [t for t in d.required_tools if t not in set(d.executed_tools)]
    wrong = _wrong_tools(d)
    if not d.executed_tools:
        return f"All {len(d.attempts)} tool calls failed"
    if wrong and missing:
        return (f"Tool selection error: wrong tools used ({', '.join(wrong)}) instead of required tools "
                f"({', '.join(missing)})")  # fmt: skip
    if _out_of_order(d):
        return "Sequence order error: tools executed in wrong order"
    if missing:
        return f"Required tools not completed: {', '.join(missing)} - Task partially incomplete"
    return f"Task failed after {d.turns} turns - Unknown error"


def _has(text: str | None, words: tuple[str, ...]) -> bool:
    lowered = (text or "").lower()
    return any(word in lowered for word in words)


def _wrong_tools(d: Diagnosis) -> list[str]:
    required = set(d.required_tools)
    return [t for t in dict.fromkeys(a.tool for a in d.attempts) if t not in required]


def _out_of_order(d: Diagnosis) -> bool:
    required = set(d.required_tools)
    firsts = [t for t in dict.fromkeys(d.executed_tools) if t in required]
    return firsts != [t for t in d.required_tools if t in set(firsts)]


def _premature_input_failure(d: Diagnosis) -> str | None:
    """A required tool failed for lack of input while a preceding required tool had not yet succeeded."""
    done: set[str] = set()
    for attempt in d.attempts:
        if not attempt.success and attempt.tool in d.required_tools and _has(attempt.error, _INPUT_WORDS):
            position = d.required_tools.index(attempt.tool)
            before = [t for t in d.required_tools[:position] if t not in done]
            if before:
                return f"Sequence order error: {attempt.tool} executed before {before[0]} - {attempt.error}"
        if attempt.success:
            done.add(attempt.tool)
    return None


def _unrecovered_failures(d: Diagnosis) -> list[Attempt]:
    return [a for a in d.attempts if not a.success and a.tool not in set(d.executed_tools)]


def _is_format(d: Diagnosis) -> bool:
    return not d.attempts and (d.format_error_count + d.parse_issue_count > 0 or _has(d.message, _FORMAT_WORDS))


def _is_idle_out_of_turns(d: Diagnosis) -> bool:
    return not d.attempts and d.out_of_turns and not d.completed


def _is_selection(d: Diagnosis) -> bool:
    missing = set(d.required_tools) - set(d.executed_tools)
    return bool(_wrong_tools(d)) and bool(missing)


def _is_sequence(d: Diagnosis) -> bool:
    return _out_of_order(d) or _premature_input_failure(d) is not None


def _is_dependency(d: Diagnosis) -> bool:
    return any(a.unmet_dependencies or _has(a.error, ("dependency", "prerequisite")) for a in _unrecovered_failures(d))


def _is_parameter(d: Diagnosis) -> bool:
    return any(a.error_code in _PARAMETER_CODES or _has(a.error, _PARAMETER_WORDS) for a in _unrecovered_failures(d))


def _is_incomplete_out_of_turns(d: Diagnosis) -> bool:
    return d.out_of_turns and not d.completed


RULES: tuple[tuple[str, Callable[[Diagnosis], bool]], ...] = (
    ("tool_call_format_errors", _is_format),
    ("max_turns_errors", _is_idle_out_of_turns),
    ("tool_selection_errors", _is_selection),
    ("sequence_order_errors", _is_sequence),
    ("dependency_errors", _is_dependency),
    ("parameter_config_errors", _is_parameter),
    ("max_turns_errors", _is_incomplete_out_of_turns),
)


def classify_rules(d: Diagnosis) -> ErrorVerdict:
    """The first rule that holds, else other_errors."""
    category = next((name for name, rule in RULES if rule(d)), "other_errors")
    return ErrorVerdict(category, "rules", d.message)


JUDGE_PROMPT = """You classify why an AI agent did not fully succeed at a simulated tool-use workflow task.
Read the transcript and choose exactly one category:
- tool_call_format_errors: the agent could not produce valid tool calls (wrong syntax, no <tool_call> tags).
- max_turns_errors: the agent ran out of turns before finishing.
- tool_selection_errors: the agent used wrong tools instead of the required ones.
- parameter_config_errors: tools failed because of invalid parameters, input or configuration.
- sequence_order_errors: tools were executed in the wrong order.
- dependency_errors: a tool failed because a tool it depends on had not run or had failed.
- other_errors: anything else, e.g. simulated tool failures that were never recovered. A tool that RETURNS an error
  such as "TIMEOUT: Operation timed out (after 37 seconds)" is such a tool failure; there is no timeout category.
Reply with JSON only: {"error_type": "<category>", "reasoning": "<one or two sentences>", "confidence": <0.0-1.0>}"""


def parse_judge_reply(text: str) -> tuple[str, str, float | None] | None:
    """(category, reasoning, confidence) from a judge reply, leniently; None when no category can be read."""
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            continue
        if isinstance(obj, dict) and "error_type" in obj:
            category = normalise_category(str(obj["error_type"]))
            if category is None:
                return None
            return category, str(obj.get("reasoning", "")), _confidence(obj.get("confidence"))
    return None


def normalise_category(value: str) -> str | None:
    """Map a judge's spelling ("Tool selection", "format_errors") onto one of the 8 categories, if unambiguous."""
    key = re.sub(r"[\s\-]+", "_", value.strip().lower())
    if key in ERROR_CATEGORIES:
        return key
    hits = [c for c in ERROR_CATEGORIES if key and (key in c or c.removesuffix("_errors") in key)]
    return hits[0] if len(hits) == 1 else None


def _confidence(value: Any) -> float | None:
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return None


async def classify(d: Diagnosis, classifier: str, judge: Chat | None, transcript_text: str) -> ErrorVerdict:
    """Classify with the rules, or with the judge when `classifier == "llm"` and one is available."""
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {classifier!r}")
    rules = classify_rules(d)
    if classifier == "rules" or judge is None:
        return rules
    messages = (ChatMessage(Role.SYSTEM, JUDGE_PROMPT), ChatMessage(Role.USER, transcript_text))
    try:
        reply = await judge(Request(messages, purpose=Purpose.JUDGE, protocol="workflow"))
    except InfraFailure as exc:
        return _fallback(rules, f"judge infrastructure failure: {exc.status}")
    if _names_infrastructure_category(reply.text):
        return _fallback(rules, f"judge chose {INFRASTRUCTURE_CATEGORY}, which is an infrastructure outcome here")
    parsed = parse_judge_reply(reply.text)
    if parsed is None:
        return _fallback(rules, "judge reply not parseable")
    category, reasoning, confidence = parsed
    return ErrorVerdict(category, "llm", d.message, reasoning, confidence)


def _names_infrastructure_category(text: str) -> bool:
    return re.search(rf'"error_type"\s*:\s*"\s*{INFRASTRUCTURE_CATEGORY}', text, re.IGNORECASE) is not None


def _fallback(rules: ErrorVerdict, issue: str) -> ErrorVerdict:
    return ErrorVerdict(rules.category, "rules", rules.message, judge_issue=issue)
