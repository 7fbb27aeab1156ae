"""A worker splits its lanes' limits with a worker that joins its plan within about a second, not a heartbeat later,
and the workers' shares of a lane's concurrency add up to the lane's.

The runner's heartbeat task is driven here on the in-memory storage (it keeps the storage contract): the worker's own
run holds a claim, then a second run of the same plan registers and claims a unit while the heartbeat interval is
far longer than the wait allowed.
"""

from __future__ import annotations

import asyncio
import socket
import time

from fleetbench import runner
from fleetbench.claims import Lease
from fleetbench.interfaces import NoOptions
from fleetbench.lanes import LaneState
from fleetbench.testing.contracts.storage import kit_units
from fleetbench.testing.fakes import ExactNaming
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.testing.runs import fake_models
from fleetbench.types import Catalog, RunRecord
from fleetbench.writer import ResultWriter

MODEL = "Kit-Model"
PLAN = "plan-of-both"
HEARTBEAT_S = 30.0
"""Far longer than the test waits: a split that waited for the next heartbeat would fail it."""


def _run(run_id: str) -> RunRecord:
    return RunRecord(run_id, time.time(), "grid", (MODEL,), {}, "v", socket.gethostname(), plan=PLAN)


def test_a_worker_shares_its_lanes_with_a_worker_that_joins_long_before_its_next_heartbeat() -> None:
    storage = MemoryStorage(NoOptions(), naming=ExactNaming(NoOptions(), catalog=Catalog(fake_models([MODEL]))))
    units = kit_units(MODEL)
    now = time.time()
    storage.begin_run(_run("mine"))
    storage.claim("mine", units[:1], now, now + 600)
    state = LaneState.of(make_lane(MODEL, max_concurrency=25, rpm=120))

    async def scenario() -> tuple[int, int, float]:
        writer = ResultWriter(storage, 16)
        writer.start()
        lease = Lease(storage, "mine", 600.0, 16)
        beat = asyncio.ensure_future(runner._heartbeat(writer, storage, lease, HEARTBEAT_S, PLAN, [state]))
        try:
            await asyncio.sleep(0.3)  # the first count: this worker alone
            alone = state.slots.ceiling
            storage.begin_run(_run("theirs"))
            storage.claim("theirs", units[1:2], time.time(), time.time() + 600)
            joined = time.monotonic()
            async with asyncio.timeout(HEARTBEAT_S / 3):
                while state.slots.ceiling == alone:
                    await asyncio.sleep(0.05)
            return alone, state.slots.ceiling, time.monotonic() - joined
        finally:
            beat.cancel()
            await writer.close()

    alone, shared, waited = asyncio.run(scenario())
    assert (alone, shared) == (25, 13), "'mine' sorts first of the two: it takes the remainder's slot"
    assert waited < HEARTBEAT_S / 3, waited


def test_the_workers_slots_add_up_to_the_lanes_concurrency() -> None:
    for workers in range(1, 9):
        ceilings = []
        for rank in range(workers):
            state = LaneState.of(make_lane(MODEL, max_concurrency=25, rpm=120))
            state.share(workers, rank)
            ceilings.append(state.slots.ceiling)
        assert sum(ceilings) == 25, (workers, ceilings)
        assert max(ceilings) - min(ceilings) <= 1, (workers, ceilings)
