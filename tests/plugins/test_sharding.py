"""Static and dynamic sharding over lanes (the dynamic behaviour under load is tested end to end in test_runner)."""

from __future__ import annotations

import pytest

from fleetbench.config import compose_config, resolve_run
from fleetbench.interfaces import NoOptions
from fleetbench.testing.units import ListSource, make_unit
from fleetbench.types import Cell, Lane, Unit
from fleetbench_plugins.sharding.dynamic import DynamicSharding
from fleetbench_plugins.sharding.even import EvenSharding
from fleetbench_plugins.sharding.static import StaticOptions, apportion
from fleetbench_plugins.sharding.weighted import WeightedSharding

CELL = Cell("jsonl", "Sim-Agent", (("category", "arithmetic"),))


def _units(n: int) -> ListSource:
    return ListSource([make_unit(f"{i:032x}", CELL, i) for i in range(n)])


def _lanes(*capacities: int, weights: tuple[float | None, ...] = ()) -> list[Lane]:
    declared = weights or (None,) * len(capacities)
    return [
        Lane(f"Sim-Agent-{i + 1}", "Sim-Agent", f"Sim-Agent-{i + 1}", "simulated", "key0", c, weight=w)
        for i, (c, w) in enumerate(zip(capacities, declared, strict=True))
    ]


def _weighted_sizes(units: int, lanes: list[Lane]) -> list[int]:
    taken = _drain(WeightedSharding(StaticOptions()).dispatch(_units(units), lanes), lanes)
    assert sorted(u.key for v in taken.values() for u in v) == sorted(u.key for u in _units(units).stream())
    return [len(taken[lane.lane_id]) for lane in lanes]


def _drain(dispatch, lanes: list[Lane]) -> dict[str, list[Unit]]:  # type: ignore[no-untyped-def]
    taken: dict[str, list[Unit]] = {lane.lane_id: [] for lane in lanes}
    progress = True
    while progress:
        progress = False
        for lane in lanes:
            unit = dispatch.next_unit(lane.lane_id)
            if unit is not None:
                taken[lane.lane_id].append(unit)
                progress = True
    return taken


def test_even_splits_100_units_over_three_lanes_34_33_33() -> None:
    lanes = _lanes(8, 8, 8)
    taken = _drain(EvenSharding(StaticOptions()).dispatch(_units(100), lanes), lanes)
    assert [len(v) for v in taken.values()] == [34, 33, 33]


@pytest.mark.parametrize("n", [0, 1, 2, 5, 99, 101, 1000])
def test_even_sizes_differ_by_at_most_one_and_cover_every_unit_once(n: int) -> None:
    lanes = _lanes(1, 4, 9)
    taken = _drain(EvenSharding(StaticOptions()).dispatch(_units(n), lanes), lanes)
    sizes = [len(v) for v in taken.values()]
    assert max(sizes) - min(sizes) <= 1
    keys = [u.key for units in taken.values() for u in units]
    assert sorted(keys) == sorted(u.key for u in _units(n).stream())


def test_weighted_without_any_declared_weight_follows_max_concurrency() -> None:
    lanes = _lanes(1, 2, 7)
    dispatch = WeightedSharding(StaticOptions()).dispatch(_units(100), lanes)
    taken = _drain(dispatch, lanes)
    assert [len(v) for v in taken.values()] == [10, 20, 70]
    assert [dispatch.planned(lane.lane_id) for lane in lanes] == [10, 20, 70]


def test_weighted_with_every_weight_declared_ignores_max_concurrency() -> None:
    assert _weighted_sizes(100, _lanes(50, 1, 1, weights=(1, 1, 2))) == [25, 25, 50]


def test_weighted_with_some_weights_declared_counts_the_undeclared_lanes_as_weight_1() -> None:
    # The case: weight 3 on one deployment, none on the others (max_concurrency 8 each). Before the fix the
    # others counted 8 each, and the heavier deployment got the fewest units (16 / 42 / 42).
    assert _weighted_sizes(100, _lanes(8, 8, 8, weights=(3, None, None))) == [60, 20, 20]
    assert _weighted_sizes(10, _lanes(8, 8, 8, weights=(None, 0.5, None))) == [4, 2, 4]


def test_weighted_keeps_largest_remainder_apportionment() -> None:
    # 100 * (1, 1, 1) / 3: 33.3 each, the one leftover unit goes to the earliest lane.
    assert _weighted_sizes(100, _lanes(8, 8, 8, weights=(2, 2, 2))) == [34, 33, 33]
    assert _weighted_sizes(7, _lanes(8, 8, 8, weights=(2, None, None))) == [3, 2, 2]


def test_a_deployments_weight_applies_to_each_of_its_lanes_one_per_api_key() -> None:
    # Sim-Qwen: one deployment with three keys (three lanes, weight 2 each) and one with a single key (weight 3);
    # a third deployment declares no weight and counts 1 although its max_concurrency is 40.
    deployments = (
        "[{name: Sim-Qwen, api_keys: [k0, k1, k2], max_concurrency: 1, weight: 2},"
        " {name: Sim-Qwen-2, weight: 3}, {name: Sim-Qwen-3, max_concurrency: 40}]"
    )
    spec = resolve_run(
        compose_config(["run.models=[Sim-Qwen]", "sharding=weighted", f"models.sim_qwen.deployments={deployments}"])
    )
    lanes = list(spec.lanes["Sim-Qwen"])
    assert [lane.lane_id for lane in lanes] == [
        "Sim-Qwen#key0",
        "Sim-Qwen#key1",
        "Sim-Qwen#key2",
        "Sim-Qwen-2",
        "Sim-Qwen-3",
    ]
    taken = _drain(spec.sharding.dispatch(_units(100), lanes), lanes)
    # Weights 2, 2, 2, 3, 1 (sum 10): 20 units per key of Sim-Qwen, 30 for Sim-Qwen-2, 10 for Sim-Qwen-3.
    assert [len(taken[lane.lane_id]) for lane in lanes] == [20, 20, 20, 30, 10]


def test_apportion_gives_remainders_to_the_largest_fractions() -> None:
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(7, [0.5, 0.25, 0.25]) == [3, 2, 2]  # 3.5, 1.75, 1.75: the .75 remainders win
    with pytest.raises(ValueError):
        apportion(3, [0, 0])


def test_dynamic_hands_each_unit_to_whichever_lane_asks() -> None:
    lanes = _lanes(8, 8, 8)
    dispatch = DynamicSharding(NoOptions()).dispatch(_units(10), lanes)
    first = [dispatch.next_unit("Sim-Agent-1") for _ in range(7)]
    rest = [dispatch.next_unit("Sim-Agent-3") for _ in range(5)]
    assert [u.index for u in first if u] == list(range(7))
    assert [u.index for u in rest if u] == [7, 8, 9]
    assert dispatch.next_unit("Sim-Agent-2") is None
    assert dispatch.planned("Sim-Agent-2") is None  # pulls from the shared queue: no quota
    assert dispatch.next_unit("Other-Model") is None and dispatch.planned("Other-Model") == 0
