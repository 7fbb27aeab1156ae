"""The gateway provider against a real local gateway: it passes the provider kit, and sends what the API expects."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from fleetbench.interfaces import Provider
from fleetbench.testing.contracts import ExpectedFailure, ProviderContract
from fleetbench.testing.contracts.provider import run_then_close
from fleetbench.testing.lanes import make_lane
from fleetbench.types import (
    CallStatus,
    ChatMessage,
    GenerationSettings,
    Lane,
    Request,
    Role,
    ToolCall,
    ToolSpec,
)
from fleetbench_example.gateway import GatewayError, GatewayOptions, GatewayProvider, retry_after_s
from fleetbench_example.gateway.wire import MalformedReply, completion_of, request_body
from fleetbench_example.gateway_server import GatewayServer

QUESTION = Request(
    (
        ChatMessage(Role.SYSTEM, "Reply with the city name only."),
        ChatMessage(Role.USER, "What is the capital of Peru?"),
    ),
    protocol="capitals",
)


def gateway_lane(server: GatewayServer, deployment: str, key: str | None = None) -> Lane:
    """A lane on `deployment` of the running gateway, with its key (or `key`)."""
    return make_lane(
        deployment,
        base_model="Gateway-Capitals",
        provider="gateway",
        endpoint=server.url,
        api_key=key or server.api_key,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestGatewayProvider(ProviderContract):
    @pytest.fixture
    def provider(self) -> Provider:
        return GatewayProvider(GatewayOptions())

    @pytest.fixture
    def lane(self, gateway: GatewayServer) -> Lane:
        return gateway_lane(gateway, "gw-answer")

    @pytest.fixture
    def answerable(self) -> Request:
        return QUESTION

    @pytest.fixture
    def failures(self, gateway: GatewayServer) -> Sequence[ExpectedFailure]:
        unreachable = make_lane("gw-answer", provider="gateway", endpoint=f"http://127.0.0.1:{closed_port()}")
        return (
            ExpectedFailure(gateway_lane(gateway, "gw-throttled"), CallStatus.RATE_LIMITED, 0.5, 429),
            ExpectedFailure(gateway_lane(gateway, "gw-down"), CallStatus.TRANSIENT, http_status=503),
            ExpectedFailure(gateway_lane(gateway, "gw-too-long"), CallStatus.CONTEXT_LENGTH, http_status=400),
            ExpectedFailure(gateway_lane(gateway, "gw-no-such-model"), CallStatus.NOT_FOUND, http_status=404),
            ExpectedFailure(gateway_lane(gateway, "gw-answer", key="wrong"), CallStatus.AUTH, http_status=401),
            ExpectedFailure(unreachable, CallStatus.TRANSIENT),
            ExpectedFailure(make_lane("gw-answer", provider="gateway"), CallStatus.PERMANENT),
        )


def test_the_gateway_receives_the_exact_deployment_name_the_key_and_the_generation_settings(
    gateway: GatewayServer,
) -> None:
    provider = GatewayProvider(GatewayOptions())
    request = Request(
        QUESTION.messages,
        tools=(ToolSpec("lookup", "find a city", {"type": "object", "properties": {"q": {"type": "string"}}}),),
        tool_choice="auto",
        protocol="capitals",
        generation=GenerationSettings(temperature=0.2, max_tokens=16, seed=7, stop=("\n",)),
    )
    completion = run_then_close(provider, provider.complete(gateway_lane(gateway, "gw-answer"), request))
    assert completion.text == "Lima"
    assert completion.prompt_tokens == 12 and completion.completion_tokens == 1
    (body,) = gateway.requests
    assert body["model"] == "gw-answer"
    assert body["messages"][1] == {"role": "user", "content": "What is the capital of Peru?"}
    assert (body["temperature"], body["max_tokens"], body["seed"], body["stop"]) == (0.2, 16, 7, ["\n"])
    assert "top_p" not in body, "unset generation settings are left to the gateway"
    assert body["tools"][0]["name"] == "lookup" and body["tool_choice"] == "auto"
    assert gateway.api_key not in str(body)


def test_a_flaky_deployment_fails_then_answers(gateway: GatewayServer) -> None:
    provider = GatewayProvider(GatewayOptions())
    lane = gateway_lane(gateway, "gw-flaky")

    async def twice() -> tuple[BaseException | None, str]:
        try:
            await provider.complete(lane, QUESTION)
        except Exception as exc:  # the first request to a flaky model fails by design
            first: BaseException | None = exc
        else:
            first = None
        return first, (await provider.complete(lane, QUESTION)).text

    first, second = run_then_close(provider, twice())
    assert first is not None and provider.classify(first).status is CallStatus.TRANSIENT
    assert second == "Lima"


def test_tool_calls_in_a_reply_and_in_the_conversation_keep_their_shape() -> None:
    reply = completion_of(
        {"text": "", "tool_calls": [{"id": "c1", "name": "lookup", "arguments": '{"q": "Peru"}'}], "usage": {}}
    )
    assert reply.tool_calls == (ToolCall("lookup", '{"q": "Peru"}', "c1"),)
    conversation = Request(
        (
            ChatMessage(Role.USER, "capital of Peru?"),
            ChatMessage(Role.ASSISTANT, "", reply.tool_calls),
            ChatMessage(Role.TOOL, "Lima", tool_call_id="c1"),
        )
    )
    messages = request_body("gw", conversation)["messages"]
    assert messages[1]["tool_calls"] == [{"id": "c1", "name": "lookup", "arguments": '{"q": "Peru"}'}]
    assert messages[2] == {"role": "tool", "content": "Lima", "tool_call_id": "c1"}


@pytest.mark.parametrize("body", [None, [], {"text": 3}, {"text": "x", "usage": {"prompt_tokens": "many"}}])
def test_a_malformed_reply_is_a_transient_failure_not_a_bug(body: object) -> None:
    with pytest.raises(MalformedReply) as failure:
        completion_of(body)
    assert GatewayProvider(GatewayOptions()).classify(failure.value).status is CallStatus.TRANSIENT


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_s("2.5") == 2.5
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now
    assert retry_after_s("soon") is None and retry_after_s(None) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [({"path": "v1/generate"}, "path: must start with '/'"), ({"connect_timeout_s": 0}, "connect_timeout_s: must be")],
)
def test_bad_options_name_the_field(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GatewayOptions(**options)  # type: ignore[arg-type]


def test_a_request_timeout_is_the_schedulers_and_surfaces_as_timeout_error(gateway: GatewayServer) -> None:
    provider = GatewayProvider(GatewayOptions())

    async def cut_short() -> None:
        async with asyncio.timeout(0):
            await provider.complete(gateway_lane(gateway, "gw-answer"), QUESTION)

    with pytest.raises(TimeoutError) as failure:
        run_then_close(provider, cut_short())
    assert provider.classify(failure.value).status is CallStatus.TIMEOUT


def test_the_reference_gateway_also_runs_as_a_process(tmp_path: Path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"What is the capital of Peru?": "Lima"}))
    command = [sys.executable, "-m", "fleetbench_example.gateway_server", "--api-key", "K", "--answers", str(answers)]
    server = subprocess.Popen([*command, "--model", "gw-a", "--model", "gw-b=down"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        provider = GatewayProvider(GatewayOptions())
        lane = make_lane("gw-a", provider="gateway", endpoint=url, api_key="K")
        assert run_then_close(provider, provider.complete(lane, QUESTION)).text == "Lima"
        down = make_lane("gw-b", provider="gateway", endpoint=url, api_key="K")
        with pytest.raises(GatewayError) as failure:
            run_then_close(provider, provider.complete(down, QUESTION))
        assert provider.classify(failure.value).status is CallStatus.TRANSIENT
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0


def test_the_process_answers_the_capitals_suite_with_capitals_and_refuses_a_missing_answers_file(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-m", "fleetbench_example.gateway_server", "--api-key", "K", "--model", "gw-a"]
    missing = subprocess.run([*command, "--answers", str(tmp_path / "none.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "--answers: cannot read" in missing.stderr.splitlines()[-1]
    assert "Traceback" not in missing.stderr
    server = subprocess.Popen([*command, "--capitals"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lane = make_lane("gw-a", provider="gateway", endpoint=server.stdout.readline().strip(), api_key="K")
        provider = GatewayProvider(GatewayOptions())
        assert run_then_close(provider, provider.complete(lane, QUESTION)).text == "Lima"
    finally:  # how it exits on Ctrl-C is the test above's business
        server.terminate()
        server.wait(timeout=30)
