"""The fakes in `fleetbench.testing` are real plugins: each passes the kit of its kind."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fleetbench.interfaces import NamingPolicy, NoOptions, Provider, ShardingStrategy, Storage, Suite
from fleetbench.testing.contracts import (
    ExpectedFailure,
    NamingContract,
    ProviderContract,
    ShardingContract,
    StorageContract,
    SuiteContract,
)
from fleetbench.testing.contracts.naming import MakeNaming
from fleetbench.testing.fakes import (
    ExactNaming,
    Fault,
    QueueSharding,
    ScriptedProvider,
    TinyOptions,
    TinySuite,
)
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.types import CallStatus

FAILING = {
    "Kit-Throttled": Fault(CallStatus.RATE_LIMITED, retry_after_s=2.0, http_status=429),
    "Kit-Locked": Fault(CallStatus.AUTH, http_status=401),
    "Kit-Gone": Fault(CallStatus.NOT_FOUND, http_status=404),
}


class TestScriptedProvider(ProviderContract):
    @pytest.fixture
    def provider(self) -> Provider:
        return ScriptedProvider(failing=FAILING)

    @pytest.fixture
    def failures(self) -> Sequence[ExpectedFailure]:
        return [
            ExpectedFailure(make_lane(name), fault.status, fault.retry_after_s, fault.http_status)
            for name, fault in FAILING.items()
        ]


class TestTinySuite(SuiteContract):
    @pytest.fixture
    def suite(self) -> Suite:
        return TinySuite(TinyOptions(words=["alpha", "bravo", "charlie"]))


class TestExactNaming(NamingContract):
    @pytest.fixture
    def make_naming(self) -> MakeNaming:
        return lambda catalog: ExactNaming(NoOptions(), catalog=catalog)


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self, naming: NamingPolicy) -> Storage:
        return MemoryStorage(naming=naming)


class TestQueueSharding(ShardingContract):
    @pytest.fixture
    def strategy(self) -> ShardingStrategy:
        return QueueSharding(NoOptions())
