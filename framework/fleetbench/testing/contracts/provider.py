"""The provider kit: what every `Provider` must do, as tests an author inherits.

Subclass `ProviderContract` in a test module (the name must start with `Test`) and define the `provider` fixture;
define `lane` when the provider needs somewhere real to talk to (a local test server), `answerable` when it needs a
particular request, and `failures` to prove that each kind of failure it can meet is classified as it should be::

    class TestGatewayProvider(ProviderContract):
        @pytest.fixture
        def provider(self) -> Provider:
            return GatewayProvider(GatewayOptions())

        @pytest.fixture
        def lane(self, gateway_url: str) -> Lane:
            return make_lane("gw-model", provider="gateway", endpoint=gateway_url, api_key="k")
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import pytest

from fleetbench.contracts import contract_problem
from fleetbench.interfaces import Provider
from fleetbench.schedule import PROGRAMMING_ERRORS
from fleetbench.testing.lanes import make_lane
from fleetbench.types import CallStatus, ChatMessage, Completion, ErrorClass, Lane, Request, Role, ToolCall

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ExpectedFailure:
    """A lane on which `complete` fails, and the verdict `classify` must give for the exception it raises.

    `retry_after_s` and `http_status`, when given, must be in the verdict too (a 429's Retry-After, an HTTP code).
    """

    lane: Lane
    status: CallStatus
    retry_after_s: float | None = None
    http_status: int | None = None


def run_then_close(provider: Provider, work: Awaitable[T]) -> T:
    """Await `work` in a fresh event loop, then close the provider in that same loop (clients bind to their loop)."""

    async def main() -> T:
        try:
            return await work
        finally:
            await provider.aclose()

    return asyncio.run(main())


class ProviderContract:
    """Inherited tests proving a provider answers requests and classifies what goes wrong."""

    @pytest.fixture
    def provider(self) -> Provider:
        """The provider under test, constructed with its options. Override this."""
        raise NotImplementedError("define the `provider` fixture in your ProviderContract subclass")

    @pytest.fixture
    def lane(self) -> Lane:
        """A lane the provider answers on. Override it to point at your test server."""
        return make_lane()

    @pytest.fixture
    def answerable(self) -> Request:
        """A request the provider answers on `lane` (override for a protocol its model needs)."""
        return Request((ChatMessage(Role.SYSTEM, "Answer briefly."), ChatMessage(Role.USER, "What is 2 + 3?")))

    @pytest.fixture
    def failures(self) -> Sequence[ExpectedFailure]:
        """Lanes on which a request fails, each with the verdict expected. Override it: every status your API can
        produce (rate limits with Retry-After, auth, unknown deployment, server errors) should be here."""
        return ()

    def test_passes_the_load_time_contract_check(self, provider: Provider) -> None:
        assert contract_problem(Provider, type(provider)) is None

    def test_answers_a_request(self, provider: Provider, lane: Lane, answerable: Request) -> None:
        completion = run_then_close(provider, provider.complete(lane, answerable))
        _check_completion(completion)

    def test_answers_concurrent_requests_on_one_lane(self, provider: Provider, lane: Lane, answerable: Request) -> None:
        async def burst() -> list[Completion]:
            return list(await asyncio.gather(*(provider.complete(lane, answerable) for _ in range(5))))

        for completion in run_then_close(provider, burst()):
            _check_completion(completion)

    def test_classifies_each_provoked_failure(
        self, provider: Provider, answerable: Request, failures: Sequence[ExpectedFailure]
    ) -> None:
        if not failures:
            pytest.skip("no `failures` fixture: define it to prove how this provider's failures are classified")
        for expected in failures:
            exc = run_then_close(provider, _failure(provider, expected.lane, answerable))
            assert not isinstance(exc, PROGRAMMING_ERRORS), (
                f"{type(exc).__name__} on lane {expected.lane.lane_id} would be taken for a bug and stop the run"
            )
            verdict = provider.classify(exc)
            _check_verdict(verdict)
            assert verdict.status is expected.status, f"lane {expected.lane.lane_id}: {verdict}"
            if expected.retry_after_s is not None:
                assert verdict.retry_after_s == pytest.approx(expected.retry_after_s)
            if expected.http_status is not None:
                assert verdict.http_status == expected.http_status

    def test_classify_gives_a_valid_verdict_for_any_exception(self, provider: Provider) -> None:
        for exc in (TimeoutError(), ConnectionResetError("reset"), RuntimeError("odd"), ValueError("bad"), OSError()):
            _check_verdict(provider.classify(exc))

    def test_aclose_can_be_repeated(self, provider: Provider, lane: Lane, answerable: Request) -> None:
        async def use_and_close_twice() -> None:
            await provider.complete(lane, answerable)
            await provider.aclose()

        run_then_close(provider, use_and_close_twice())


async def _failure(provider: Provider, lane: Lane, request: Request) -> BaseException:
    try:
        completion = await provider.complete(lane, request)
    except Exception as exc:  # the exception is the result under test
        return exc
    raise AssertionError(f"lane {lane.lane_id} was expected to fail but answered {completion.text!r}")


def _check_completion(completion: Any) -> None:
    assert isinstance(completion, Completion), f"complete() returned {type(completion).__name__}, not a Completion"
    assert isinstance(completion.text, str)
    assert completion.text.strip() or completion.tool_calls, "an answer needs text or tool calls"
    assert isinstance(completion.tool_calls, tuple)
    assert all(isinstance(call, ToolCall) for call in completion.tool_calls)
    for tokens in (completion.prompt_tokens, completion.completion_tokens):
        assert isinstance(tokens, int) and tokens >= 0


def _check_verdict(verdict: Any) -> None:
    assert isinstance(verdict, ErrorClass), f"classify() returned {type(verdict).__name__}, not an ErrorClass"
    assert isinstance(verdict.status, CallStatus)
    assert verdict.status is not CallStatus.OK, "an exception is never an OK call"
    if verdict.retry_after_s is not None:
        assert math.isfinite(verdict.retry_after_s) and verdict.retry_after_s >= 0
    if verdict.http_status is not None:
        assert 100 <= verdict.http_status <= 599
    assert isinstance(verdict.detail, str)
