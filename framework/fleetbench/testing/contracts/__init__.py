"""Contract test kits: one base class per plugin kind that a plugin author subclasses with one fixture.

    from fleetbench.testing.contracts import SuiteContract

    class TestCapitalsSuite(SuiteContract):
        @pytest.fixture
        def suite(self) -> Suite:
            return CapitalsSuite(CapitalsOptions())

pytest collects the inherited tests (the subclass's name must start with `Test`). Every built-in plugin passes its
kit in fleetbench's own test suite. The fixtures `sqlite_url`, `postgres_url` and `simulated_provider` come from
fleetbench's pytest plugin (`fleetbench.testing.pytest_plugin`, registered under the `pytest11` entry point).
"""

from fleetbench.testing.contracts.naming import NamingContract
from fleetbench.testing.contracts.player import PlayerContract
from fleetbench.testing.contracts.provider import ExpectedFailure, ProviderContract
from fleetbench.testing.contracts.sharding import ShardingContract
from fleetbench.testing.contracts.storage import StorageContract
from fleetbench.testing.contracts.suite import SuiteContract

__all__ = [
    "ExpectedFailure",
    "NamingContract",
    "PlayerContract",
    "ProviderContract",
    "ShardingContract",
    "StorageContract",
    "SuiteContract",
]
