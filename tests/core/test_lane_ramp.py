"""A lane's slots open one after another at the start of a run (`scheduler.ramp_step_s`), not all at once."""

from __future__ import annotations

import asyncio
import time

from fleetbench.config.schema import SchedulerConf
from fleetbench.lanes import LaneState
from fleetbench.testing.lanes import make_lane

STEP_S = 0.2


async def _admitted_at(state: LaneState, requests: int) -> list[float]:
    """When each of `requests` requests entered the lane, all asked at once and each keeping its slot."""
    started = time.monotonic()

    async def one() -> float:
        await state.enter()
        return time.monotonic() - started

    return sorted(await asyncio.gather(*(one() for _ in range(requests))))


def test_the_first_requests_enter_one_step_apart_and_later_ones_at_once() -> None:
    state = LaneState.of(make_lane("Sim-Agent", max_concurrency=3), SchedulerConf(ramp_step_s=STEP_S))

    async def scenario() -> tuple[list[float], float]:
        first = await _admitted_at(state, 3)
        for _ in range(3):
            state.slots.release()
        asked = time.monotonic()
        await state.enter()  # the ramp is over: no wait of its own
        return first, time.monotonic() - asked

    first, later = asyncio.run(scenario())
    # asyncio.sleep never wakes early: the n-th request cannot have entered before n steps.
    for n, at in enumerate(first):
        assert at >= n * STEP_S - 0.001, first
    assert later < STEP_S


def test_with_no_step_every_slot_opens_at_once() -> None:
    state = LaneState.of(make_lane("Sim-Agent", max_concurrency=5), SchedulerConf(ramp_step_s=0.0))
    admitted = asyncio.run(_admitted_at(state, 5))
    assert admitted[-1] < STEP_S, admitted


def test_a_long_step_only_holds_back_slots_the_open_one_keeps_working() -> None:
    # A step of a minute once made each waiting request hold its unit for its turn: a run of 8 slots took 7 minutes.
    state = LaneState.of(make_lane("Sim-Agent", max_concurrency=8), SchedulerConf(ramp_step_s=60.0))

    async def scenario() -> tuple[float, int]:
        started = time.monotonic()
        peak = 0

        async def request() -> None:
            nonlocal peak
            ticket = await state.enter()
            peak = max(peak, state.slots.in_use)
            await asyncio.sleep(0.001)
            state.leave(ticket, None)

        await asyncio.gather(*(request() for _ in range(40)))
        return time.monotonic() - started, peak

    elapsed, peak = asyncio.run(scenario())
    assert peak == 1, "only the first slot is open within the first minute"
    assert elapsed < 30, f"40 requests of a millisecond took {elapsed:.1f}s: they waited for slots to open"
