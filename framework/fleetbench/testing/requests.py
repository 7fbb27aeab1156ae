"""Requests for tests: build one from plain messages, and read one back in the OpenAI wire shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetbench.types import ChatMessage, Message, Request, Role, ToolCall


def request_of(messages: Sequence[Mapping[str, Any]], protocol: str = "", **fields: Any) -> Request:
    """A `Request` from wire-shaped messages ({"role", "content", "tool_calls", "tool_call_id"})."""
    return Request(tuple(_message(m) for m in messages), protocol=protocol, **fields)


def _message(message: Mapping[str, Any]) -> ChatMessage:
    calls = tuple(
        ToolCall(c["function"]["name"], c["function"].get("arguments", "{}"), c.get("id", ""))
        for c in message.get("tool_calls") or ()
    )
    return ChatMessage(Role(message["role"]), str(message.get("content") or ""), calls, message.get("tool_call_id"))


def wire(request: Request) -> tuple[list[Message], list[dict[str, Any]] | None]:
    """The request's messages and tools in the OpenAI wire shape (tools None when none are offered)."""
    tools = [tool.wire() for tool in request.tools]
    return [message.wire() for message in request.messages], tools or None
