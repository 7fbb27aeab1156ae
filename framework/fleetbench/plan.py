"""RunSpec → units. Units are streamed (a plan of millions never sits in one list) and keyed by content.

A unit key hashes everything that changes a unit's result — suite name, version and identity (dataset digests, scoring
settings), base model, cell factors, instance index, seed — and nothing else: not the deployment, the credential or
the run. Resume, exactly-once writes and sharing units between experiments all follow from that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench.interfaces import Suite
from fleetbench.types import Cell, Unit

KEY_BYTES = 16
"""128-bit keys (32 hex characters): collisions are out of reach for any plan size."""


def canonical_json(value: Any) -> bytes:
    """A stable byte encoding: sorted keys, no white space, floats as repr."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def suite_fingerprint(suite: Suite) -> bytes:
    """The part of every unit key that the suite contributes beyond the cell."""
    return canonical_json({"suite": suite.name, "version": suite.version, "identity": dict(suite.identity())})


def cell_hasher(fingerprint: bytes, cell: Cell, seed: int) -> Any:
    """A hash state covering everything but the instance index; `unit_key` finishes a copy per unit."""
    hasher = hashlib.blake2b(digest_size=KEY_BYTES)
    hasher.update(fingerprint)
    hasher.update(canonical_json({"model": cell.base_model, "cell": [list(f) for f in cell.factors], "seed": seed}))
    return hasher


def unit_key(cell_state: Any, index: int) -> str:
    """The key of instance `index` of a cell."""
    hasher = cell_state.copy()
    hasher.update(index.to_bytes(8, "little"))
    return str(hasher.hexdigest())


def iter_units(suite: Suite, base_models: Sequence[str], instances: int, seed: int) -> Iterator[Unit]:
    """Every planned unit, model by model, cell by cell, instance by instance (`Suite.instances` per cell)."""
    fingerprint = suite_fingerprint(suite)
    for model in base_models:
        for cell in suite.cells(model):
            state = cell_hasher(fingerprint, cell, seed)
            for index in range(suite.instances(cell, instances)):
                yield Unit(unit_key(state, index), cell, index, seed)


@dataclass(frozen=True)
class PlanDiff:
    """The plan against storage: how many units it holds, and the missing ones per base model in plan order."""

    planned: int
    missing: Mapping[str, list[Unit]]

    @property
    def missing_count(self) -> int:
        return sum(len(units) for units in self.missing.values())


def diff(planned: Iterable[Unit], stored: Container[str]) -> PlanDiff:
    """Stream the plan once, keeping only units whose keys are not stored (what a run or a resume executes)."""
    count = 0
    missing: dict[str, list[Unit]] = {}
    for unit in planned:
        count += 1
        if unit.key not in stored:
            missing.setdefault(unit.cell.base_model, []).append(unit)
    return PlanDiff(count, missing)
