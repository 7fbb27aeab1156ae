"""`weighted`: static quotas proportional to lane capacity (declared weight, else max concurrency)."""

from __future__ import annotations

from collections.abc import Sequence

from fleetbench.interfaces import Dispatch, ShardingStrategy
from fleetbench.types import Lane, Unit
from fleetbench_plugins.sharding.static import QuotaDispatch, apportion


class WeightedSharding(ShardingStrategy):
    """Static quotas by `Lane.capacity`."""

    def __init__(self, options: object) -> None:
        self._options = options

    def dispatch(self, units: Sequence[Unit], lanes: Sequence[Lane]) -> Dispatch:
        return QuotaDispatch(units, lanes, apportion(len(units), [lane.capacity for lane in lanes]))
