"""Unit keys are content-addressed; the planner streams the missing units, cell by cell, in bounded memory."""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence

import pytest

from fleetbench.interfaces import NoOptions, Storage
from fleetbench.plan import CHECK_CHUNK, MissingUnits, ModelPlan, cell_key, diff, model_plan, unit_key
from fleetbench.testing.fakes import ExactNaming
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.types import (
    Catalog,
    Cell,
    DeploymentSpec,
    Episode,
    ModelSpec,
    Outcome,
    RunRecord,
    Unit,
    UnitResult,
    UnitScope,
)

SCOPE = UnitScope("a" * 32, "b" * 32)
A, B = "DeepSeek-V3-0324", "Llama-3.3-70B-Instruct"
RUN = "run-1"
CELLS = [Cell("grid", A, (("level", level),)) for level in ("low", "mid", "high")]


def _plan(instances: int = 3, seed: int = 0, scope: UnitScope = SCOPE, cells: Sequence[Cell] = CELLS) -> ModelPlan:
    return model_plan(A, [(cell, instances) for cell in cells], scope, seed)


def _keys(plan: ModelPlan) -> list[str]:
    return [unit.key for unit in plan.units()]


def test_known_keys_are_pinned_so_an_encoding_change_is_a_deliberate_migration() -> None:
    cell = Cell("grid", "any model", (("level", "low"), ("rate", 0.8)))
    assert cell_key(cell) == "bd0b67da78e72c09b2c8246d44eca3a6"
    assert unit_key(SCOPE, cell_key(cell), 7, 3) == "5f2315cc460266ac250f7b04dec400d7"


def test_plan_is_cells_times_instances_with_unique_keys() -> None:
    keys = _keys(_plan(instances=5))
    assert len(keys) == len(CELLS) * 5 == _plan(instances=5).planned
    assert len(set(keys)) == len(keys)
    assert all(len(k) == 32 and int(k, 16) >= 0 for k in keys)


def test_keys_depend_on_scope_seed_cell_and_index_only() -> None:
    base = _keys(_plan())
    assert _keys(_plan()) == base
    assert set(_keys(_plan(seed=1))).isdisjoint(base)
    assert set(_keys(_plan(scope=UnitScope("c" * 32, SCOPE.model)))).isdisjoint(base)
    assert set(_keys(_plan(scope=UnitScope(SCOPE.suite, "d" * 32)))).isdisjoint(base)
    # The base model enters through the model scope, not the cell: the same cell of another model is another unit
    # only because its scope differs.
    other_model = [Cell("grid", B, c.factors) for c in CELLS]
    assert _keys(_plan(cells=other_model)) == base
    # Growing `instances` keeps the keys already planned: a larger rerun runs only the new ones.
    grown = _plan(instances=6)
    assert [k for k in _keys(grown) if k in base] == base


def test_planning_streams() -> None:
    planned = _plan(instances=10**9).units()
    assert isinstance(planned, types.GeneratorType)
    assert next(planned).index == 0


class CountingStorage:
    """A real storage, counting how often the planner looks up keys."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.lookups = 0

    def stored_among(self, keys: Sequence[str]) -> set[str]:
        self.lookups += 1
        return self.storage.stored_among(keys)

    def completed_per_cell(self, scope: UnitScope, seed: int, instances: int) -> Mapping[str, int]:
        return self.storage.completed_per_cell(scope, seed, instances)


@pytest.fixture
def storage() -> Storage:
    """A storage that keeps the full contract (it passes the storage kit) with run `run-1` begun."""
    catalog = Catalog(tuple(ModelSpec(name, "scripted", (DeploymentSpec(name),)) for name in (A, B)))
    store = MemoryStorage(naming=ExactNaming(NoOptions(), catalog=catalog))
    store.begin_run(RunRecord(RUN, 1000.0, "grid", (A, B), {}, "0.1.0", "test-host"))
    return store


def result_for(unit: Unit, run_id: str, *, infra: bool = False) -> UnitResult:
    """A finished result (a success, or an infra error) for a planned unit."""
    episode = Episode(Outcome.INFRA_ERROR if infra else Outcome.SUCCESS, infra_status="timeout" if infra else None)
    model = unit.cell.base_model
    return UnitResult(unit, run_id, model, f"{model}#0", 1000.0, 1.0, episode)


def test_missing_units_stream_in_plan_order_and_skip_completed_cells(storage: Storage) -> None:
    plan = _plan(instances=4)
    units = list(plan.units())
    done = units[:4] + units[5:8:2]  # the whole first cell, two of the second
    storage.write([result_for(u, RUN) for u in done], [])
    counting = CountingStorage(storage)
    missing = MissingUnits.of(plan, counting)  # type: ignore[arg-type]
    assert missing.count == len(units) - len(done)
    streamed = list(missing.stream())
    assert [u.key for u in streamed] == [u.key for u in units if u not in done]
    assert counting.lookups == 2  # the completed first cell was never looked at
    # A later start skips that many missing units (static sharding hands each lane its slice this way).
    assert [u.key for u in missing.stream(3)] == [u.key for u in streamed[3:]]


def test_missing_units_check_large_cells_chunk_by_chunk(storage: Storage) -> None:
    plan = _plan(instances=CHECK_CHUNK * 2 + 5, cells=CELLS[:1])
    counting = CountingStorage(storage)
    missing = MissingUnits.of(plan, counting)  # type: ignore[arg-type]
    stream = missing.stream()
    next(stream)
    assert counting.lookups == 1  # only the first chunk has been checked so far
    assert sum(1 for _ in stream) == plan.planned - 1
    assert counting.lookups == 3


def test_cells_of_different_sizes_count_only_their_own_instances(storage: Storage) -> None:
    small, large = CELLS[0], CELLS[1]
    big_plan = model_plan(A, [(small, 5), (large, 5)], SCOPE, 0)
    storage.write([result_for(u, RUN) for u in big_plan.units()], [])  # an earlier run with 5 units per cell
    plan = model_plan(A, [(small, 2), (large, 8)], SCOPE, 0)
    missing = MissingUnits.of(plan, storage)
    assert missing.count == 3  # the small cell is complete at 2; the large one misses indices 5, 6, 7
    assert [(u.cell, u.index) for u in missing.stream()] == [(large, 5), (large, 6), (large, 7)]


def test_infra_errors_count_as_missing_and_diff_totals(storage: Storage) -> None:
    other = model_plan(B, [(Cell("grid", B, (("level", "x"),)), 2)], UnitScope("e" * 32, "f" * 32), 0)
    plans = [_plan(instances=2), other]
    units = list(plans[0].units())
    storage.write([result_for(units[0], RUN), result_for(units[1], RUN, infra=True)], [])
    result = diff(plans, storage)
    assert result.planned == 3 * 2 + 2
    assert result.missing[A].count == 5
    assert result.missing[B].count == 2
    assert result.missing_count == 7
