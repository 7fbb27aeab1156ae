"""Static dispatch: quotas must cover every missing unit exactly (else units would silently never run), each lane
streams its own contiguous slice, and `apportion` splits by largest remainder (property-tested)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbench.testing.lanes import make_lane
from fleetbench.testing.units import ListSource, make_unit
from fleetbench.types import Cell, Lane
from fleetbench_plugins.sharding.static import QuotaDispatch, apportion

CELL = Cell("tiny", "Kit-Model", (("word", "alpha"),))
LANES = [make_lane("Kit-Model", credential_id=f"key{i}") for i in range(3)]


def _source(count: int) -> ListSource:
    return ListSource([make_unit(f"{i:032x}", CELL, i) for i in range(count)])


@pytest.mark.parametrize(
    "quotas",
    [[3, 3, 3], [4, 4, 4], [5, 5], [5, 5, 0, 0], [11, -1, 0], [], [10, 0]],
    ids=["too-few", "too-many", "a-lane-short", "a-lane-extra", "negative", "none", "two-for-three"],
)
def test_quotas_that_do_not_cover_every_unit_over_every_lane_are_refused(quotas: list[int]) -> None:
    with pytest.raises(ValueError, match=rf"^quotas \[.*\] do not cover 10 units over {len(LANES)} lanes$"):
        QuotaDispatch(_source(10), LANES, quotas)


@pytest.mark.parametrize("quotas", [[10, 0, 0], [0, 0, 10], [3, 3, 4], [0, 10, 0]])
def test_each_lane_gets_its_contiguous_slice_in_plan_order_then_nothing(quotas: list[int]) -> None:
    dispatch = QuotaDispatch(_source(10), LANES, quotas)
    start = 0
    for lane, quota in zip(LANES, quotas, strict=True):
        assert dispatch.planned(lane.lane_id) == quota
        taken = [dispatch.next_unit(lane.lane_id) for _ in range(quota)]
        assert [u.index for u in taken if u is not None] == list(range(start, start + quota))
        assert dispatch.next_unit(lane.lane_id) is None
        start += quota


def test_a_lane_outside_the_dispatch_gets_nothing_and_plans_nothing() -> None:
    dispatch = QuotaDispatch(_source(4), LANES, [2, 1, 1])
    stranger: Lane = make_lane("Other-Model")
    assert dispatch.next_unit(stranger.lane_id) is None
    assert dispatch.planned(stranger.lane_id) == 0


def test_no_units_over_lanes_with_zero_quotas_is_fine() -> None:
    dispatch = QuotaDispatch(_source(0), LANES, [0, 0, 0])
    assert all(dispatch.next_unit(lane.lane_id) is None for lane in LANES)
    empty = QuotaDispatch(_source(0), [], [])  # no lanes at all: nothing to hand out, nothing refused
    assert empty.next_unit(LANES[0].lane_id) is None and empty.planned(LANES[0].lane_id) == 0


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, [1, 1, 1], [4, 3, 3]),
        (11, [1, 1, 1], [4, 4, 3]),
        (7, [0.5, 0.25, 0.25], [3, 2, 2]),
        (1, [1, 1], [1, 0]),
        (1, [1, 2], [0, 1]),
        (0, [1, 1], [0, 0]),
        (5, [0, 1], [0, 5]),
        (3, [2], [3]),
        (100, [1, 2, 7], [10, 20, 70]),
    ],
)
def test_apportion_examples(total: int, weights: list[float], expected: list[int]) -> None:
    assert apportion(total, weights) == expected


@pytest.mark.parametrize("weights", [[0, 0], [], [-1, 1]])
def test_apportion_refuses_weights_that_do_not_sum_to_a_positive_number(weights: list[float]) -> None:
    with pytest.raises(ValueError, match=r"^weights must sum to a positive number$"):
        apportion(3, weights)


WEIGHTS = st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), min_size=1, max_size=8).filter(
    lambda w: sum(w) > 0
)


@settings(deadline=None)
@given(total=st.integers(min_value=0, max_value=10**7), weights=WEIGHTS)
def test_apportion_covers_the_total_within_one_of_each_exact_share(total: int, weights: list[float]) -> None:
    quotas = apportion(total, weights)
    assert len(quotas) == len(weights)
    assert sum(quotas) == total
    for quota, weight in zip(quotas, weights, strict=True):
        exact = total * weight / sum(weights)
        assert math.floor(exact) - 1e-6 <= quota <= math.ceil(exact) + 1e-6
        assert quota >= 0


@settings(deadline=None)
@given(total=st.integers(min_value=0, max_value=10**5), lanes=st.integers(min_value=1, max_value=9))
def test_equal_weights_differ_by_at_most_one_and_the_earlier_lanes_get_the_remainder(total: int, lanes: int) -> None:
    quotas = apportion(total, [1.0] * lanes)
    assert quotas == sorted(quotas, reverse=True)
    assert max(quotas) - min(quotas) <= 1
