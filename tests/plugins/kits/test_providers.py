"""The built-in providers pass the provider kit."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fleetbench.interfaces import Provider
from fleetbench.testing.contracts import ExpectedFailure, ProviderContract
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.requests import request_of
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
