"""Reading the suite's JSON data files with one-line errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleetbench.data_files import read_data_text


def read_json(path: Path, what: str) -> Any:
    """The parsed document at `path`; `ValueError` naming the file when it is missing or not JSON."""
    try:
        text = read_data_text(path)
    except FileNotFoundError:
        raise ValueError(f"{path.name}: {what} not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"{path.name}: {what} cannot be read: {path} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name}: not UTF-8 text (byte {exc.start}), so not JSON: {path}") from None
    if not text.strip():
        # The full path too: a device such as /dev/null was named only `null`.
        raise ValueError(f"{path.name}: empty, not JSON: {path}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}): {path}") from None
