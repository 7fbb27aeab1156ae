"""The gateway's wire format: a `Request` as the JSON body of `POST /v1/generate`, and the JSON reply as a `Completion`.

Request body::

    {"model": "<deployment name>",
     "messages": [{"role": "system|user|assistant|tool", "content": "...",
                   "tool_calls": [{"id": "...", "name": "...", "arguments": "<JSON text>"}], "tool_call_id": "..."}],
     "tools": [{"name": "...", "description": "...", "parameters": {<JSON Schema>}}],
     "tool_choice": "auto|none|required|<tool name>",
     "temperature": 0.2, "top_p": 1.0, "max_tokens": 256, "seed": 7, "stop": ["..."]}

Only `model` and `messages` are required; absent generation settings mean the gateway's defaults.

Reply (200)::

    {"text": "...", "tool_calls": [{"id": "...", "name": "...", "arguments": "..."}],
     "usage": {"prompt_tokens": 12, "completion_tokens": 3}, "finish_reason": "stop"}

Errors carry `{"error": {"type": "...", "message": "..."}}` with their HTTP status; a 429 has a `Retry-After` header.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fleetbench.types import ChatMessage, Completion, Request, ToolCall

GENERATION_FIELDS = ("temperature", "top_p", "max_tokens", "seed")


class MalformedReply(ValueError):
    """The gateway answered 200 with a body that is not a reply (classified as transient: gateways glitch)."""


def request_body(deployment: str, request: Request) -> dict[str, Any]:
    """The JSON body for one request to `deployment` (called by its exact name)."""
    body: dict[str, Any] = {"model": deployment, "messages": [_message(m) for m in request.messages]}
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)} for t in request.tools
        ]
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    settings = dataclasses.asdict(request.generation)
    body.update({name: settings[name] for name in GENERATION_FIELDS if settings[name] is not None})
    if request.generation.stop:
        body["stop"] = list(request.generation.stop)
    return body


def _message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [{"id": c.call_id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def completion_of(payload: Any) -> Completion:
    """The `Completion` in a 200 reply; `MalformedReply` when the body is not one."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("text", ""), str):
        raise MalformedReply(f"reply is not a gateway completion: {str(payload)[:200]!r}")
    usage = payload.get("usage") or {}
    try:
        calls = tuple(
            ToolCall(str(call["name"]), str(call.get("arguments", "{}")), str(call.get("id", "")))
            for call in payload.get("tool_calls") or ()
        )
        return Completion(
            text=payload.get("text") or "",
            tool_calls=calls,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=payload.get("finish_reason"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedReply(f"reply is not a gateway completion: {exc}") from None


def error_of(payload: Any) -> tuple[str, str]:
    """The (type, message) of an error body; empty strings when the body says nothing."""
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(error, Mapping):
        return "", ""
    return str(error.get("type", "")), str(error.get("message", ""))
