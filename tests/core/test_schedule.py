"""Retries, Retry-After, timeouts and infra outcomes, against the real simulated provider with injected faults."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import InfraFailure
from fleetbench.interfaces import Provider
from fleetbench.lanes import LaneState, TokenBucket
from fleetbench.schedule import Executor, LaneChat, run_unit
from fleetbench.testing.requests import request_of
from fleetbench.testing.units import make_unit
from fleetbench.types import (
    CallStatus,
    Cell,
    Completion,
    DeploymentSpec,
    ErrorClass,
    Lane,
    ModelSpec,
    Outcome,
    Request,
)
from fleetbench_plugins.providers.simulated import SimulatedOptions, SimulatedProvider
from fleetbench_plugins.suites.jsonl import JsonlOptions, JsonlSuite

MESSAGES = request_of([{"role": "user", "content": "What is 2 + 3? Answer with the number only."}], protocol="jsonl")


def _lane(**params: float) -> Lane:
    deployment = {
        "latency_ms": 0.0,
        "jitter_ms": 0.0,
        "transient_error_rate": 0.0,
        "rate_limit_rate": 0.0,
        "retry_after_s": 0.01,
        **params,
    }
    return Lane(
        "Sim-Agent-2",
        "Sim-Agent",
        "Sim-Agent-2",
        "simulated",
        "key0",
        4,
        params=deployment,
        model_params={"profile": "strong", "qa_accuracy": 1.0},
    )


def _chat(lane: Lane, provider: Provider | None = None, **conf: Any) -> LaneChat:
    settings = SchedulerConf(backoff_base_s=0.001, backoff_max_s=0.01, **conf)
    return LaneChat(
        LaneState.of(lane), provider or SimulatedProvider(SimulatedOptions(seed=3)), settings, "k" * 32, "r"
    )


def test_transient_failures_are_retried_and_every_attempt_is_recorded() -> None:
    chat = _chat(_lane(transient_error_rate=0.6), max_attempts=50)
    completion = asyncio.run(chat(MESSAGES))
    assert completion.text == "5"
    statuses = [call.status for call in chat.calls]
    assert statuses[-1] is CallStatus.OK
    assert CallStatus.TRANSIENT in statuses
    assert [call.attempt for call in chat.calls] == list(range(1, len(chat.calls) + 1))
    assert all(call.deployment == "Sim-Agent-2" and call.credential_id == "key0" for call in chat.calls)


def test_rate_limits_pause_the_lane_for_retry_after_and_exhaust_into_an_infra_failure() -> None:
    chat = _chat(_lane(rate_limit_rate=1.0, retry_after_s=0.02), max_rate_limited=3)
    before = time.monotonic()
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(MESSAGES))
    assert failure.value.status == "rate_limit_exhausted"
    assert [call.status for call in chat.calls] == [CallStatus.RATE_LIMITED] * 3
    assert all(call.http_status == 429 for call in chat.calls)
    # Two pauses of Retry-After were waited out between the three attempts.
    assert chat.state.paused_until > before + 0.02


def test_a_request_timeout_is_an_infra_failure_and_is_not_retried() -> None:
    chat = _chat(_lane(latency_ms=2000), request_timeout_s=0.02, max_attempts=5)
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(MESSAGES))
    assert failure.value.status == "request_timeout"
    assert [call.status for call in chat.calls] == [CallStatus.TIMEOUT]


class RaisingProvider(Provider):
    """Stands in for an external API (or a buggy provider) that raises on every request."""

    def __init__(self, error: Exception, status: CallStatus) -> None:
        super().__init__(None)
        self.error, self.status = error, status

    async def complete(self, lane: Lane, request: Request) -> Completion:
        raise self.error

    def classify(self, exc: BaseException) -> ErrorClass:
        return ErrorClass(self.status, http_status=401 if self.status is CallStatus.AUTH else None, detail=str(exc))


def test_auth_failures_stop_at_once() -> None:
    chat = _chat(_lane(), RaisingProvider(PermissionError("401 invalid api key"), CallStatus.AUTH), max_attempts=5)
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(MESSAGES))
    assert failure.value.status == "auth"
    assert len(chat.calls) == 1


def test_an_episode_over_its_timeout_is_recorded_as_not_done() -> None:
    suite = JsonlSuite(JsonlOptions())
    model = ModelSpec("Sim-Agent", "simulated", (DeploymentSpec("Sim-Agent-2"),))
    executor = Executor(
        suite, model, SimulatedProvider(SimulatedOptions()), SchedulerConf(episode_timeout_s=0.02), "run"
    )
    unit = make_unit("a" * 32, Cell("jsonl", "Sim-Agent", (("category", "arithmetic"),)))
    result, _ = asyncio.run(run_unit(executor, LaneState.of(_lane(latency_ms=2000)), unit))
    assert result.episode.outcome is Outcome.INFRA_ERROR
    assert result.episode.infra_status == "episode_timeout"
    assert result.deployment == "Sim-Agent-2"


def test_token_bucket_spaces_requests_beyond_the_burst() -> None:
    async def stamps() -> list[float]:
        bucket = TokenBucket(rpm=1200)  # 20 per second, burst of 20
        times = []
        for _ in range(24):
            await bucket.acquire()
            times.append(time.monotonic())
        return times

    times = asyncio.run(stamps())
    assert times[19] - times[0] < times[23] - times[19]  # the burst is immediate; the next four wait for refills


def test_a_bug_in_a_provider_propagates_instead_of_becoming_an_infra_outcome() -> None:
    chat = _chat(_lane(), RaisingProvider(AttributeError("no attribute 'text'"), CallStatus.PERMANENT))
    with pytest.raises(AttributeError):
        asyncio.run(chat(MESSAGES))


class CountingProvider(Provider):
    """Stands in for an API and records how many requests were in flight at once."""

    def __init__(self) -> None:
        super().__init__(None)
        self.in_flight = self.peak = 0

    async def complete(self, lane: Lane, request: Request) -> Completion:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.005)
        self.in_flight -= 1
        return Completion("ok")

    def classify(self, exc: BaseException) -> ErrorClass:
        return ErrorClass(CallStatus.PERMANENT, detail=str(exc))


def test_every_chat_on_a_lane_shares_its_max_concurrency() -> None:
    """A worker's chats and a judge's chats on the same lane together stay within the lane's slots."""
    provider = CountingProvider()
    state = LaneState.of(dataclasses.replace(_lane(), max_concurrency=2))

    async def burst() -> None:
        chats = [LaneChat(state, provider, SchedulerConf(), f"{i:032x}", "r") for i in range(8)]
        await asyncio.gather(*(chat(MESSAGES) for chat in chats for _ in range(3)))

    asyncio.run(burst())
    assert provider.peak == 2
