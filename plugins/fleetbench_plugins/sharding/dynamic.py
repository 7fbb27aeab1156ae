"""`dynamic` (the default): one shared queue per base model; whichever lane is idle pulls the next unit.

A slow or throttled deployment simply asks less often, so it ends up doing less, and no lane idles while work remains.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetbench.interfaces import Dispatch, ShardingStrategy, UnitSource
from fleetbench.types import Lane, Unit


class SharedQueueDispatch(Dispatch):
    """Units in plan order, streamed from the source; any of the model's lanes takes the next one."""

    def __init__(self, source: UnitSource, lanes: Sequence[Lane]) -> None:
        self._units = source.stream()
        self._lanes = {lane.lane_id for lane in lanes}

    def next_unit(self, lane_id: str) -> Unit | None:
        if lane_id not in self._lanes:
            return None
        return next(self._units, None)

    def planned(self, lane_id: str) -> int | None:
        return None if lane_id in self._lanes else 0


class DynamicSharding(ShardingStrategy):
    """Pull-based sharding over a shared queue."""

    def dispatch(self, source: UnitSource, lanes: Sequence[Lane]) -> Dispatch:
        return SharedQueueDispatch(source, lanes)
