"""Parameters matter: a simulated tool validates its arguments as a real tool would (reference §12 item 8), so the
parameter_error and logical_inconsistency flaws have consequences (INVALID_INPUT with a message naming the problem)."""

from __future__ import annotations

import json
import random
import re

import pytest

from fleetbench_plugins.suites.workflow.classify import Diagnosis, classify_rules
from fleetbench_plugins.suites.workflow.flaws import flaw_applies, inject_flaw
from fleetbench_plugins.suites.workflow.model import SEVERITIES, Task, Tool, ToolParameter
from fleetbench_plugins.suites.workflow.reference import reference_workflow
from fleetbench_plugins.suites.workflow.registry import load_registry
from fleetbench_plugins.suites.workflow.simulated.agent_render import default_arguments
from fleetbench_plugins.suites.workflow.simulator import ToolSimulator
from fleetbench_plugins.suites.workflow.tasks import load_tasks
from fleetbench_plugins.suites.workflow.transcript import Attempt
from fleetbench_plugins.suites.workflow.validation import check_call

REGISTRY = load_registry()
READER, PARSER, TRANSFORMER, WRITER = (
    REGISTRY.get(name)
    for name in ("file_operations_reader", "data_processing_parser", "data_processing_transformer",
                 "file_operations_writer")
)  # fmt: skip


def problem(tool: Tool, arguments: dict[str, object], upstream: str = "json") -> str | None:
    return check_call(tool, arguments, upstream).problem


def test_a_call_that_leaves_parameters_out_uses_the_announced_defaults() -> None:
    # The prompt says "use the default parameters": omitting them is valid for every shipped tool, and so are the
    # defaults the simulated agent passes.
    for tool in REGISTRY:
        assert problem(tool, {}) is None, tool.name
        assert problem(tool, default_arguments(tool.name)) is None, tool.name


def test_missing_required_parameter() -> None:
    assert problem(TRANSFORMER, {"data": None}) == "missing required parameter 'data'"
    assert problem(READER, {"source": None}) == "missing required parameter 'source'"
    api = Tool("network_caller", "network", "caller", "Calls an API", (ToolParameter("api_key", "string", "Key"),))
    assert problem(api, {}) == "missing required parameter 'api_key'"  # nothing can fill it in
    assert problem(api, {"api_key": "k"}) is None
    optional = Tool("utility_x", "utility", "x", "X", (ToolParameter("precision", "integer", "", False, 2),))
    assert problem(optional, {"precision": None}) is None  # an optional null takes its default


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        (READER, {"source": ["data/input.json"]}, "parameter 'source' must be a string, got a list"),
        (READER, {"source": ""}, "parameter 'source' must not be empty"),
        (TRANSFORMER, {"data": "data/input.json"}, "parameter 'data' must be a JSON object, got the string"),
        (TRANSFORMER, {"schema": []}, "parameter 'schema' must be a JSON object, got a list"),
        (REGISTRY.get("computation_calculator"), {"precision": "high"}, "parameter 'precision' must be an integer"),
        (REGISTRY.get("computation_calculator"), {"precision": True}, "parameter 'precision' must be an integer"),
        (REGISTRY.get("network_fetcher"), {"timeout": 0}, "parameter 'timeout' must be at least 1, got 0"),
        (REGISTRY.get("network_fetcher"), {"retry_count": 100}, "parameter 'retry_count' must be at most 10, got 100"),
        (READER, {"input_format": "binary"}, "parameter 'input_format' must be one of json, csv, xml, yaml"),
    ],
)
def test_wrong_types_and_constraints(tool: Tool, arguments: dict[str, object], message: str) -> None:
    found = problem(tool, arguments)
    assert found is not None and found.startswith(message), found


def test_contradicting_formats() -> None:
    # an input format must match what the call reads: its source, else the data the previous step produced
    assert problem(READER, {"input_format": "xml"}) == (
        "input_format 'xml' contradicts the JSON data it reads (the incoming data)"
    )
    assert problem(READER, {"source": "data/input.csv", "input_format": "CSV"}) is None
    assert problem(PARSER, {"input_format": "xml"}, upstream="csv") == (
        "input_format 'xml' contradicts the CSV data it reads (the incoming data)"
    )
    assert problem(PARSER, {"input_format": "csv"}, upstream="csv") is None
    # an output format must match the path it writes
    assert (
        problem(WRITER, {"output_format": "yaml"}) == "output_format 'yaml' contradicts destination 'data/output.json'"
    )
    assert problem(WRITER, {"output_format": "yaml", "destination": "out/result.yml"}) is None
    assert problem(TRANSFORMER, {"output_format": "csv"}) is None  # writes no file: it hands CSV on
    assert check_call(TRANSFORMER, {"output_format": "csv"}).produced_format == "csv"
    assert check_call(PARSER, {}, upstream="csv").produced_format == "csv"  # an unspecified step passes data on


def test_the_simulator_answers_invalid_input_without_a_random_draw() -> None:
    rng = random.Random(3)
    simulator = ToolSimulator(REGISTRY, 0.9, rng)
    state = rng.getstate()
    result = simulator.execute("network_fetcher", {"timeout": 0})
    assert (result.success, result.error_code, result.probability) == (False, "INVALID_INPUT", 0.0)
    assert result.error == (
        "INVALID_INPUT: The input parameters are missing or invalid (parameter 'timeout' must be at least 1, got 0)"
    )
    assert rng.getstate() == state and simulator.history == (result,)
    unchecked_rng = random.Random(3)
    unvalidated = ToolSimulator(REGISTRY, 0.9, unchecked_rng, validate=False)  # the original: arguments ignored
    unvalidated.execute("network_fetcher", {"timeout": 0})
    assert unvalidated.history[0].probability == pytest.approx(0.9) and unchecked_rng.getstate() != state


def test_the_simulator_follows_the_data_format_from_step_to_step() -> None:
    simulator = ToolSimulator(REGISTRY, 1.0, _AlwaysSucceeds())
    assert simulator.execute(TRANSFORMER, {"output_format": "csv"}).success
    assert simulator.execute(PARSER, {"input_format": "csv"}).success
    refused = simulator.execute(PARSER, {"input_format": "json"})
    assert refused.error_code == "INVALID_INPUT" and "contradicts the CSV data" in (refused.error or "")


class _AlwaysSucceeds(random.Random):
    def random(self) -> float:
        return 0.0


def _note_arguments(note: str) -> dict[str, object]:
    """What a model that follows a logical_inconsistency note passes: the format the note names, on its side."""
    found: dict[str, object] = {}
    for line in note.splitlines():
        fmt = re.search(r"\b(CSV|JSON|XML|YAML|PARQUET)\b", line)
        if fmt is not None and line.startswith(("Input:", "Output:")):
            found["input_format" if line.startswith("Input:") else "output_format"] = fmt.group(1).lower()
    return found


@pytest.mark.parametrize("severity", SEVERITIES)
def test_following_a_flawed_plan_has_a_consequence(severity: str) -> None:
    """Every parameter_error and logical_inconsistency plan of every shipped task, followed to the letter by a model
    whose tools never fail at random, hits INVALID_INPUT; the same plan followed with defaults does not."""
    for task in load_tasks():
        reference = reference_workflow(task)
        for flaw in ("parameter_error", "logical_inconsistency"):
            if not flaw_applies(flaw, reference):
                continue
            plan = inject_flaw(reference, flaw, severity, REGISTRY, seed=1)
            followed = ToolSimulator(REGISTRY, 1.0, _AlwaysSucceeds())
            defaults = ToolSimulator(REGISTRY, 1.0, _AlwaysSucceeds())
            for index, name in enumerate(plan.sequence):
                note = plan.step_notes.get(index, "")
                arguments = _plan_values(note) if flaw == "parameter_error" else _note_arguments(note)
                followed.execute(name, arguments)
                defaults.execute(name, {})
            codes = [r.error_code for r in followed.history]
            assert "INVALID_INPUT" in codes, (task.task_id, flaw, plan.step_notes)
            assert all(r.success for r in defaults.history)


def _plan_values(note: str) -> dict[str, object]:
    body, found = note.removeprefix("Parameters: "), {}
    for match in re.finditer(r"\b(\w+)=", body):
        found[match.group(1)] = json.JSONDecoder().raw_decode(body, match.end())[0]
    return found


def test_an_unrecovered_invalid_input_is_a_parameter_error() -> None:
    task = Task("t", "simple_task", "", ("network_fetcher",))
    failed = Attempt(1, "network_fetcher", False, error_code="INVALID_INPUT", error="INVALID_INPUT: bad (timeout)")
    diagnosis = Diagnosis(task.required_tools, (), (failed,), 0, 0, 3, 10, False, False, "INVALID_INPUT: bad")
    assert classify_rules(diagnosis).category == "parameter_config_errors"
