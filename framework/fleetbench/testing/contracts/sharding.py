"""The sharding kit: what every `ShardingStrategy` must do, as tests an author inherits.

Subclass `ShardingContract` (as `TestMyStrategy`) and define the `strategy` fixture::

    class TestReversedSharding(ShardingContract):
        @pytest.fixture
        def strategy(self) -> ShardingStrategy:
            return ReversedSharding(NoOptions())
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from fleetbench.contracts import contract_problem
from fleetbench.interfaces import Dispatch, ShardingStrategy, UnitSource
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.units import make_unit
from fleetbench.types import Cell, Lane, Unit

MODEL = "Kit-Model"

LANE_SETS: dict[str, tuple[Lane, ...]] = {
    "one lane": (make_lane(MODEL),),
    "three equal lanes": tuple(make_lane(f"{MODEL}{s}", base_model=MODEL) for s in ("", "-2", "-3")),
    "mixed concurrency": (
        make_lane(MODEL, max_concurrency=8),
        make_lane(f"{MODEL}-2", base_model=MODEL, max_concurrency=1),
    ),
    "declared weights": (
        make_lane(MODEL, weight=3.0),
        make_lane(f"{MODEL}-2", base_model=MODEL, weight=1.0),
        make_lane(f"{MODEL}-3", base_model=MODEL),
    ),
    "three keys of one deployment": tuple(make_lane(MODEL, credential_id=f"key{i}") for i in range(3)),
}
"""Lane layouts every strategy must handle (one base model's lanes each)."""


def kit_units(count: int) -> list[Unit]:
    """`count` units over four cells, with distinct keys."""
    cells = [Cell("kit", MODEL, (("level", level),)) for level in ("a", "b", "c", "d")]
    return [make_unit(f"{i:032x}", cells[i % 4], index=i // 4) for i in range(count)]


class CountingSource(UnitSource):
    """A `UnitSource` over a list that counts how many units were drawn from its streams (to prove laziness)."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self._units = list(units)
        self.drawn = 0

    @property
    def count(self) -> int:
        return len(self._units)

    def stream(self, start: int = 0) -> Iterator[Unit]:
        for unit in self._units[start:]:
            self.drawn += 1
            yield unit


def drain(dispatch: Dispatch, lanes: Sequence[Lane], seed: int) -> dict[str, list[Unit]]:
    """Ask lanes in a seeded random order until every lane answers None; what each lane received."""
    received: dict[str, list[Unit]] = {lane.lane_id: [] for lane in lanes}
    active = [lane.lane_id for lane in lanes]
    order = random.Random(seed)
    while active:
        lane_id = order.choice(active)
        unit = dispatch.next_unit(lane_id)
        if unit is None:
            active.remove(lane_id)
        else:
            received[lane_id].append(unit)
    return received


class ShardingContract:
    """Inherited tests proving a strategy hands out every unit exactly once and keeps its stated quotas."""

    @pytest.fixture
    def strategy(self) -> ShardingStrategy:
        """The strategy under test, constructed with its options. Override this."""
        raise NotImplementedError("define the `strategy` fixture in your ShardingContract subclass")

    def test_passes_the_load_time_contract_check(self, strategy: ShardingStrategy) -> None:
        assert contract_problem(ShardingStrategy, type(strategy)) is None

    @pytest.mark.parametrize("layout", sorted(LANE_SETS))
    @pytest.mark.parametrize("count", [0, 1, 7, 100])
    def test_every_unit_is_handed_out_exactly_once(self, strategy: ShardingStrategy, layout: str, count: int) -> None:
        units, lanes = kit_units(count), LANE_SETS[layout]
        for seed in range(3):
            received = drain(strategy.dispatch(CountingSource(units), lanes), lanes, seed)
            handed = Counter(unit.key for got in received.values() for unit in got)
            assert handed == Counter(unit.key for unit in units), "a unit was lost or handed out twice"

    @pytest.mark.parametrize("layout", sorted(LANE_SETS))
    def test_planned_is_what_each_lane_receives(self, strategy: ShardingStrategy, layout: str) -> None:
        units, lanes = kit_units(100), LANE_SETS[layout]
        dispatch = strategy.dispatch(CountingSource(units), lanes)
        planned = {lane.lane_id: dispatch.planned(lane.lane_id) for lane in lanes}
        received = drain(dispatch, lanes, seed=0)
        for lane_id, quota in planned.items():
            assert quota is None or quota == len(received[lane_id]), f"{lane_id}: planned {quota}"
        if all(quota is not None for quota in planned.values()):
            assert sum(q or 0 for q in planned.values()) == len(units)

    def test_a_lane_it_was_not_given_gets_nothing(self, strategy: ShardingStrategy) -> None:
        lanes = LANE_SETS["three equal lanes"]
        dispatch = strategy.dispatch(CountingSource(kit_units(10)), lanes)
        assert dispatch.next_unit("Other-Model#key0") is None
        assert dispatch.planned("Other-Model#key0") in (None, 0)

    def test_units_are_pulled_from_the_source_not_listed(self, strategy: ShardingStrategy) -> None:
        source = CountingSource(kit_units(1000))
        lanes = LANE_SETS["three equal lanes"]
        dispatch = strategy.dispatch(source, lanes)
        assert dispatch.next_unit(lanes[0].lane_id) is not None
        assert source.drawn < source.count, "the strategy listed the whole source before handing out one unit"
