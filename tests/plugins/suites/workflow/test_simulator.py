"""The tool simulator: the §3.4 probability rules, error texts, payloads and seeded determinism."""

from __future__ import annotations

import json
import random

import pytest

from fleetbench_plugins.suites.workflow.model import Tool, ToolError, ToolParameter
from fleetbench_plugins.suites.workflow.registry import ToolRegistry
from fleetbench_plugins.suites.workflow.simulator import P_MAX, P_MIN, ToolSimulator

COMMON = (
    ToolError("INVALID_INPUT", "Invalid input provided"),
    ToolError("OPERATION_FAILED", "Operation failed"),
    ToolError("TIMEOUT", "Operation timed out"),
)
SOURCE = ToolParameter("source", "string", "Where to read")
REGISTRY = ToolRegistry(
    [
        Tool("file_operations_reader", "file_operations", "reader", "Read", (SOURCE,),
             errors=(*COMMON, ToolError("FILE_NOT_FOUND", "File not found"))),
        Tool("data_processing_parser", "data_processing", "parser", "Parse", errors=COMMON),
        Tool("data_processing_transformer", "data_processing", "transformer", "Transform", errors=COMMON,
             dependencies=("data_processing_parser",)),
        Tool("file_operations_writer", "file_operations", "writer", "Write", errors=COMMON,
             dependencies=("data_processing_transformer", "network_validator")),
        Tool("network_validator", "network", "validator", "Validate", errors=COMMON),
        Tool("network_fetcher", "network", "fetcher", "Fetch", errors=COMMON),
        Tool("computation_calculator", "computation", "calculator", "Calculate", errors=COMMON),
        Tool("integration_connector", "integration", "connector", "Connect", errors=COMMON),
        Tool("utility_cache", "utility", "cache", "Cache", errors=COMMON),
    ]
)  # fmt: skip


class FixedRandom(random.Random):
    """A Random whose first `random()` draws are scripted (the success draws); everything else stays seeded."""

    def __init__(self, values: list[float]) -> None:
        super().__init__(0)
        self._values = values

    def random(self) -> float:
        return self._values.pop(0) if self._values else super().random()

    def getrandbits(self, k: int) -> int:
        # Defined so that choice()/randint() keep using bits, not the scripted random() values.
        return super().getrandbits(k)


def simulator(rate: float = 0.8, seed: int = 7) -> ToolSimulator:
    return ToolSimulator(REGISTRY, rate, random.Random(seed))


def tool(name: str) -> Tool:
    return REGISTRY.get(name)


def test_base_rate_without_dependencies_or_history() -> None:
    assert simulator(0.8).success_probability(tool("data_processing_parser")) == pytest.approx(0.8)


def test_each_unmet_dependency_halves_p() -> None:
    sim = simulator(0.8)
    assert sim.success_probability(tool("data_processing_transformer")) == pytest.approx(0.4)
    assert sim.success_probability(tool("file_operations_writer")) == pytest.approx(0.2)


def test_failed_dependency_also_multiplies_by_0_7() -> None:
    sim = ToolSimulator(REGISTRY, 0.8, FixedRandom([0.99]))
    assert not sim.execute("data_processing_parser").success
    # parser is unmet (×0.5) and its last attempt failed (×0.7)
    assert sim.success_probability(tool("data_processing_transformer")) == pytest.approx(0.8 * 0.5 * 0.7)


def test_met_dependency_restores_p() -> None:
    sim = ToolSimulator(REGISTRY, 0.8, FixedRandom([0.0]))
    assert sim.execute("data_processing_parser").success
    assert sim.success_probability(tool("data_processing_transformer")) == pytest.approx(0.8)


def test_recent_failures_apply_only_from_three_executions() -> None:
    sim = ToolSimulator(REGISTRY, 0.8, FixedRandom([0.99, 0.99, 0.0]))
    sim.execute("network_fetcher")
    sim.execute("network_fetcher")
    assert sim.success_probability(tool("utility_cache")) == pytest.approx(0.8)  # only 2 executions so far
    sim.execute("utility_cache")
    assert sim.success_probability(tool("utility_cache")) == pytest.approx(0.8 * 0.9**2)


@pytest.mark.parametrize(("rate", "expected"), [(1.0, P_MAX), (0.05, P_MIN), (0.3, 0.3)])
def test_probability_is_clamped(rate: float, expected: float) -> None:
    assert simulator(rate).success_probability(tool("data_processing_parser")) == pytest.approx(expected)
    # two unmet dependencies at 0.3 give 0.075, clamped up to 0.10
    assert simulator(0.3).success_probability(tool("file_operations_writer")) == pytest.approx(P_MIN)


def test_failure_returns_one_of_the_tools_own_codes_with_context() -> None:
    sim = ToolSimulator(REGISTRY, 0.8, FixedRandom([0.99] * 40))
    results = [sim.execute("file_operations_reader", {"source": "data/input.json"}) for _ in range(40)]
    codes = {r.error_code for r in results}
    assert codes <= {"INVALID_INPUT", "OPERATION_FAILED", "TIMEOUT", "FILE_NOT_FOUND"}
    for result in results:
        assert result.error is not None and result.error.startswith(f"{result.error_code}: ")
    timeout = next(r.error for r in results if r.error_code == "TIMEOUT")
    assert timeout is not None and "Operation timed out (after " in timeout and timeout.endswith(" seconds)")
    missing = next(r.error for r in results if r.error_code == "FILE_NOT_FOUND")
    assert missing == "FILE_NOT_FOUND: File not found (path: /data/input.json)"


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("file_operations_reader", {"path", "bytes", "records"}),
        ("data_processing_parser", {"records", "fields", "valid"}),
        ("network_fetcher", {"status_code", "url", "latency_ms"}),
        ("computation_calculator", {"result", "precision"}),
        ("integration_connector", {"connection", "token_expires_in_s", "mapped_fields"}),
        ("utility_cache", {"logged", "cache_hit"}),
    ],
)
def test_success_payload_is_category_specific(name: str, keys: set[str]) -> None:
    result = ToolSimulator(REGISTRY, 0.8, FixedRandom([0.0])).execute(name)
    assert result.success and result.output is not None
    assert keys <= set(result.output)
    assert result.output["tool"] == name
    assert "timestamp" not in json.dumps(result.output)


def test_same_seed_replays_the_same_outcomes() -> None:
    names = ["file_operations_reader", "data_processing_parser", "data_processing_transformer", "network_validator",
             "file_operations_writer"] * 4  # fmt: skip
    one, two, other = simulator(0.6, seed=42), simulator(0.6, seed=42), simulator(0.6, seed=43)
    first = [one.execute(n) for n in names]
    assert first == [two.execute(n) for n in names]
    assert first != [other.execute(n) for n in names]
    assert {r.success for r in first} == {True, False}  # the rate really draws both ways


def test_unmet_dependencies_are_recorded() -> None:
    result = ToolSimulator(REGISTRY, 0.8, FixedRandom([0.99])).execute("file_operations_writer")
    assert result.unmet_dependencies == ("data_processing_transformer", "network_validator")


def test_invalid_rate_and_unknown_tool() -> None:
    with pytest.raises(ValueError, match="tool_success_rate"):
        ToolSimulator(REGISTRY, 1.5, random.Random(0))
    with pytest.raises(KeyError):
        simulator().execute("no_such_tool")
