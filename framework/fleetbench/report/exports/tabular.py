"""The report's table as CSV, JSON and Markdown, with exactly the column names `fleetbench report` prints.

Values are machine-readable (numbers, not "45.0%"): a rate column holds a percentage as a number. Deployment shares
follow as rows of their own kind in JSON, and are left out of CSV/Markdown rows, which hold one row per aggregate.
JSON and Markdown carry the report's scope line (what the numbers cover); CSV holds the table alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from fleetbench.report.tables import FULL_SHARE, Report, table_columns
from fleetbench.terminal import markdown_cell

# Table columns whose values are not a field of the aggregate row under the same name.
_DERIVED: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "model": lambda row: row["base_model"],
    "units": lambda row: row["total"],
    "not done": lambda row: row["infra_error"],
    FULL_SHARE: lambda row: round(100.0 * row["success"] / row["total"], 4) if row["total"] else None,
}


def records(report: Report) -> tuple[list[str], list[dict[str, Any]]]:
    """The table's columns and one record per aggregate row (`calls` as the table shows it: `Report.calls_of`)."""
    columns = table_columns(report)
    out = []
    for row in report.rows:
        values = {**row, "calls": report.calls_of(row)}
        out.append({name: _DERIVED[name](values) if name in _DERIVED else values.get(name) for name in columns})
    return columns, out


def to_csv(report: Report) -> str:
    columns, rows = records(report)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_json(report: Report) -> str:
    columns, rows = records(report)
    document = {"scope": report.scope, "columns": columns, "rows": rows, "deployment_shares": report.shares}
    return json.dumps(document, indent=2) + "\n"


def to_markdown(report: Report) -> str:
    """The table, under its scope line (what the numbers cover), as `report.format=markdown` prints it."""
    columns, rows = records(report)
    head = f"{report.scope}\n" if report.scope else ""
    lines = [head, "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[name]) for name in columns) + " |" for row in rows]
    return "\n".join(lines).lstrip("\n") + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return markdown_cell(text)


TABULAR: dict[str, tuple[str, Callable[[Report], str]]] = {
    "csv": ("report.csv", to_csv),
    "json": ("report.json", to_json),
    "markdown": ("report.md", to_markdown),
}
"""Format → (file name, renderer)."""
