"""RunSpec → units, keyed by content and streamed: a plan of any size is never held in memory.

A unit key hashes everything that can change a unit's result and nothing else:
- the suite scope: suite name, version, data digests and result-relevant options (and the judge model, if any);
- the model scope: base model, provider, tool-calling mode, generation settings, result-relevant provider options
  and model params;
- the cell's factors, the experiment seed and the instance index.
Never the deployment, the credential, concurrency, timeouts, storage or the run. Resume, exactly-once writes and
sharing units between experiments follow from that.

The missing units of a model are streamed cell by cell: storage first says how many units of each cell are already
completed (cells with nothing missing are skipped without looking at their units), then each remaining cell's keys
are checked in chunks. Memory stays bounded by the number of cells plus one chunk, whatever `run.instances` is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from fleetbench.config.identity import KEY_BYTES, digest
from fleetbench.interfaces import Storage, UnitSource
from fleetbench.types import Cell, Unit, UnitScope

KEY_SCHEME = 2
"""Version of the key derivation. Scheme 1 (fleetbench 0.1) left result-relevant options out; migration 0002 moves
units keyed by it aside. Changing the derivation again needs a new scheme and a migration."""

CHECK_CHUNK = 1024
"""Keys checked against storage per query while streaming missing units."""


def cell_key(cell: Cell) -> str:
    """The digest of a cell's factors (the scope and the seed are hashed separately)."""
    return digest([list(factor) for factor in cell.factors])


def _cell_hasher(scope: UnitScope, cell_digest: str, seed: int) -> Any:
    """A hash state over everything but the instance index (copied per unit: a plan has millions)."""
    hasher = hashlib.blake2b(digest_size=KEY_BYTES)
    hasher.update(f"{KEY_SCHEME}:{scope.suite}:{scope.model}:{cell_digest}:{seed}:".encode())
    return hasher


def unit_key(scope: UnitScope, cell_digest: str, seed: int, index: int) -> str:
    """The key of instance `index` of a cell."""
    return _finish(_cell_hasher(scope, cell_digest, seed), index)


def _finish(cell_hasher: Any, index: int) -> str:
    hasher = cell_hasher.copy()
    hasher.update(index.to_bytes(8, "little"))
    return str(hasher.hexdigest())


@dataclass(frozen=True)
class PlannedCell:
    """One cell of a model's plan: its digest, how many units it gets (`Suite.instances`), and its hash state."""

    cell: Cell
    key: str
    instances: int
    scope: UnitScope
    seed: int
    hasher: Any = field(repr=False, compare=False)

    def unit(self, index: int) -> Unit:
        return Unit(_finish(self.hasher, index), self.cell, index, self.seed, self.scope, self.key)


@dataclass(frozen=True)
class ModelPlan:
    """One base model's part of the plan: each cell's units, all under one scope and seed."""

    base_model: str
    scope: UnitScope
    cells: tuple[PlannedCell, ...]
    seed: int

    @property
    def planned(self) -> int:
        return sum(cell.instances for cell in self.cells)

    def units(self) -> Iterator[Unit]:
        """Every planned unit, cell by cell, instance by instance."""
        for planned in self.cells:
            for index in range(planned.instances):
                yield planned.unit(index)


def model_plan(base_model: str, cells: Sequence[tuple[Cell, int]], scope: UnitScope, seed: int) -> ModelPlan:
    """A model's plan from its cells (the suite's grid for that model), each with its number of units."""
    planned = []
    for cell, instances in cells:
        digest_ = cell_key(cell)
        planned.append(PlannedCell(cell, digest_, instances, scope, seed, _cell_hasher(scope, digest_, seed)))
    return ModelPlan(base_model, scope, tuple(planned), seed)


class MissingUnits(UnitSource):
    """The units of a model plan that storage does not hold completed, streamed in plan order."""

    def __init__(self, plan: ModelPlan, storage: Storage, missing_per_cell: Sequence[int], first_cell: int = 0) -> None:
        self._plan = plan
        self._storage = storage
        self._missing = list(missing_per_cell)
        self._first = first_cell % len(self._missing) if self._missing else 0
        """Where the stream starts: the cells from here to the last, then the ones before (`from_worker`)."""

    def from_worker(self, worker: int) -> MissingUnits:
        """The same units, streamed from a cell that depends on `worker`: workers 0, 1, 2, 3, 4... start at 0, 1/2,
        1/4, 3/4, 1/8... of the plan's cells, so workers sharing a plan each claim where the others are not (instead
        of every worker trying each batch the first one already holds: half of two workers' claims found nothing).
        The order changes only which unit runs when, never a unit or its key."""
        return MissingUnits(self._plan, self._storage, self._missing, int(_spread(worker) * len(self._missing)))

    @classmethod
    def of(cls, plan: ModelPlan, storage: Storage) -> MissingUnits:
        """Ask storage how much of each cell is done (once per distinct cell size); keep the per-cell missing counts."""
        done = {
            size: storage.completed_per_cell(plan.scope, plan.seed, size)
            for size in {cell.instances for cell in plan.cells}
        }
        return cls(plan, storage, [c.instances - done[c.instances].get(c.key, 0) for c in plan.cells])

    @property
    def count(self) -> int:
        return sum(self._missing)

    @property
    def plan(self) -> ModelPlan:
        return self._plan

    def stream(self, start: int = 0) -> Iterator[Unit]:
        skip = start
        cells, first = self._plan.cells, self._first
        order = zip(cells[first:] + cells[:first], self._missing[first:] + self._missing[:first], strict=True)
        for planned, missing in order:
            if missing == 0 or skip >= missing:
                skip -= missing
                continue
            cell_units = self._missing_in(planned)
            yield from islice(cell_units, skip, None)
            skip = 0

    def _missing_in(self, planned: PlannedCell) -> Iterator[Unit]:
        for low in range(0, planned.instances, CHECK_CHUNK):
            indices = range(low, min(low + CHECK_CHUNK, planned.instances))
            chunk = [planned.unit(i) for i in indices]
            stored = self._storage.stored_among([unit.key for unit in chunk])
            yield from (unit for unit in chunk if unit.key not in stored)


def _spread(worker: int) -> float:
    """The van der Corput sequence in base 2 (the bits of `worker` mirrored behind the point): 0, 1/2, 1/4, 3/4,
    1/8, 5/8...; any first N workers start evenly spread whatever N is."""
    fraction, weight = 0.0, 0.5
    while worker > 0:
        fraction += weight * (worker & 1)
        worker >>= 1
        weight /= 2
    return fraction


@dataclass(frozen=True)
class PlanDiff:
    """The plan against storage: planned units, and per base model the source of its missing units."""

    planned: int
    missing: Mapping[str, MissingUnits]

    @property
    def missing_count(self) -> int:
        return sum(source.count for source in self.missing.values())


def diff(plans: Sequence[ModelPlan], storage: Storage, worker: int = 0) -> PlanDiff:
    """How many units each model's plan still misses (one aggregate query per model; no unit is listed), streamed
    from `worker`'s starting cell (`MissingUnits.from_worker`)."""
    sources = {plan.base_model: MissingUnits.of(plan, storage).from_worker(worker) for plan in plans}
    return PlanDiff(sum(plan.planned for plan in plans), {m: s for m, s in sources.items() if s.count})
