"""A dispatch over fixed per-lane quotas, shared by the static strategies (`even`, `weighted`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from itertools import islice

from fleetbench.interfaces import Dispatch, UnitSource, option
from fleetbench.types import Lane, Unit


@dataclasses.dataclass
class StaticOptions:
    """Options of the static strategies (`even`, `weighted`)."""

    failover: bool = option(
        True,
        affects_result=False,
        help="when a lane is down (parked or stopped), healthy lanes of its model run the rest of its share",
    )


class QuotaDispatch(Dispatch):
    """Each lane owns a fixed, contiguous slice of the missing units; a lane that finishes its slice stops.

    Each lane streams its own slice from the source (starting at the slice's first unit), so nothing is listed.
    With `failover`, a healthy lane that finished its slice takes over the rest of a down lane's slice.
    """

    def __init__(self, source: UnitSource, lanes: Sequence[Lane], quotas: Sequence[int], failover: bool = True) -> None:
        if len(quotas) != len(lanes) or sum(quotas) != source.count or min(quotas, default=0) < 0:
            raise ValueError(f"quotas {list(quotas)} do not cover {source.count} units over {len(lanes)} lanes")
        self.failover = failover
        self._quotas: dict[str, int] = {}
        self._slices: dict[str, Iterator[Unit]] = {}
        start = 0
        for lane, quota in zip(lanes, quotas, strict=True):
            self._quotas[lane.lane_id] = quota
            self._slices[lane.lane_id] = islice(source.stream(start), quota)
            start += quota

    def next_unit(self, lane_id: str) -> Unit | None:
        units = self._slices.get(lane_id)
        return None if units is None else next(units, None)

    def planned(self, lane_id: str) -> int | None:
        return self._quotas.get(lane_id, 0)

    def take_over(self, lane_id: str, down_lane_id: str) -> Unit | None:
        if not self.failover or lane_id not in self._slices:
            return None
        return self.next_unit(down_lane_id)


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` proportionally to `weights` by largest remainder (ties go to the earlier lane)."""
    weight_sum = float(sum(weights))
    if weight_sum <= 0:
        raise ValueError("weights must sum to a positive number")
    exact = [total * w / weight_sum for w in weights]
    quotas = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[: total - sum(quotas)]:
        quotas[i] += 1
    return quotas
