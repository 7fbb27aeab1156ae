"""What every storage must be able to hold. Validation enforces these before a run starts, so a value a storage
could not write fails with one line at composition time instead of after every unit has run.

Storages must hold at least these (the `sql` plugin's name columns are 255 characters and its seed column is a signed
64-bit BIGINT; a test checks that they agree).
"""

from __future__ import annotations

import re

SEED_MIN = -(2**63)
SEED_MAX = 2**63 - 1
TOKENS_MAX = 2**31 - 1
"""The most tokens a call's prompt or completion may count: what the calls table's integer columns hold, and
beyond any context window; a reply claiming more is malformed, not stored."""
"""Seeds are signed 64-bit integers (a BIGINT column)."""

NAME_MAX_CHARS = 255
"""Base model, deployment and lane names, and task ids."""

FACTOR_OR_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
"""Factor and metric names become JSON paths in queries; identifier-like names keep them portable."""


def name_problem(value: str) -> str | None:
    """Why `value` cannot be stored as a name (too long, or not storable text), or None when it can."""
    if len(value) > NAME_MAX_CHARS:
        return f"{value[:40]!r}… has {len(value)} characters; at most {NAME_MAX_CHARS} can be stored"
    problem = text_problem(value)
    if problem is not None:
        return problem
    control = _CONTROL.search(value)
    if control is not None:
        # A name is printed on progress lines and in logs as it is: an escape sequence there rewrites the terminal.
        return (
            f"holds the control character {control.group()!r} (at {control.start()}); a name is printable text, "
            "and it is printed as it is"
        )
    return None


_CONTROL = re.compile("[\x01-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls (NUL is `text_problem`'s) and the bidirectional overrides and isolates."""


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None when it can: PostgreSQL's text holds no NUL character, and a
    lone surrogate (JSON's `"\\ud800"`) cannot be encoded as UTF-8 for any storage."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"holds a NUL character (at {found.start()}), which a database cannot store as text"
    return f"holds a lone surrogate {found.group()!r} (at {found.start()}), which is not valid Unicode text"


def checked_name(name: str, what: str) -> str:
    """`name` if it is usable as a factor or metric name, else ValueError naming it."""
    if not FACTOR_OR_METRIC_NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r}: names must match {FACTOR_OR_METRIC_NAME.pattern}")
    return name


def first_unstorable(node: object, key: str = "") -> tuple[str, str] | None:
    """(dotted key, why) of the first text in a plain container, keys included, that cannot be stored
    (`text_problem`); None when every text can. The run's configuration is stored with it, whatever the key."""
    if isinstance(node, str):
        problem = text_problem(node)
        return None if problem is None else (key, problem)
    if isinstance(node, dict):
        items: list[tuple[str, object]] = [(str(name), value) for name, value in node.items()]
    elif isinstance(node, list):
        items = [(str(index), value) for index, value in enumerate(node)]
    else:
        return None
    for name, value in items:
        here = f"{key}.{name}" if key else name
        problem = text_problem(name)
        found = (here, f"its name {problem}") if problem else first_unstorable(value, here)
        if found is not None:
            return found
    return None
