"""The circuit breaker's transitions and the 429 budget, request by request, through the core's `LaneChat` and the
simulated provider (times are cool-downs of a few milliseconds; assertions are on states and recorded calls)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import LaneLost
from fleetbench.lanes import LaneState, Mode
from fleetbench.schedule import LaneChat
from fleetbench.testing.requests import request_of
from fleetbench.types import CallStatus, Lane
from fleetbench_plugins.providers.simulated import SimulatedOptions, SimulatedProvider

REQUEST = request_of([{"role": "user", "content": "What is 2 + 3? Answer with the number only."}], protocol="jsonl")


def _state(conf: SchedulerConf, **params: Any) -> LaneState:
    lane = Lane(
        "Sim-Agent", "Sim-Agent", "Sim-Agent", "simulated", "key0", 4,
        params={"retry_after_s": 0.001, **params}, model_params={"profile": "strong", "qa_accuracy": 1.0},
    )  # fmt: skip
    return LaneState.of(lane, conf)


def _conf(**values: Any) -> SchedulerConf:
    settings = {"backoff_base_s": 0.001, "backoff_max_s": 0.002, "breaker_failures": 3, "breaker_cooldown_s": 0.01}
    return SchedulerConf(**{**settings, **values})


async def _ask(state: LaneState, conf: SchedulerConf, provider: SimulatedProvider) -> str:
    chat = LaneChat(state, provider, conf, "k" * 32, "r")
    try:
        return (await chat(REQUEST)).text
    except LaneLost as lost:
        return lost.status


def test_consecutive_failures_park_the_lane_a_probe_after_the_cool_down_reopens_it() -> None:
    conf = _conf()
    state = _state(conf, outage="transient", outage_after=0, outage_requests=3)
    provider = SimulatedProvider(SimulatedOptions())

    async def scenario() -> list[str]:
        first = await _ask(state, conf, provider)  # three 503s in a row: parked, the episode loses its lane
        refused = await _ask(state, conf, provider)  # parked: refused at once, without a request
        await asyncio.sleep(conf.breaker_cooldown_s)
        return [first, refused, await _ask(state, conf, provider)]  # the probe answers: active again

    assert asyncio.run(scenario()) == ["lane_parked", "lane_parked", "5"]
    assert state.statuses == {CallStatus.TRANSIENT: 3, CallStatus.OK: 1}
    assert (state.breaker.mode, state.breaker.parks, state.breaker.probes_failed) == (Mode.ACTIVE, 1, 0)


def test_a_failed_probe_parks_the_lane_for_twice_as_long_up_to_the_maximum() -> None:
    conf = _conf(breaker_cooldown_s=0.05, breaker_cooldown_max_s=0.15)
    state = _state(conf, outage="unreachable", outage_after=0)
    provider = SimulatedProvider(SimulatedOptions())

    async def cooldowns() -> list[float]:
        await _ask(state, conf, provider)
        lengths = []
        for _ in range(4):
            lengths.append(state.breaker.parked_until - time.monotonic())
            await asyncio.sleep(state.breaker.cooldown_left())
            assert await _ask(state, conf, provider) == "lane_parked"  # the probe is refused too
        return lengths

    first, second, third, fourth = asyncio.run(cooldowns())
    assert first <= 0.05 < second <= 0.1 < third <= 0.15 and 0.1 < fourth <= 0.15  # 0.05, 0.1, 0.15 (not 0.2), 0.15
    assert (state.breaker.parks, state.breaker.probes_failed) == (1, 4)
    assert state.statuses == {CallStatus.UNREACHABLE: 3 + 4}, "one request per probe, none in between"


def test_a_429_answering_the_probe_reopens_the_lane() -> None:
    conf = _conf(max_rate_limited=5)
    # Three refused connections park the lane; after that the deployment answers, but only with 429s.
    state = _state(conf, outage="unreachable", outage_after=0, outage_requests=3, rate_limit_rate=1.0)
    provider = SimulatedProvider(SimulatedOptions())

    async def scenario() -> str:
        await _ask(state, conf, provider)
        await asyncio.sleep(conf.breaker_cooldown_s)
        return await _ask(state, conf, provider)

    assert asyncio.run(scenario()) == "rate_limit_exhausted"
    assert state.statuses == {CallStatus.UNREACHABLE: 3, CallStatus.RATE_LIMITED: 5}
    assert (state.breaker.mode, state.breaker.probes_failed) == (Mode.ACTIVE, 0)


@pytest.mark.parametrize(("outage", "status"), [("auth", CallStatus.AUTH), ("not_found", CallStatus.NOT_FOUND)])
def test_auth_and_not_found_stop_the_lane_for_good_without_a_probe(outage: str, status: CallStatus) -> None:
    conf = _conf()
    state = _state(conf, outage=outage, outage_after=0, outage_requests=1)  # only the first request fails
    provider = SimulatedProvider(SimulatedOptions())

    async def scenario() -> list[str]:
        first = await _ask(state, conf, provider)
        await asyncio.sleep(conf.breaker_cooldown_s * 3)
        return [first, await _ask(state, conf, provider)]

    assert asyncio.run(scenario()) == [status.value, status.value]
    assert state.statuses == {status: 1}, "stopped after one call; never probed although it would now answer"
    assert (state.breaker.mode, state.breaker.stop_cause) == (Mode.STOPPED, status)


def test_429s_do_not_use_up_max_attempts_but_their_own_budget() -> None:
    conf = _conf(max_attempts=1, max_rate_limited=5)
    provider = SimulatedProvider(SimulatedOptions())
    answered = _state(conf, outage="rate_limited", outage_after=0, outage_requests=4)
    assert asyncio.run(_ask(answered, conf, provider)) == "5"
    assert answered.statuses == {CallStatus.RATE_LIMITED: 4, CallStatus.OK: 1}
    exhausted = _state(conf, outage="rate_limited", outage_after=0)
    assert asyncio.run(_ask(exhausted, conf, SimulatedProvider(SimulatedOptions()))) == "rate_limit_exhausted"
    assert exhausted.statuses == {CallStatus.RATE_LIMITED: 5}
    assert exhausted.breaker.mode is Mode.ACTIVE, "429s are flow control: they never trip the breaker"
