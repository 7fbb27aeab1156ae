"""The built-in providers pass the provider kit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from fleetbench import registry
from fleetbench.interfaces import Provider
from fleetbench.testing.contracts import ExpectedFailure, ProviderContract
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.requests import request_of
from fleetbench.testing.server.process import RunningServer, served
from fleetbench.types import CallStatus, Lane, Request


class TestSimulatedProvider(ProviderContract):
    @pytest.fixture
    def provider(self, simulated_provider: Provider) -> Provider:
        return simulated_provider

    @pytest.fixture
    def lane(self) -> Lane:
        return make_lane("Sim-Agent", provider="simulated", model_params={"profile": "strong"})

    @pytest.fixture
    def answerable(self) -> Request:
        return request_of(
            [{"role": "user", "content": "What is 2 + 3? Answer with the number only."}], protocol="jsonl"
        )

    @pytest.fixture
    def failures(self) -> Sequence[ExpectedFailure]:
        throttled = make_lane(
            "Sim-Throttled", provider="simulated", params={"rate_limit_rate": 1.0, "retry_after_s": 0.25}
        )
        flaky = make_lane("Sim-Down", provider="simulated", params={"transient_error_rate": 1.0})
        return (
            ExpectedFailure(throttled, CallStatus.RATE_LIMITED, retry_after_s=0.25, http_status=429),
            ExpectedFailure(flaky, CallStatus.TRANSIENT, http_status=503),
        )


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real `fleetbench serve` process on 127.0.0.1 for the litellm provider's kit."""
    deployments = {
        "Kit-Ok": {"model": "Sim-Agent"},
        "Kit-429": {"faults": {"rate_limited": 1.0}, "retry_after_s": 3},
        "Kit-500": {"faults": {"error_500": 1.0}},
        "Kit-Guarded": {"reject_keys": [KIT_KEY]},
    }
    with served(
        tmp_path_factory.mktemp("kit-serve"), {"defaults": {"protocol": "jsonl"}, "deployments": deployments}
    ) as server:
        yield server


KIT_KEY = "sk-kit-0000aaaa"


def _http_lane(server: RunningServer, deployment: str) -> Lane:
    return make_lane(deployment, provider="litellm", route="openai", endpoint=server.url + "/v1", api_key=KIT_KEY)


class TestLitellmProvider(ProviderContract):
    @pytest.fixture
    def provider(self) -> Provider:
        created: Provider = registry.load("providers", {"plugin": "litellm"}, "providers.litellm").create()
        return created

    @pytest.fixture
    def lane(self, http_server: RunningServer) -> Lane:
        return _http_lane(http_server, "Kit-Ok")

    @pytest.fixture
    def answerable(self) -> Request:
        return request_of([{"role": "user", "content": "What is 2 + 3?"}], protocol="jsonl")

    @pytest.fixture
    def failures(self, http_server: RunningServer) -> Sequence[ExpectedFailure]:
        return (
            ExpectedFailure(
                _http_lane(http_server, "Kit-429"), CallStatus.RATE_LIMITED, retry_after_s=3, http_status=429
            ),
            ExpectedFailure(_http_lane(http_server, "Kit-500"), CallStatus.TRANSIENT, http_status=500),
            ExpectedFailure(_http_lane(http_server, "Kit-Guarded"), CallStatus.AUTH, http_status=401),
        )
