"""Units for plugin tests: build them without a suite or a plan, and serve a list of them as a `UnitSource`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fleetbench.config.identity import digest, suite_identity
from fleetbench.interfaces import Suite, UnitSource
from fleetbench.plan import cell_key, model_plan
from fleetbench.types import Cell, Unit, UnitScope

TEST_SCOPE = UnitScope("0" * 32, "1" * 32)
"""A fixed scope for units that tests build by hand."""


def make_unit(key: str, cell: Cell, index: int = 0, seed: int = 0, scope: UnitScope = TEST_SCOPE) -> Unit:
    """A unit with an explicit key (tests choose keys; the planner derives them)."""
    return Unit(key, cell, index, seed, scope, cell_key(cell))


class ListSource(UnitSource):
    """A `UnitSource` over units held in a list: for sharding tests, where plans are small."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self._units = list(units)

    @property
    def count(self) -> int:
        return len(self._units)

    def stream(self, start: int = 0) -> Iterator[Unit]:
        return iter(self._units[start:])


def plan_units(suite: Suite, options: Any, base_model: str, instances: int, seed: int = 0) -> list[Unit]:
    """The units a run of `suite` (with these options) would plan for one model, keyed as the planner keys them:
    the suite's scope comes from its identity and result-relevant options, the model's from its name alone."""
    scope = UnitScope(digest(suite_identity(suite, options, None)), digest({"model": base_model}))
    cells = [(cell, suite.instances(cell, instances)) for cell in suite.cells(base_model)]
    return list(model_plan(base_model, cells, scope, seed).units())
