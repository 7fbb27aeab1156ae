"""`weighted`: static quotas proportional to lane capacity (declared weight, else max concurrency)."""

from __future__ import annotations

from collections.abc import Sequence

from fleetbench.interfaces import Dispatch, ShardingStrategy, UnitSource
from fleetbench.types import Lane
from fleetbench_plugins.sharding.static import QuotaDispatch, apportion


class WeightedSharding(ShardingStrategy):
    """Static quotas by `Lane.capacity`."""

    def dispatch(self, source: UnitSource, lanes: Sequence[Lane]) -> Dispatch:
        return QuotaDispatch(source, lanes, apportion(source.count, [lane.capacity for lane in lanes]))
