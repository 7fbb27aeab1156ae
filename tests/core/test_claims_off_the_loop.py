"""Units are pulled on the event loop while their claims run on the storage thread: a pull never waits there for a
claim, which would hold every request of the run meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from fleetbench.claims import ClaimedUnits, Lease
from fleetbench.interfaces import NoOptions
from fleetbench.lanes import LaneState, Pulse
from fleetbench.testing.contracts.storage import KIT_CATALOG, kit_units, run_record
from fleetbench.testing.fakes import ExactNaming, QueueSharding
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.testing.units import ListSource
from fleetbench.types import Unit
from fleetbench.workers import ModelWork


class _LoopWatchingStorage(MemoryStorage):
    """Each claim first asks the event loop to run a callback and notes whether it ran within a second (it cannot
    while the loop waits for this very claim)."""

    loop: asyncio.AbstractEventLoop
    loop_ran: list[bool]

    def claim(self, run_id: str, units: Sequence[Unit], now: float, expires_at: float) -> set[str]:
        ran = threading.Event()
        self.loop.call_soon_threadsafe(ran.set)
        self.loop_ran.append(ran.wait(timeout=1.0))
        return super().claim(run_id, units, now, expires_at)


def test_pulling_units_never_holds_the_event_loop_while_the_next_batch_is_claimed() -> None:
    storage = _LoopWatchingStorage(naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG))
    storage.begin_run(run_record("me"))
    units = kit_units(instances=12)
    lanes = [make_lane(f"Kit-Model-{i}", base_model="Kit-Model") for i in (1, 2)]
    states = [LaneState.of(lane) for lane in lanes]
    claim_on = ThreadPoolExecutor(1)
    source = ClaimedUnits(ListSource(units), Lease(storage, "me", 600.0, batch=4), claim_on)
    pulled: list[str] = []

    async def pull(work: ModelWork, state: LaneState) -> None:
        while True:
            await work.units_ready()
            picked = work.next_unit(state)
            if picked is None:
                return
            pulled.append(picked[0].key)
            await asyncio.sleep(0.001)  # the unit's requests

    async def main() -> None:
        storage.loop, storage.loop_ran = asyncio.get_running_loop(), []
        work = ModelWork(QueueSharding(NoOptions()).dispatch(source, lanes), states, Pulse(), asyncio.Event(), source)
        await asyncio.gather(*(pull(work, states[i % 2]) for i in range(6)))

    try:
        asyncio.run(main())
    finally:
        claim_on.shutdown()
    assert sorted(pulled) == sorted(unit.key for unit in units), "every unit handed out once"
    assert len(storage.loop_ran) == len(units) // 4
    # The stream's first claim is waited for where it is made (nothing runs yet); every later one off the loop.
    assert all(storage.loop_ran[1:]), storage.loop_ran
