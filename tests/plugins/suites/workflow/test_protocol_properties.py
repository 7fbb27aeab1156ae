"""Property-based tests: no reply, however malformed, makes the parser raise or the executor lose the turn, and every
action tag in a reply is accounted for (an action or a recorded issue; nothing is dropped silently)."""

from __future__ import annotations

import asyncio
import json
import random
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetbench.types import Completion, Request, ToolCall
from fleetbench_plugins.suites.workflow.executor import ExecutorConfig, WorkflowExecutor
from fleetbench_plugins.suites.workflow.model import Task
from fleetbench_plugins.suites.workflow.names import NameResolver, variant_key
from fleetbench_plugins.suites.workflow.native import parse_native
from fleetbench_plugins.suites.workflow.protocol import is_tag_drop, parse_turn
from fleetbench_plugins.suites.workflow.registry import load_registry
from fleetbench_plugins.suites.workflow.simulator import ToolSimulator

REGISTRY = load_registry()
RESOLVER = NameResolver(REGISTRY.tools.values())
LEGACY = NameResolver(REGISTRY.tools.values(), substring=True)
TASK = Task("t", "data_pipeline", "", ("file_operations_reader", "data_processing_parser", "file_operations_writer"))
# No example database: the suite leaves no files behind; failures print their minimal example.
PROPERTY = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
_OPENING_TAG_RE = re.compile(r"<\s*(?:tool_search|tool_info|tool_call)\b[^<>]*>", re.IGNORECASE)

_TAG_NAMES = ("tool_call", "tool_search", "tool_info", "TOOL_CALL", "Tool_Info")
_FRAGMENTS = st.sampled_from(
    [
        "<",
        ">",
        "/>",
        "</",
        "```",
        "```json\n",
        "~~~",
        "`",
        "\n",
        " ",
        "> ",
        '"',
        "'",
        "“",
        "”",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "=",
        ",",
        ";",
        ":",
        "\\",
        "<think>",
        "</think>",
        "<thinking>",
        "TASK_COMPLETED",
        "null",
        "true",
        '{"tool": "',
        '"arguments": {',
        '"source": "data/input.json"',
        "source=data/input.json",
        "timeout=0",
        'name="',
        "arguments='",
        "functions.",
        "data",
        "reader",
        "file operations reader",
        *REGISTRY.names[:8],
        *(f"<{t}>" for t in _TAG_NAMES),
        *(f"</{t}>" for t in _TAG_NAMES),
        *(f"<{t} " for t in _TAG_NAMES),
    ]
)
REPLIES = st.one_of(
    st.text(max_size=400), st.lists(st.one_of(_FRAGMENTS, st.text(max_size=12)), max_size=40).map("".join)
)


def _opening_tags(text: str) -> int:
    """Action tags as the protocol defines them: `<tool_search…>`, `<tool_info…>`, `<tool_call…>`, any case."""
    return len(_OPENING_TAG_RE.findall(text))


@PROPERTY
@given(REPLIES)
def test_parsing_never_raises_and_accounts_for_every_tag(text: str) -> None:
    for resolver in (RESOLVER, LEGACY, None):
        parsed = parse_turn(text, resolver)
        assert all(isinstance(issue, str) and issue for issue in parsed.issues)
        dropped = sum(1 for issue in parsed.issues if is_tag_drop(issue))
        assert len(parsed.actions) + dropped == parsed.tags == _opening_tags(text)
        for action in parsed.actions:
            assert action.requested.strip()
            assert isinstance(action.arguments, dict)
            json.dumps(action.summary(), default=str)  # transcripts can store it


@PROPERTY
@given(st.lists(st.tuples(st.one_of(st.sampled_from(REGISTRY.names), st.text(max_size=30)), st.text(max_size=60)),
                max_size=4), REPLIES)  # fmt: skip
def test_native_parsing_never_raises(calls: list[tuple[str, str]], text: str) -> None:
    tool_calls = tuple(ToolCall(name, arguments, f"c{i}") for i, (name, arguments) in enumerate(calls))
    parsed = parse_native(tool_calls, text, RESOLVER)
    assert len(parsed.actions) == len(tool_calls)


@PROPERTY
@given(
    st.sampled_from(REGISTRY.names),
    st.lists(st.sampled_from(["_", "-", " ", ".", "/"]), min_size=1, max_size=1),
    st.sampled_from([str.lower, str.upper, str.title, str]),
)
def test_separator_and_case_variants_resolve_to_their_tool(name: str, separator: list[str], case: Any) -> None:
    spelled = case(name.replace("_", separator[0]))
    assert RESOLVER.resolve(spelled)[0] == name
    assert RESOLVER.resolve(f"functions.{spelled}")[0] == name


@PROPERTY
@given(st.text(max_size=40))
def test_the_precise_resolver_only_resolves_spellings_of_a_name(requested: str) -> None:
    tool, how = RESOLVER.resolve(requested)
    assert how != "substring"
    if tool is not None:
        spellings = {variant_key(s) for s in (tool, *REGISTRY.get(tool).aliases)}
        assert variant_key(requested) in spellings or requested.strip() in spellings


class _Once:
    """A model that sends one given reply (text, or native function calls)."""

    def __init__(self, reply: Completion) -> None:
        self.reply = reply

    async def __call__(self, request: Request) -> Completion:
        return self.reply


def _play(reply: Completion, native: bool, turn_config: ExecutorConfig) -> WorkflowExecutor:
    simulator = ToolSimulator(REGISTRY, 0.8, random.Random(0))
    executor = WorkflowExecutor(REGISTRY, TASK, "system", "user", simulator, turn_config, native=native)
    asyncio.run(executor.run(_Once(reply)))
    return executor


@PROPERTY
@given(
    REPLIES,
    st.lists(st.tuples(st.one_of(st.sampled_from(REGISTRY.names), st.text(max_size=20)), st.text(max_size=40)),
             max_size=3),
    st.booleans(),
    st.sampled_from(["first", "all", "reject"]),
)  # fmt: skip
def test_no_reply_loses_the_turn(text: str, calls: list[tuple[str, str]], native: bool, policy: str) -> None:
    tool_calls = tuple(ToolCall(name, arguments, f"c{i}") for i, (name, arguments) in enumerate(calls))
    reply = Completion(text, tool_calls=tool_calls if native else ())
    executor = _play(reply, native, ExecutorConfig(max_turns=1, multi_call=policy))
    (turn,) = executor._log.turns
    assert turn.feedback_kind, "every turn gets an answer (or ends the episode as completed)"
    messages = executor.messages
    if turn.feedback_kind == "completed":
        assert executor._log.completed
    else:
        assert messages[-1]["role"] in ("user", "tool") and messages[-1]["content"]
