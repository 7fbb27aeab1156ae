"""Reading the arguments a model writes after a tool name, in every common shape.

- a JSON object: `{"source": "data/input.json"}` (also a JSON string holding one);
- a call: `({"source": "data/input.json"})` or `(source="data/input.json", timeout=30)`;
- key=value pairs: `source=data/input.json timeout=30`, separated by spaces, commas or semicolons; a value is a JSON
  literal (`"a b"`, `30`, `true`, `null`, `{...}`, `[...]`), a single-quoted string, Python's `True`/`False`/`None`, or
  a bare word running to the next separator.

`read_arguments` returns what it could read and the text it could not, so the caller records a parse issue whenever
something is dropped instead of dropping it silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_DECODER = json.JSONDecoder()
_KEY_RE = re.compile(r"[ \t\r\n,;]*([A-Za-z_][\w.\-]*)\s*=\s*")
_SEPARATORS_RE = re.compile(r"[ \t\r\n,;]*")
_BARE_RE = re.compile(r"[^\s,;)]+")
_PYTHON_LITERALS = {"True": True, "False": False, "None": None}


@dataclass(frozen=True)
class ReadArguments:
    """Arguments read from a text, and the part of the text that could not be read ("" when none)."""

    arguments: dict[str, Any]
    unread: str = ""
    invalid_json: bool = False


def decode_prefix(text: str) -> tuple[Any, int] | None:
    """The JSON value at the start of `text` and where it ends; None when `text` does not start with JSON."""
    try:
        return _DECODER.raw_decode(text)
    except ValueError:
        return None


def read_arguments(text: str) -> ReadArguments:
    """Arguments from the text after a tool name (see the module docstring)."""
    body = text.strip()
    if not body:
        return ReadArguments({})
    if body.startswith("("):
        inner, rest = _parenthesised(body)
        found = read_arguments(inner)
        return ReadArguments(found.arguments, _join(found.unread, rest), found.invalid_json)
    if body.startswith("{"):
        return _json_object(body)
    return _pairs(body)


def _parenthesised(body: str) -> tuple[str, str]:
    """The text inside the parentheses opening `body` (JSON-aware) and what follows the closing one."""
    depth, position, quote = 0, 0, ""
    while position < len(body):
        char = body[position]
        if quote:
            if char == "\\":
                position += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return body[1:position], body[position + 1 :].strip()
        position += 1
    return body[1:], ""  # never closed: read what there is


def _json_object(body: str) -> ReadArguments:
    decoded = decode_prefix(body)
    if decoded is None:
        return ReadArguments({}, body, invalid_json=True)
    value, end = decoded
    if not isinstance(value, dict):
        return ReadArguments({}, body)
    return ReadArguments(value, body[end:].strip())


def _pairs(body: str) -> ReadArguments:
    found: dict[str, Any] = {}
    position = 0
    while position < len(body):
        key = _KEY_RE.match(body, position)
        if key is None:
            break
        value, position = _value(body, key.end())
        found[key.group(1)] = value
        position = _SEPARATORS_RE.match(body, position).end()  # type: ignore[union-attr]  # matches the empty string
    return ReadArguments(found, body[position:].strip())


def _value(body: str, start: int) -> tuple[Any, int]:
    """One value of a key=value pair starting at `start`, and where it ends."""
    if start >= len(body):
        return "", start
    if body[start] == "'":
        end = body.find("'", start + 1)
        end = len(body) if end < 0 else end
        return body[start + 1 : end], min(len(body), end + 1)
    if body[start] in '"{[':
        decoded = decode_prefix(body[start:])
        if decoded is not None:
            return decoded[0], start + decoded[1]
    bare = _BARE_RE.match(body, start)
    if bare is None:
        return "", start
    word = bare.group(0)
    if word in _PYTHON_LITERALS:
        return _PYTHON_LITERALS[word], bare.end()
    decoded = decode_prefix(word)
    if decoded is not None and decoded[1] == len(word):
        return decoded[0], bare.end()
    return word, bare.end()


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)
