"""The built-in sharding strategies pass the sharding kit; the catalog naming policy passes the naming kit."""

from __future__ import annotations

import pytest

from fleetbench.interfaces import ShardingStrategy
from fleetbench.testing.contracts import NamingContract, ShardingContract
from fleetbench.testing.contracts.naming import MakeNaming
from fleetbench_plugins.naming.catalog import CatalogNaming, CatalogNamingOptions
from fleetbench_plugins.sharding.dynamic import DynamicSharding
from fleetbench_plugins.sharding.even import EvenSharding
from fleetbench_plugins.sharding.weighted import WeightedSharding


class TestDynamicSharding(ShardingContract):
    @pytest.fixture
    def strategy(self) -> ShardingStrategy:
        return DynamicSharding(DynamicSharding.Options())


class TestEvenSharding(ShardingContract):
    @pytest.fixture
    def strategy(self) -> ShardingStrategy:
        return EvenSharding(EvenSharding.Options())


class TestWeightedSharding(ShardingContract):
    @pytest.fixture
    def strategy(self) -> ShardingStrategy:
        return WeightedSharding(WeightedSharding.Options())


class TestCatalogNaming(NamingContract):
    @pytest.fixture
    def make_naming(self) -> MakeNaming:
        return lambda catalog: CatalogNaming(CatalogNamingOptions(), catalog=catalog)


class TestCatalogNamingPassingUnknownNamesThrough(NamingContract):
    @pytest.fixture
    def make_naming(self) -> MakeNaming:
        return lambda catalog: CatalogNaming(CatalogNamingOptions(unknown="passthrough"), catalog=catalog)
