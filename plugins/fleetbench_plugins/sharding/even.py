"""`even`: the original's static split. Lane sizes differ by at most one (100 units over 3 lanes: 34/33/33)."""

from __future__ import annotations

from collections.abc import Sequence

from fleetbench.interfaces import Dispatch, ShardingStrategy
from fleetbench.types import Lane, Unit
from fleetbench_plugins.sharding.static import QuotaDispatch, apportion


class EvenSharding(ShardingStrategy):
    """Equal static quotas per lane, whatever the lanes' speed."""

    def __init__(self, options: object) -> None:
        self._options = options

    def dispatch(self, units: Sequence[Unit], lanes: Sequence[Lane]) -> Dispatch:
        return QuotaDispatch(units, lanes, apportion(len(units), [1.0] * len(lanes)))
