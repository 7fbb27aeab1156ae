"""`even`: the original's static split. Lane sizes differ by at most one (100 units over 3 lanes: 34/33/33)."""

from __future__ import annotations

from collections.abc import Sequence

from fleetbench.interfaces import Dispatch, ShardingStrategy, UnitSource
from fleetbench.types import Lane
from fleetbench_plugins.sharding.static import QuotaDispatch, StaticOptions, apportion


class EvenSharding(ShardingStrategy):
    """Equal static quotas per lane, whatever the lanes' speed."""

    Options = StaticOptions

    def dispatch(self, source: UnitSource, lanes: Sequence[Lane]) -> Dispatch:
        return QuotaDispatch(source, lanes, apportion(source.count, [1.0] * len(lanes)), self.options.failover)
