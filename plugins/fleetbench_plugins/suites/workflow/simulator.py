"""Simulated tool execution (reference §3.4), seeded so that a rerun of a unit replays the same outcomes.

With validation on (the default), each call's arguments are checked first (`validation.check_call`): an invalid call
fails with INVALID_INPUT and a message naming the problem, deterministically and without a random draw. The success
probability starts at the cell's `tool_success_rate` and is lowered by unmet or failed dependencies and by
recent failures, then clamped to [0.10, 0.95]. Failures return one of the tool's own error codes with context; successes
return a payload specific to the tool's category. Unlike the original, whose category lookup never matched and so always
produced a generic payload with a wall-clock timestamp, outputs here are category-specific and contain no time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetbench_plugins.suites.workflow.model import Tool, ToolError
from fleetbench_plugins.suites.workflow.validation import TASK_INPUT_FORMAT, check_call

P_MIN = 0.10
P_MAX = 0.95
UNMET_DEPENDENCY_FACTOR = 0.5
FAILED_DEPENDENCY_FACTOR = 0.7
RECENT_FAILURE_FACTOR = 0.9
RECENT_WINDOW = 3

# The prompt's "DEFAULT PARAMETERS" (§2.1): what a call without arguments is assumed to use.
DEFAULT_SOURCE = "data/input.json"
DEFAULT_DESTINATION = "data/output.json"
DEFAULT_URL = "https://api.example.com/data"
_FALLBACK_ERROR = ToolError("OPERATION_FAILED", "Operation failed")
_INVALID_INPUT = ToolError("INVALID_INPUT", "The input parameters are missing or invalid")


class ToolLookup(Protocol):
    """The part of the tool registry the simulator needs."""

    def get(self, name: str) -> Tool | None: ...


@dataclass(frozen=True)
class SimulatedResult:
    """One simulated execution. `error` is the full feedback text, e.g. `TIMEOUT: Operation timed out (after 37 s)`."""

    tool: str
    success: bool
    probability: float
    output: Mapping[str, Any] | None = None
    error_code: str | None = None
    error: str | None = None
    unmet_dependencies: tuple[str, ...] = ()
    failed_dependencies: tuple[str, ...] = ()


@dataclass
class _State:
    results: list[SimulatedResult] = field(default_factory=list)
    data_format: str = TASK_INPUT_FORMAT  # the format of the data the last successful step produced


class ToolSimulator:
    """Executes tools by drawing from `rng`; one instance per episode (it remembers the episode's executions)."""

    def __init__(
        self, registry: ToolLookup, tool_success_rate: float, rng: random.Random, *, validate: bool = True
    ) -> None:
        if not 0.0 <= tool_success_rate <= 1.0:
            raise ValueError(f"tool_success_rate must be within [0, 1], got {tool_success_rate}")
        self._registry = registry
        self._base = tool_success_rate
        self._rng = rng
        self._validate = validate
        self._state = _State()

    @property
    def history(self) -> tuple[SimulatedResult, ...]:
        """Every simulated execution of this episode, in order."""
        return tuple(self._state.results)

    def success_probability(self, tool: Tool) -> float:
        """The probability that executing `tool` now succeeds, given this episode's history."""
        p = self._base
        p *= UNMET_DEPENDENCY_FACTOR ** len(self._unmet(tool))
        p *= FAILED_DEPENDENCY_FACTOR ** len(self._failed(tool))
        results = self._state.results
        if len(results) >= RECENT_WINDOW:
            failures = sum(1 for r in results[-RECENT_WINDOW:] if not r.success)
            p *= RECENT_FAILURE_FACTOR**failures
        return min(P_MAX, max(P_MIN, p))

    def execute(self, tool: Tool | str, arguments: Mapping[str, Any] | None = None) -> SimulatedResult:
        """Simulate one execution; records it in the history. Raises KeyError for a tool not in the registry."""
        spec = self._lookup(tool) if isinstance(tool, str) else tool
        args = dict(arguments or {})
        unmet, failed = self._unmet(spec), self._failed(spec)
        check = check_call(spec, args, self._state.data_format) if self._validate else None
        if check is not None and check.problem is not None:
            error = next((e for e in spec.errors if e.code == _INVALID_INPUT.code), _INVALID_INPUT)
            text = f"{error.code}: {error.description} ({check.problem})"
            return self._record(SimulatedResult(spec.name, False, 0.0, None, error.code, text, unmet, failed))
        probability = self.success_probability(spec)
        step = len(self._state.results) + 1
        if self._rng.random() < probability:
            output = _success_payload(spec, args, step, self._rng)
            result = SimulatedResult(spec.name, True, probability, output, None, None, unmet, failed)
            if check is not None:
                self._state.data_format = check.produced_format
        else:
            error = self._rng.choice(spec.errors) if spec.errors else _FALLBACK_ERROR
            text = f"{error.code}: {error.description} {_error_context(error.code, spec, args, self._rng)}"
            result = SimulatedResult(spec.name, False, probability, None, error.code, text, unmet, failed)
        return self._record(result)

    def _record(self, result: SimulatedResult) -> SimulatedResult:
        self._state.results.append(result)
        return result

    def _lookup(self, name: str) -> Tool:
        tool = self._registry.get(name)
        if tool is None:
            raise KeyError(name)
        return tool

    def _unmet(self, tool: Tool) -> tuple[str, ...]:
        done = {r.tool for r in self._state.results if r.success}
        return tuple(dep for dep in tool.dependencies if dep not in done)

    def _failed(self, tool: Tool) -> tuple[str, ...]:
        last: dict[str, bool] = {r.tool: r.success for r in self._state.results}
        return tuple(dep for dep in tool.dependencies if last.get(dep) is False)


def _arg(args: Mapping[str, Any], keys: tuple[str, ...], default: str) -> str:
    for key in keys:
        value = args.get(key)
        if isinstance(value, str) and value:
            return value
    return default


def _source(args: Mapping[str, Any]) -> str:
    return _arg(args, ("source", "path", "input", "file", "input_path"), DEFAULT_SOURCE)


def _error_context(code: str, tool: Tool, args: Mapping[str, Any], rng: random.Random) -> str:
    """The parenthesised context the original appended to an error, e.g. `(after 37 seconds)`."""
    if code == "TIMEOUT":
        return f"(after {rng.randint(5, 60)} seconds)"
    if code in ("FILE_NOT_FOUND", "PERMISSION_DENIED"):
        return f"(path: /{_source(args).lstrip('/')})"
    if code in ("NETWORK_ERROR", "INVALID_RESPONSE"):
        return f"(url: {_arg(args, ('url', 'endpoint'), DEFAULT_URL)}, status: {rng.choice((500, 502, 503, 504))})"
    if code == "INVALID_INPUT":
        required = [p.name for p in tool.parameters if p.required] or ["data"]
        return f"(parameter: {rng.choice(required)})"
    if code in ("CALCULATION_ERROR", "OVERFLOW"):
        return f"(operation: {tool.operation}, magnitude: 1e{rng.randint(300, 308)})"
    if code in ("PARSE_ERROR", "SCHEMA_MISMATCH", "MAPPING_ERROR"):
        return f"(line: {rng.randint(1, 400)}, field: {rng.choice(('id', 'name', 'value', 'timestamp', 'type'))})"
    if code == "AUTH_FAILED":
        return f"(status: {rng.choice((401, 403))})"
    if code in ("RESOURCE_UNAVAILABLE", "QUOTA_EXCEEDED"):
        return f"(retry after {rng.randint(1, 30)} seconds)"
    return f"(tool: {tool.name})"


def _success_payload(tool: Tool, args: Mapping[str, Any], step: int, rng: random.Random) -> dict[str, Any]:
    build = _PAYLOADS.get(tool.category, _generic_payload)
    return {"status": "success", "tool": tool.name, "operation": tool.operation, "step": step, **build(args, rng)}


def _file_payload(args: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    path = _arg(args, ("destination", "output", "output_path"), "") or _source(args)
    fmt = _arg(args, ("output_format", "input_format"), "json").lower()
    return {"path": path, "bytes": rng.randint(512, 262_144), "records": rng.randint(10, 5000), "format": fmt}


def _data_payload(args: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    records = rng.randint(10, 5000)
    return {
        "records": records,
        "records_out": rng.randint(records // 2, records),
        "fields": rng.randint(3, 24),
        "valid": rng.random() < 0.9,
    }


def _network_payload(args: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    url = _arg(args, ("url", "endpoint", "destination"), DEFAULT_URL)
    return {
        "status_code": rng.choice((200, 200, 200, 201, 202)),
        "url": url,
        "latency_ms": rng.randint(20, 900),
        "bytes": rng.randint(256, 65_536),
    }


def _computation_payload(args: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    precision = rng.choice((2, 4, 6))
    return {
        "result": round(rng.uniform(0.0, 10_000.0), precision),
        "precision": precision,
        "iterations": rng.randint(1, 200),
    }


def _integration_payload(args: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    return {
        "connection": "established",
        "session_id": f"sess-{rng.getrandbits(32):08x}",
        "token_expires_in_s": rng.choice((900, 1800, 3600)),
        "mapped_fields": rng.randint(2, 30),
    }


def _utility_payload(args: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    return {"logged": True, "cache_hit": rng.random() < 0.5, "entries": rng.randint(1, 500)}


def _generic_payload(args: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    return {"result": "completed"}


_PAYLOADS: dict[str, Callable[[Mapping[str, Any], random.Random], dict[str, Any]]] = {
    "file_operations": _file_payload,
    "data_processing": _data_payload,
    "network": _network_payload,
    "computation": _computation_payload,
    "integration": _integration_payload,
    "utility": _utility_payload,
}
