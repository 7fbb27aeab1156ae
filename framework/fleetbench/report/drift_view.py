"""How `fleetbench drift` shows an audit: a terminal table, or JSON for scripts."""

from __future__ import annotations

import dataclasses
import math

from rich.console import Console

from fleetbench.report.drift import DriftAudit
from fleetbench.report.json_text import strict_json
from fleetbench.terminal import PlainTable, printable

DRIFT_FORMATS = ("table", "json")


def _number(value: float | None, pattern: str) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return format(value, pattern)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def render_drift(audit: DriftAudit, fmt: str, console: Console) -> str | None:
    """Print the table (`table`), or return the JSON text (`json`)."""
    if fmt == "json":
        payload = {
            "alpha": audit.alpha,
            "min_units": audit.min_units,
            "deployments": [dataclasses.asdict(d) for d in audit.deployments],
            "pairs": [dataclasses.asdict(p) for p in audit.pairs],
        }
        # inf is not JSON: an odds ratio with no failures on one side is written as null with the rates beside it.
        return strict_json(payload)
    title = f"fleetbench drift (CMH over cells, Holm-adjusted, alpha {audit.alpha:g})"
    columns = ("model", "deployment", "units", "full success", "siblings", "diff (pts)", "odds ratio", "p (Holm)",
               "differs from", "flag")  # fmt: skip
    table = PlainTable(*columns, title=title)
    for d in audit.deployments:
        table.add_row(
            d.base_model,
            d.deployment,
            str(d.units),
            _percent(d.success_rate),
            _percent(d.reference_rate),
            _number(d.rate_difference, "+.1f"),
            _number(d.odds_ratio, ".2f"),
            _number(d.p_adjusted, ".2g"),
            ", ".join(d.differs_from) or "-",
            "DRIFT" if d.flagged else (d.note or "ok"),
        )
    console.print(table, soft_wrap=True)
    flagged = audit.flagged
    summary = f"{len(flagged)} of {len(audit.deployments)} deployments flagged"
    line = summary + (": " + ", ".join(d.deployment for d in flagged) if flagged else "")
    console.print(printable(line), soft_wrap=True, markup=False, highlight=False)
    return None
