"""Argument validation of a simulated tool call, as a real tool would do it (reference §12 item 8).

The original never looked at arguments (§3.1), so a flawed plan's wrong parameters and contradicting formats had no
consequence. Here each call is checked before anything is simulated, and the first problem is answered with
INVALID_INPUT and a message naming it. The rules:

- **Omitted parameters** are filled in by the environment, as the prompt promises ("use the default parameters"):
  source, destination and url from the prompt's defaults, `data` from the previous step's output (the task's input
  before the first step), a declared default, and {} / [] for any other object / array parameter. A required parameter
  still without a value is **missing**; so is a required parameter given as null. An optional one given as null takes
  its default.
- **Types and constraints** of declared parameters: the JSON type (an integer is not a boolean, a number may be an
  integer), a non-empty string, the declared `enum` (case-insensitive) and `minimum` / `maximum`.
- **Formats** (`input_format`, `output_format`; any tool understands them, since the prompt's default `format` applies
  to every call): one of json, csv, xml, yaml, and no **contradiction** with the data: an input format must match what
  the call reads (the extension of a source it names, else the format of the incoming data: the previous successful
  step's output, JSON before the first step), an output format must match the extension of the path it writes (a
  destination it names, else the default destination of a tool that writes one).

Arguments a tool does not declare (other than the two formats) are ignored, as the original ignored all of them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetbench_plugins.suites.workflow.model import Tool, ToolParameter
from fleetbench_plugins.suites.workflow.registry import json_type

FORMATS = ("json", "csv", "xml", "yaml")
TASK_INPUT_FORMAT = "json"  # the prompt's default source is data/input.json
_EXTENSIONS = {"json": "json", "csv": "csv", "xml": "xml", "yaml": "yaml", "yml": "yaml"}
# Parameters the environment fills when a call leaves them out (the prompt's DEFAULT PARAMETERS, §2.1).
ENVIRONMENT_DEFAULTS: Mapping[str, str] = {
    "source": "data/input.json",
    "destination": "data/output.json",
    "url": "https://api.example.com/data",
}
_PIPELINE = ("data",)  # filled with the previous step's output
_FORMAT_PARAMETERS = ("input_format", "output_format")
_PY_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "object": "a JSON object", "array": "a list"}  # fmt: skip


@dataclass(frozen=True)
class CallCheck:
    """The verdict on one call: the first problem (None when the call is valid) and the data format it hands on."""

    problem: str | None
    produced_format: str


def _fillable(param: ToolParameter) -> bool:
    return (
        param.name in ENVIRONMENT_DEFAULTS
        or param.name in _PIPELINE
        or param.name in _FORMAT_PARAMETERS
        or param.default is not None
        or json_type(param) in ("object", "array")
    )


def _type_problem(param: ToolParameter, value: Any) -> str | None:
    kind = json_type(param)
    if (isinstance(value, bool) and kind != "boolean") or not isinstance(value, _PY_TYPES[kind]):
        return f"parameter '{param.name}' must be {_TYPE_WORDS[kind]}, got {_describe(value)}"
    if isinstance(value, str) and not value.strip():
        return f"parameter '{param.name}' must not be empty"
    return None


def _constraint_problem(param: ToolParameter, value: Any) -> str | None:
    if param.enum and isinstance(value, str) and value.lower() not in {choice.lower() for choice in param.enum}:
        return f"parameter '{param.name}' must be one of {', '.join(param.enum)}, got {value!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            return f"parameter '{param.name}' must be at least {param.minimum:g}, got {value}"
        if param.maximum is not None and value > param.maximum:
            return f"parameter '{param.name}' must be at most {param.maximum:g}, got {value}"
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a list"
    return f"the number {value}"


def _declared_problem(param: ToolParameter, arguments: Mapping[str, Any]) -> str | None:
    value = arguments.get(param.name)
    if value is None:
        if param.required and (param.name in arguments or not _fillable(param)):
            return f"missing required parameter '{param.name}'"
        return None
    return _type_problem(param, value) or _constraint_problem(param, value)


def _format_value(arguments: Mapping[str, Any], name: str) -> tuple[str | None, str | None]:
    """(normalised format or None, problem) of an explicitly given format argument."""
    value = arguments.get(name)
    if value is None:
        return None, None
    if not isinstance(value, str) or value.strip().lower() not in FORMATS:
        return None, f"parameter '{name}' must be one of {', '.join(FORMATS)}, got {_describe(value)}"
    return value.strip().lower(), None


def _path_format(path: Any) -> str | None:
    """The format a path's extension names (None for URLs, directories and unknown extensions)."""
    if not isinstance(path, str) or "://" in path:
        return None
    extension = posixpath.splitext(path.strip())[1].lstrip(".").lower()
    return _EXTENSIONS.get(extension)


def _declares(tool: Tool, name: str) -> bool:
    return any(param.name == name for param in tool.parameters)


def _read(arguments: Mapping[str, Any], upstream: str) -> tuple[str, str]:
    """(format of the data the call reads, what it is): its explicit source, else the incoming data (the previous
    step's output; before the first step the task's input, the default source)."""
    source = arguments.get("source")
    found = _path_format(source)
    if found is not None:
        return found, f"source {source!r}"
    return upstream, "the incoming data"


def _written_path(tool: Tool, arguments: Mapping[str, Any]) -> Any:
    destination = arguments.get("destination")
    if destination is None and _declares(tool, "destination"):
        return ENVIRONMENT_DEFAULTS["destination"]
    return destination


def check_call(tool: Tool, arguments: Mapping[str, Any], upstream: str = TASK_INPUT_FORMAT) -> CallCheck:
    """Validate one call of `tool` (see the module docstring). `upstream` is the format the previous successful step
    produced (the task input's format before the first step)."""
    for param in tool.parameters:
        problem = _declared_problem(param, arguments)
        if problem is not None:
            return CallCheck(problem, upstream)
    wanted_in, problem = _format_value(arguments, "input_format")
    wanted_out, out_problem = _format_value(arguments, "output_format")
    if problem or out_problem:
        return CallCheck(problem or out_problem, upstream)
    read, what = _read(arguments, upstream)
    if wanted_in is not None and wanted_in != read:
        return CallCheck(f"input_format '{wanted_in}' contradicts the {read.upper()} data it reads ({what})", upstream)
    path = _written_path(tool, arguments)
    written = _path_format(path)
    if wanted_out is not None and written is not None and wanted_out != written:
        return CallCheck(f"output_format '{wanted_out}' contradicts destination {path!r}", upstream)
    return CallCheck(None, wanted_out or written or read)
