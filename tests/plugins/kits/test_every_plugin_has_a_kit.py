"""Every built-in plugin is run through the kit of its kind here: a new built-in plugin fails this test until it is."""

from __future__ import annotations

from fleetbench import registry
from fleetbench.testing.contracts import (
    NamingContract,
    PlayerContract,
    ProviderContract,
    ShardingContract,
    StorageContract,
    SuiteContract,
)
from tests.plugins.kits import test_providers, test_sharding_and_naming, test_storage, test_suites

KIT_OF_KIND: dict[str, type] = {
    "providers": ProviderContract,
    "storage": StorageContract,
    "suites": SuiteContract,
    "sharding": ShardingContract,
    "naming": NamingContract,
    "simulators": PlayerContract,
}

KIT_TESTS: dict[tuple[str, str], type] = {
    ("providers", "simulated"): test_providers.TestSimulatedProvider,
    ("providers", "litellm"): test_providers.TestLitellmProvider,
    ("storage", "sql"): test_storage.TestSqlStorageOnSqlite,
    ("suites", "jsonl"): test_suites.TestJsonlSuite,
    ("suites", "workflow"): test_suites.TestWorkflowSuite,
    ("sharding", "dynamic"): test_sharding_and_naming.TestDynamicSharding,
    ("sharding", "even"): test_sharding_and_naming.TestEvenSharding,
    ("sharding", "weighted"): test_sharding_and_naming.TestWeightedSharding,
    ("naming", "catalog"): test_sharding_and_naming.TestCatalogNaming,
    ("simulators", "jsonl"): test_suites.TestJsonlPlayer,
    ("simulators", "workflow"): test_suites.TestWorkflowPlayer,
}


def test_every_built_in_plugin_has_a_kit_test_of_its_kind() -> None:
    built_in = {(info.kind, info.name) for info in registry.listing() if info.target.startswith("fleetbench_plugins")}
    assert set(KIT_TESTS) == built_in
    assert set(KIT_OF_KIND) == set(registry.KINDS), "a new kind of plugin needs a kit"
    for (kind, name), test_class in KIT_TESTS.items():
        assert issubclass(test_class, KIT_OF_KIND[kind]), (kind, name)
