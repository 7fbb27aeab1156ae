"""The simulated provider's fault injection: each fault happens as configured and `classify` names it precisely."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import ConfigError, InfraFailure, LaneLost
from fleetbench.lanes import LaneState
from fleetbench.registry import validate_options
from fleetbench.schedule import LaneChat
from fleetbench.testing.requests import request_of
from fleetbench.types import CallStatus, Completion, ErrorClass, Lane
from fleetbench_plugins.providers.simulated import (
    SimulatedDeploymentParams,
    SimulatedOptions,
    SimulatedProvider,
)

REQUEST = request_of([{"role": "user", "content": "What is 2 + 3? Answer with the number only."}], protocol="jsonl")


def _lane(credential: str = "key0", **params: Any) -> Lane:
    return Lane(
        f"Sim-Agent-2#{credential}", "Sim-Agent", "Sim-Agent-2", "simulated", credential, 4,
        params={"retry_after_s": 0.01, **params}, model_params={"profile": "strong", "qa_accuracy": 1.0},
    )  # fmt: skip


def _outcome(provider: SimulatedProvider, lane: Lane) -> Completion | ErrorClass:
    async def once() -> Completion | ErrorClass:
        try:
            return await provider.complete(lane, REQUEST)
        except Exception as exc:
            return provider.classify(exc)

    return asyncio.run(once())


@pytest.mark.parametrize(
    ("params", "status", "http_status"),
    [
        ({"refuse_connections": True}, CallStatus.UNREACHABLE, None),
        ({"auth_failure": True}, CallStatus.AUTH, 401),
        ({"not_found": True}, CallStatus.NOT_FOUND, 404),
        ({"transient_error_rate": 1.0}, CallStatus.TRANSIENT, 503),
        ({"rate_limit_rate": 1.0}, CallStatus.RATE_LIMITED, 429),
        ({"outage_after": 0, "outage": "not_found"}, CallStatus.NOT_FOUND, 404),
        ({"outage_after": 0, "outage": "transient"}, CallStatus.TRANSIENT, 503),
        ({"outage_after": 0, "outage": "unreachable"}, CallStatus.UNREACHABLE, None),
    ],
)
def test_each_fault_is_classified_precisely(
    params: dict[str, Any], status: CallStatus, http_status: int | None
) -> None:
    verdict = _outcome(SimulatedProvider(SimulatedOptions()), _lane(**params))
    assert isinstance(verdict, ErrorClass)
    assert (verdict.status, verdict.http_status) == (status, http_status)
    if status is CallStatus.RATE_LIMITED:
        assert verdict.retry_after_s == 0.01


def test_auth_failure_keys_refuse_only_those_credentials() -> None:
    provider = SimulatedProvider(SimulatedOptions())
    verdicts = {key: _outcome(provider, _lane(key, auth_failure_keys=["key1"])) for key in ("key0", "key1", "key2")}
    assert isinstance(verdicts["key1"], ErrorClass) and verdicts["key1"].status is CallStatus.AUTH
    assert all(isinstance(verdicts[k], Completion) and verdicts[k].text == "5" for k in ("key0", "key2"))


def test_an_outage_covers_exactly_its_window_of_the_deployments_requests() -> None:
    provider = SimulatedProvider(SimulatedOptions())
    lane = _lane(outage="rate_limited", outage_after=2, outage_requests=3)
    statuses = []
    for _ in range(7):
        outcome = _outcome(provider, lane)
        statuses.append(CallStatus.OK if isinstance(outcome, Completion) else outcome.status)
    assert statuses == [CallStatus.OK] * 2 + [CallStatus.RATE_LIMITED] * 3 + [CallStatus.OK] * 2


def test_requests_beyond_max_in_flight_are_answered_429() -> None:
    provider = SimulatedProvider(SimulatedOptions())
    lane = _lane(max_in_flight=2, latency_ms=20)

    async def burst() -> list[Completion | ErrorClass]:
        async def one() -> Completion | ErrorClass:
            try:
                return await provider.complete(lane, REQUEST)
            except Exception as exc:
                return provider.classify(exc)

        return await asyncio.gather(*(one() for _ in range(5)))

    outcomes = asyncio.run(burst())
    assert sum(isinstance(o, Completion) for o in outcomes) == 2
    assert [o.status for o in outcomes if isinstance(o, ErrorClass)] == [CallStatus.RATE_LIMITED] * 3


def _chat(lane: Lane, **conf: Any) -> LaneChat:
    settings = SchedulerConf(backoff_base_s=0.001, backoff_max_s=0.002, **conf)
    return LaneChat(LaneState.of(lane, settings), SimulatedProvider(SimulatedOptions(seed=5)), settings, "k" * 32, "r")


def test_empty_replies_are_recorded_as_such_and_asked_again() -> None:
    chat = _chat(_lane(empty_rate=0.5), max_attempts=50)

    async def ten() -> list[str]:
        return [(await chat(REQUEST)).text for _ in range(10)]

    assert asyncio.run(ten()) == ["5"] * 10
    statuses = [call.status for call in chat.calls]
    assert statuses.count(CallStatus.OK) == 10 and statuses.count(CallStatus.EMPTY) >= 3


def test_only_empty_replies_end_as_not_done_without_blaming_the_lane() -> None:
    chat = _chat(_lane(empty_rate=1.0), max_attempts=3)
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(REQUEST))
    assert failure.value.status == "empty_response" and not isinstance(failure.value, LaneLost)
    assert [call.status for call in chat.calls] == [CallStatus.EMPTY] * 3


def test_a_request_that_hangs_ends_at_the_request_timeout_and_loses_the_lane_for_the_episode() -> None:
    chat = _chat(_lane(hang_rate=1.0), request_timeout_s=0.02)
    with pytest.raises(LaneLost) as lost:
        asyncio.run(chat(REQUEST))
    assert lost.value.status == "request_timeout"
    assert [call.status for call in chat.calls] == [CallStatus.TIMEOUT]
    assert chat.state.breaker.consecutive == 1, "a timeout counts toward the lane's breaker"


def test_fault_rates_adding_up_to_more_than_one_are_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        validate_options(SimulatedDeploymentParams, {"hang_rate": 0.6, "empty_rate": 0.6}, "params", "simulated")
    # Named by what was set (not by a rate left at 0), with each term.
    expected = "params.hang_rate: the fault rates add up to more than 1 (hang_rate 0.6 + empty_rate 0.6)"
    assert expected in str(refused.value)
    with pytest.raises(ConfigError, match=r"outage.*choices"):
        validate_options(SimulatedDeploymentParams, {"outage": "melted"}, "params", "simulated")


def test_a_deployment_profile_must_be_one_a_player_knows() -> None:
    with pytest.raises(ConfigError, match=r"profile: 'genius' is not a profile; choices: .*strong.*weak"):
        validate_options(SimulatedDeploymentParams, {"profile": "genius"}, "params", "simulated")
    assert validate_options(SimulatedDeploymentParams, {"profile": "weak"}, "params", "simulated").profile == "weak"
