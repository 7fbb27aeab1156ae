"""The text protocol between the model and the executor: `<tool_search>`, `<tool_info>`, `<tool_call>`.

Parsing is lenient where the original's strictness decided results, and precise where its laxness did (reference
§3.1, §10 item 9):

- a missing closing tag is tolerated: the tag's content runs to the next action tag or to the end of the message, and an
  "unclosed <tag>" parse issue is recorded (parse issues are reported apart from model errors);
- a tag that starts inside code, reasoning or a quotation (`masking`) is not an action: it is ignored, with an issue;
- a call names its tool as text (`x`, `x {...}`, `x(a=1)`, `x a=1 b=2`), as JSON (`{"tool": "x", "arguments": {...}}`,
  `{"name": "x", "parameters": {...}}`, the OpenAI `{"function": {...}}` shape) or as an attribute
  (`<tool_call name="x">{...}</tool_call>`, `<tool_call name="x" arguments='{...}'/>`); arguments are read by
  `arguments.read_arguments`;
- names resolve precisely (`names.NameResolver`); the original's substring match is a legacy option;
- whatever is dropped (a quoted tag, unreadable argument text, an unknown attribute, info arguments, actions beyond the
  multi-call policy) is recorded as a parse issue, never dropped silently;
- several actions in one message are handled by an explicit policy (`select_actions`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench_plugins.suites.workflow.arguments import ReadArguments, decode_prefix, read_arguments
from fleetbench_plugins.suites.workflow.masking import quiet_regions, region_at, without_reasoning
from fleetbench_plugins.suites.workflow.names import SUBSTRING, NameResolver

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
_OPEN_RE = re.compile(r"<\s*(tool_search|tool_info|tool_call)\b([^<>]*)>", re.IGNORECASE)
_CLOSE_ANY_RE = re.compile(r"<\s*/\s*tool_(call|search|info)\s*>", re.IGNORECASE)
_ATTRIBUTE_RE = re.compile(r"([A-Za-z_][\w\-]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>/]+))")
_NAME_RE = re.compile(r"[A-Za-z_][\w.\-:/]*")
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_NAME_KEYS = ("tool", "name", "tool_name", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "params", "input")
_QUERY_KEYS = ("query", "q", "search")
_TAG_DROPS = ("empty <", "ignored: <")


@dataclass(frozen=True)
class Action:
    """One action the model asked for, in message order.

    `requested` is the name or query as written; `tool` the registry name it resolved to (None when unknown);
    `match` says how it resolved (exact, case, alias, variant, substring, unknown; empty for searches).
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
    """Everything parsed from one assistant message. `tags` counts the opening action tags found in the text: each
    became an action or a tag-level issue (`is_tag_drop`)."""

    actions: tuple[Action, ...]
    issues: tuple[str, ...] = ()
    completion_signal: bool = False
    tags: int = 0


@dataclass(frozen=True)
class Selection:
    """Which actions of a turn run under the multi-call policy, and which are ignored or rejected."""

    execute: tuple[Action, ...]
    ignored: tuple[Action, ...] = ()
    rejected: bool = False


def is_tag_drop(issue: str) -> bool:
    """Whether a parse issue says a whole tag produced no action (empty, or ignored as code/reasoning/quotation)."""
    return issue.startswith(_TAG_DROPS)


def has_completion_signal(text: str) -> bool:
    """Whether the message states one of the original's completion phrases (case-insensitive), outside its
    reasoning: "I will say TASK_COMPLETED when done" inside `<think>` is not a declaration."""
    lowered = without_reasoning(text).lower()
    return any(phrase in lowered for phrase in COMPLETION_PHRASES)


def parse_turn(text: str, resolver: NameResolver | None = None) -> ParsedTurn:
    """Parse one assistant message into its actions (in order), parse issues and completion signal."""
    actions: list[Action] = []
    issues: list[str] = []
    regions = quiet_regions(text)
    opens = list(_OPEN_RE.finditer(text))
    live = []
    for match in opens:
        region = region_at(regions, match.start())
        if region is None:
            live.append(match)
        else:
            issues.append(f"ignored: <{match.group(1).lower()}> inside a {region.kind}")
    for index, match in enumerate(live):
        end = live[index + 1].start() if index + 1 < len(live) else len(text)
        action = _tag_action(match, text[match.end() : end], resolver, issues)
        if action is not None:
            actions.append(action)
    if not live and any(region_at(regions, m.start()) is None for m in _CLOSE_ANY_RE.finditer(text)):
        issues.append("closing tag without opening tag")
    return ParsedTurn(tuple(actions), tuple(issues), has_completion_signal(text), len(opens))


def _tag_action(match: re.Match[str], segment: str, resolver: NameResolver | None, issues: list[str]) -> Action | None:
    tag = match.group(1).lower()
    attributes = match.group(2)
    self_closing = attributes.rstrip().endswith("/")
    close = None if self_closing else re.search(rf"<\s*/\s*{tag}\s*>", segment, re.IGNORECASE)
    closed = self_closing or close is not None
    content = "" if self_closing else segment[: close.start()] if close is not None else segment
    if not closed:
        issues.append(f"unclosed <{tag}>")
    attrs = _attributes(attributes.rstrip().removesuffix("/"), tag, issues)
    return _build_action(_TAG_KINDS[tag], content, attrs, closed, resolver, issues)


def _attributes(text: str, tag: str, issues: list[str]) -> dict[str, str]:
    found = {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None) for m in _ATTRIBUTE_RE.finditer(text)}
    leftover = _ATTRIBUTE_RE.sub("", text).strip()
    if leftover:
        issues.append(f"unreadable text in <{tag}> dropped: {leftover[:40]!r}")
    return found


def _build_action(
    kind: str, content: str, attrs: dict[str, str], closed: bool, resolver: NameResolver | None, issues: list[str]
) -> Action | None:
    body = _FENCE_RE.sub("", content.strip()).strip()
    if kind == SEARCH:
        return _search_action(body, attrs, closed, issues)
    tag = f"<tool_{kind}>"
    named = next((attrs.pop(key) for key in _NAME_KEYS if key in attrs), None)
    if named is not None:  # the attribute form: the body holds only arguments
        name, found = named.strip(), _read(body, closed=closed, tag=tag, issues=issues)
    else:
        name, found = _parse_named(body, closed, tag, issues, resolver)
    raw = next((attrs.pop(key) for key in _ARG_KEYS if key in attrs), None)
    if raw is not None:  # an `arguments="{...}"` attribute
        found = {**_read(raw, closed=True, tag=tag, issues=issues), **found}
    _drop_unknown(attrs, tag, issues)
    if not name:
        issues.append(f"empty {tag}")
        return None
    if kind == INFO and found:
        issues.append(f"arguments of {tag} ignored")
        found = {}
    tool, how = resolver.resolve(name) if resolver is not None else (name, "exact")
    return Action(kind, name, tool, how, found, closed)


def _search_action(body: str, attrs: dict[str, str], closed: bool, issues: list[str]) -> Action | None:
    query = next((attrs.pop(key) for key in _QUERY_KEYS if key in attrs), None)
    _drop_unknown(attrs, "<tool_search>", issues)
    if query is None:
        query = _parse_query(body, closed)
    if not query.strip():
        issues.append("empty <tool_search>")
        return None
    return Action(SEARCH, query.strip(), closed=closed)


def _drop_unknown(attrs: dict[str, str], tag: str, issues: list[str]) -> None:
    issues.extend(f"unknown attribute {key!r} of {tag} dropped" for key in sorted(attrs))


def _read(text: str, *, closed: bool, tag: str, issues: list[str]) -> dict[str, Any]:
    """Arguments from `text`, recording what could not be read. In an unclosed tag the call ends with its JSON value
    or parenthesis, else with its line: what follows is the model's prose, not part of the call."""
    text = text.strip(" \t")
    structured = text.startswith(("{", "("))
    if not closed and not structured:
        text = text.split("\n", 1)[0]
    result: ReadArguments = read_arguments(text)
    if result.invalid_json:
        issues.append(f"invalid JSON arguments in {tag}")
    elif result.unread and (closed or not structured):
        issues.append(f"unreadable arguments in {tag} dropped: {result.unread[:40]!r}")
    return result.arguments


def _parse_query(body: str, closed: bool) -> str:
    if body.startswith("{"):
        decoded = decode_prefix(body)
        if decoded is not None and isinstance(decoded[0], dict):
            obj = decoded[0]
            return str(next((obj[k] for k in _QUERY_KEYS if isinstance(obj.get(k), str)), "")).strip()
    if not closed:
        # An unclosed search runs to the end of the message; the query is its first line, not the prose after it.
        body = next((line for line in body.splitlines() if line.strip()), "")
    return body.strip().strip("`'\"").strip()


def _parse_named(
    body: str, closed: bool, tag: str, issues: list[str], resolver: NameResolver | None
) -> tuple[str, dict[str, Any]]:
    """The tool name and arguments of a call or info tag, from plain text or JSON."""
    if body.startswith("{"):
        decoded = decode_prefix(body)
        if decoded is not None and isinstance(decoded[0], dict):
            if closed and body[decoded[1] :].strip():
                issues.append(f"text after the JSON in {tag} dropped: {body[decoded[1] :].strip()[:40]!r}")
            return _name_and_args(decoded[0], tag, issues)
        issues.append(f"invalid JSON in {tag}")
        found = re.search(r'"(?:tool|name|tool_name)"\s*:\s*"([^"]+)"', body)
        return (found.group(1) if found else ""), {}
    if body.startswith("<"):
        # Nested markup such as `<name>x</name><arguments>{...}</arguments>`: keep the text, drop the tags.
        body = re.sub(r"<[^>]*>", " ", body).strip()
    stripped = body.lstrip("`'\"")
    spelled = _spelled_name(stripped, resolver)
    if spelled is None:
        return "", {}
    rest = stripped[len(spelled) :].lstrip("`'\" \t")
    return spelled.strip(), _read(rest, closed=closed, tag=tag, issues=issues)


def _spelled_name(text: str, resolver: NameResolver | None) -> str | None:
    """The name at the start of `text`: the longest run of its first line's words that resolves to a tool (so
    "file operations reader" is one name), else its first word."""
    first = _NAME_RE.match(text)
    if first is None:
        return None
    if resolver is not None:
        line = re.split(r"[\n{(]", text, maxsplit=1)[0]
        words = list(re.finditer(r"\S+", line))
        for count in range(min(len(words), 6), 1, -1):
            candidate = line[: words[count - 1].end()]
            tool, how = resolver.resolve(candidate)
            if "=" not in candidate and tool is not None and how != SUBSTRING:
                return candidate
    return first.group(0)


def _name_and_args(obj: Mapping[str, Any], tag: str, issues: list[str]) -> tuple[str, dict[str, Any]]:
    function = obj.get("function")
    if isinstance(function, Mapping):
        return _name_and_args(function, tag, issues)
    name = next((str(obj[k]) for k in _NAME_KEYS if isinstance(obj.get(k), str)), "")
    raw: Any = next((obj[k] for k in _ARG_KEYS if k in obj), {})
    return name.strip(), coerce_arguments(raw, tag, issues)


def coerce_arguments(raw: Any, tag: str, issues: list[str]) -> dict[str, Any]:
    """An arguments value (an object, or a JSON string holding one) as a dict; anything else is an issue."""
    if isinstance(raw, str):
        decoded = decode_prefix(raw.strip()) if raw.strip() else ({}, 0)
        raw = decoded[0] if decoded is not None else None
    if isinstance(raw, dict):
        return raw
    issues.append(f"arguments of {tag} are not a JSON object")
    return {}


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
