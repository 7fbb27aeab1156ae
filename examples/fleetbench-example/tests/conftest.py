"""A reference gateway on 127.0.0.1 for the provider's tests (real HTTP, served from a thread)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetbench_example.gateway_server import GatewayServer, capital_answers, running_gateway

API_KEY = "example-test-key"
MODELS = {
    "gw-answer": "answer",
    "gw-flaky": "flaky",
    "gw-throttled": "throttled",
    "gw-down": "down",
    "gw-too-long": "too_long",
}


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    """A running gateway serving MODELS with key API_KEY; it answers capitals questions right."""
    with running_gateway(GatewayServer(API_KEY, MODELS, capital_answers(), retry_after_s=0.5)) as server:
        yield server
