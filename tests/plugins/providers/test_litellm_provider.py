"""The `litellm` provider against a real `fleetbench serve` process over 127.0.0.1, through real litellm: every route
reaches the exact deployment with the lane's key, replies become completions (reasoning, usage, cost), and every
failure the server can inject is classified precisely, with no key in its detail."""

from __future__ import annotations

import asyncio
import email.utils
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetbench import registry
from fleetbench.testing.requests import request_of
from fleetbench.testing.server.config import key_fingerprint
from fleetbench.testing.server.process import RunningServer, served
from fleetbench.types import CallStatus, Completion, ErrorClass, Lane, Purpose, Request
from fleetbench_plugins.providers.litellm import LitellmProvider
from fleetbench_plugins.providers.litellm.classify import retry_after_s

KEY = "sk-test-6f1d0c2a9b8e7f3d"
ODD_KEY = 'sk-odd"q\\x-5e2'
QUESTION = request_of([{"role": "user", "content": "What is 12 + 30?"}], protocol="jsonl")

FAULTY = {
    "Fail-500": {"faults": {"error_500": 1.0}},
    "Fail-429": {"faults": {"rate_limited": 1.0}, "retry_after_s": 7},
    "Fail-Reset": {"faults": {"reset": 1.0}},
    "Fail-Malformed": {"faults": {"malformed_json": 1.0}},
    "Fail-Truncated": {"faults": {"truncated": 1.0}},
    "Fail-Empty": {"faults": {"empty": 1.0}},
    "Fail-Hang": {"faults": {"hang": 1.0}, "hang_s": 30},
    "Fail-Context": {"context_tokens": 3},
    "Reasoner": {"reasoning_only": True},
    "Busy": {"max_concurrency": 1, "latency": 0.4, "retry_after_s": 2},
    "Guarded": {"reject_keys": [KEY]},
    "Guarded-Odd": {"reject_keys": [ODD_KEY]},
    "Model-Ok": {"model": "Sim-Agent"},
}
ROUTES = ("azure", "azure_ai", "openai")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    config = {"defaults": {"protocol": "jsonl"}, "deployments": FAULTY}
    with served(tmp_path_factory.mktemp("serve"), config) as running:
        yield running


@pytest.fixture(scope="module")
def provider() -> LitellmProvider:
    created: LitellmProvider = registry.load("providers", {"plugin": "litellm"}, "providers.litellm").create()
    return created


def lane(server: RunningServer, route: str, deployment: str, key: str = KEY, **params: Any) -> Lane:
    endpoint = server.url + "/v1" if route == "openai" else server.url
    version = "2024-12-01-preview" if route == "azure" else None
    return Lane(
        lane_id=deployment, base_model=deployment, deployment=deployment, provider="litellm", credential_id="key0",
        max_concurrency=4, route=route, endpoint=endpoint, api_version=version, api_key=key, model_params=params,
    )  # fmt: skip


def complete(provider: LitellmProvider, target: Lane, request: Request = QUESTION) -> Completion:
    return asyncio.run(provider.complete(target, request))


def failure(provider: LitellmProvider, target: Lane, request: Request = QUESTION) -> ErrorClass:
    async def attempt() -> ErrorClass:
        try:
            async with asyncio.timeout(3):
                await provider.complete(target, request)
        except Exception as exc:
            return provider.classify(exc)
        raise AssertionError("the request succeeded")

    verdict = asyncio.run(attempt())
    assert KEY not in verdict.detail
    return verdict


@pytest.mark.parametrize("route", ROUTES)
def test_each_route_reaches_the_exact_deployment_with_the_lanes_key(
    server: RunningServer, provider: LitellmProvider, route: str
) -> None:
    before = len(server.requests())
    reply = complete(provider, lane(server, route, "Model-Ok"))
    assert reply.text.strip() and reply.prompt_tokens > 0 and reply.completion_tokens > 0
    entry = server.requests()[before]
    assert (entry["deployment"], entry["route"], entry["key"], entry["protocol"]) == (
        "Model-Ok", route, key_fingerprint(KEY), "jsonl"
    )  # fmt: skip


def test_the_server_answers_as_the_simulated_model_it_plays(server: RunningServer, provider: LitellmProvider) -> None:
    simulated = registry.load("providers", {"plugin": "simulated"}, "providers.simulated").create()
    local = Lane("Sim-Agent", "Sim-Agent", "Sim-Agent", "simulated", "key0", 1, model_params={"profile": "strong"})
    questions = [f"What is {a} + {a * 7}?" for a in range(1, 9)]
    for question in questions:
        request = request_of([{"role": "user", "content": question}], protocol="jsonl")
        expected = asyncio.run(simulated.complete(local, request)).text
        assert complete(provider, lane(server, "azure_ai", "Model-Ok"), request).text == expected


def test_the_purpose_header_reaches_the_player(server: RunningServer, provider: LitellmProvider) -> None:
    judge = request_of([{"role": "user", "content": "Classify this run."}], protocol="workflow", purpose=Purpose.JUDGE)
    reply = complete(provider, lane(server, "openai", "Model-Ok"), judge)
    assert reply.text.strip()  # the workflow player's judge answers; its agent would have asked for a task


def test_reasoning_content_stands_in_for_an_empty_content(server: RunningServer, provider: LitellmProvider) -> None:
    reply = complete(provider, lane(server, "openai", "Reasoner"))
    assert reply.text == reply.reasoning and reply.text.strip()


def test_cost_comes_from_the_catalogs_prices_or_the_cost_map(server: RunningServer, provider: LitellmProvider) -> None:
    priced = complete(
        provider, lane(server, "azure", "Model-Ok", input_cost_per_token=1e-6, output_cost_per_token=4e-6)
    )
    assert priced.cost_usd == pytest.approx(priced.prompt_tokens * 1e-6 + priced.completion_tokens * 4e-6)
    mapped = complete(provider, lane(server, "azure", "Model-Ok", cost_model="azure/gpt-4o-mini"))
    assert mapped.cost_usd is not None and mapped.cost_usd > 0
    assert complete(provider, lane(server, "azure", "Model-Ok")).cost_usd is None  # an unknown name has no price


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("deployment", "status", "http_status"),
    [
        ("Fail-500", CallStatus.TRANSIENT, 500),
        ("Fail-Reset", CallStatus.TRANSIENT, None),
        ("Fail-Malformed", CallStatus.TRANSIENT, None),
        ("Fail-Truncated", CallStatus.TRANSIENT, None),
        ("Fail-Context", CallStatus.CONTEXT_LENGTH, 400),
        ("No-Such-Deployment", CallStatus.NOT_FOUND, 404),
    ],
)
def test_failures_are_classified(
    server: RunningServer,
    provider: LitellmProvider,
    route: str,
    deployment: str,
    status: CallStatus,
    http_status: int | None,
) -> None:
    verdict = failure(provider, lane(server, route, deployment))
    assert (verdict.status, verdict.http_status) == (status, http_status), verdict.detail


@pytest.mark.parametrize("route", ROUTES)
def test_a_429_carries_its_retry_after(server: RunningServer, provider: LitellmProvider, route: str) -> None:
    verdict = failure(provider, lane(server, route, "Fail-429"))
    assert (verdict.status, verdict.http_status, verdict.retry_after_s) == (CallStatus.RATE_LIMITED, 429, 7.0)


@pytest.mark.parametrize("route", ROUTES)
def test_a_refused_key_is_auth_and_never_appears_in_the_detail(
    server: RunningServer, provider: LitellmProvider, route: str
) -> None:
    verdict = failure(provider, lane(server, route, "Guarded"))
    assert (verdict.status, verdict.http_status) == (CallStatus.AUTH, 401)
    assert complete(provider, lane(server, route, "Guarded", key="another-key")).text  # other keys are served


def test_a_refused_connection_is_unreachable(provider: LitellmProvider, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = Lane(
            "X",
            "X",
            "X",
            "litellm",
            "key0",
            1,
            route="azure_ai",
            endpoint=f"http://127.0.0.1:{probe.getsockname()[1]}",
            api_key=KEY,
        )
        verdict = failure(provider, closed)
    assert (verdict.status, verdict.http_status) == (CallStatus.UNREACHABLE, None)


def test_an_empty_reply_is_returned_for_the_scheduler_to_judge(
    server: RunningServer, provider: LitellmProvider
) -> None:
    reply = complete(provider, lane(server, "azure_ai", "Fail-Empty"))
    assert (reply.text, reply.tool_calls) == ("", ())


def test_a_hung_request_is_cancelled_by_the_callers_timeout(server: RunningServer, provider: LitellmProvider) -> None:
    async def hung() -> None:
        async with asyncio.timeout(0.5):
            await provider.complete(lane(server, "azure_ai", "Fail-Hang"), QUESTION)

    with pytest.raises(TimeoutError) as caught:
        asyncio.run(hung())
    assert provider.classify(caught.value).status is CallStatus.TIMEOUT


def test_beyond_its_concurrency_a_deployment_answers_429(server: RunningServer, provider: LitellmProvider) -> None:
    async def two_at_once() -> list[BaseException | Completion]:
        target = lane(server, "openai", "Busy")
        return await asyncio.gather(*(provider.complete(target, QUESTION) for _ in range(2)), return_exceptions=True)

    results = asyncio.run(two_at_once())
    verdicts = [provider.classify(r) for r in results if isinstance(r, BaseException)]
    assert [(v.status, v.retry_after_s) for v in verdicts] == [(CallStatus.RATE_LIMITED, 2.0)]


@pytest.mark.parametrize("route", ROUTES)
def test_connections_are_reused_across_a_lanes_requests(
    server: RunningServer, provider: LitellmProvider, route: str
) -> None:
    async def one_after_another() -> None:
        for _ in range(12):
            await provider.complete(lane(server, route, "Model-Ok"), QUESTION)

    before = len(server.requests())
    asyncio.run(one_after_another())
    connections = {entry["connection"] for entry in server.requests()[before:]}
    assert len(connections) == 1, connections


def test_retry_after_reads_seconds_milliseconds_and_http_dates() -> None:
    now = 1_800_000_000.0
    assert retry_after_s({"retry-after": "3"}, now) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25
    assert retry_after_s({"retry-after": email.utils.formatdate(now + 42, usegmt=True)}, now) == pytest.approx(42)
    assert retry_after_s({"retry-after": email.utils.formatdate(now - 42, usegmt=True)}, now) == 0.0
    assert retry_after_s({"retry-after": "soon"}, now) is None
    assert retry_after_s({}, now) is None


def test_the_unawaited_coroutine_of_a_cancelled_litellm_request_is_not_printed() -> None:
    """A request cancelled while litellm's `acompletion` runs its synchronous part in a thread leaves the handler's
    coroutine unawaited; Python's warning about it reached the terminal after a stopped worker was continued. Our
    own unawaited coroutines are still reported."""
    code = (
        "import warnings\n"
        "from fleetbench_plugins.providers.litellm import loader\n"
        "loader.litellm()\n"
        "warnings.warn(\"coroutine 'BaseLLMHTTPHandler.async_completion' was never awaited\", RuntimeWarning)\n"
        "warnings.warn(\"coroutine 'OpenAIChatCompletion.acompletion' was never awaited\", RuntimeWarning)\n"
        "warnings.warn(\"coroutine 'LaneChat._send' was never awaited\", RuntimeWarning)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert "completion' was never awaited" not in done.stderr
    assert "coroutine 'LaneChat._send' was never awaited" in done.stderr


@pytest.mark.parametrize("route", ROUTES)
def test_a_key_holding_a_quote_and_a_backslash_never_reaches_the_detail(
    server: RunningServer, provider: LitellmProvider, route: str
) -> None:
    """The server's 401 quotes the refused key inside a JSON body, escaped: `\\"` and `\\\\`. Only the raw key was
    looked for, so the escaped one reached the call row."""
    verdict = failure(provider, lane(server, route, "Guarded-Odd", key=ODD_KEY))
    assert (verdict.status, verdict.http_status) == (CallStatus.AUTH, 401)
    assert "sk-odd" not in verdict.detail and "***" in verdict.detail


@pytest.mark.parametrize("key", ["sk-bad\r", "sk-ünï€-key"], ids=["control-character", "non-ascii"])
@pytest.mark.parametrize("route", ROUTES)
def test_a_key_that_cannot_go_into_a_header_stops_the_lane_as_a_refused_key_does(
    server: RunningServer, provider: LitellmProvider, route: str, key: str
) -> None:
    """Such a key fails the request before it is sent. It was classified transient: every lane was parked and
    probed again for ever, and the summary blamed the endpoint."""
    before = len(server.requests())

    async def attempt() -> ErrorClass:
        try:
            await provider.complete(lane(server, route, "Model-Ok", key=key), QUESTION)
        except Exception as exc:
            return provider.classify(exc)
        raise AssertionError("the request succeeded")

    verdict = asyncio.run(attempt())
    assert verdict.status is CallStatus.AUTH and verdict.http_status is None
    assert verdict.detail.startswith("the request's headers cannot be sent (the API key holds")
    assert "sk-bad" not in verdict.detail and "sk-ü" not in verdict.detail
    assert len(server.requests()) == before, "nothing reached the server"
