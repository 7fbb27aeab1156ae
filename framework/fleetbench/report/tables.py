"""The per-base-model report, with each base model's per-deployment share of units and calls beneath it.

Rows come from `Storage.aggregate` and `Storage.deployment_shares`. Deployments never get rows of their own: they
appear only as shares under their base model.

Column names, as every format shows them:
- `units`: completed units (full successes + partials + failures); infra errors are `not done` and never counted;
- `success` / `partial` / `failure`: units per outcome, so units = success + partial + failure in every row;
- `full %`: full successes over units (`success / units`) — not the suite's `success_rate` metric, which for the
  workflow suite counts full and partial successes (the original's 总体成功率);
- then the suite's first metrics (means or sums, as the suite declares them; see `fleetbench plugins`).
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import tabulate as tabulate_settings
from rich.console import Console
from tabulate import DataRow, Line, TableFormat, tabulate

from fleetbench.interfaces import Storage
from fleetbench.report.json_text import strict_json
from fleetbench.report.scope import RUN_ID_SHOWN
from fleetbench.terminal import markdown_cell, printable
from fleetbench.types import MetricSpec, ReportFilter

HEAVY_HEAD = TableFormat(
    lineabove=Line("┏", "━", "┳", "┓"),
    linebelowheader=Line("┡", "━", "╇", "┩"),
    linebetweenrows=None,
    linebelow=Line("└", "─", "┴", "┘"),
    headerrow=DataRow("┃", "┃", "┃"),
    datarow=DataRow("│", "│", "│"),
    padding=1,
    with_header_hide=None,
)
"""The box of the other terminal tables (rich's default), drawn by tabulate: rich lays a table out at about 0.8 ms a
row, 2 s for a 2,400-row hierarchy; tabulate takes a twentieth of that."""
ASCII_BOX = TableFormat(
    lineabove=Line("+", "-", "+", "+"),
    linebelowheader=Line("+", "=", "+", "+"),
    linebetweenrows=None,
    linebelow=Line("+", "-", "+", "+"),
    headerrow=DataRow("|", "|", "|"),
    datarow=DataRow("|", "|", "|"),
    padding=1,
    with_header_hide=None,
)
"""The same box in ASCII, for an output whose encoding has no box-drawing characters (`PYTHONIOENCODING=ascii`,
a latin-1 terminal), as rich falls back for the other tables."""

# Wide characters (CJK, emoji) are measured with wcwidth, a dependency for that: tabulate uses it when installed.

HEADLINE_METRICS = 4
"""How many of the suite's metrics the terminal and markdown tables show (csv/json carry all)."""


@dataclass(frozen=True)
class Report:
    """Aggregated rows (one per base model × `by` factors) and deployment shares per base model."""

    by: tuple[str, ...]
    metrics: tuple[MetricSpec, ...]
    rows: list[dict[str, Any]]
    shares: list[dict[str, Any]] = field(default_factory=list)
    scope: str = ""
    """What the rows are comparable under (the report scope's description)."""
    group_calls: list[dict[str, Any]] | None = None
    """Calls per row when rows are grouped by `by` (`Storage.group_calls`); None: the storage cannot say."""

    def shares_of(self, base_model: str) -> list[dict[str, Any]]:
        return [share for share in self.shares if share["base_model"] == base_model]

    def calls_of(self, row: dict[str, Any]) -> int | None:
        """The calls of one row: its base model's, from the deployment shares, when rows are not grouped by `by`;
        else the row's group's (None when the storage cannot count them)."""
        if not self.by:
            return sum(int(share["calls"]) for share in self.shares_of(str(row["base_model"])))
        counted = self._counted_calls
        return None if counted is None else counted.get(_group(row, ("base_model", *self.by)), 0)

    @functools.cached_property
    def _counted_calls(self) -> dict[tuple[str, ...], int] | None:
        if self.group_calls is None:
            return None
        names = ("base_model", *self.by)
        return {_group(found, names): int(found["calls"]) for found in self.group_calls}


def _group(row: dict[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    """A row's group as a hashable key (a factor's value may be a list)."""
    return tuple(json.dumps(row.get(name), sort_keys=True, default=str) for name in names)


def build_report(
    storage: Storage, filter: ReportFilter, metrics: Sequence[MetricSpec], by: Sequence[str], scope: str = ""
) -> Report:
    """Query the aggregates and shares."""
    rows = storage.aggregate(["base_model", *by], filter, metrics)
    calls = storage.group_calls(["base_model", *by], filter) if by else None
    return Report(tuple(by), tuple(metrics), rows, storage.deployment_shares(filter), scope, calls)


DIGEST_SHOWN = 8
"""Characters of a scope digest a table shows (csv and json carry them whole)."""
FULL_SHARE = "full %"
LEGEND = "units = success + partial + failure (infra errors are 'not done', never counted); full % = success / units"
SUCCESS_RATE_LEGEND = "; success_rate (a suite metric) counts full and partial successes"


def legend(report: Report) -> str:
    """The caption under the terminal table; `success_rate` is explained only where the suite reports it."""
    explained = any(metric.name == "success_rate" for metric in report.metrics)
    return LEGEND + (SUCCESS_RATE_LEGEND if explained else "")


def _rate(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _number(value: Any, name: str = "") -> str:
    if name.endswith("_scope") and isinstance(value, str):
        return value[:DIGEST_SHOWN]
    if name == "run_id" and isinstance(value, str):  # as `fleetbench run` and `fleetbench runs` print it
        return value[:RUN_ID_SHOWN]
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _headline(report: Report) -> list[MetricSpec]:
    return [m for m in report.metrics if m.aggregate == "mean"][:HEADLINE_METRICS]


def _columns(report: Report) -> list[str]:
    return [
        "model",
        *report.by,
        "units",
        "calls",
        "success",
        "partial",
        "failure",
        "not done",
        FULL_SHARE,
        *(m.name for m in _headline(report)),
    ]


def table_columns(report: Report) -> list[str]:
    """The column names of the report's table (exports use exactly these)."""
    return _columns(report)


def _cells(report: Report, row: dict[str, Any], calls: int | None) -> list[str]:
    total = int(row["total"])
    return [
        str(row["base_model"]),
        *(_number(row.get(name), name) for name in report.by),
        str(total),
        "" if calls is None else str(calls),
        str(row["success"]),
        str(row["partial"]),
        str(row["failure"]),
        str(row["infra_error"]),
        _rate(int(row["success"]), total),
        *(_number(row.get(m.name)) for m in _headline(report)),
    ]


def _share_lines(report: Report, base_model: str, width: int) -> list[list[str]]:
    """One line per deployment: its share of the base model's units and calls (never a row of its own in the stats)."""
    shares = report.shares_of(base_model)
    units = sum(int(s["units"]) for s in shares)
    calls = sum(int(s["calls"]) for s in shares)
    lines = []
    for share in shares:
        line = [
            f"  └ {share['deployment']}",
            *([""] * len(report.by)),
            f"{share['units']} ({_rate(int(share['units']), units)})",
            f"{share['calls']} ({_rate(int(share['calls']), calls)})",
        ]
        lines.append(line + [""] * (width - len(line)))
    return lines


def _grid(report: Report) -> list[list[str]]:
    """Rows of the human tables: each base model, then its deployment shares (once, after its last row)."""
    width = len(_columns(report))
    grid: list[list[str]] = []
    for index, row in enumerate(report.rows):
        base = str(row["base_model"])
        grid.append(_cells(report, row, report.calls_of(row)))
        following = report.rows[index + 1]["base_model"] if index + 1 < len(report.rows) else None
        if following != base:
            grid.extend(_share_lines(report, base, width))
    return grid


def _draws_boxes(console: Console) -> bool:
    try:
        "┏━┃└".encode(console.encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _boxed(grid: list[list[str]], headers: list[str], box: TableFormat = HEAVY_HEAD) -> str:
    """`grid` under `headers` in the HEAVY_HEAD box, each column as wide as its widest text (as in rich).

    tabulate pads header cells by its module-level `MIN_PADDING` (2), which has no argument: it is set for this call
    and restored, so other users of tabulate in the process keep their default.
    """
    saved = tabulate_settings.MIN_PADDING
    tabulate_settings.MIN_PADDING = 0
    try:
        return str(tabulate(grid, headers, tablefmt=box, disable_numparse=True, preserve_whitespace=True))
    finally:
        tabulate_settings.MIN_PADDING = saved


def _with_calls(report: Report, row: dict[str, Any]) -> dict[str, Any]:
    """An aggregate row with its `calls` (`Report.calls_of`; None where the table leaves them blank) after `total`."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        out[name] = value
        if name == "total":
            out["calls"] = report.calls_of(row)
    return out


def render(report: Report, fmt: str, console: Console) -> str | None:
    """Print `table` to the console; return the text of `markdown`, `csv` and `json`."""
    if fmt == "table":
        grid = [[printable(cell) for cell in line] for line in _grid(report)]
        headers = [printable(name) for name in _columns(report)]
        # Whitespace preserved: the deployment lines' indent, and names exactly as they are.
        box = HEAVY_HEAD
        if not _draws_boxes(console):
            box, grid = ASCII_BOX, [[cell.replace("└", "-") for cell in line] for line in grid]  # deployment lines
        table = _boxed(grid, headers, box)
        width = len(table.split("\n", 1)[0])
        caption = [report.scope, legend(report)] if report.scope else [legend(report)]
        text = "\n".join(
            ["fleetbench report".center(width).rstrip(), table, *caption]  # the caption flush left, whatever the width
        )
        # Written as it is: what console.print would do with it (no markup, no wrapping, cells already printable)
        # costs a tenth of a second for a table of a few thousand rows.
        console.file.write(text + "\n")
        return None
    if fmt == "markdown":
        head = _columns(report)
        lines = [f"{report.scope}\n" if report.scope else "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(markdown_cell(cell) for cell in line) + " |" for line in _grid(report)]
        return "\n".join(lines).lstrip("\n") + "\n"
    rows = [_with_calls(report, row) for row in report.rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["base_model"])
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    document = {"scope": report.scope, "rows": rows, "deployment_shares": report.shares}
    return strict_json(document)
