"""Streaming the missing units at their edges: a cell missing exactly one unit, a start that falls on a cell boundary
(that cell is never looked at), a unit completed elsewhere after planning, and one storage query per cell size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from fleetbench.interfaces import NoOptions
from fleetbench.plan import MissingUnits, ModelPlan, diff, model_plan
from fleetbench.testing.fakes import ExactNaming
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.testing.runs import fake_models
from fleetbench.types import Catalog, Cell, Episode, Outcome, RunRecord, Unit, UnitResult, UnitScope

MODEL, OTHER = "Model", "Other"
SCOPE = UnitScope("a" * 32, "b" * 32)
CELLS = [Cell("grid", MODEL, (("level", level),)) for level in ("low", "mid", "high")]


class Counting(MemoryStorage):
    """The in-memory storage, recording the planner's look-ups."""

    def __init__(self) -> None:
        super().__init__(naming=ExactNaming(NoOptions(), catalog=Catalog(fake_models([MODEL, OTHER]))))
        self.looked_up: list[list[str]] = []
        self.counted: list[int] = []
        self.begin_run(RunRecord("r", 0.0, "grid", (MODEL,), {}, "v", "h"))

    def stored_among(self, keys: Sequence[str]) -> set[str]:
        self.looked_up.append(list(keys))
        return super().stored_among(keys)

    def completed_per_cell(self, scope: UnitScope, seed: int, instances: int) -> Mapping[str, int]:
        self.counted.append(instances)
        return super().completed_per_cell(scope, seed, instances)

    def complete(self, units: Sequence[Unit]) -> None:
        self.write([UnitResult(u, "r", MODEL, MODEL, 0.0, 0.1, Episode(Outcome.SUCCESS)) for u in units], [])


@pytest.fixture
def storage() -> Counting:
    return Counting()


def _plan(*sizes: int) -> ModelPlan:
    return model_plan(MODEL, list(zip(CELLS, sizes, strict=False)), SCOPE, 0)


def _cell_keys(storage: Counting) -> set[str]:
    return {key for keys in storage.looked_up for key in keys}


def test_a_cell_missing_exactly_one_unit_streams_it(storage: Counting) -> None:
    plan = _plan(3, 3)
    units = list(plan.units())
    storage.complete(units[:2] + units[3:])  # the first cell misses its last unit, the second nothing
    missing = MissingUnits.of(plan, storage)
    assert missing.count == 1
    assert [u.key for u in missing.stream()] == [units[2].key]


def test_a_start_on_a_cell_boundary_never_looks_at_the_cells_before_it(storage: Counting) -> None:
    plan = _plan(2, 2, 2)
    units = list(plan.units())
    storage.complete(units[1:2])  # the first cell misses one, the others two each
    missing = MissingUnits.of(plan, storage)
    assert missing.count == 5
    assert [u.key for u in missing.stream(1)] == [u.key for u in units[2:]]
    assert _cell_keys(storage).isdisjoint(u.key for u in units[:2]), "the skipped cell was looked at"
    storage.looked_up.clear()
    assert [u.key for u in missing.stream(3)] == [u.key for u in units[4:]]
    assert _cell_keys(storage) == {u.key for u in units[4:]}


@pytest.mark.parametrize("start", [5, 6, 100])
def test_a_start_at_or_past_the_end_streams_nothing_and_looks_up_nothing(storage: Counting, start: int) -> None:
    missing = MissingUnits.of(_plan(2, 3), storage)
    assert list(missing.stream(start)) == []
    assert storage.looked_up == []


def test_a_start_inside_a_cell_skips_that_many_of_its_missing_units(storage: Counting) -> None:
    plan = _plan(4, 2)
    units = list(plan.units())
    storage.complete([units[0], units[2]])
    missing = MissingUnits.of(plan, storage)
    assert [u.key for u in missing.stream(1)] == [u.key for u in (units[3], units[4], units[5])]


def test_a_unit_completed_elsewhere_after_planning_is_skipped(storage: Counting) -> None:
    plan = _plan(3)
    units = list(plan.units())
    missing = MissingUnits.of(plan, storage)
    storage.complete(units[1:2])  # another process finished it meanwhile
    assert missing.count == 3, "the count is what was missing at planning time"
    assert [u.index for u in missing.stream()] == [0, 2]


def test_storage_counts_completed_units_once_per_distinct_cell_size(storage: Counting) -> None:
    MissingUnits.of(_plan(2, 5, 2), storage)
    assert sorted(storage.counted) == [2, 5]


def test_diff_lists_only_models_with_missing_units(storage: Counting) -> None:
    mine = _plan(2, 1)
    other = model_plan(OTHER, [(Cell("grid", OTHER, (("level", "low"),)), 3)], UnitScope("c" * 32, "d" * 32), 0)
    storage.complete(list(mine.units()))
    result = diff([mine, other], storage)
    assert (result.planned, result.missing_count, list(result.missing)) == (6, 3, [OTHER])
    assert result.missing[OTHER].plan is other


@pytest.mark.parametrize(("worker", "first_cell"), [(0, 0), (1, 1), (2, 0), (3, 2), (5, 1)])
def test_a_worker_streams_the_same_units_from_its_own_starting_cell(
    storage: Counting, worker: int, first_cell: int
) -> None:
    """Workers 0, 1, 2, 3 start at 0, 1/2, 1/4 and 3/4 of the cells (5 at 5/8), rounded down to a cell: each
    claims where the others are not; the units, their keys and the missing count are the same for every worker."""
    plan = _plan(1, 2, 3)
    everyone = MissingUnits.of(plan, storage)
    mine = diff([plan], storage, worker).missing[MODEL]
    cells = [cell.key for cell in plan.cells]
    streamed = list(mine.stream())
    assert mine.count == everyone.count == 6
    assert sorted(u.key for u in streamed) == sorted(u.key for u in everyone.stream())
    assert streamed[0].cell_key == cells[first_cell] and streamed[0].index == 0
    rotated = cells[first_cell:] + cells[:first_cell]
    sizes = {cell.key: cell.instances for cell in plan.cells}
    assert [u.cell_key for u in streamed] == [key for key in rotated for _ in range(sizes[key])]
    # Static shares slice the worker's own order: consecutive slices still cover every unit once.
    assert [u.key for u in mine.stream(3)] == [u.key for u in streamed[3:]]
