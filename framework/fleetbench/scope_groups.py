"""Group names that are properties of a unit's suite scope rather than columns or factors.

A report may group by `dataset` (the suite's data digests, `Suite.identity()`), `suite_version`, or `suite.<option>`
(a result-relevant option, e.g. `suite.scoring`). Each is read from the scope's stored description, so every storage
answers them the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

TIMEOUT_STATUSES = ("timeout", "episode_timeout", "request_timeout")
"""Infra statuses that are timeouts: `Storage.aggregate` counts those infra errors as `timeout`."""
SCOPE_GROUPS = ("dataset", "suite_version")
"""Scope properties by name (besides any `suite.<option>`)."""
UNIT_COLUMNS = ("base_model", "deployment", "suite", "run_id", "task_id", "lane_id", "seed", "suite_scope",
                "model_scope", "experiment", "instance_index")  # fmt: skip
"""Group names that are stored columns of a unit; any other name that is not a scope property is a cell factor."""


def is_scope_group(name: str) -> bool:
    """Whether `name` is a property of the suite scope (`dataset`, `suite_version`, `suite.<option>`)."""
    return name in SCOPE_GROUPS or name.startswith("suite.")


def scope_property(name: str, description: Mapping[str, Any]) -> Any:
    """A scope group's value for a suite scope description (`dataset`, `suite_version`, `suite.<option>`)."""
    if name == "suite_version":
        return description.get("version")
    if name == "dataset":
        return dataset_label(description.get("data") or {})
    value = (description.get("options") or {}).get(name.removeprefix("suite."))
    return value if value is None or isinstance(value, bool | int | float | str) else json.dumps(value, sort_keys=True)


def dataset_label(data: Mapping[str, Any]) -> str:
    """A short, stable label of a suite's data digests: the digest itself when there is one, else a digest of all."""
    if len(data) == 1:
        return str(next(iter(data.values())))[:12]
    text = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
