"""Adaptive concurrency on 429: the slots' rules, and a 429 storm through the real runner and simulated provider,
judged by the recorded calls (how many requests were in flight when each one started), never by wall time."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from fleetbench.concurrency import AdaptiveSlots
from fleetbench.config import compose_config, resolve_run
from fleetbench.config.schema import SchedulerConf
from fleetbench.lanes import LaneState
from fleetbench.runner import run
from fleetbench.schedule import JudgePool, LaneChat
from fleetbench.testing.fakes import ScriptedProvider
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.requests import request_of
from fleetbench.types import CallStatus, Completion, GenerationSettings, Lane, Request


def test_a_429_burst_lowers_the_limit_once_per_epoch_and_never_below_one() -> None:
    slots = AdaptiveSlots(8, decrease=0.5)
    epoch = slots.epoch
    for _ in range(8):  # eight requests sent together, all answered 429: the old limit caused all of them
        slots.rate_limited(epoch)
    assert (slots.limit, slots.decreases) == (4, 1)
    for _ in range(5):
        slots.rate_limited(slots.epoch)
    assert slots.limit == slots.lowest == 1


def test_successes_raise_the_limit_by_one_per_window_up_to_the_ceiling() -> None:
    slots = AdaptiveSlots(4, decrease=0.25)
    slots.rate_limited(slots.epoch)
    assert slots.limit == 1
    limits = []
    for _ in range(10):
        slots.succeeded()
        limits.append(slots.limit)
    # 1 success to reach 2, 2 more to reach 3, 3 more to reach 4; then it stays at the ceiling.
    assert limits == [2, 2, 3, 3, 3, 4, 4, 4, 4, 4]


def test_holders_never_exceed_the_current_limit_even_when_it_drops_while_they_hold() -> None:
    peaks: list[tuple[int, int]] = []

    async def scenario() -> None:
        slots = AdaptiveSlots(6)
        in_flight = 0

        async def request(index: int) -> None:
            nonlocal in_flight
            await slots.acquire()
            in_flight += 1
            peaks.append((in_flight, slots.limit))
            await asyncio.sleep(0.002)
            if index == 3:
                slots.rate_limited(slots.epoch)  # 6 -> 3 while five others hold slots
            in_flight -= 1
            slots.release()

        await asyncio.gather(*(request(i) for i in range(40)))

    asyncio.run(scenario())
    assert max(count for count, _ in peaks[:6]) == 6
    after_drop = peaks[6:]
    assert after_drop and all(count <= limit for count, limit in after_drop)
    assert max(count for count, _ in after_drop) <= 3


def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    """The slot is released after the cancel and before the waiter's task runs again: `_wake` drops the cancelled
    waiter, which then must not try to leave the queue a second time (a ValueError traceback, seen when several
    workers shared a plan and Ctrl-C cancelled lane workers queued for a slot)."""

    async def scenario() -> tuple[int, BaseException | None, int]:
        slots = AdaptiveSlots(1)
        await slots.acquire()
        waiter = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        slots.release()
        (outcome,) = await asyncio.gather(waiter, return_exceptions=True)
        return slots.in_use, outcome, len(slots._waiters)

    in_use, outcome, queued = asyncio.run(scenario())
    assert isinstance(outcome, asyncio.CancelledError), outcome
    assert (in_use, queued) == (0, 0)


def test_a_waiter_cancelled_while_still_queued_leaves_the_queue() -> None:
    async def scenario() -> tuple[BaseException | None, int, int]:
        slots = AdaptiveSlots(1)
        await slots.acquire()
        waiter = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        (outcome,) = await asyncio.gather(waiter, return_exceptions=True)
        return outcome, len(slots._waiters), slots.in_use

    outcome, queued, in_use = asyncio.run(scenario())
    assert isinstance(outcome, asyncio.CancelledError) and (queued, in_use) == (0, 1)


class LimitWatchingProvider(ScriptedProvider):
    """Records, at each request's start, how many requests are in flight and the lane's limit at that moment."""

    def __init__(self, state: LaneState) -> None:
        super().__init__(answer=lambda _: "ok", latency_s=0.005)
        self.state = state
        self.seen: list[tuple[int, int]] = []

    async def complete(self, lane: Lane, request: Request) -> Completion:
        self.seen.append((self.in_flight + 1, self.state.slots.limit))
        return await super().complete(lane, request)


def test_worker_and_judge_chats_on_a_lane_together_stay_within_its_current_limit() -> None:
    # Slots open at once (no start ramp): the first two requests must meet the halved limit together.
    state = LaneState.of(
        make_lane("Sim-Agent-2", base_model="Sim-Agent", max_concurrency=4), SchedulerConf(ramp_step_s=0)
    )
    state.slots.rate_limited(state.slots.epoch)  # a 429: the lane now allows 2 in flight, then climbs back
    provider = LimitWatchingProvider(state)
    judge = JudgePool(provider, [state], GenerationSettings())
    conf, request = SchedulerConf(), request_of([{"role": "user", "content": "hi"}], protocol="jsonl")

    async def burst() -> None:
        workers = [LaneChat(state, provider, conf, f"{i:032x}", "r") for i in range(6)]
        judges = [judge.bind(conf, f"{i:032x}", "r", []) for i in range(6)]
        await asyncio.gather(*(chat(request) for chat in workers + judges for _ in range(2)))

    asyncio.run(burst())
    assert all(in_flight <= limit for in_flight, limit in provider.seen)
    assert max(in_flight for in_flight, _ in provider.seen[:2]) == 2 and provider.peak_in_flight == 4
    assert state.statuses[CallStatus.OK] == 24


def _in_flight_at_starts(db: Path, deployment: str) -> list[tuple[str, int]]:
    """For each call to `deployment`, in start order: its status and how many of its calls were in flight then."""
    with sqlite3.connect(db) as connection:
        calls = connection.execute(
            "select started_at, latency_s, status from calls where deployment = ? order by started_at", (deployment,)
        ).fetchall()
    return [(status, sum(1 for s, latency, _ in calls if s <= start < s + latency)) for start, _, status in calls]


def test_a_429_storm_lowers_the_lanes_concurrency_which_then_climbs_back(tmp_path: Path) -> None:
    db = tmp_path / "storm.db"
    storm = "models.sim_agent.deployments.0.params"
    spec = resolve_run(
        compose_config(
            [
                f"storage.url=sqlite:///{db}",
                "run.progress=off",
                "suite=workflow",
                "suite.prompt_types=[optimal]",
                "suite.difficulties=[easy]",
                "suite.tool_success_rates=[0.9]",
                "run.instances=16",
                *(f"models.sim_agent.deployments.{i}.params.latency_ms=25" for i in range(3)),
                f"{storm}.outage=rate_limited",
                f"{storm}.outage_after=0",
                f"{storm}.outage_requests=30",
                f"{storm}.retry_after_s=0.01",
                # Episodes stay on their lane: one that got only 429s would otherwise start again on a lane with room,
                # and this test watches one lane's limit go down and back up under its own requests.
                "scheduler.max_restarts=0",
            ]
        )
    )
    summary = run(spec)
    assert summary.newly_completed == summary.planned == 80
    lane = next(report for report in summary.lanes if report.lane.lane_id == "Sim-Agent")
    assert lane.statuses[CallStatus.RATE_LIMITED] == 30
    assert lane.lowest_concurrency == 1 and lane.concurrency == lane.max_concurrency == 8

    calls = _in_flight_at_starts(db, "Sim-Agent")
    assert [status for status, _ in calls[:30]] == ["rate_limited"] * 30
    after = calls[30:]
    assert all(status == "ok" for status, _ in after)
    # Additive recovery: the k-th request after the storm finds at most k in flight (it climbs one by one)...
    assert all(in_flight <= k + 1 for k, (_, in_flight) in enumerate(after))
    assert max(in_flight for _, in_flight in after[:3]) <= 2
    # ...and it does climb back: late in the run the lane again carries (nearly) its full max_concurrency.
    assert max(in_flight for _, in_flight in after) >= 5
    assert max(in_flight for _, in_flight in calls) <= 8
