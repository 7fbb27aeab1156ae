"""The OpenAI chat-completions wire format, both ways: a request body as a typed `Request`, a `Completion` as a
response body."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from fleetbench.types import ChatMessage, Completion, GenerationSettings, Purpose, Request, Role, ToolCall, ToolSpec


class BadRequest(ValueError):
    """A request body the server cannot read (answered 400 with this message)."""


def request_of(body: Any, protocol: str, purpose: str) -> Request:
    """A typed request from a chat-completions body."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise BadRequest("the body must be a JSON object with a `messages` list")
    try:
        messages = tuple(_message(m) for m in body["messages"])
        tools = tuple(_tool(t) for t in body.get("tools") or ())
        return Request(
            messages=messages,
            tools=tools,
            tool_choice=_tool_choice(body.get("tool_choice")),
            purpose=Purpose(purpose),
            protocol=protocol,
            generation=_generation(body),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"unreadable request: {exc}") from None


def _message(data: Mapping[str, Any]) -> ChatMessage:
    content = data.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    calls = tuple(
        ToolCall(name=c["function"]["name"], arguments=c["function"].get("arguments") or "{}", call_id=c.get("id", ""))
        for c in data.get("tool_calls") or ()
    )
    return ChatMessage(Role(data["role"]), content or "", calls, data.get("tool_call_id"))


def _tool(data: Mapping[str, Any]) -> ToolSpec:
    function = data["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return ToolSpec(function["name"], function.get("description", ""), parameters)


def _tool_choice(choice: Any) -> str | None:
    if isinstance(choice, dict):
        return str(choice["function"]["name"])
    return None if choice is None else str(choice)


def _generation(body: Mapping[str, Any]) -> GenerationSettings:
    stop = body.get("stop") or ()
    return GenerationSettings(
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=body.get("max_tokens"),
        seed=body.get("seed"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        reasoning_effort=body.get("reasoning_effort"),
    )


def response_body(completion: Completion, model: str, *, reasoning_only: bool = False) -> dict[str, Any]:
    """A chat-completions response carrying `completion` (its text as `reasoning_content`, with an empty content,
    when `reasoning_only`)."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    if reasoning_only:
        message.update(content="", reasoning_content=completion.text)
    if completion.tool_calls:
        message["tool_calls"] = [call.wire() for call in completion.tool_calls]
    finish = completion.finish_reason or ("tool_calls" if completion.tool_calls else "stop")
    prompt, answer = completion.prompt_tokens, completion.completion_tokens
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer},
    }


def error_body(message: str, code: str) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": code, "code": code}}
