"""The text protocol between the model and the executor: `<tool_search>`, `<tool_info>`, `<tool_call>`.

Parsing is deliberately lenient (reference §3.1, §10 item 9). The original required every closing tag, so a serving
stack that strips `</tool_call>` (qwen2.5: 223 of 223 sampled calls) turned every call into a "format error". Here:

- a missing closing tag is tolerated: the tag's content runs to the next action tag or to the end of the message, and an
  "unclosed <tag>" parse issue is recorded (parse issues are reported apart from model errors);
- a call may carry JSON: `<tool_call>{"tool": "x", "arguments": {...}}</tool_call>`,
  `<tool_call>x {"a": 1}</tool_call>`, `<tool_call>{"name": "x", "parameters": {...}}</tool_call>` and the OpenAI
  `{"function": {...}}` shape;
- names resolve exact → case-insensitive → registry alias → (optionally) substring;
- several actions in one message are handled by an explicit policy (`select_actions`), never silently swallowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench.types import ToolCall
from fleetbench_plugins.suites.workflow.model import Tool

SEARCH = "search"
INFO = "info"
CALL = "call"
MULTI_CALL_POLICIES = ("first", "all", "reject")
SEARCH_FUNCTION = "tool_search"
INFO_FUNCTION = "tool_info"

COMPLETION_PHRASES = (
    "task_completed",
    "task completed",
    "task is complete",
    "finished executing",
    "all steps completed",
    "workflow complete",
    "done with the task",
    "successfully completed the task",
    "task has been completed",
)

_TAG_KINDS = {"tool_search": SEARCH, "tool_info": INFO, "tool_call": CALL}
_OPEN_RE = re.compile(r"<\s*(tool_search|tool_info|tool_call)\b[^>]*>", re.IGNORECASE)
_NAME_RE = re.compile(r"[A-Za-z_][\w.\-]*")
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_NAME_KEYS = ("tool", "name", "tool_name", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "params", "input")
_QUERY_KEYS = ("query", "q", "search")
_MIN_SUBSTRING = 4  # shorter fragments ("io", "get") match too many tools to mean anything


@dataclass(frozen=True)
class Action:
    """One action the model asked for, in message order.

    `requested` is the name or query as written; `tool` the registry name it resolved to (None when unknown);
    `match` says how it resolved (exact, case, alias, substring, unknown; empty for searches).
    """

    kind: str
    requested: str
    tool: str | None = None
    match: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    closed: bool = True
    call_id: str = ""

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for transcripts."""
        return {
            "kind": self.kind,
            "requested": self.requested,
            "tool": self.tool,
            "match": self.match,
            "arguments": dict(self.arguments),
            "closed": self.closed,
        }


@dataclass(frozen=True)
class ParsedTurn:
    """Everything parsed from one assistant message."""

    actions: tuple[Action, ...]
    issues: tuple[str, ...] = ()
    completion_signal: bool = False


@dataclass(frozen=True)
class Selection:
    """Which actions of a turn run under the multi-call policy, and which are ignored or rejected."""

    execute: tuple[Action, ...]
    ignored: tuple[Action, ...] = ()
    rejected: bool = False


class NameResolver:
    """Maps a tool name as the model wrote it onto a registry name."""

    def __init__(self, tools: Iterable[Tool], *, substring: bool = True) -> None:
        listed = tuple(tools)
        self._names = tuple(tool.name for tool in listed)
        self._exact = set(self._names)
        self._lower = {name.lower(): name for name in self._names}
        self._alias = {_normalise(alias): tool.name for tool in reversed(listed) for alias in tool.aliases}
        self._substring = substring

    @property
    def names(self) -> tuple[str, ...]:
        """Every registry name, in registry order."""
        return self._names

    def resolve(self, requested: str) -> tuple[str | None, str]:
        """(registry name or None, how it matched)."""
        name = requested.strip()
        if name in self._exact:
            return name, "exact"
        lowered = _normalise(name)
        if lowered in self._lower:
            return self._lower[lowered], "case"
        if lowered in self._alias:
            return self._alias[lowered], "alias"
        if self._substring:
            hit = self._substring_match(lowered)
            if hit is not None:
                return hit, "substring"
        return None, "unknown"

    def _substring_match(self, lowered: str) -> str | None:
        # A registry name inside the request ("functions.file_operations_reader") is the most specific evidence:
        # prefer the longest such name. Otherwise the request inside a name ("reader"), first in registry order,
        # as the original did.
        contained = [n for n in self._names if n.lower() in lowered]
        if contained:
            return max(contained, key=len)
        if len(lowered) < _MIN_SUBSTRING:
            return None
        return next((n for n in self._names if lowered in n.lower()), None)


def _normalise(name: str) -> str:
    return name.strip().strip("`'\"").lower().replace("-", "_").replace(" ", "_")


def has_completion_signal(text: str) -> bool:
    """Whether the message contains one of the original's completion phrases (case-insensitive)."""
    lowered = text.lower()
    return any(phrase in lowered for phrase in COMPLETION_PHRASES)


def parse_turn(text: str, resolver: NameResolver | None = None) -> ParsedTurn:
    """Parse one assistant message into its actions (in order), parse issues and completion signal."""
    actions: list[Action] = []
    issues: list[str] = []
    opens = list(_OPEN_RE.finditer(text))
    for index, match in enumerate(opens):
        tag = match.group(1).lower()
        end = opens[index + 1].start() if index + 1 < len(opens) else len(text)
        segment = text[match.end() : end]
        close = re.search(rf"<\s*/\s*{tag}\s*>", segment, re.IGNORECASE)
        closed = close is not None
        content = segment[: close.start()] if close is not None else segment
        if not closed:
            issues.append(f"unclosed <{tag}>")
        action = _build_action(_TAG_KINDS[tag], content, closed, resolver, issues)
        if action is not None:
            actions.append(action)
    if not opens and re.search(r"<\s*/\s*tool_(call|search|info)\s*>", text, re.IGNORECASE):
        issues.append("closing tag without opening tag")
    return ParsedTurn(tuple(actions), tuple(issues), has_completion_signal(text))


def _build_action(
    kind: str, content: str, closed: bool, resolver: NameResolver | None, issues: list[str]
) -> Action | None:
    body = _FENCE_RE.sub("", content.strip()).strip()
    if kind == SEARCH:
        query = _parse_query(body, closed)
        if not query:
            issues.append("empty <tool_search>")
            return None
        return Action(SEARCH, query, closed=closed)
    name, arguments = _parse_named(body, kind, issues)
    if not name:
        issues.append(f"empty <tool_{kind}>")
        return None
    tool, how = resolver.resolve(name) if resolver is not None else (name, "exact")
    return Action(kind, name, tool, how, arguments, closed)


def _parse_query(body: str, closed: bool) -> str:
    if body.startswith("{"):
        obj = _decode_prefix(body)
        if isinstance(obj, dict):
            value = next((obj[k] for k in _QUERY_KEYS if isinstance(obj.get(k), str)), "")
            return str(value).strip()
    if not closed:
        # An unclosed search runs to the end of the message; the query is its first line, not the prose after it.
        body = next((line for line in body.splitlines() if line.strip()), "")
    return body.strip().strip("`'\"").strip()


def _parse_named(body: str, kind: str, issues: list[str]) -> tuple[str, dict[str, Any]]:
    """The tool name and arguments of a call or info tag, from plain text or JSON."""
    if body.startswith("{"):
        obj = _decode_prefix(body)
        if isinstance(obj, dict):
            return _name_and_args(obj, kind, issues)
        issues.append(f"invalid JSON in <tool_{kind}>")
        found = re.search(r'"(?:tool|name|tool_name)"\s*:\s*"([^"]+)"', body)
        return (found.group(1) if found else ""), {}
    if body.startswith("<"):
        # Nested markup such as `<name>x</name><arguments>{...}</arguments>`: keep the text, drop the tags.
        body = re.sub(r"<[^>]*>", " ", body).strip()
    stripped = body.lstrip("`'\"")
    match = _NAME_RE.match(stripped)
    if match is None:
        return "", {}
    rest = stripped[match.end() :].lstrip("`'\" \t").lstrip("(").lstrip()
    return match.group(0), _parse_arguments(rest, kind, issues)


def _parse_arguments(rest: str, kind: str, issues: list[str]) -> dict[str, Any]:
    if not rest.startswith("{"):
        return {}
    obj = _decode_prefix(rest)
    if isinstance(obj, dict):
        return obj
    issues.append(f"invalid JSON arguments in <tool_{kind}>")
    return {}


def _name_and_args(obj: Mapping[str, Any], kind: str, issues: list[str]) -> tuple[str, dict[str, Any]]:
    function = obj.get("function")
    if isinstance(function, Mapping):
        return _name_and_args(function, kind, issues)
    name = next((str(obj[k]) for k in _NAME_KEYS if isinstance(obj.get(k), str)), "")
    raw: Any = next((obj[k] for k in _ARG_KEYS if k in obj), {})
    return name.strip(), _coerce_arguments(raw, kind, issues)


def _coerce_arguments(raw: Any, kind: str, issues: list[str]) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = _decode_prefix(raw.strip()) if raw.strip() else {}
    if isinstance(raw, dict):
        return raw
    issues.append(f"arguments of <tool_{kind}> are not a JSON object")
    return {}


def _decode_prefix(text: str) -> Any:
    """Decode the JSON value at the start of `text`, ignoring whatever follows; None when it is not JSON."""
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return value


def parse_native(tool_calls: Sequence[ToolCall], text: str, resolver: NameResolver | None = None) -> ParsedTurn:
    """Parse native function calls (the `tool_search` / `tool_info` helpers and registry tools) into actions."""
    actions: list[Action] = []
    issues: list[str] = []
    for call in tool_calls:
        arguments = _coerce_arguments(call.arguments or "{}", "call", issues)
        if call.name == SEARCH_FUNCTION:
            query = str(arguments.get("query", "")).strip()
            actions.append(Action(SEARCH, query, arguments=arguments, call_id=call.call_id))
            continue
        kind, name = (INFO, str(arguments.get("tool_name", ""))) if call.name == INFO_FUNCTION else (CALL, call.name)
        tool, how = resolver.resolve(name) if resolver is not None else (name, "exact")
        args = {} if kind == INFO else arguments
        actions.append(Action(kind, name, tool, how, args, call_id=call.call_id))
    return ParsedTurn(tuple(actions), tuple(issues), has_completion_signal(text))


def select_actions(actions: Sequence[Action], policy: str) -> Selection:
    """Apply the multi-call policy: `first` runs the first action and ignores the rest, `all` runs every action in
    order, `reject` runs nothing when there is more than one."""
    if policy not in MULTI_CALL_POLICIES:
        raise ValueError(f"multi_call must be one of {', '.join(MULTI_CALL_POLICIES)}, got {policy!r}")
    if len(actions) <= 1 or policy == "all":
        return Selection(tuple(actions))
    if policy == "reject":
        return Selection((), tuple(actions), rejected=True)
    return Selection((actions[0],), tuple(actions[1:]))


_INTENT_RE = re.compile(r"\b(use|call|calling|execute|executing|run|invoke|using)\b", re.IGNORECASE)
_OTHER_TAG_RE = re.compile(r"<\s*/?\s*(function_call|tool_use|invoke|tool|function|call)\b", re.IGNORECASE)


def looks_like_attempted_call(text: str, tool_names: Iterable[str]) -> bool:
    """Heuristic for a malformed attempt (the original's "format help" trigger): a foreign call tag, or a tool name
    written as `name(`, `<name>`, `[name]` or next to an intent word ("use", "call", "execute"...)."""
    if _OTHER_TAG_RE.search(text):
        return True
    lowered = text.lower()
    for name in tool_names:
        low = name.lower()
        if low not in lowered:
            continue
        if re.search(rf"{re.escape(low)}\s*\(|<\s*{re.escape(low)}\s*>|\[\s*{re.escape(low)}\s*\]", lowered):
            return True
        if _INTENT_RE.search(text):
            return True
    return False


def helper_function_schemas() -> list[dict[str, Any]]:
    """OpenAI function schemas of the two discovery helpers offered in native tool-calling mode."""
    return [
        _function(
            SEARCH_FUNCTION, "Search the tool registry; returns the 5 most relevant tools.", "query", "What to search"
        ),
        _function(INFO_FUNCTION, "Get the full specification of one tool.", "tool_name", "The exact tool name"),
    ]


def _function(name: str, description: str, param: str, param_description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {param: {"type": "string", "description": param_description}},
                "required": [param],
            },
        },
    }
