"""Units for plugin tests: build them without a suite or a plan, and serve a list of them as a `UnitSource`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fleetbench.interfaces import UnitSource
from fleetbench.plan import cell_key
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
