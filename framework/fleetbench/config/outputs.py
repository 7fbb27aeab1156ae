"""Typed sections of the commands that read stored results beyond `fleetbench report`: `drift` and `export`.

Kept apart from `schema.py` so the report's own section can grow without touching these. Both commands select
units with the `report.*` filter keys (`report.models`, `report.run_id`, `report.label`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetbench.errors import ConfigError, choices_text

EXPORT_FORMATS = ("csv", "json", "markdown", "parquet", "master_json", "csv50", "inspect")
"""What `fleetbench export` writes (see README "Exports")."""
DRIFT_FORMATS = ("table", "json")


@dataclass
class DriftConf:
    """`fleetbench drift`: the deployment drift audit."""

    alpha: float = 0.01
    """Family-wise error rate over every pairwise test of the audit (Holm's method)."""
    min_units: int = 20
    """A pair of deployments with fewer units in the cells both ran is not tested."""
    format: str = "table"
    output: str | None = None


@dataclass
class ExportConf:
    """`fleetbench export`: stored results in other tools' formats, written into a directory."""

    format: str | None = None
    output: str | None = None
    """The directory to write into (it must exist)."""


def check_drift(drift: DriftConf) -> None:
    """Refuse bad drift settings with one line naming the key."""
    if drift.format not in DRIFT_FORMATS:
        raise ConfigError(f"drift.format: {drift.format!r} is not valid; choices: {choices_text(DRIFT_FORMATS)}")
    if not 0 < drift.alpha < 1:
        raise ConfigError(f"drift.alpha: must be within (0, 1), got {drift.alpha}")
    if drift.min_units < 2:
        raise ConfigError(f"drift.min_units: must be at least 2, got {drift.min_units}")


def check_export(export: ExportConf) -> None:
    """Refuse a missing or unknown format and a missing output directory setting."""
    if export.format not in EXPORT_FORMATS:
        given = "missing" if export.format is None else f"{export.format!r} is not valid"
        raise ConfigError(f"export.format: {given}; choices: {choices_text(EXPORT_FORMATS)}")
    if not export.output:
        raise ConfigError("export.output: missing; give the directory to write into (export.output=DIR)")
