"""Checks of `report.*` settings made before any database is read, each failing with one line naming the key."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fleetbench.errors import ConfigError
from fleetbench.interfaces import Suite, result_options
from fleetbench.scope_groups import SCOPE_GROUPS, UNIT_COLUMNS


def check_report_output(output: str | None) -> None:
    """`report.output` must name a file in an existing, writable directory (nothing is written yet)."""
    if not output:
        return
    path = Path(output)
    folder = path.parent
    if path.is_dir():
        raise ConfigError(f"report.output: {output!r} is a directory; give a file name")
    blocking = next((part for part in (folder, *folder.parents) if part.exists() and not part.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"report.output: cannot write {output!r}: {str(blocking)!r} is a file, not a directory")
    if not folder.is_dir():
        raise ConfigError(
            f"report.output: cannot write {output!r}: directory {str(folder)!r} does not exist; create it or choose "
            "another path"
        )
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"report.output: directory {str(folder)!r} is not writable")


def report_groups(suite: Suite) -> list[str]:
    """Every name `report.by` accepts for a suite: its factors, unit columns and scope properties."""
    options = [f"suite.{name}" for name in _result_options(suite)]
    return [*suite.factor_names(), *UNIT_COLUMNS, *SCOPE_GROUPS, *options]


def check_report_by(by: Sequence[str], suite: Suite) -> None:
    """Every `report.by` name is a factor of the suite, a unit column or a scope property (`base_model` is not a
    choice: every row is already one base model's)."""
    valid = [name for name in report_groups(suite) if name != "base_model"]
    for name in by:
        if name == "base_model":
            raise ConfigError("report.by: 'base_model' is not needed: every row is one base model's already; drop it")
        if name not in valid:
            raise ConfigError(f"report.by: {name!r} is not a factor of suite {suite.name!r} nor a unit column; "
                              f"valid choices: {', '.join(valid)}")  # fmt: skip
    seen: set[str] = set()
    for name in by:
        if name in seen:
            raise ConfigError(f"report.by: {name!r} is listed twice")
        seen.add(name)


def _result_options(suite: Suite) -> list[str]:
    return sorted(result_options(suite.options))
