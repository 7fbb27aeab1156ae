"""What one litellm call sends (built from a lane and a typed request) and what its reply becomes (a `Completion`)."""

from __future__ import annotations

from typing import Any

from fleetbench.types import Completion, GenerationSettings, Lane, Request, ToolCall

PROTOCOL_HEADER = "X-Fleetbench-Protocol"
PURPOSE_HEADER = "X-Fleetbench-Purpose"


def model_string(lane: Lane) -> str:
    """litellm's model string: `<route>/<exact deployment name>` (case kept), or the bare deployment name when the
    catalog names no route (litellm then infers the provider from the name)."""
    return f"{lane.route}/{lane.deployment}" if lane.route else lane.deployment


def call_arguments(lane: Lane, request: Request, *, protocol_headers: bool, drop_params: bool) -> dict[str, Any]:
    """Keyword arguments of `litellm.acompletion` for one request on one lane: the lane's own endpoint, API version
    and key, the conversation and tools in the OpenAI wire shape, and only the generation settings that are set.
    litellm's retries are off (`num_retries`, and `max_retries` of the OpenAI client): the scheduler owns retries."""
    arguments: dict[str, Any] = {
        "model": model_string(lane),
        "messages": [message.wire() for message in request.messages],
        "num_retries": 0,
        "max_retries": 0,
    }
    optional = {"api_base": lane.endpoint, "api_version": lane.api_version, "api_key": lane.api_key}
    arguments.update({name: value for name, value in optional.items() if value})
    if request.tools:
        arguments["tools"] = [tool.wire() for tool in request.tools]
    if request.tool_choice is not None:
        arguments["tool_choice"] = _tool_choice(request.tool_choice)
    arguments.update(generation_arguments(request.generation))
    arguments.update(pricing(lane))
    if drop_params:
        arguments["drop_params"] = True
    if protocol_headers and request.protocol:
        arguments["headers"] = {PROTOCOL_HEADER: request.protocol, PURPOSE_HEADER: request.purpose.value}
    return arguments


def pricing(lane: Lane) -> dict[str, Any]:
    """How litellm prices the call (its `response_cost`): the catalog's per-token prices when the model declares
    any; else the cost map's entry `cost_model`, or the base model under its route, so a deployment `X-2`, unknown to
    the cost map, costs what `X` costs."""
    params = lane.model_params
    prompt_price, completion_price = params.get("input_cost_per_token"), params.get("output_cost_per_token")
    if prompt_price is not None or completion_price is not None:
        return {"input_cost_per_token": prompt_price or 0.0, "output_cost_per_token": completion_price or 0.0}
    base = f"{lane.route}/{lane.base_model}" if lane.route else lane.base_model
    return {"base_model": params.get("cost_model") or base}


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def generation_arguments(generation: GenerationSettings) -> dict[str, Any]:
    """The generation settings that are set (None and an empty `stop` leave the API's default: nothing is sent)."""
    values: dict[str, Any] = {
        "temperature": generation.temperature,
        "top_p": generation.top_p,
        "max_tokens": generation.max_tokens,
        "seed": generation.seed,
        "reasoning_effort": generation.reasoning_effort,
        "stop": list(generation.stop) or None,
    }
    return {name: value for name, value in values.items() if value is not None}


class MalformedReply(ValueError):
    """A reply that parsed as JSON but is not a chat completion (no choices): the endpoint misbehaved."""


def completion_of(response: Any, cost_usd: float | None) -> Completion:
    """A litellm `ModelResponse` as a `Completion`. The reasoning text stands in for the content when the content
    is empty (reasoning models served through some gateways answer only there)."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise MalformedReply("the reply holds no choices")
    choice = choices[0]
    message = choice.message
    content = message.content if isinstance(message.content, str) else ""
    reasoning = getattr(message, "reasoning_content", None)
    reasoning = reasoning if isinstance(reasoning, str) and reasoning else None
    text = content if content.strip() or reasoning is None else reasoning
    usage = getattr(response, "usage", None)
    return Completion(
        text=text,
        tool_calls=tuple(_tool_call(call) for call in message.tool_calls or ()),
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        finish_reason=choice.finish_reason,
        reasoning=reasoning,
        cost_usd=cost_usd,
    )


def _tool_call(call: Any) -> ToolCall:
    function = call.function
    return ToolCall(name=str(function.name or ""), arguments=function.arguments or "{}", call_id=str(call.id or ""))
