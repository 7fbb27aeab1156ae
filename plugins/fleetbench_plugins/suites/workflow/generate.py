"""Deterministic generator of the shipped workflow data: `data/tool_registry.json` and `data/tasks.json`.

Run `python -m fleetbench_plugins.suites.workflow.generate` to rewrite them (same seed -> byte-identical files), or with
`--check` to fail when the committed files are out of date. It replaces the original's LLM-based generators (§1.6): the
30 tools come from the 6x5 template of §1.3 with its dependency pairs and category-specific error codes; tasks are drawn
stage by stage from per-type pipelines, with lengths matching the §1.2 table. Tasks carry no `description` (so the
prompt renders every difficulty level from the required tools) and keep a canonical wording, from `data/phrases.json`,
in `original_description`, where the original kept a task's pre-rewrite text.

Error codes: every tool has INVALID_INPUT, OPERATION_FAILED and TIMEOUT; the category adds two (file_operations
FILE_NOT_FOUND/PERMISSION_DENIED, data_processing PARSE_ERROR/SCHEMA_MISMATCH, network NETWORK_ERROR/INVALID_RESPONSE,
computation CALCULATION_ERROR/OVERFLOW, integration AUTH_FAILED/MAPPING_ERROR, utility RESOURCE_UNAVAILABLE/
QUOTA_EXCEEDED).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleetbench_plugins.suites.workflow.difficulty import phrase_bank
from fleetbench_plugins.suites.workflow.model import TASK_TYPES, TOOL_CATEGORIES
from fleetbench_plugins.suites.workflow.registry import DATA_DIR, ToolRegistry, registry_from_document

SEED = 20250901
TASKS_PER_TYPE = 120
GENERATOR = "fleetbench_plugins.suites.workflow.generate"

_PARAMS: dict[str, tuple[str, str, Any]] = {  # name -> (type, description, default when optional)
    "source": ("string", "Path, URL or identifier of the input", None),
    "destination": ("string", "Path, URL or identifier where the result is stored or sent", None),
    "data": ("object", "The data to operate on, usually the previous step's output", None),
    "schema": ("object", "Schema or rules the data must follow", None),
    "options": ("object", "Operation-specific options", {}),
    "input_format": ("string", "Format of the input: json, csv, xml or yaml", "json"),
    "output_format": ("string", "Format of the output: json, csv, xml or yaml", "json"),
    "timeout": ("integer", "Maximum time to wait, in seconds", 30),
    "retry_count": ("integer", "How many times to retry transient failures", 3),
    "precision": ("integer", "Decimal places in numeric results", 2),
}
# What a validating tool accepts (the simulator answers INVALID_INPUT otherwise).
_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "input_format": {"enum": ["json", "csv", "xml", "yaml"]},
    "output_format": {"enum": ["json", "csv", "xml", "yaml"]},
    "timeout": {"minimum": 1, "maximum": 3600},
    "retry_count": {"minimum": 0, "maximum": 10},
    "precision": {"minimum": 0, "maximum": 15},
}
_RETURNS = {
    "success": ("boolean", "Whether the operation succeeded"),
    "data": ("object", "The resulting data"),
    "metadata": ("object", "Details about the operation: sizes, timings, counts"),
    "valid": ("boolean", "Whether the data passed every check"),
    "errors": ("array", "Problems found, one entry each"),
    "transformed_data": ("object", "The data after the transformation"),
    "result": ("object", "The computed result"),
    "files": ("array", "Paths of the files found"),
    "path": ("string", "Where the output was written"),
    "response": ("object", "The remote service's response"),
    "status": ("string", "The status the operation reports"),
    "token": ("string", "Credential token for later calls"),
    "job_id": ("string", "Identifier of the queued or scheduled job"),
}
_COMMON_ERRORS = (
    ("INVALID_INPUT", "The input parameters are missing or invalid"),
    ("OPERATION_FAILED", "The operation could not be completed"),
    ("TIMEOUT", "The operation timed out"),
)
_CATEGORY_ERRORS = {
    "file_operations": (
        ("FILE_NOT_FOUND", "The file or directory does not exist"),
        ("PERMISSION_DENIED", "Access to the path is not allowed"),
    ),
    "data_processing": (
        ("PARSE_ERROR", "The input could not be parsed in the given format"),
        ("SCHEMA_MISMATCH", "The data does not match the expected schema"),
    ),
    "network": (
        ("NETWORK_ERROR", "The remote host could not be reached"),
        ("INVALID_RESPONSE", "The remote service returned an invalid response"),
    ),
    "computation": (
        ("CALCULATION_ERROR", "The computation failed on the given data"),
        ("OVERFLOW", "A numeric result exceeded the supported range"),
    ),
    "integration": (
        ("AUTH_FAILED", "Authentication with the external service failed"),
        ("MAPPING_ERROR", "Fields could not be mapped between the schemas"),
    ),
    "utility": (
        ("RESOURCE_UNAVAILABLE", "The cache, channel or store is unavailable"),
        ("QUOTA_EXCEEDED", "The utility's quota or rate limit was exceeded"),
    ),
}
# category -> operation -> (description, "parameters ('?' = optional) | returns | usage keywords"), order as in §1.3.
_TOOLS: dict[str, dict[str, tuple[str, str]]] = {
    "file_operations": {
        "reader": (
            "Reads a file from local or remote storage and returns its contents with basic metadata.",
            "source input_format? options? | success data metadata | read load open file input import",
        ),
        "writer": (
            "Writes data to a file at the given destination in the requested format.",
            "destination data output_format? options? | success path metadata | write save store export output file",
        ),
        "scanner": (
            "Scans a directory or storage location and lists the files that match a pattern.",
            "source options? | success files metadata | scan list find directory folder discover",
        ),
        "compressor": (
            "Compresses files or data into an archive, or extracts an existing archive.",
            "source destination options? | success path metadata | compress archive zip shrink pack extract",
        ),
        "converter": (
            "Converts a file from one format to another, for example CSV to JSON.",
            "source input_format output_format destination? | success data metadata | convert format csv xml change",
        ),
    },
    "data_processing": {
        "parser": (
            "Parses raw text or bytes into structured records according to the input format.",
            "data input_format? schema? | success data errors | parse structure records decode syntax tokens",
        ),
        "transformer": (
            "Transforms structured data into a target layout: renames, reshapes and enriches fields.",
            "data schema output_format? | success transformed_data metadata | transform reshape normalize enrich",
        ),
        "validator": (
            "Validates structured data against a schema and reports every violation.",
            "data schema | valid errors metadata | validate check verify schema quality rules",
        ),
        "aggregator": (
            "Aggregates records into summaries such as counts, sums and averages per group.",
            "data options? | success result metadata | aggregate summarize group total sum statistics",
        ),
        "filter": (
            "Filters records by criteria and keeps only the matching entries.",
            "data options | success data metadata | filter select exclude criteria subset remove",
        ),
    },
    "network": {
        "fetcher": (
            "Fetches data from a remote URL or API endpoint.",
            "source timeout? retry_count? | success data metadata | fetch download get api http retrieve",
        ),
        "poster": (
            "Sends data to a remote URL or API endpoint with an HTTP POST request.",
            "destination data timeout? retry_count? | success response metadata | post send upload submit api publish",
        ),
        "monitor": (
            "Monitors a remote service or endpoint and reports its availability and latency.",
            "source options? timeout? | success status metadata | monitor watch health uptime latency availability",
        ),
        "validator": (
            "Validates a remote API response: status, headers and payload structure.",
            "data schema? | valid errors response | validate response api verify status payload",
        ),
        "router": (
            "Routes a payload to one of several endpoints according to routing rules.",
            "data destination options? | success response metadata | route dispatch forward direct endpoint traffic",
        ),
    },
    "computation": {
        "calculator": (
            "Calculates metrics and formulas over numeric data.",
            "data options? precision? | success result metadata | calculate compute math formula metric number",
        ),
        "analyzer": (
            "Analyzes data for trends, patterns and anomalies and summarizes the findings.",
            "data options? precision? | success result metadata | analyze analysis insight pattern trend anomaly",
        ),
        "optimizer": (
            "Optimizes parameters against an objective under the given constraints.",
            "data options precision? | success result metadata | optimize tune improve objective best minimize",
        ),
        "simulator": (
            "Simulates scenarios over a model of the data and reports the outcomes.",
            "data options? | success result metadata | simulate scenario model what-if monte carlo",
        ),
        "predictor": (
            "Predicts future values from historical data.",
            "data options? precision? | success result metadata | predict forecast future estimate projection history",
        ),
    },
    "integration": {
        "connector": (
            "Opens a connection to an external service or database.",
            "source options? timeout? | success status metadata | connect link service database session external",
        ),
        "authenticator": (
            "Authenticates with an external service and returns a credential token.",
            "source options | success token metadata | authenticate login credentials token auth identity",
        ),
        "mapper": (
            "Maps fields from one schema to another.",
            "data schema | success data errors | map mapping fields align translate correspond",
        ),
        "queue": (
            "Puts items on a message queue for asynchronous processing.",
            "data destination options? | success job_id metadata | queue enqueue message asynchronous buffer backlog",
        ),
        "scheduler": (
            "Schedules a job to run at a given time or on a recurring cadence.",
            "data options | success job_id metadata | schedule cron recurring timing job later",
        ),
    },
    "utility": {
        "logger": (
            "Logs messages and events with a severity level for auditing.",
            "data options? | success metadata | log record audit event trace journal",
        ),
        "cache": (
            "Stores data in a fast cache, or reads it back, for quick reuse.",
            "data options? | success data metadata | cache reuse memory fast temporary memoize",
        ),
        "notifier": (
            "Sends a notification about an outcome to people or channels.",
            "data destination? options? | success status metadata | notify alert message email inform team",
        ),
        "tracker": (
            "Tracks progress metrics and state changes over time.",
            "data options? | success status metadata | track progress metrics state follow milestone",
        ),
        "helper": (
            "General-purpose helper for small jobs such as formatting, renaming or cleaning values.",
            "data options? | success data metadata | help utility tidy clean misc general",
        ),
    },
}
# The §1.3 pairs, plus three more so that 9 of 30 tools have dependencies, as in the original.
_DEPENDENCIES = {
    "data_processing_transformer": ("data_processing_parser",),
    "data_processing_validator": ("data_processing_parser",),
    "data_processing_aggregator": ("data_processing_parser",),
    "file_operations_writer": ("data_processing_transformer", "network_validator"),
    "file_operations_converter": ("file_operations_reader",),
    "network_poster": ("data_processing_transformer", "integration_authenticator"),
    "computation_analyzer": ("data_processing_parser", "data_processing_aggregator"),
    "integration_mapper": ("integration_connector",),
    "utility_notifier": ("computation_analyzer", "network_monitor"),
}
_FIXED_ALIASES = ("file_operations_reader_8", "utility_cache_6")  # the examples named in §1.3
ALIAS_COUNT = 20  # the original merged 20 numbered duplicates into canonical names

# Per task type: ordered pipeline stages (space-separated tool names); a task of length n uses n of them, in order,
# with one tool from each.
_STAGES: dict[str, tuple[str, ...]] = {
    "simple_task": (
        "file_operations_reader network_fetcher file_operations_scanner",
        "data_processing_parser data_processing_transformer data_processing_filter computation_calculator "
        "file_operations_converter",
        "file_operations_writer utility_cache utility_logger file_operations_compressor",
    ),
    "basic_task": (
        "file_operations_reader file_operations_scanner",
        "file_operations_converter data_processing_parser data_processing_filter file_operations_compressor "
        "utility_helper",
        "file_operations_writer utility_logger utility_tracker",
    ),
    "data_pipeline": (
        "file_operations_reader network_fetcher file_operations_scanner integration_connector",
        "data_processing_parser file_operations_converter",
        "data_processing_transformer data_processing_filter data_processing_aggregator",
        "data_processing_validator network_validator computation_calculator",
        "file_operations_writer utility_cache network_poster file_operations_compressor",
    ),
    "api_integration": (
        "integration_authenticator integration_connector",
        "network_fetcher network_monitor network_router",
        "network_validator data_processing_parser integration_mapper data_processing_transformer",
        "network_poster utility_cache integration_queue file_operations_writer utility_notifier",
    ),
    "multi_stage_pipeline": (
        "file_operations_reader network_fetcher integration_connector file_operations_scanner",
        "data_processing_parser file_operations_converter integration_authenticator",
        "data_processing_transformer data_processing_filter integration_mapper",
        "data_processing_aggregator computation_calculator computation_analyzer computation_predictor "
        "computation_optimizer computation_simulator",
        "data_processing_validator network_validator",
        "utility_cache integration_queue integration_scheduler network_router utility_tracker",
        "file_operations_writer network_poster utility_notifier utility_logger file_operations_compressor",
    ),
}
# Share of tasks per number of required tools: min-max and means as in the §1.2 table.
_LENGTH_SHARES = {
    "simple_task": {1: 0.45, 2: 0.44, 3: 0.11},
    "basic_task": {1: 0.38, 2: 0.48, 3: 0.14},
    "data_pipeline": {2: 0.08, 3: 0.30, 4: 0.44, 5: 0.18},
    "api_integration": {2: 0.30, 3: 0.55, 4: 0.15},
    "multi_stage_pipeline": {3: 0.26, 4: 0.32, 5: 0.24, 6: 0.12, 7: 0.06},
}
COMPLEXITY = {
    "simple_task": "easy",
    "basic_task": "easy",
    "data_pipeline": "medium",
    "api_integration": "medium",
    "multi_stage_pipeline": "hard",
}
_SUBJECTS = (
    "customer orders", "sensor measurements", "invoice records", "user profiles", "inventory levels",
    "payment transactions", "shipment events", "survey responses", "product catalog entries", "employee timesheets",
    "weather observations", "clinical trial results", "energy meter samples", "campaign statistics", "flight bookings",
    "library loans", "hotel reservations", "patient appointments", "warehouse stock counts", "subscription renewals",
)  # fmt: skip


def _parameter(raw: str) -> dict[str, Any]:
    name = raw.rstrip("?")
    kind, text, default = _PARAMS[name]
    optional = raw.endswith("?")
    entry = {
        "name": name,
        "type": kind,
        "description": text,
        "required": not optional,
        "default": default if optional else None,
    }
    if name in _CONSTRAINTS:
        entry["constraints"] = _CONSTRAINTS[name]
    return entry


def _tool_entry(category: str, operation: str, description: str, spec: str) -> dict[str, Any]:
    params, returns, keywords = (part.split() for part in spec.split("|"))
    name = f"{category}_{operation}"
    return {
        "name": name,
        "canonical_name": name,
        "description": description,
        "parameters": [_parameter(raw) for raw in params],
        "returns": [{"name": r, "type": _RETURNS[r][0], "description": _RETURNS[r][1]} for r in returns],
        "errors": [{"code": code, "description": text} for code, text in _COMMON_ERRORS + _CATEGORY_ERRORS[category]],
        "dependencies": list(_DEPENDENCIES.get(name, ())),
        "aliases": [],
        "metadata": {"category": category, "operation": operation, "version": "1.0.0"},
        "differentiation": {"unique_purpose": description, "usage_keywords": keywords},
    }


def _execution_order(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Registry names in dependency order (dependencies first, otherwise registry order)."""
    order: list[str] = []
    deps = {entry["name"]: entry["dependencies"] for entry in entries}

    def visit(name: str) -> None:
        if name not in order:
            for dep in deps[name]:
                visit(dep)
            order.append(name)

    for entry in entries:
        visit(entry["name"])
    return order


def build_registry_document(seed: int = SEED) -> dict[str, Any]:
    """The shipped tool registry as a JSON-ready document (deterministic for a seed)."""
    entries = [_tool_entry(cat, op, *spec) for cat in TOOL_CATEGORIES for op, spec in _TOOLS[cat].items()]
    by_name = {entry["name"]: entry for entry in entries}
    order = _execution_order(entries)
    for position, name in enumerate(order):  # dependencies first, so their levels are known
        deps = by_name[name]["dependencies"]
        level = 1 + max(by_name[d]["metadata"]["dependency_level"] for d in deps) if deps else 0
        by_name[name]["metadata"].update(dependency_level=level, execution_order=position)
    aliases = list(_FIXED_ALIASES)
    rng = random.Random(seed)
    while len(aliases) < ALIAS_COUNT:
        alias = f"{rng.choice(sorted(by_name))}_{rng.randint(2, 12)}"
        aliases += [] if alias in aliases else [alias]
    for alias in aliases:
        by_name[alias.rsplit("_", 1)[0]]["aliases"].append(alias)
    for entry in entries:
        entry["aliases"].sort()
    metadata = {"version": "1.0", "generator": GENERATOR, "seed": seed, "tool_count": len(entries)}
    return {"metadata": metadata, "tools": entries}


def _lengths(task_type: str, count: int, rng: random.Random) -> list[int]:
    shares = _LENGTH_SHARES[task_type]
    lengths = [n for n, share in shares.items() for _ in range(round(share * count))]
    while len(lengths) < count:  # rounding: top up with the most common length
        lengths.append(max(shares, key=lambda n: shares[n]))
    lengths = lengths[:count]
    rng.shuffle(lengths)
    return lengths


def _pick(options: Sequence[str], chosen: Sequence[str], registry: ToolRegistry, rng: random.Random) -> str:
    """One stage's tool, favouring tools whose dependencies are already in the task."""
    free = [name for name in options if name not in chosen]
    weights = []
    for name in free:
        deps = registry.get(name).dependencies
        satisfied = sum(dep in chosen for dep in deps)
        weights.append(1.0 if not deps else (3.0 if satisfied == len(deps) else 0.5 + satisfied))
    return rng.choices(free, weights=weights)[0]


def dependency_order(tools: Sequence[str], registry: ToolRegistry) -> list[str]:
    """`tools` reordered minimally so that each one's dependencies among them come first (stable otherwise)."""
    ordered: list[str] = []

    def place(name: str) -> None:
        if name in ordered:
            return
        for dep in registry.get(name).dependencies:
            if dep in tools:
                place(dep)
        ordered.append(name)

    for name in tools:
        place(name)
    return ordered


def _description(tools: Sequence[str], subject: str, registry: ToolRegistry) -> str:
    bank = phrase_bank()
    phrases = [
        bank.phrase(registry.get(name), "direct", f"the {subject}" if i == 0 else "them")
        for i, name in enumerate(tools)
    ]
    if len(phrases) == 1:
        text = phrases[0]
    else:
        text = ", ".join(phrases[:-1]) + (", and finally " if len(phrases) > 2 else ", then ") + phrases[-1]
    return text[:1].upper() + text[1:] + "."


def _task(
    task_type: str, index: int, length: int, registry: ToolRegistry, rng: random.Random, seed: int
) -> dict[str, Any]:
    stages = _STAGES[task_type]
    picked: list[str] = []
    for stage in sorted(rng.sample(range(len(stages)), length)):
        picked.append(_pick(stages[stage].split(), picked, registry, rng))
    tools = dependency_order(picked, registry)
    subject = rng.choice(_SUBJECTS)
    return {
        "instance_id": f"wf_{task_type}_{index:04d}",
        "task_type": task_type,
        # Deliberately no `description`: the prompt renders each difficulty level's wording from the required tools.
        # The canonical wording is kept where the original kept the pre-rewrite text, and is never shown.
        "original_description": _description(tools, subject, registry),
        "required_tools": tools,
        "test_input": {"source": "data/input.json", "format": "json"},
        "expected_output": {"destination": "data/output.json", "status": "completed"},
        "complexity": COMPLEXITY[task_type],
        "constraints": {"timeout": 300, "max_retries": 3},
        "metadata": {"template": "sequential", "subject": subject, "generator": GENERATOR, "seed": seed},
    }  # fmt: skip


def build_tasks_document(registry: ToolRegistry, seed: int = SEED, per_type: int = TASKS_PER_TYPE) -> dict[str, Any]:
    """The shipped task library in the original's `{"tasks": [...], "metadata": {...}}` format."""
    tasks = []
    for task_type in TASK_TYPES:
        rng = random.Random(f"{seed}:{task_type}")
        for index, length in enumerate(_lengths(task_type, per_type, rng)):
            tasks.append(_task(task_type, index, length, registry, rng, seed))
    counts = {task_type: per_type for task_type in TASK_TYPES}
    metadata = {"version": "1.0", "generator": GENERATOR, "seed": seed, "total_tasks": len(tasks), "counts": counts}
    return {"tasks": tasks, "metadata": metadata}


def render_json(document: dict[str, Any]) -> str:
    """The committed text of a data file."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def build_files(seed: int = SEED, per_type: int = TASKS_PER_TYPE) -> dict[str, str]:
    """File name -> text of every generated data file."""
    registry_doc = build_registry_document(seed)
    registry = registry_from_document(registry_doc, "tool_registry.json")
    return {
        "tool_registry.json": render_json(registry_doc),
        "tasks.json": render_json(build_tasks_document(registry, seed, per_type)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with --check, verify) the generated data files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--per-type", type=int, default=TASKS_PER_TYPE)
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build_files(args.seed, args.per_type).items():
        target = args.out_dir / name
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        args.out_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    for name in stale:
        print(f"out of date: {args.out_dir / name}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
