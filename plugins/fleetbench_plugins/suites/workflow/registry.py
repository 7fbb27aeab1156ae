"""The workflow suite's tool registry: loading and validation, keyword search, and the texts the agent reads.

The registry file is MCP-style JSON (§1.3 of the reference): either `{"tools": [...]}` / `{"tools": {name: spec}}` or,
as the original shipped it, a bare `{name: spec}` mapping. A loaded registry is immutable and cached per path, so every
worker of a process shares one copy (the original loaded a 350 MB model per worker, §10 item 13).

Search is deterministic keyword search (the original's embedding index is not reproducible offline): query words are
stemmed and matched against each tool's operation, category, usage keywords and description, weighted by field and by
rarity across the registry; ties are broken by name.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fleetbench.types import ToolSpec
from fleetbench_plugins.suites.workflow.files import read_json
from fleetbench_plugins.suites.workflow.model import TOOL_CATEGORIES, Tool, ToolError, ToolParameter

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_REGISTRY_PATH = DATA_DIR / "tool_registry.json"

# Field weights for search: the operation word is the strongest signal of what a tool does.
_FIELD_WEIGHTS = {"operation": 3.0, "category": 2.0, "keyword": 2.0, "description": 1.0}
_STOPWORD_TEXT = (
    "a an and are as at be by can do for from how i in into is it its me my need of on or please the this to "
    "tool tools use using want with"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_SUFFIXES = ("ations", "ation", "ions", "ion", "ings", "ing", "ers", "ors", "er", "or", "es", "ed", "s", "e")
_JSON_TYPES = {
    "string": "string",
    "str": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "object": "object",
    "dict": "object",
    "array": "array",
    "list": "array",
}


def stem(word: str) -> str:
    """A tiny suffix stripper: `reader`, `reads` and `reading` all become `read`."""
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                continue
            word = word[: -len(suffix)]
            break
    if word.endswith("y") and len(word) > 3:
        word = word[:-1] + "i"  # notify/notifier -> notifi
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "sl":
        word = word[:-1]  # logger -> logg -> log, mapper -> mapp -> map
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased stems of the words of `text` (underscores split words), stopwords removed, order kept."""
    words = re.split(r"[^a-z0-9]+", text.lower())
    return [stem(word) for word in words if word and word not in _STOPWORDS]


def _stems_match(query: str, token: str) -> bool:
    if query == token:
        return True
    short, long = sorted((query, token), key=len)
    # A prefix match must be long and cover most of the longer stem: `valid` ~ `validat`, but `fil` !~ `filt`.
    return len(short) >= 4 and long.startswith(short) and len(short) >= 0.6 * len(long)


class ToolRegistry:
    """An immutable set of tools with alias resolution, keyword search and agent-facing descriptions."""

    def __init__(self, tools: Iterable[Tool], source: str = "<memory>") -> None:
        self._ranked: dict[str, tuple[str, ...]] = {}
        by_name: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in by_name:
                raise ValueError(f"{source}: tool '{tool.name}': duplicate tool name")
            by_name[tool.name] = tool
        self.source = source
        self.tools: Mapping[str, Tool] = MappingProxyType(by_name)
        self.names: tuple[str, ...] = tuple(by_name)
        self._aliases = MappingProxyType(self._alias_table(source))
        self._check_dependencies(source)
        self._index = {name: self._tool_tokens(tool) for name, tool in by_name.items()}
        self._idf = self._inverse_document_frequency()
        self._similar: dict[str, tuple[Tool, ...]] = {}  # memo for similar(); derived data only
        self._schemas: Mapping[str, ToolSpec] | None = None  # memo for tool_specs()
        self._name_re: re.Pattern[str] | None = None  # memo for names_in()

    # -- construction -------------------------------------------------------------------------------------------

    def _alias_table(self, source: str) -> dict[str, str]:
        table: dict[str, str] = {}
        for tool in self.tools.values():
            for alias in tool.aliases:
                if alias in self.tools or alias in table:
                    raise ValueError(f"{source}: tool '{tool.name}': alias '{alias}' is already a tool name or alias")
                table[alias] = tool.name
        return table

    def _check_dependencies(self, source: str) -> None:
        for tool in self.tools.values():
            for dep in tool.dependencies:
                if dep == tool.name:
                    raise ValueError(f"{source}: tool '{tool.name}': dependency '{dep}' is the tool itself")
                if dep not in self.tools:
                    raise ValueError(f"{source}: tool '{tool.name}': dependency '{dep}' is not a tool in the registry")
        for name in self.names:
            cycle = self._find_cycle(name, ())
            if cycle:
                raise ValueError(f"{source}: tool '{name}': dependency cycle {' -> '.join(cycle)}")

    def _find_cycle(self, name: str, path: tuple[str, ...]) -> tuple[str, ...]:
        if name in path:
            return (*path[path.index(name) :], name)
        for dep in self.tools[name].dependencies:
            cycle = self._find_cycle(dep, (*path, name))
            if cycle:
                return cycle
        return ()

    @staticmethod
    def _tool_tokens(tool: Tool) -> dict[str, float]:
        weighted: dict[str, float] = {}
        fields = (
            ("operation", tool.operation),
            ("category", tool.category),
            ("keyword", " ".join(tool.usage_keywords)),
            ("description", tool.description),
        )
        for field, text in fields:
            for token in tokenize(text):
                weighted[token] = max(weighted.get(token, 0.0), _FIELD_WEIGHTS[field])
        return weighted

    def _inverse_document_frequency(self) -> dict[str, float]:
        counts: dict[str, int] = {}
        for tokens in self._index.values():
            for token in tokens:
                counts[token] = counts.get(token, 0) + 1
        total = max(1, len(self._index))
        return {token: math.log(1.0 + total / count) for token, count in counts.items()}

    # -- lookup ---------------------------------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.tools or name in self._aliases)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools.values())

    def __len__(self) -> int:
        return len(self.tools)

    def resolve(self, name: str) -> str:
        """The canonical name for a tool name or a legacy alias (e.g. `file_operations_reader_8`); KeyError if none."""
        if name in self.tools:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise KeyError(name)

    def get(self, name: str) -> Tool:
        """The tool with this canonical name or alias; KeyError if there is none."""
        return self.tools[self.resolve(name)]

    def same_category(self, name: str) -> tuple[Tool, ...]:
        """The other tools of `name`'s category, in registry order."""
        tool = self.get(name)
        return tuple(t for t in self.tools.values() if t.category == tool.category and t.name != tool.name)

    # -- search ---------------------------------------------------------------------------------------------------

    def _score(self, query_tokens: list[str], name: str) -> tuple[float, int]:
        tokens = self._index[name]
        score, matched = 0.0, 0
        for query in query_tokens:
            best = max(
                (weight * self._idf[token] for token, weight in tokens.items() if _stems_match(query, token)),
                default=0.0,
            )
            score += best
            matched += best > 0
        return score, matched

    def search(self, query: str, k: int = 5) -> list[Tool]:
        """Up to `k` tools best matching `query`, best first, ties by name; tools matching nothing are omitted."""
        # The registry is immutable and agents repeat queries across units: rank each distinct query once.
        ranked = self._ranked.get(query)
        if ranked is None:
            query_tokens = list(dict.fromkeys(tokenize(query)))
            scored = [(self._score(query_tokens, name)[0], name) for name in self.names]
            ordered = sorted((item for item in scored if item[0] > 0), key=lambda item: (-item[0], item[1]))
            ranked = self._ranked[query] = tuple(name for _, name in ordered)
        return [self.tools[name] for name in ranked[: max(0, k)]]

    def similar(self, name: str) -> tuple[Tool, ...]:
        """The other tools ranked by keyword similarity to `name`'s description and usage keywords (memoized)."""
        canonical = self.resolve(name)
        if canonical not in self._similar:
            tool = self.tools[canonical]
            ranked = self.search(f"{tool.description} {' '.join(tool.usage_keywords)}", k=len(self.tools))
            unranked = [t for t in self.tools.values() if t not in ranked]
            self._similar[canonical] = tuple(t for t in [*ranked, *unranked] if t.name != canonical)
        return self._similar[canonical]

    def relevance(self, query: str, tool: Tool) -> float:
        """The share of the query's words that `tool` matches (0..1), shown to the agent with search results."""
        query_tokens = list(dict.fromkeys(tokenize(query)))
        if not query_tokens or tool.name not in self._index:
            return 0.0
        return self._score(query_tokens, tool.name)[1] / len(query_tokens)

    # -- texts ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _parameter_lines(tool: Tool) -> list[str]:
        lines = []
        for param in tool.parameters:
            need = "REQUIRED" if param.required else f"OPTIONAL, default: {json.dumps(param.default)}"
            lines.append(f"{param.name} ({param.type}, {need}{_constraint_text(param)}): {param.description}")
        return lines

    @staticmethod
    def _dependency_text(tool: Tool) -> str:
        if not tool.dependencies:
            return "none"
        return f"{', '.join(tool.dependencies)} (these tools should be executed before this one)"

    def describe(self, tool: Tool | str) -> str:
        """The full `<tool_info>` reply for a tool (or a tool name / alias)."""
        tool = self.get(tool) if isinstance(tool, str) else tool
        lines = [f"Tool: {tool.name}", f"Category: {tool.category}", f"Description: {tool.description}"]
        params = self._parameter_lines(tool)
        lines.append("Parameters:" if params else "Parameters: none")
        lines += [f"  - {line}" for line in params]
        lines.append("Returns:" if tool.returns else "Returns: nothing")
        lines += [f"  - {name} ({kind}): {text}" for name, kind, text in tool.returns]
        lines.append("Possible errors:" if tool.errors else "Possible errors: none")
        lines += [f"  - {error.code}: {error.description}" for error in tool.errors]
        lines.append(f"Dependencies: {self._dependency_text(tool)}")
        return "\n".join(lines)

    def format_search_results(self, query: str, tools: Iterable[Tool]) -> str:
        """The `<tool_search>` reply: each found tool's summary, ending with how to call them."""
        found = list(tools)
        if not found:
            return (
                f'No tools matched "{query}". Try other keywords that describe the operation, '
                "e.g. <tool_search>read file</tool_search>."
            )
        lines = [f'Search results for "{query}" ({len(found)} tools):', ""]
        for number, tool in enumerate(found, 1):
            params = "; ".join(self._parameter_lines(tool)) or "none"
            returns = ", ".join(f"{name} ({kind})" for name, kind, _ in tool.returns) or "nothing"
            errors = ", ".join(error.code for error in tool.errors) or "none"
            lines += [
                f"{number}. {tool.name}",
                f"   Category: {tool.category}",
                f"   Description: {tool.description}",
                f"   Relevance: {self.relevance(query, tool):.2f}",
                f"   Parameters: {params}",
                f"   Returns: {returns}",
                f"   Possible errors: {errors}",
                f"   Dependencies: {self._dependency_text(tool)}",
                "",
            ]
        lines.append("You can now use these tools with <tool_call>tool_name</tool_call>")
        return "\n".join(lines)

    def openai_tools(self) -> list[dict[str, Any]]:
        """OpenAI function-calling schemas, one per tool (the wire shape of `tool_specs`)."""
        return list(self.openai_tool_map().values())

    def openai_tool_map(self) -> Mapping[str, dict[str, Any]]:
        """Each tool's OpenAI function schema by name, in registry order."""
        return {name: spec.wire() for name, spec in self.tool_specs().items()}

    def tool_specs(self) -> Mapping[str, ToolSpec]:
        """Each tool as a function the model may call (native tool-calling mode), by name, in registry order (built
        once)."""
        if self._schemas is None:
            self._schemas = MappingProxyType({tool.name: _tool_spec(tool) for tool in self.tools.values()})
        return self._schemas

    def names_in(self, text: str) -> list[str]:
        """The canonical names of the tools `text` writes by name or alias, in order of first appearance."""
        if self._name_re is None:
            spellings = sorted([*self.names, *self._aliases], key=len, reverse=True)  # longest first: whole names
            alternatives = "|".join(re.escape(name) for name in spellings)
            self._name_re = re.compile(rf"(?<![A-Za-z0-9_])(?:{alternatives})(?![A-Za-z0-9_])")
        return list(dict.fromkeys(self.resolve(found) for found in self._name_re.findall(text)))


def _constraint_text(param: ToolParameter) -> str:
    parts = [f"one of {'/'.join(param.enum)}"] if param.enum else []
    if param.minimum is not None:
        parts.append(f"min {param.minimum:g}")
    if param.maximum is not None:
        parts.append(f"max {param.maximum:g}")
    return "".join(f", {part}" for part in parts)


def json_type(param: ToolParameter) -> str:
    """The JSON-schema type of a parameter (its declared type, with Python spellings mapped; unknown -> string)."""
    return _JSON_TYPES.get(param.type.lower(), "string")


def _tool_spec(tool: Tool) -> ToolSpec:
    properties: dict[str, Any] = {}
    for param in tool.parameters:
        prop: dict[str, Any] = {"type": json_type(param), "description": param.description}
        if not param.required and param.default is not None:
            prop["default"] = param.default
        if param.enum:
            prop["enum"] = list(param.enum)
        for key in ("minimum", "maximum"):
            if getattr(param, key) is not None:
                prop[key] = getattr(param, key)
        properties[param.name] = prop
    required = [param.name for param in tool.parameters if param.required]
    description = tool.description
    if tool.dependencies:
        description += f" Run after: {', '.join(tool.dependencies)}."
    return ToolSpec(tool.name, description, {"type": "object", "properties": properties, "required": required})


# -- parsing a registry document -----------------------------------------------------------------------------------

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # also a valid OpenAI function name


class _Where:
    """Where a value sits (file, tool), so every error is one line naming the file, the tool and the field."""

    def __init__(self, source: str, tool: str) -> None:
        self.source, self.tool = source, tool

    def error(self, field: str, problem: str) -> ValueError:
        return ValueError(f"{self.source}: tool '{self.tool}': field '{field}' {problem}")

    def text(self, spec: Mapping[str, Any], key: str, default: str | None = None, *, label: str = "") -> str:
        value = spec.get(key, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise self.error(label or key, "must be a non-empty string")
        return value

    def items(self, spec: Mapping[str, Any], field: str) -> list[Any]:
        value = spec.get(field, [])
        if not isinstance(value, list):
            raise self.error(field, "must be a list")
        return value

    def mapping(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(field, "must be a JSON object")
        return value

    def names(self, spec: Mapping[str, Any], field: str) -> tuple[str, ...]:
        values = self.items(spec, field)
        for index, value in enumerate(values):
            if not isinstance(value, str) or not value:
                raise self.error(f"{field}[{index}]", "must be a non-empty string")
        return tuple(values)


def _tool_entries(document: Any, source: str) -> list[tuple[str, Any]]:
    raw = document.get("tools", document) if isinstance(document, Mapping) else document
    if isinstance(raw, Mapping):  # the original's layout: {name: spec}
        return [(str(key), spec) for key, spec in raw.items() if key != "metadata" and not str(key).startswith("_")]
    if isinstance(raw, list):
        entries = []
        for index, spec in enumerate(raw):
            name = spec.get("name") if isinstance(spec, Mapping) else None
            entries.append((name if isinstance(name, str) and name else f"#{index}", spec))
        return entries
    raise ValueError(f"{source}: expected a JSON object with a 'tools' list or mapping")


def _category_and_operation(name: str, spec: Mapping[str, Any], where: _Where) -> tuple[str, str]:
    meta = where.mapping(spec.get("metadata", {}), "metadata")
    category, operation = spec.get("category") or meta.get("category"), spec.get("operation") or meta.get("operation")
    prefix = next((c for c in TOOL_CATEGORIES if name.startswith(c + "_")), None)
    category = category or prefix
    if not isinstance(category, str) or not category:
        raise where.error("category", "is missing and the name does not start with a known category")
    if not operation:  # `{category}_{operation}`, else the name's last word (`x_reader` -> `reader`)
        operation = name[len(category) + 1 :] if name.startswith(category + "_") else name.rsplit("_", 1)[-1]
    if not isinstance(operation, str) or not operation:
        raise where.error("operation", "must be a non-empty string")
    return category, operation


def _parameters(spec: Mapping[str, Any], where: _Where) -> tuple[ToolParameter, ...]:
    params = []
    for index, raw in enumerate(where.items(spec, "parameters")):
        field = f"parameters[{index}]"
        entry = where.mapping(raw, field)
        required = entry.get("required", True)
        if not isinstance(required, bool):
            raise where.error(f"{field}.required", "must be true or false")
        params.append(
            ToolParameter(
                name=where.text(entry, "name", label=f"{field}.name"),
                type=where.text(entry, "type", "string", label=f"{field}.type"),
                description=where.text(entry, "description", "", label=f"{field}.description"),
                required=required,
                default=entry.get("default"),
                **_constraints(entry, f"{field}.constraints", where),
            )
        )
    return tuple(params)


def _constraints(entry: Mapping[str, Any], field: str, where: _Where) -> dict[str, Any]:
    """`constraints: {enum: [...], minimum: n, maximum: n}` of a parameter (all optional)."""
    raw = where.mapping(entry.get("constraints", {}), field)
    enum = raw.get("enum", [])
    if not isinstance(enum, list) or not all(isinstance(value, str) and value for value in enum):
        raise where.error(f"{field}.enum", "must be a list of non-empty strings")
    bounds: dict[str, Any] = {"enum": tuple(enum)}
    for key in ("minimum", "maximum"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise where.error(f"{field}.{key}", "must be a number")
        bounds[key] = value
    return bounds


def _returns(spec: Mapping[str, Any], where: _Where) -> tuple[tuple[str, str, str], ...]:
    returns = []
    for index, raw in enumerate(where.items(spec, "returns")):
        entry = where.mapping(raw, f"returns[{index}]")
        label = f"returns[{index}]"
        returns.append(
            (
                where.text(entry, "name", label=f"{label}.name"),
                where.text(entry, "type", "object", label=f"{label}.type"),
                where.text(entry, "description", "", label=f"{label}.description"),
            )
        )
    return tuple(returns)


def _errors(spec: Mapping[str, Any], where: _Where) -> tuple[ToolError, ...]:
    errors = []
    for index, raw in enumerate(where.items(spec, "errors")):
        entry = where.mapping(raw, f"errors[{index}]")
        label = f"errors[{index}]"
        code = where.text(entry, "code", label=f"{label}.code")
        errors.append(ToolError(code, where.text(entry, "description", "", label=f"{label}.description")))
    return tuple(errors)


def _parse_tool(key: str, spec: Any, source: str) -> Tool:
    where = _Where(source, key)
    spec = where.mapping(spec, "(tool entry)")
    name = where.text(spec, "name", key) if "name" in spec else key
    if not _NAME_PATTERN.match(name):
        raise where.error("name", "must be 1-64 letters, digits, '_' or '-'")
    where.tool = name
    category, operation = _category_and_operation(name, spec, where)
    differentiation = where.mapping(spec.get("differentiation", {}), "differentiation")
    keyword_source = spec if "usage_keywords" in spec else differentiation
    return Tool(
        name=name,
        category=category,
        operation=operation,
        description=where.text(spec, "description"),
        parameters=_parameters(spec, where),
        returns=_returns(spec, where),
        errors=_errors(spec, where),
        dependencies=where.names(spec, "dependencies"),
        usage_keywords=where.names(keyword_source, "usage_keywords"),
        aliases=where.names(spec, "aliases"),
    )


def parse_tools(document: Any, source: str = "<memory>") -> list[Tool]:
    """The tools of a registry document (cross-references are checked by ToolRegistry)."""
    return [_parse_tool(key, spec, source) for key, spec in _tool_entries(document, source)]


def registry_from_document(document: Any, source: str = "<memory>") -> ToolRegistry:
    """Build a registry from an already-parsed JSON document; errors name `source`, the tool and the field."""
    return ToolRegistry(parse_tools(document, source), source=source)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str) -> ToolRegistry:
    source = Path(path)
    return registry_from_document(read_json(source, "tool registry file"), source.name)


def load_registry(path: str | Path | None = None) -> ToolRegistry:
    """Load (once per path, then shared read-only) a tool registry; None = the shipped `data/tool_registry.json`.

    A malformed file raises ValueError with a one-line message naming the file, the tool and the field.
    """
    resolved = Path(path) if path is not None else DEFAULT_REGISTRY_PATH
    return _load_cached(str(resolved.resolve()))
