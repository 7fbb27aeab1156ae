"""The tool registry: the shipped 30 tools (§1.3), validation of user files, keyword search and agent-facing texts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetbench_plugins.suites.workflow import generate
from fleetbench_plugins.suites.workflow.model import TOOL_CATEGORIES
from fleetbench_plugins.suites.workflow.registry import (
    DEFAULT_REGISTRY_PATH,
    ToolRegistry,
    load_registry,
    registry_from_document,
)

OPERATIONS = {
    "file_operations": ("reader", "writer", "scanner", "compressor", "converter"),
    "data_processing": ("parser", "transformer", "validator", "aggregator", "filter"),
    "network": ("fetcher", "poster", "monitor", "validator", "router"),
    "computation": ("calculator", "analyzer", "optimizer", "simulator", "predictor"),
    "integration": ("connector", "authenticator", "mapper", "queue", "scheduler"),
    "utility": ("logger", "cache", "notifier", "tracker", "helper"),
}
LISTED_DEPENDENCIES = {
    "data_processing_transformer": {"data_processing_parser"},
    "data_processing_validator": {"data_processing_parser"},
    "file_operations_writer": {"data_processing_transformer", "network_validator"},
    "network_poster": {"data_processing_transformer", "integration_authenticator"},
    "computation_analyzer": {"data_processing_parser", "data_processing_aggregator"},
    "utility_notifier": {"computation_analyzer", "network_monitor"},
}
CATEGORY_ERRORS = {
    "file_operations": {"FILE_NOT_FOUND", "PERMISSION_DENIED"},
    "data_processing": {"PARSE_ERROR", "SCHEMA_MISMATCH"},
    "network": {"NETWORK_ERROR", "INVALID_RESPONSE"},
    "computation": {"CALCULATION_ERROR", "OVERFLOW"},
    "integration": {"AUTH_FAILED", "MAPPING_ERROR"},
    "utility": {"RESOURCE_UNAVAILABLE", "QUOTA_EXCEEDED"},
}
COMMON_ERRORS = {"INVALID_INPUT", "OPERATION_FAILED", "TIMEOUT"}


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return load_registry()


def test_shipped_registry_has_the_6_by_5_tools(registry: ToolRegistry) -> None:
    expected = {f"{category}_{op}" for category in TOOL_CATEGORIES for op in OPERATIONS[category]}
    assert len(registry) == 30
    assert set(registry.names) == expected
    for tool in registry:
        assert tool.name == f"{tool.category}_{tool.operation}"
        assert tool.description and tool.parameters and tool.returns and tool.usage_keywords


def test_dependencies_are_few_existing_and_include_the_listed_pairs(registry: ToolRegistry) -> None:
    for tool in registry:
        assert len(tool.dependencies) <= 2
        assert all(dep in registry.names for dep in tool.dependencies)
    for name, deps in LISTED_DEPENDENCIES.items():
        assert deps <= set(registry.get(name).dependencies), name
    assert 8 <= sum(bool(tool.dependencies) for tool in registry) <= 10


def test_errors_are_common_plus_category_specific(registry: ToolRegistry) -> None:
    for tool in registry:
        codes = {error.code for error in tool.errors}
        assert codes == COMMON_ERRORS | CATEGORY_ERRORS[tool.category], tool.name
        assert all(error.description for error in tool.errors)


def test_parameters_use_the_typical_names(registry: ToolRegistry) -> None:
    typical = {"source", "destination", "data", "schema", "options", "input_format", "output_format"}
    typical |= {"timeout", "retry_count", "precision"}
    for tool in registry:
        assert {p.name for p in tool.parameters} <= typical
        assert any(p.required for p in tool.parameters)
        assert all(p.default is None for p in tool.parameters if p.required)


def test_legacy_aliases_resolve_to_canonical_tools(registry: ToolRegistry) -> None:
    aliases = [alias for tool in registry for alias in tool.aliases]
    assert len(aliases) == 20 and "file_operations_reader_8" in aliases
    assert registry.get("file_operations_reader_8").name == "file_operations_reader"
    assert registry.resolve("utility_cache_6") == "utility_cache"
    assert "file_operations_reader_8" in registry and "file_operations_reader_99" not in registry
    with pytest.raises(KeyError):
        registry.get("nope")


def test_registry_is_cached_per_path_and_read_only(registry: ToolRegistry) -> None:
    assert load_registry(DEFAULT_REGISTRY_PATH) is registry
    assert load_registry(str(DEFAULT_REGISTRY_PATH)) is registry
    with pytest.raises(TypeError):
        registry.tools["x"] = registry.get("utility_cache")  # type: ignore[index]


def test_shipped_data_files_are_what_the_generator_produces() -> None:
    for name, text in generate.build_files().items():
        shipped = (DEFAULT_REGISTRY_PATH.parent / name).read_text(encoding="utf-8")
        assert shipped == text, f"{name} is stale: run python -m fleetbench_plugins.suites.workflow.generate"


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("read file", "file_operations_reader"),
        ("parse json data", "data_processing_parser"),
        ("send results to api", "network_poster"),
        ("validate schema", "data_processing_validator"),
        ("notify the team", "utility_notifier"),
        ("write output file", "file_operations_writer"),
        ("forecast future values", "computation_predictor"),
        ("login credentials", "integration_authenticator"),
        ("logging", "utility_logger"),
        ("mapping fields", "integration_mapper"),
    ],
)
def test_search_finds_the_obvious_tool_first(registry: ToolRegistry, query: str, best: str) -> None:
    assert registry.search(query)[0].name == best


def test_search_is_deterministic_bounded_and_ordered(registry: ToolRegistry) -> None:
    first = [tool.name for tool in registry.search("data", k=30)]
    assert first == [tool.name for tool in registry.search("data", k=30)]
    assert len(registry.search("data")) == 5
    assert len(registry.search("data", k=2)) == 2
    assert registry.search("the of with") == []
    assert registry.search("zzzz qqqq") == []
    # `data` matches many data_processing tools with the same weight: ties are broken by name
    tied = [tool.name for tool in registry.search("data processing", k=5)]
    assert tied == sorted(tied)


def test_describe_gives_the_full_tool_info(registry: ToolRegistry) -> None:
    text = registry.describe("file_operations_writer")
    assert text.startswith("Tool: file_operations_writer\nCategory: file_operations\nDescription: ")
    assert "destination (string, REQUIRED)" in text
    assert 'output_format (string, OPTIONAL, default: "json", one of json/csv/xml/yaml)' in text
    assert "FILE_NOT_FOUND" in text and "success (boolean)" in text
    assert text.endswith(
        "Dependencies: data_processing_transformer, network_validator (these tools should be executed before this one)"
    )
    assert registry.describe(registry.get("utility_cache")).endswith("Dependencies: none")


def test_search_results_text(registry: ToolRegistry) -> None:
    found = registry.search("read file", k=2)
    text = registry.format_search_results("read file", found)
    assert text.splitlines()[0] == 'Search results for "read file" (2 tools):'
    assert "1. file_operations_reader" in text and "Relevance: 1.00" in text and "REQUIRED" in text
    assert text.endswith("You can now use these tools with <tool_call>tool_name</tool_call>")
    assert "No tools matched" in registry.format_search_results("zzzz", [])


def test_parameter_constraints_are_read_shown_and_checked(registry: ToolRegistry) -> None:
    fetcher = registry.get("network_fetcher")
    timeout = next(p for p in fetcher.parameters if p.name == "timeout")
    assert (timeout.minimum, timeout.maximum, timeout.enum) == (1, 3600, ())
    assert "timeout (integer, OPTIONAL, default: 30, min 1, max 3600)" in registry.describe(fetcher)
    schema = registry.openai_tool_map()["network_fetcher"]["function"]["parameters"]["properties"]["timeout"]
    assert (schema["minimum"], schema["maximum"]) == (1, 3600)
    reader = registry.openai_tool_map()["file_operations_reader"]["function"]["parameters"]["properties"]
    assert reader["input_format"]["enum"] == ["json", "csv", "xml", "yaml"]
    spec = {"name": "utility_x", "category": "utility", "description": "X",
            "parameters": [{"name": "n", "type": "integer", "constraints": {"minimum": "one"}}]}  # fmt: skip
    with pytest.raises(ValueError, match=r"tool 'utility_x': field 'parameters\[0\]\.constraints\.minimum' must be a"):
        registry_from_document({"tools": [spec]}, "custom.json")
    spec["parameters"] = [{"name": "f", "constraints": {"enum": "json"}}]
    with pytest.raises(ValueError, match=r"field 'parameters\[0\]\.constraints\.enum' must be a list"):
        registry_from_document({"tools": [spec]}, "custom.json")


def test_names_in_text(registry: ToolRegistry) -> None:
    text = "Use file_operations_reader_8, then data_processing_parser; not data_processing_parsers or x_utility_cache."
    assert registry.names_in(text) == ["file_operations_reader", "data_processing_parser"]


def test_openai_tool_schemas(registry: ToolRegistry) -> None:
    schemas = registry.openai_tools()
    assert [s["function"]["name"] for s in schemas] == list(registry.names)
    json_types = {"string", "integer", "number", "boolean", "object", "array"}
    for schema in schemas:
        assert schema["type"] == "function"
        params = schema["function"]["parameters"]
        assert params["type"] == "object"
        assert all(prop["type"] in json_types for prop in params["properties"].values())
        assert set(params["required"]) <= set(params["properties"])
    writer = next(s for s in schemas if s["function"]["name"] == "file_operations_writer")["function"]
    assert writer["parameters"]["required"] == ["destination", "data"]
    assert writer["parameters"]["properties"]["output_format"]["default"] == "json"
    json.dumps(schemas)  # serialisable as a request body


# -- user files -----------------------------------------------------------------------------------------------------


def _tool(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"{name} does things", **extra}


def _write(tmp_path: Path, document: Any, name: str = "my.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _error(tmp_path: Path, document: Any) -> str:
    with pytest.raises(ValueError) as info:
        load_registry(_write(tmp_path, document))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_user_registry_in_either_layout_loads(tmp_path: Path) -> None:
    tools = [
        _tool("file_operations_reader"),
        _tool("x_reader", category="custom", dependencies=["file_operations_reader"]),
    ]
    listed = load_registry(_write(tmp_path, {"tools": tools}, "list.json"))
    mapping = load_registry(_write(tmp_path, {t["name"]: t for t in tools}, "map.json"))
    for registry in (listed, mapping):
        assert registry.names == ("file_operations_reader", "x_reader")
        assert registry.get("file_operations_reader").category == "file_operations"
        assert registry.get("x_reader").operation == "reader"


def test_unknown_dependency_is_a_one_line_error_naming_file_tool_and_dependency(tmp_path: Path) -> None:
    document = {"tools": [_tool("x_reader", category="custom", dependencies=["nope"])]}
    assert _error(tmp_path, document) == "my.json: tool 'x_reader': dependency 'nope' is not a tool in the registry"


@pytest.mark.parametrize(
    ("tool", "field"),
    [
        ({"name": "file_operations_reader"}, "description"),
        (_tool("file_operations_reader", parameters=[{"type": "string"}]), "parameters[0].name"),
        (_tool("file_operations_reader", parameters=[{"name": "a", "required": "yes"}]), "parameters[0].required"),
        (_tool("file_operations_reader", errors=[{"description": "x"}]), "errors[0].code"),
        (_tool("file_operations_reader", returns=["success"]), "returns[0]"),
        (_tool("file_operations_reader", dependencies="file_operations_writer"), "dependencies"),
        (_tool("odd_name"), "category"),
        (_tool("bad name!"), "name"),
    ],
)
def test_malformed_fields_are_named(tmp_path: Path, tool: dict[str, Any], field: str) -> None:
    message = _error(tmp_path, {"tools": [tool]})
    assert message.startswith("my.json: tool '")
    assert f"field '{field}'" in message


def test_cycles_duplicates_and_alias_clashes_are_rejected() -> None:
    cyclic = {
        "tools": [_tool("a_x", category="c", dependencies=["b_x"]), _tool("b_x", category="c", dependencies=["a_x"])]
    }
    with pytest.raises(ValueError, match=r"doc: tool 'a_x': dependency cycle a_x -> b_x -> a_x"):
        registry_from_document(cyclic, "doc")
    with pytest.raises(ValueError, match="duplicate tool name"):
        registry_from_document({"tools": [_tool("utility_cache"), _tool("utility_cache")]}, "doc")
    clash = {"tools": [_tool("utility_cache", aliases=["utility_logger"]), _tool("utility_logger")]}
    with pytest.raises(ValueError, match="alias 'utility_logger'"):
        registry_from_document(clash, "doc")


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^broken\.json: not valid JSON"):
        load_registry(bad)
    with pytest.raises(ValueError, match=r"^absent\.json: tool registry file not found"):
        load_registry(tmp_path / "absent.json")
