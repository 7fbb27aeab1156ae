"""The contract kits catch broken plugins: each case runs a kit in its own pytest session (pytester) against a plugin
with one deliberate fault, and checks that exactly the tests about that fault fail."""

from __future__ import annotations

import pytest

BROKEN_SHARDING = """
import pytest
from fleetbench.interfaces import Dispatch, NoOptions, ShardingStrategy
from fleetbench.testing.contracts import ShardingContract


class Greedy(Dispatch):
    '''Every lane gets the source's units from the start: units are handed out once per lane.'''

    def __init__(self, source, lanes):
        self._streams = {lane.lane_id: source.stream() for lane in lanes}

    def next_unit(self, lane_id):
        stream = self._streams.get(lane_id)
        return None if stream is None else next(stream, None)

    def planned(self, lane_id):
        return None


class GreedySharding(ShardingStrategy):
    def dispatch(self, source, lanes):
        return Greedy(source, lanes)


class TestGreedy(ShardingContract):
    @pytest.fixture
    def strategy(self):
        return GreedySharding(NoOptions())
"""

BROKEN_NAMING = """
import pytest
from fleetbench.interfaces import NoOptions
from fleetbench.testing.contracts import NamingContract
from fleetbench.testing.fakes import ExactNaming


class LastClaimWins(ExactNaming):
    def _claim(self, spelling, base, how):
        self._spellings[spelling] = (base, how)


class TestLastClaimWins(NamingContract):
    @pytest.fixture
    def make_naming(self):
        return lambda catalog: LastClaimWins(NoOptions(), catalog=catalog)
"""

BROKEN_STORAGE = """
import pytest
from fleetbench.testing.contracts import StorageContract
from fleetbench.testing.memory_storage import MemoryStorage, _Row


class Overwriting(MemoryStorage):
    '''Replaces whatever is stored under a key, completed or not.'''

    def write(self, results, calls):
        for result in results:
            self._units.pop(result.key, None)
        return super().write(results, calls)


class TestOverwriting(StorageContract):
    @pytest.fixture
    def storage(self, naming):
        return Overwriting(naming=naming)
"""

BROKEN_SUITE = """
import itertools
import pytest
from fleetbench.testing.contracts import SuiteContract
from fleetbench.testing.fakes import TinyOptions, TinySuite
from fleetbench.types import Cell

_counter = itertools.count()


class Drifting(TinySuite):
    '''Its cells change every time they are asked for.'''

    def cells(self, base_model):
        yield Cell(self.name, base_model, (("word", f"w{next(_counter)}"),))


class TestDrifting(SuiteContract):
    @pytest.fixture
    def suite(self):
        return Drifting(TinyOptions())
"""

BROKEN_PROVIDER = """
import pytest
from fleetbench.testing.contracts import ExpectedFailure, ProviderContract
from fleetbench.testing.fakes import Fault, ScriptedProvider
from fleetbench.testing.lanes import make_lane
from fleetbench.types import CallStatus, ErrorClass


class CallsEverythingPermanent(ScriptedProvider):
    def classify(self, exc):
        return ErrorClass(CallStatus.PERMANENT, detail=str(exc))


class TestCallsEverythingPermanent(ProviderContract):
    @pytest.fixture
    def provider(self):
        return CallsEverythingPermanent(failing={"Kit-Throttled": Fault(CallStatus.RATE_LIMITED, 1.0, 429)})

    @pytest.fixture
    def failures(self):
        return [ExpectedFailure(make_lane("Kit-Throttled"), CallStatus.RATE_LIMITED, 1.0, 429)]
"""


def _failed(pytester: pytest.Pytester, source: str) -> set[str]:
    pytester.makepyfile(test_broken=source)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) > 0, result.stdout.str()
    return {line.split("::")[-1].split(" ")[0] for line in result.stdout.lines if line.startswith("FAILED")}


def test_the_sharding_kit_catches_units_handed_out_twice(pytester: pytest.Pytester) -> None:
    failed = _failed(pytester, BROKEN_SHARDING)
    assert any(name.startswith("test_every_unit_is_handed_out_exactly_once") for name in failed)
    assert "test_units_are_pulled_from_the_source_not_listed" not in failed


def test_the_naming_kit_catches_a_spelling_claimed_twice(pytester: pytest.Pytester) -> None:
    failed = _failed(pytester, BROKEN_NAMING)
    assert {name.split("[")[0] for name in failed} == {"test_a_spelling_claimed_by_two_base_models_is_refused"}


def test_the_storage_kit_catches_a_completed_unit_replaced(pytester: pytest.Pytester) -> None:
    failed = _failed(pytester, BROKEN_STORAGE)
    assert "test_a_completed_unit_is_never_replaced" in failed
    assert "test_writes_are_idempotent_on_unit_keys" in failed


def test_the_suite_kit_catches_cells_that_change(pytester: pytest.Pytester) -> None:
    failed = _failed(pytester, BROKEN_SUITE)
    assert "test_cells_are_deterministic_and_belong_to_the_suite" in failed
    assert "test_identity_is_stable_so_unit_keys_are" in failed


def test_the_provider_kit_catches_a_wrong_classification(pytester: pytest.Pytester) -> None:
    failed = _failed(pytester, BROKEN_PROVIDER)
    assert failed == {"test_classifies_each_provoked_failure"}
