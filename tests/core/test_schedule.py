"""Retries, Retry-After, timeouts and infra outcomes, against a scripted provider (`fleetbench.testing.fakes`: a
real provider whose replies and failures follow a script)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import InfraFailure
from fleetbench.interfaces import Dispatch, Provider
from fleetbench.lanes import LaneState, TokenBucket
from fleetbench.schedule import Executor, LaneChat, run_unit
from fleetbench.testing.fakes import Fault, ScriptedProvider, TinyOptions, TinySuite
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.requests import request_of
from fleetbench.testing.units import make_unit
from fleetbench.types import (
    CallStatus,
    Cell,
    DeploymentSpec,
    Lane,
    ModelSpec,
    Outcome,
)
from fleetbench.workers import worker_counts

MESSAGES = request_of([{"role": "user", "content": "What is 2 + 3? Answer with the number only."}], protocol="tiny")
TRANSIENT = Fault(CallStatus.TRANSIENT, http_status=503)


def _lane() -> Lane:
    return make_lane("Sim-Agent-2", base_model="Sim-Agent", provider="scripted")


def _chat(lane: Lane, provider: Provider | None = None, **conf: Any) -> LaneChat:
    settings = SchedulerConf(backoff_base_s=0.001, backoff_max_s=0.01, **conf)
    return LaneChat(LaneState.of(lane), provider or ScriptedProvider(answer=lambda _: "5"), settings, "k" * 32, "r")


def test_transient_failures_are_retried_and_every_attempt_is_recorded() -> None:
    chat = _chat(_lane(), ScriptedProvider(script=[TRANSIENT, TRANSIENT, TRANSIENT, "5"]), max_attempts=50)
    completion = asyncio.run(chat(MESSAGES))
    assert completion.text == "5"
    statuses = [call.status for call in chat.calls]
    assert statuses == [CallStatus.TRANSIENT] * 3 + [CallStatus.OK]
    assert [call.http_status for call in chat.calls] == [503, 503, 503, None]
    assert [call.attempt for call in chat.calls] == list(range(1, len(chat.calls) + 1))
    assert all(call.deployment == "Sim-Agent-2" and call.credential_id == "key0" for call in chat.calls)


def test_rate_limits_pause_the_lane_for_retry_after_and_exhaust_into_an_infra_failure() -> None:
    throttled = ScriptedProvider(failing={"Sim-Agent-2": Fault(CallStatus.RATE_LIMITED, 0.02, 429)})
    chat = _chat(_lane(), throttled, max_rate_limited=3)
    before = time.monotonic()
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(MESSAGES))
    assert failure.value.status == "rate_limit_exhausted"
    assert [call.status for call in chat.calls] == [CallStatus.RATE_LIMITED] * 3
    assert all(call.http_status == 429 for call in chat.calls)
    # Two pauses of Retry-After were waited out between the three attempts.
    assert chat.state.paused_until > before + 0.02


def test_a_request_timeout_is_an_infra_failure_and_is_not_retried() -> None:
    chat = _chat(_lane(), ScriptedProvider(latency_s=2.0), request_timeout_s=0.02, max_attempts=5)
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(MESSAGES))
    assert failure.value.status == "request_timeout"
    assert [call.status for call in chat.calls] == [CallStatus.TIMEOUT]


def test_auth_failures_stop_at_once() -> None:
    locked = ScriptedProvider(failing={"Sim-Agent-2": Fault(CallStatus.AUTH, http_status=401)})
    chat = _chat(_lane(), locked, max_attempts=5)
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(MESSAGES))
    assert failure.value.status == "auth"
    assert len(chat.calls) == 1
    assert chat.calls[0].http_status == 401


def test_an_episode_over_its_timeout_is_recorded_as_not_done() -> None:
    suite = TinySuite(TinyOptions())
    model = ModelSpec("Sim-Agent", "scripted", (DeploymentSpec("Sim-Agent-2"),))
    executor = Executor(suite, model, ScriptedProvider(latency_s=2.0), SchedulerConf(episode_timeout_s=0.02), "run")
    unit = make_unit("a" * 32, Cell("tiny", "Sim-Agent", (("word", "alpha"),)))
    result, _ = asyncio.run(run_unit(executor, LaneState.of(_lane()), unit))
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
    chat = _chat(_lane(), ScriptedProvider(script=[AttributeError("no attribute 'text'")]))
    with pytest.raises(AttributeError):
        asyncio.run(chat(MESSAGES))


def test_every_chat_on_a_lane_shares_its_max_concurrency() -> None:
    """A worker's chats and a judge's chats on the same lane together stay within the lane's slots."""
    provider = ScriptedProvider(latency_s=0.005)
    state = LaneState.of(dataclasses.replace(_lane(), max_concurrency=2))

    async def burst() -> None:
        chats = [LaneChat(state, provider, SchedulerConf(), f"{i:032x}", "r") for i in range(8)]
        await asyncio.gather(*(chat(MESSAGES) for chat in chats for _ in range(3)))

    asyncio.run(burst())
    assert provider.peak_in_flight == 2
    assert len(provider.requests) == 24


class _Quota(Dispatch):
    """A dispatch with fixed per-lane quotas (or none: a shared queue)."""

    def __init__(self, quotas: dict[str, int | None]) -> None:
        self._quotas = quotas

    def next_unit(self, lane_id: str) -> None:
        return None

    def planned(self, lane_id: str) -> int | None:
        return self._quotas[lane_id]


def _states(*concurrency: int) -> list[LaneState]:
    return [
        LaneState.of(dataclasses.replace(_lane(), lane_id=f"L{i}", max_concurrency=c))
        for i, c in enumerate(concurrency)
    ]


def test_workers_never_outnumber_the_units() -> None:
    states = _states(8, 8, 8)
    shared = _Quota({"L0": None, "L1": None, "L2": None})
    assert worker_counts(states, shared, 5) == [2, 2, 1]  # round robin: every lane gets work first
    assert worker_counts(states, shared, 1000) == [8, 8, 8]  # capped by max_concurrency
    assert worker_counts(states, shared, 0) == [0, 0, 0]
    static = _Quota({"L0": 1, "L1": 0, "L2": 30})
    assert worker_counts(states, static, 31) == [1, 0, 8]  # never more workers than a lane's quota
    assert sum(worker_counts(_states(10_000), _Quota({"L0": None}), 3)) == 3
