"""Resolving a tool name as a model wrote it onto a registry name.

Precise by default: the exact name; a registry alias (`file_operations_reader_8`); a case variant
(`File_Operations_Reader`); a separator variant, where `-`, `.`, `/`, `:`, spaces and camelCase humps all read as `_`
(`file-operations-reader`, `file operations reader`, `fileOperationsReader`), also of an alias; and any of these behind
the namespace prefix serving stacks echo (`functions.file_operations_reader`). Nothing else resolves: "data", "file" or
"process" are not tools.

`substring=True` adds the original's last resort (reference §3.1): a registry name contained in the request, or the
request contained in a registry name (first registry hit). It is a legacy option for reproducing the original's
numbers, because it turns fragments into real tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fleetbench_plugins.suites.workflow.model import Tool

EXACT = "exact"
CASE = "case"
ALIAS = "alias"
VARIANT = "variant"
SUBSTRING = "substring"
UNKNOWN = "unknown"
NAMESPACES = ("functions", "function", "tools", "tool")
_NAMESPACE_RE = re.compile(rf"^(?:{'|'.join(NAMESPACES)})\s*[.:/]\s*(?=\S)", re.IGNORECASE)
_MIN_SUBSTRING = 4  # shorter fragments ("io", "get") match too many tools to mean anything
_HUMP_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS_RE = re.compile(r"[\s\-./:]+")
_QUOTES = "`'\"“”‘’"


def variant_key(name: str) -> str:
    """The separator- and case-free spelling two variants of one name share (`File-Operations Reader` ->
    `file_operations_reader`); a leading namespace (`functions.`) is dropped."""
    text = _NAMESPACE_RE.sub("", name.strip().strip(_QUOTES).strip()).removesuffix("()")
    text = _HUMP_RE.sub("_", text)
    return "_".join(part for part in _SEPARATORS_RE.sub("_", text).lower().split("_") if part)


class NameResolver:
    """Maps a tool name as the model wrote it onto a registry name (see the module docstring)."""

    def __init__(self, tools: Iterable[Tool], *, substring: bool = False) -> None:
        listed = tuple(tools)
        self._names = tuple(tool.name for tool in listed)
        self._exact = set(self._names)
        self._aliases = {alias: tool.name for tool in listed for alias in tool.aliases}
        self._lower = {name.lower(): name for name in self._names}
        self._variants: dict[str, str] = {}
        for tool in reversed(listed):  # the first tool wins a clash, as registry order decides everywhere
            for spelling in (*tool.aliases, tool.name):
                self._variants[variant_key(spelling)] = tool.name
        self._substring = substring

    @property
    def names(self) -> tuple[str, ...]:
        """Every registry name, in registry order."""
        return self._names

    @property
    def substring(self) -> bool:
        """Whether the legacy substring fallback is on."""
        return self._substring

    def resolve(self, requested: str) -> tuple[str | None, str]:
        """(registry name or None, how it matched: exact, alias, case, variant, substring or unknown)."""
        name = requested.strip()
        if name in self._exact:
            return name, EXACT
        if name in self._aliases:
            return self._aliases[name], ALIAS
        if name.lower() in self._lower:
            return self._lower[name.lower()], CASE
        key = variant_key(name)
        if key in self._variants:
            return self._variants[key], VARIANT
        if self._substring:
            hit = self._substring_match(name.strip(_QUOTES).lower())
            if hit is not None:
                return hit, SUBSTRING
        return None, UNKNOWN

    def _substring_match(self, lowered: str) -> str | None:
        # A registry name inside the request ("functions_x_file_operations_reader") is the most specific evidence:
        # prefer the longest such name. Otherwise the request inside a name ("reader"), first in registry order,
        # as the original did.
        contained = [n for n in self._names if n.lower() in lowered]
        if contained:
            return max(contained, key=len)
        if len(lowered) < _MIN_SUBSTRING:
            return None
        return next((n for n in self._names if lowered in n.lower()), None)
