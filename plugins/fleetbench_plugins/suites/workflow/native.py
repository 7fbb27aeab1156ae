"""Native function calling: the two discovery helpers offered as functions, and function calls read as actions.

In native mode (`tool_calling: native`) the executor sends OpenAI function schemas with each request: the registry's
tools (all of them, or those discovered so far) and the `tool_search` / `tool_info` helpers defined here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetbench.types import ToolCall, ToolSpec
from fleetbench_plugins.suites.workflow.names import NameResolver
from fleetbench_plugins.suites.workflow.protocol import (
    CALL,
    INFO,
    INFO_FUNCTION,
    SEARCH,
    SEARCH_FUNCTION,
    Action,
    ParsedTurn,
    coerce_arguments,
    parse_turn,
)


def parse_native(tool_calls: Sequence[ToolCall], text: str, resolver: NameResolver | None = None) -> ParsedTurn:
    """Parse native function calls (the `tool_search` / `tool_info` helpers and registry tools) into actions.
    Action tags in the same reply's text are not executed; that is recorded as an issue."""
    actions: list[Action] = []
    issues: list[str] = []
    for call in tool_calls:
        arguments = coerce_arguments(call.arguments or "{}", "<tool_call>", issues)
        if call.name == SEARCH_FUNCTION:
            query = str(arguments.get("query", "")).strip()
            actions.append(Action(SEARCH, query, arguments=arguments, call_id=call.call_id))
            continue
        kind, name = (INFO, str(arguments.get("tool_name", ""))) if call.name == INFO_FUNCTION else (CALL, call.name)
        tool, how = resolver.resolve(name) if resolver is not None else (name, "exact")
        args = {} if kind == INFO else arguments
        actions.append(Action(kind, name, tool, how, args, call_id=call.call_id))
    textual = parse_turn(text, resolver)
    if textual.actions:
        issues.append(f"{len(textual.actions)} action tag(s) in the text ignored next to function calls")
    return ParsedTurn(tuple(actions), tuple(issues), textual.completion_signal)


def helper_tools() -> list[ToolSpec]:
    """The two discovery helpers offered as functions in native tool-calling mode."""
    return [
        _function(
            SEARCH_FUNCTION, "Search the tool registry; returns the 5 most relevant tools.", "query", "What to search"
        ),
        _function(INFO_FUNCTION, "Get the full specification of one tool.", "tool_name", "The exact tool name"),
    ]


def helper_function_schemas() -> list[dict[str, Any]]:
    """The helpers' OpenAI wire schemas."""
    return [tool.wire() for tool in helper_tools()]


def _function(name: str, description: str, param: str, param_description: str) -> ToolSpec:
    parameters = {
        "type": "object",
        "properties": {param: {"type": "string", "description": param_description}},
        "required": [param],
    }
    return ToolSpec(name, description, parameters)
