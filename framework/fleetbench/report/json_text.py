"""Reports as strict JSON: what every JSON parser reads, not only Python's."""

from __future__ import annotations

import json
import math
from typing import Any


def json_safe(value: Any) -> Any:
    """The value with non-finite floats as None: JSON has no inf or NaN (a metric summed beyond the largest float, an
    odds ratio with no failures on one side), and Python's `Infinity` / `NaN` tokens fail strict parsers."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strict_json(document: Any) -> str:
    """`document` as indented strict JSON text, ending in a newline; values JSON has no type for are written as
    their text (`default=str`)."""
    return json.dumps(json_safe(document), indent=2, default=str, allow_nan=False) + "\n"
