"""`weighted`: static quotas proportional to each lane's share of its base model's capacity.

One base model's lanes are weighed together, so a weight means one thing within a model:

* when any lane of the model declares a `weight`, the lanes that declare none count as weight 1;
* only when no lane declares a weight do the lanes split by `max_concurrency`.

A deployment's `weight`, like its `max_concurrency` and `rpm`, applies to each of its lanes (one lane per API key):
a deployment with three keys and weight 2 holds three lanes of weight 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetbench.interfaces import Dispatch, ShardingStrategy, UnitSource
from fleetbench.types import Lane
from fleetbench_plugins.sharding.static import QuotaDispatch, StaticOptions, apportion

UNDECLARED_WEIGHT = 1.0
"""The weight of a lane that declares none while another lane of its base model does."""


def lane_weights(lanes: Sequence[Lane]) -> list[float]:
    """The relative share of each lane of one base model, in lane order (see the module docstring)."""
    if any(lane.weight is not None for lane in lanes):
        return [UNDECLARED_WEIGHT if lane.weight is None else float(lane.weight) for lane in lanes]
    return [float(lane.max_concurrency) for lane in lanes]


class WeightedSharding(ShardingStrategy):
    """Static quotas by `lane_weights`, apportioned by largest remainder."""

    Options = StaticOptions

    def dispatch(self, source: UnitSource, lanes: Sequence[Lane]) -> Dispatch:
        return QuotaDispatch(source, lanes, apportion(source.count, lane_weights(lanes)), self.options.failover)
