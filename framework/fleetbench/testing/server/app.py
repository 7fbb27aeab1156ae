"""The HTTP side of `fleetbench serve` (aiohttp): the OpenAI, Azure OpenAI and Azure AI Foundry chat routes, each
request checked (deployment, key, concurrency), then answered after its latency, or with an injected fault.

Routes (the deployment is the URL's `{name}` for Azure OpenAI, the body's `model` otherwise):
- `POST /v1/chat/completions` and `/chat/completions`: OpenAI and OpenAI-compatible clients (`openai/<name>`);
- `POST /openai/deployments/{name}/chat/completions?api-version=...`: Azure OpenAI (`azure/<name>`);
- `POST /models/chat/completions` and `/chat/completions`: Azure AI Foundry (litellm's `azure_ai/<name>` posts to
  `<api_base>/chat/completions`, or `<api_base>/models/chat/completions` on `services.ai.azure.com`).

Which simulated player answers comes from the request's `X-Fleetbench-Protocol` header (the `litellm` provider sends
it, with `X-Fleetbench-Purpose`), else from the deployment's `protocol` setting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections import Counter
from typing import Any

from aiohttp import web

from fleetbench.errors import UserError
from fleetbench.types import Completion, Request

from .config import PROTOCOL_AUTO, Behaviour, Latency, ServeConfig, key_fingerprint
from .log import RequestLog
from .models import SimulatedModels
from .wire import BadRequest, error_body, request_of, response_body

PROTOCOL_HEADER = "X-Fleetbench-Protocol"
PURPOSE_HEADER = "X-Fleetbench-Purpose"
ABSURD_TOKENS = 5_000_000_000
"""The prompt tokens an `absurd_usage` reply claims."""
FAULT_ORDER = ("error_500", "rate_limited", "reset", "hang", "empty", "malformed_json", "truncated", "absurd_usage")


class Served:
    """The state of a running server: deployments, requests in flight per deployment, the fault stream, the log."""

    def __init__(self, config: ServeConfig, log: RequestLog) -> None:
        self.config = config
        self.models = SimulatedModels(config)
        self.log = log
        self.in_flight: Counter[str] = Counter()
        self.random = random.Random(config.seed)

    def fault(self, behaviour: Behaviour) -> str | None:
        draw = self.random.random()
        for name in FAULT_ORDER:
            draw -= getattr(behaviour.faults, name)
            if draw < 0:
                return name
        return None

    def latency_s(self, latency: Latency) -> float:
        mean, spread = latency.mean_s, latency.spread_s
        if latency.distribution == "uniform":
            return max(0.0, self.random.uniform(mean - spread, mean + spread))
        if latency.distribution == "normal":
            return max(0.0, self.random.gauss(mean, spread))
        if latency.distribution == "exponential":
            return self.random.expovariate(1 / mean) if mean > 0 else 0.0
        return mean


def make_app(served: Served) -> web.Application:
    """The aiohttp application serving every route."""
    app = web.Application(client_max_size=64 * 1024**2)
    app["served"] = served

    async def by_path(request: web.Request) -> web.StreamResponse:
        return await handle(served, request, request.match_info["name"], "azure")

    async def by_body(request: web.Request) -> web.StreamResponse:
        return await handle(served, request, None, "openai" if request.path.startswith("/v1/") else "azure_ai")

    app.router.add_post("/openai/deployments/{name}/chat/completions", by_path)
    for path in ("/v1/chat/completions", "/chat/completions", "/models/chat/completions"):
        app.router.add_post(path, by_body)
    return app


def _key(request: web.Request) -> str | None:
    if "api-key" in request.headers:
        return request.headers["api-key"]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def handle(served: Served, request: web.Request, name: str | None, route: str) -> web.StreamResponse:
    """One request: read it, check it, answer it, log it."""
    entry: dict[str, Any] = {"received_at": time.time(), "route": route, "key": key_fingerprint(_key(request))}
    peer = request.transport.get_extra_info("peername") if request.transport else None
    entry["connection"] = f"{peer[0]}:{peer[1]}" if peer else None
    try:
        response = await _answer(served, request, name, entry)
        entry["status"] = None if entry.get("fault") == "reset" else response.status
        return response
    except asyncio.CancelledError:
        entry["status"] = None  # the client went away (it timed out a hung request)
        raise
    finally:
        entry["answered_at"] = time.time()
        served.log.write(entry)


async def _answer(served: Served, request: web.Request, name: str | None, entry: dict[str, Any]) -> web.StreamResponse:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _error(400, "the body is not JSON", "invalid_request_error")
    name = name or (body.get("model") if isinstance(body, dict) else None)
    entry["deployment"] = name
    behaviour = served.config.deployments.get(name) if isinstance(name, str) else None
    if behaviour is None or not isinstance(name, str):
        return _error(404, f"The API deployment for this resource does not exist: {name!r}", "DeploymentNotFound")
    key = _key(request)
    if key is None or behaviour.refuses(key):
        # Echoing the key, as some APIs do, tests that clients keep error texts out of what they store and print.
        return _error(401, f"Access denied: invalid subscription key {key!r} or wrong API endpoint.", "401")
    if behaviour.max_concurrency is not None and served.in_flight[name] >= behaviour.max_concurrency:
        entry["fault"] = "concurrency"
        return _rate_limited(behaviour, entry)
    served.in_flight[name] += 1
    try:
        return await _served(served, request, name, behaviour, body, entry)
    finally:
        served.in_flight[name] -= 1


async def _served(
    served: Served, request: web.Request, name: str, behaviour: Behaviour, body: Any, entry: dict[str, Any]
) -> web.StreamResponse:
    fault = entry["fault"] = served.fault(behaviour)
    if fault == "rate_limited":
        return _rate_limited(behaviour, entry)
    protocol = request.headers.get(PROTOCOL_HEADER) or behaviour.protocol
    entry["protocol"] = protocol
    if protocol == PROTOCOL_AUTO:
        message = f"no {PROTOCOL_HEADER} header and deployment {name!r} sets no protocol (serve config: protocol)"
        return _error(400, message, "invalid_request_error")
    try:
        typed = request_of(body, protocol, request.headers.get(PURPOSE_HEADER, "answer"))
    except BadRequest as exc:
        return _error(400, str(exc), "invalid_request_error")
    await asyncio.sleep(served.latency_s(behaviour.latency))
    if behaviour.context_tokens is not None and _words(typed) > behaviour.context_tokens:
        message = (
            f"This model's maximum context length is {behaviour.context_tokens} tokens. However, your messages "
            f"resulted in {_words(typed)} tokens. Please reduce the length of the messages."
        )
        return _error(400, message, "context_length_exceeded")
    if fault == "hang":
        await asyncio.sleep(behaviour.hang_s)
        return _error(504, "the deployment hung", "timeout")
    if fault == "error_500":
        return _error(500, "The server had an error while processing your request.", "server_error")
    if fault == "reset":
        return _reset(request)
    try:
        completion = await served.models.answer(name, typed)
    except UserError as exc:  # a protocol no installed suite plays: the request's fault, not the server's
        return _error(400, str(exc), "invalid_request_error")
    if fault == "empty":
        completion = Completion(text="", prompt_tokens=completion.prompt_tokens)
    if fault == "absurd_usage":  # a gateway's usage no real request has: more tokens than a 32-bit count holds
        completion = dataclasses.replace(completion, prompt_tokens=ABSURD_TOKENS)
    payload = json.dumps(response_body(completion, name, reasoning_only=behaviour.reasoning_only)).encode()
    if fault == "malformed_json":
        return web.Response(body=payload[: len(payload) // 2] + b"}", content_type="application/json")
    if fault == "truncated":
        return await _truncated(request, payload)
    return web.Response(body=payload, content_type="application/json")


def _words(request: Request) -> int:
    return sum(len(message.content.split()) for message in request.messages)


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response(error_body(message, code), status=status)


def _rate_limited(behaviour: Behaviour, entry: dict[str, Any]) -> web.Response:
    entry["retry_after_s"] = behaviour.retry_after_s
    headers = {"Retry-After": f"{behaviour.retry_after_s:g}", "retry-after-ms": f"{behaviour.retry_after_s * 1000:.0f}"}
    body = error_body("Rate limit is exceeded. Try again later.", "429")
    return web.json_response(body, status=429, headers=headers)


def _reset(request: web.Request) -> web.Response:
    """Drop the connection without an answer (the client sees a reset / disconnect); aiohttp writes nothing on an
    aborted transport, so the response returned here never leaves."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=200)


async def _truncated(request: web.Request, payload: bytes) -> web.StreamResponse:
    """Promise the whole body, send half of it, close the connection."""
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(payload))})
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.close()
    return response
