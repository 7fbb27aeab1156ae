"""A dispatch over fixed per-lane quotas, shared by the static strategies (`even`, `weighted`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from fleetbench.interfaces import Dispatch
from fleetbench.types import Lane, Unit


class QuotaDispatch(Dispatch):
    """Each lane owns a fixed, contiguous slice of the units; a lane that finishes its slice stops."""

    def __init__(self, units: Sequence[Unit], lanes: Sequence[Lane], quotas: Sequence[int]) -> None:
        if sum(quotas) != len(units) or len(quotas) != len(lanes):
            raise ValueError(f"quotas {list(quotas)} do not cover {len(units)} units over {len(lanes)} lanes")
        self._queues: dict[str, deque[Unit]] = {}
        self._assigned: dict[str, int] = {}
        start = 0
        for lane, quota in zip(lanes, quotas, strict=True):
            self._queues[lane.lane_id] = deque(units[start : start + quota])
            self._assigned[lane.lane_id] = 0
            start += quota

    def next_unit(self, lane_id: str) -> Unit | None:
        queue = self._queues.get(lane_id)
        if not queue:
            return None
        self._assigned[lane_id] += 1
        return queue.popleft()

    def assigned(self) -> Mapping[str, int]:
        return dict(self._assigned)


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
