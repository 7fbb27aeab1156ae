"""A lane holds no more units than its current concurrency limit under a shared queue (`concurrency.UnitGate`): a
throttled lane leaves the queue to lanes with room instead of keeping a unit per worker waiting for its slot."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from fleetbench.concurrency import AdaptiveSlots
from fleetbench.config.schema import SchedulerConf
from fleetbench.interfaces import Dispatch
from fleetbench.lanes import LaneState, Pulse
from fleetbench.schedule import Executor, ModelLanes
from fleetbench.testing.fakes import Fault, ScriptedProvider, TinyOptions, TinySuite
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.units import make_unit
from fleetbench.types import CallRecord, CallStatus, Cell, ModelSpec, Outcome, Unit, UnitResult
from fleetbench.workers import ModelWork, lane_workers

CELL = Cell("tiny", "Model", (("word", "alpha"),))
FAST = SchedulerConf(backoff_base_s=0.001, backoff_max_s=0.004, ramp_step_s=0.0)


def test_the_gate_admits_up_to_the_limit_and_follows_it_down_and_up() -> None:
    async def scenario() -> list[str]:
        slots = AdaptiveSlots(3)
        gate, events = slots.gate, []
        for _ in range(3):
            await gate.enter()
        slots.rate_limited(slots.epoch)  # 3 -> 1: the three holders keep their places
        waiting = asyncio.ensure_future(gate.enter())
        await asyncio.sleep(0)
        events.append(f"held {gate.held}, waiting {not waiting.done()}")
        gate.leave()
        gate.leave()
        await asyncio.sleep(0)
        events.append(f"two left: held {gate.held}, waiting {not waiting.done()}")  # 1 held = the limit
        slots.succeeded()  # one success at limit 1 raises it to 2: the waiter gets in
        await asyncio.sleep(0)
        events.append(f"limit {slots.limit}: held {gate.held}, waiting {not waiting.done()}")
        cancelled = asyncio.ensure_future(gate.enter())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        gate.leave()
        events.append(f"a cancelled waiter takes nothing: held {gate.held}")
        return events

    assert asyncio.run(scenario()) == [
        "held 3, waiting True",
        "two left: held 1, waiting True",
        "limit 2: held 2, waiting False",
        "a cancelled waiter takes nothing: held 1",
    ]


class _Queue(Dispatch):
    """A shared queue (dynamic sharding) that notes which lane pulled each unit."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = list(units)
        self.pulled: Counter[str] = Counter()

    def next_unit(self, lane_id: str) -> Unit | None:
        if not self.units:
            return None
        self.pulled[lane_id] += 1
        return self.units.pop(0)

    def planned(self, lane_id: str) -> int | None:
        return None


def test_a_lane_held_to_one_request_holds_one_unit_and_the_other_lane_runs_the_rest() -> None:
    """Four workers per lane; lane A may send one request at a time (its limit lowered to 1, as 429s or a plan's
    other workers would), lane B four. Before, each of A's four workers pulled a unit and three waited for A's one
    slot: A ran a third of the units at a quarter of B's pace. Now A holds one unit at a time."""
    slow, fast = make_lane("A", base_model="Model"), make_lane("B", base_model="Model")
    provider = ScriptedProvider(latency_s=0.02)
    dispatch = _Queue([make_unit(f"{i:032x}", CELL, i) for i in range(24)])
    held_by_a: list[int] = []

    finished: Counter[str] = Counter()

    async def sink(result: UnitResult, calls: list[CallRecord]) -> None:
        finished[result.lane_id] += 1

    async def scenario() -> None:
        stopping, pulse = asyncio.Event(), Pulse()
        states = [LaneState.of(slow, FAST, pulse), LaneState.of(fast, FAST, pulse)]
        states[0].slots.set_ceiling(1)
        work = ModelWork(dispatch, states, pulse, stopping)
        lanes = ModelLanes(states, pulse, stopping)
        executor = Executor(TinySuite(TinyOptions()), ModelSpec("Model", "scripted", ()), provider, FAST, "r", None,
                            lanes)  # fmt: skip

        async def watch() -> None:
            while not stopping.is_set():
                held_by_a.append(dispatch.pulled[slow.lane_id] - finished[slow.lane_id])
                await asyncio.sleep(0.005)

        watcher = asyncio.ensure_future(watch())
        await asyncio.gather(*lane_workers(executor, work, sink, stopping, 24))
        stopping.set()
        await watcher

    asyncio.run(scenario())
    assert max(held_by_a) == 1, "lane A never held more units than it could send"
    assert dispatch.pulled[fast.lane_id] > 3 * dispatch.pulled[slow.lane_id], dispatch.pulled
    assert sum(dispatch.pulled.values()) == 24


def test_a_unit_a_throttled_lane_answered_429_before_anything_else_starts_at_once_on_a_lane_with_room() -> None:
    """Lane A answers every request 429. The units its workers took before that was known went through up to
    `max_rate_limited` 429s each, one at a time under A's lowered limit, while lane B sat idle; now a unit whose
    episode got nothing but 429s from its lane starts again on the first lane with a free slot."""
    slow, fast = make_lane("A", base_model="Model"), make_lane("B", base_model="Model")
    provider = ScriptedProvider(latency_s=0.01, failing={"A": Fault(CallStatus.RATE_LIMITED, retry_after_s=0.05)})
    dispatch = _Queue([make_unit(f"{i:032x}", CELL, i) for i in range(12)])
    results: list[UnitResult] = []

    async def sink(result: UnitResult, calls: list[CallRecord]) -> None:
        results.append(result)

    async def scenario() -> None:
        stopping, pulse = asyncio.Event(), Pulse()
        states = [LaneState.of(slow, FAST, pulse), LaneState.of(fast, FAST, pulse)]
        work = ModelWork(dispatch, states, pulse, stopping)
        executor = Executor(TinySuite(TinyOptions()), ModelSpec("Model", "scripted", ()), provider, FAST, "r", None,
                            ModelLanes(states, pulse, stopping))  # fmt: skip
        await asyncio.gather(*lane_workers(executor, work, sink, stopping, 12))

    asyncio.run(scenario())
    asked_a = sum(1 for lane, _ in provider.requests if lane.deployment == "A")
    moved = [r for r in results if (r.episode.transcript or {}).get("placement")]
    assert sorted(r.unit.index for r in results) == list(range(12))
    assert all(r.episode.outcome is Outcome.SUCCESS and r.deployment == "B" for r in results)
    # A unit moves once B has a free slot: a 429 or two each (while B's workers held all its slots), where before it
    # went on to `max_rate_limited` (30) each.
    assert dispatch.pulled[slow.lane_id] == len(moved) > 0
    assert asked_a <= 3 * len(moved), f"{asked_a} requests to A for {len(moved)} units"
    assert all(r.episode.transcript["placement"]["lanes"] == [slow.lane_id, fast.lane_id] for r in moved)
