"""`dynamic` (the default): one shared queue per base model; whichever lane is idle pulls the next unit.

A slow or throttled deployment simply asks less often, so it ends up doing less, and no lane idles while work remains.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from fleetbench.interfaces import Dispatch, ShardingStrategy
from fleetbench.types import Lane, Unit


class SharedQueueDispatch(Dispatch):
    """Units in plan order; any lane takes the head."""

    def __init__(self, units: Sequence[Unit], lanes: Sequence[Lane]) -> None:
        self._queue = deque(units)
        self._assigned = {lane.lane_id: 0 for lane in lanes}

    def next_unit(self, lane_id: str) -> Unit | None:
        if not self._queue or lane_id not in self._assigned:
            return None
        self._assigned[lane_id] += 1
        return self._queue.popleft()

    def assigned(self) -> Mapping[str, int]:
        return dict(self._assigned)


class DynamicSharding(ShardingStrategy):
    """Pull-based sharding over a shared queue."""

    def __init__(self, options: object) -> None:
        self._options = options

    def dispatch(self, units: Sequence[Unit], lanes: Sequence[Lane]) -> Dispatch:
        return SharedQueueDispatch(units, lanes)
