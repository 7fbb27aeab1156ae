"""Lane workers: each pulls units for its lane and runs them, one at a time, while its lane is healthy.

A lane's workers follow its breaker (`lanes.Breaker`):

- **active**: pull the next unit — the lane's own share, then (when the sharding strategy allows failover) units of
  lanes that are down — run it, and wait for its result to be committed before pulling again;
- **parked**: pull nothing until the cool-down is over; then the next unit's first request is the lane's probe.
  Meanwhile, under `dynamic` sharding the other lanes simply pull the rest of the shared queue;
- **stopped** (auth, not found): leave for good. When no other lane of the model can take this lane's units (every
  lane stopped, or a static share without failover), they are recorded at once as not done (`lanes_stopped`),
  without a request, so the run goes on with the other models.

A worker whose lane has nothing left waits (instead of leaving) while another lane's static share could still come
its way through failover; `ModelWork.finished` says when nothing can.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from fleetbench.claims import ClaimedUnits
from fleetbench.errors import ClaimGone
from fleetbench.interfaces import Dispatch
from fleetbench.lanes import LaneState, Mode, Pulse
from fleetbench.schedule import Executor, ModelLanes, run_unit
from fleetbench.types import CallRecord, Episode, Outcome, Unit, UnitResult

Sink = Callable[[UnitResult, list[CallRecord]], Awaitable[None]]

NOT_RUN_STATUS = "lanes_stopped"
"""The infra status of a unit no lane could run because every lane that may run it was stopped."""


class ModelWork:
    """One base model's units and lanes during a run: which unit a lane runs next, and when a lane is done."""

    def __init__(
        self,
        dispatch: Dispatch,
        states: Sequence[LaneState],
        pulse: Pulse,
        stopping: asyncio.Event,
        claims: ClaimedUnits | None = None,
    ) -> None:
        self.dispatch = dispatch
        self._claims = claims
        self.states = list(states)
        self.pulse = pulse
        self.lanes = ModelLanes(self.states, pulse, stopping, dispatch.failover)
        self.shared = all(dispatch.planned(s.lane.lane_id) is None for s in self.states)
        """A shared queue (`dynamic` sharding): any lane may run any unit."""
        self._exhausted: set[str] = set()
        """Lanes whose own share ran out (under a shared queue, all of them at once)."""
        self.workers: Counter[str] = Counter()
        """Workers still running per lane."""
        self._ahead: Unit | None = None
        """A shared queue's next unit, pulled by a parked lane to learn whether the queue is empty (`drained`)."""

    async def units_ready(self) -> None:
        """Wait, without holding the event loop, for the claims the dispatch's next unit would wait for."""
        # Asked again after every wait: while this worker waited, others may have handed out the next batch too.
        while self._claims is not None and (due := self._claims.due()):
            await asyncio.wrap_future(due[0])

    def next_unit(self, state: LaneState) -> tuple[Unit, str | None] | None:
        """The next unit for this lane and the lane whose share it belongs to (None: a shared queue)."""
        lane_id = state.lane.lane_id
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            return ahead, None
        if lane_id not in self._exhausted:
            unit = self.dispatch.next_unit(lane_id)
            if unit is not None:
                return unit, None if self.shared else lane_id
            self._exhaust(lane_id)
        if self.shared or not self.dispatch.failover:
            return None
        for other in self.states:
            other_id = other.lane.lane_id
            if other is state or other_id in self._exhausted or other.breaker.mode is Mode.ACTIVE:
                continue
            unit = self.dispatch.take_over(lane_id, other_id)
            if unit is not None:
                return unit, other_id
            self._exhaust(other_id)
        return None

    def drained(self, state: LaneState) -> bool:
        """Under a shared queue, whether it is empty (the lanes are then finished): asked by a parked lane, which
        otherwise learnt it only when its cool-down was over. With every lane parked, a run whose last unit was done
        waited out the longest cool-down (up to `scheduler.breaker_cooldown_max_s`) doing nothing. Pulls the next
        unit ahead when there is one; the next lane to ask runs it. Await `units_ready` first."""
        if not self.shared:
            return False
        if self._ahead is None and not self._exhausted:
            self._ahead = self.dispatch.next_unit(state.lane.lane_id)
            if self._ahead is None:
                self._exhaust(state.lane.lane_id)
        return bool(self._exhausted) and self._ahead is None

    def finished(self, state: LaneState) -> bool:
        """True when this lane can get no unit any more."""
        if self.shared:
            return bool(self._exhausted)
        if state.lane.lane_id not in self._exhausted:
            return False
        return not self.dispatch.failover or all(s.lane.lane_id in self._exhausted for s in self.states)

    def stranded(self, state: LaneState) -> bool:
        """Whether the units this stopped lane would run have no other lane to go to: no other lane that is not
        stopped still has workers (or units may not leave their static share at all)."""
        if not self.shared and not self.dispatch.failover:
            return True
        return not any(
            s is not state and s.breaker.mode is not Mode.STOPPED and self.workers[s.lane.lane_id] for s in self.states
        )

    def _exhaust(self, lane_id: str) -> None:
        if self.shared:
            self._exhausted.update(s.lane.lane_id for s in self.states)
        else:
            self._exhausted.add(lane_id)
        self.pulse.fire()


async def lane_worker(
    executor: Executor,
    work: ModelWork,
    state: LaneState,
    sink: Sink,
    stopping: asyncio.Event,
    registered: bool = False,
) -> None:
    """Pull units for this lane until there are none for it or the run is stopping; each result is durably written
    before the next pull. The stop flag is checked before every pull, so a worker never starts a unit after Ctrl-C
    even if a library swallowed its cancellation."""
    if not registered:  # `lane_workers` counts its workers when it creates them, before any of them starts
        work.workers[state.lane.lane_id] += 1
    try:
        await _pull_and_run(executor, work, state, sink, stopping)
    finally:
        work.workers[state.lane.lane_id] -= 1
        work.pulse.fire()  # peers deciding whether a stopped lane's units are stranded count workers: re-check


async def _pull_and_run(
    executor: Executor, work: ModelWork, state: LaneState, sink: Sink, stopping: asyncio.Event
) -> None:
    while not stopping.is_set():
        breaker = state.breaker
        if not breaker.takes_units:
            if breaker.mode is Mode.STOPPED:
                if work.stranded(state):
                    await _record_not_run(executor, work, state, sink, stopping)
                return
            if work.finished(state):
                return
            if work.shared:
                await work.units_ready()
                if work.drained(state):
                    return
            await work.pulse.wait(breaker.cooldown_left() or None)
            continue
        # Under a shared queue a lane holds no more units than its current concurrency limit (`UnitGate`): what a
        # throttled lane cannot send now stays in the queue for lanes with room.
        gate = state.slots.gate if work.shared else None
        if gate is not None:
            await gate.enter()
        try:
            if not breaker.takes_units:  # parked or stopped while this worker waited for a place
                continue
            await work.units_ready()
            picked = work.next_unit(state)
            if picked is not None:
                unit, home = picked
                if home not in (None, state.lane.lane_id):
                    state.units_taken_over += 1
                try:
                    result, calls = await run_unit(executor, state, unit, home)
                except ClaimGone:
                    continue  # another worker took the unit over while it waited: its result is that worker's
        finally:
            if gate is not None:
                gate.leave()
        if picked is None:
            if work.finished(state):
                return
            await work.pulse.wait()
            continue
        await sink(result, calls)


async def _record_not_run(
    executor: Executor, work: ModelWork, state: LaneState, sink: Sink, stopping: asyncio.Event
) -> None:
    """Record every unit this stopped lane would have run, and that no other lane may, as not done: at once and
    without a request, so the run finishes its other models instead of waiting on a dead one."""
    lane = state.lane
    episode = Episode(Outcome.INFRA_ERROR, infra_status=NOT_RUN_STATUS)
    while not stopping.is_set() and (picked := work.next_unit(state)) is not None:
        state.units_not_run += 1
        result = UnitResult(picked[0], executor.run_id, lane.deployment, lane.lane_id, time.time(), 0.0, episode)
        await sink(result, [])


def worker_counts(states: Sequence[LaneState], dispatch: Dispatch, units: int) -> list[int]:
    """Workers per lane: up to each lane's `max_concurrency` and its planned units, never more in total than there
    are units to run (handed out round robin, so every lane gets work before any lane gets a second worker)."""
    caps = []
    for state in states:
        planned = dispatch.planned(state.lane.lane_id)
        caps.append(min(state.lane.max_concurrency, units if planned is None else planned))
    counts = [0] * len(states)
    remaining = min(units, sum(caps))
    while remaining:
        for i, cap in enumerate(caps):
            if remaining and counts[i] < cap:
                counts[i] += 1
                remaining -= 1
    return counts


def lane_workers(
    executor: Executor, work: ModelWork, sink: Sink, stopping: asyncio.Event, units: int
) -> list[Coroutine[Any, Any, None]]:
    """Workers for one base model's lanes, sharing each lane's limiter (see `worker_counts`)."""
    workers: list[Coroutine[Any, Any, None]] = []
    for state, count in zip(work.states, worker_counts(work.states, work.dispatch, units), strict=True):
        # Counted now: a lane stopped by its first request must see its sibling lanes' workers even if their tasks
        # have not started yet, or it would record their units as not done (`ModelWork.stranded`).
        work.workers[state.lane.lane_id] += count
        workers.extend(lane_worker(executor, work, state, sink, stopping, registered=True) for _ in range(count))
    return workers
