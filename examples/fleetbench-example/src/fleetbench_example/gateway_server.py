"""A tiny reference gateway (the API the `gateway` provider speaks), for tests and demos: real HTTP on 127.0.0.1.

Each model it serves has a behaviour:

- `answer`: replies with the answer to the last user message from its answers table, else "I do not know.";
- `flaky`: the first request of each conversation fails with 503, the same request again is answered;
- `throttled`: every request gets 429 with `Retry-After` (`retry_after_s`);
- `down`: every request gets 503;
- `too_long`: every request gets 400 `context_length_exceeded`.

Requests for any other model get 404, with a wrong key 401, with a malformed body 400. Every request received is
recorded (`GatewayServer.requests`, without the key). Run it as a process::

    python -m fleetbench_example.gateway_server --api-key K --capitals --model gw-capitals

(`--capitals` answers every question of this package's capitals suite right; `--answers FILE` takes a JSON object
question -> answer instead),
it prints its URL on the first line; or in a test with `running_gateway(...)`, which serves from a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

BEHAVIOURS = ("answer", "flaky", "throttled", "down", "too_long")
UNKNOWN_ANSWER = "I do not know."


@dataclasses.dataclass
class GatewayServer:
    """What a running gateway serves, and what it has received."""

    api_key: str
    models: Mapping[str, str]
    answers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    retry_after_s: float = 1.0
    url: str = ""
    requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    _failed_once: set[str] = dataclasses.field(default_factory=set, init=False, repr=False)

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_post("/v1/generate", self._generate)
        return application

    async def _generate(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_api_key", "the API key is missing or wrong")
        try:
            body = await request.json()
            model, messages = str(body["model"]), list(body["messages"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "bad_request", "the body needs `model` and `messages`")
        self.requests.append(body)
        if model not in self.models:
            return _error(404, "model_not_found", f"no model {model!r} here")
        return self._reply(model, self.models[model], messages)

    def _reply(self, model: str, behaviour: str, messages: list[Any]) -> web.Response:
        if behaviour == "flaky":
            # Per conversation, not per count: concurrent requests cannot make one conversation fail twice.
            conversation = json.dumps([model, messages], sort_keys=True)
            if conversation not in self._failed_once:
                self._failed_once.add(conversation)
                return _error(503, "unavailable", "the model is not available right now")
        if behaviour == "throttled":
            headers = {"Retry-After": f"{self.retry_after_s:g}"}
            return _error(429, "rate_limited", "slow down", headers)
        if behaviour == "down":
            return _error(503, "unavailable", "the model is not available right now")
        if behaviour == "too_long":
            return _error(400, "context_length_exceeded", "the conversation is too long for this model")
        question = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
        text = self.answers.get(question.strip(), UNKNOWN_ANSWER)
        usage = {"prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in messages),
                 "completion_tokens": len(text.split())}  # fmt: skip
        return web.json_response({"text": text, "tool_calls": [], "usage": usage, "finish_reason": "stop"})


def _error(status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"error": {"type": error_type, "message": message}}
    return web.json_response(body, status=status, headers=dict(headers or {}))


@contextlib.contextmanager
def running_gateway(server: GatewayServer) -> Iterator[GatewayServer]:
    """Serve `server` on 127.0.0.1 (a free port) from a background thread; `server.url` is set while it runs."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(server.app(), access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        server.url = f"http://127.0.0.1:{port}"
        started.set()

    thread = threading.Thread(target=loop.run_forever, name="gateway", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    started.wait(timeout=30)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def _model(spec: str) -> tuple[str, str]:
    name, _, behaviour = spec.partition("=")
    if behaviour and behaviour not in BEHAVIOURS:
        raise argparse.ArgumentTypeError(f"{spec!r}: behaviour must be one of {', '.join(BEHAVIOURS)}")
    return name, behaviour or "answer"


def capital_answers() -> dict[str, str]:
    """Every question of the capitals suite (every prompt style) with its right answer: a model that knows them all."""
    from fleetbench_example.capitals import PROMPT_STYLES
    from fleetbench_example.capitals.data import countries

    return {style.format(country=c.country): c.capital for style in PROMPT_STYLES.values() for c in countries()}


def _answers_file(parser: argparse.ArgumentParser, path: Path) -> dict[str, str]:
    try:
        answers = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        parser.error(f"--answers: cannot read {str(path)!r}: {exc.strerror}")
    except ValueError as exc:
        parser.error(f"--answers: {path} is not JSON: {exc}")
    if not isinstance(answers, dict) or not all(isinstance(v, str) for v in answers.values()):
        parser.error(f"--answers: {path} must hold a JSON object of question -> answer strings")
    return answers


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; the first line on stdout is the gateway's URL."""
    parser = argparse.ArgumentParser(description="A tiny reference gateway for the fleetbench-example provider.")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", action="append", type=_model, required=True, help="NAME or NAME=BEHAVIOUR")
    table = parser.add_mutually_exclusive_group()
    table.add_argument("--answers", type=Path, help="a JSON file holding an object: question -> answer")
    table.add_argument("--capitals", action="store_true", help="answer the capitals suite's questions right")
    parser.add_argument("--retry-after", type=float, default=1.0)
    args = parser.parse_args(argv)
    answers = capital_answers() if args.capitals else _answers_file(parser, args.answers) if args.answers else {}
    server = GatewayServer(args.api_key, dict(args.model), answers, args.retry_after)
    with running_gateway(server):
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
