"""Unit keys are content-addressed; the planner streams and diffs against stored keys."""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fleetbench.interfaces import Chat, EpisodeContext, Suite
from fleetbench.plan import diff, iter_units
from fleetbench.types import Cell, Episode, MetricSpec, Unit


class GridSuite(Suite):
    """A minimal suite with a two-cell grid (a real Suite subclass, as a third-party author would write)."""

    name = "grid"
    version = "1"

    def __init__(self, options: Any = None, identity: Mapping[str, Any] | None = None) -> None:
        self._identity = dict(identity or {})

    def cells(self, base_model: str) -> Iterator[Cell]:
        for level in ("low", "high"):
            yield Cell(self.name, base_model, (("level", level),))

    def identity(self) -> Mapping[str, Any]:
        return self._identity

    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        raise NotImplementedError("planning only")

    def metrics(self) -> Sequence[MetricSpec]:
        return ()


def _keys(suite: Suite, models: list[str], instances: int = 3, seed: int = 0) -> list[str]:
    return [u.key for u in iter_units(suite, models, instances, seed)]


def test_plan_is_models_times_cells_times_instances_with_unique_keys() -> None:
    keys = _keys(GridSuite(), ["A", "B"], instances=5)
    assert len(keys) == 2 * 2 * 5
    assert len(set(keys)) == len(keys)
    assert all(len(k) == 32 for k in keys)


def test_keys_are_stable_and_depend_only_on_what_changes_results() -> None:
    base = _keys(GridSuite(), ["A"])
    assert _keys(GridSuite(), ["A"]) == base
    assert _keys(GridSuite(), ["A"], seed=1) != base
    assert _keys(GridSuite(identity={"dataset": "other"}), ["A"]) != base
    assert set(_keys(GridSuite(), ["B"])).isdisjoint(base)
    # Growing `instances` keeps the keys of the instances already planned: a larger rerun runs only the new ones.
    assert _keys(GridSuite(), ["A"], instances=6)[:3] == base[:3]


def test_planning_streams() -> None:
    planned = iter_units(GridSuite(), ["A"], 10**9, 0)
    assert isinstance(planned, types.GeneratorType)
    assert next(planned).index == 0


def test_diff_keeps_exactly_the_missing_units_per_model_in_plan_order() -> None:
    units = list(iter_units(GridSuite(), ["A", "B"], 4, 0))
    stored = {u.key for u in units[::2]}
    plan = diff(iter(units), stored)
    assert plan.planned == len(units) == 16
    assert plan.missing_count == 8
    assert [u.key for u in plan.missing["A"] + plan.missing["B"]] == [u.key for u in units[1::2]]
    assert all(u.cell.base_model == "B" for u in plan.missing["B"])
