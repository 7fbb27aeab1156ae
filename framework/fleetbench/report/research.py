"""The original's five research tables (reference §8), with a Wilson interval on every rate and paired comparisons.

- 5.1 `baseline`: per model, optimal prompts, easy, tool success rate 0.8;
- 5.2 `scale`: per model size and difficulty, success per task type, overall, and the original's per-parameter
  efficiency (overall success % / sqrt(parameters in billions), the size read from the model name);
- 5.3 `flawed`: per model, success under each flawed prompt type, and the pooled adaptability over them;
- 5.4 `tool_reliability`: per model and tool success rate (optimal, easy);
- 5.5 `prompt_sensitivity`: per model and prompt type (easy, 0.8).

"Success" is the original's overall success (总体成功率): full + partial successes over the effective units. With
`report.exclude_timeouts=true` (the default) units whose episode ended in an infrastructure timeout are left out of
the effective count and shown in their own column; `false` counts them as failures, as the original did.

Paired comparisons: two conditions of one table's varied factor (a flaw type and `optimal`, two tool success rates,
two prompt types, two difficulties) are compared on the units they share everything else with — same model, scopes,
seed, the cell minus that factor, and instance index — by McNemar's exact test (a two-sided binomial test on the
discordant pairs, `scipy.stats.binomtest`).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.text import Text

from fleetbench.config.schema import ReportConf
from fleetbench.errors import ConfigError
from fleetbench.gcpause import preload
from fleetbench.interfaces import Storage
from fleetbench.report.json_text import strict_json
from fleetbench.report.scope import ReportScope
from fleetbench.terminal import PlainTable, markdown_cell, printable
from fleetbench.types import FactorValue, ReportFilter

TABLE_NAMES = {
    "5.1": "baseline",
    "5.2": "scale",
    "5.3": "flawed",
    "5.4": "tool_reliability",
    "5.5": "prompt_sensitivity",
}
FACTORS = ("prompt_type", "difficulty", "tool_success_rate", "task_type")
"""The workflow suite's factors the tables read."""


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson interval (None bounds when there are no trials)."""

    successes: int
    trials: int
    low: float | None
    high: float | None

    @property
    def value(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    def text(self) -> str:
        if not self.trials or self.low is None or self.high is None:
            return "-"
        return f"{100 * self.successes / self.trials:.1f}% [{100 * self.low:.1f}–{100 * self.high:.1f}]"

    def plain(self) -> dict[str, Any]:
        return {"rate": self.value, "successes": self.successes, "trials": self.trials, "ci_low": self.low,
                "ci_high": self.high}  # fmt: skip


def wilson(successes: int, trials: int, confidence: float) -> Rate:
    """The Wilson score interval of `successes` out of `trials` (scipy's `binomtest(...).proportion_ci`)."""
    if trials <= 0:
        return Rate(successes, trials, None, None)
    preload("scipy.stats")
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Rate(successes, trials, float(interval.low), float(interval.high))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided p-value of McNemar's exact test from the discordant pair counts (1.0 when there are none)."""
    if only_a + only_b == 0:
        return 1.0
    preload("scipy.stats")
    from scipy.stats import binomtest

    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


@dataclass
class ResearchTable:
    """One research table: a title, its column names, rows of cells (plain values for csv/json), and notes."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Spec:
    fixed: Mapping[str, tuple[FactorValue, ...]]
    varied: str | None
    """The factor whose values are the conditions compared in pairs."""


_SPECS = {
    "5.1": _Spec({"prompt_type": ("optimal",), "difficulty": ("easy",), "tool_success_rate": (0.8,)}, None),
    "5.2": _Spec({"prompt_type": ("optimal",), "tool_success_rate": (0.8,)}, "difficulty"),
    "5.3": _Spec({"difficulty": ("easy",), "tool_success_rate": (0.8,)}, "prompt_type"),
    "5.4": _Spec({"prompt_type": ("optimal",), "difficulty": ("easy",)}, "tool_success_rate"),
    "5.5": _Spec({"difficulty": ("easy",), "tool_success_rate": (0.8,)}, "prompt_type"),
}


def table_keys(requested: Sequence[str]) -> list[str]:
    """`report.tables` entries (`5.1` or `baseline`, any order) as table numbers; an unknown one is a ConfigError."""
    by_name = {name: key for key, name in TABLE_NAMES.items()}
    keys = []
    for entry in requested:
        key = str(entry) if str(entry) in TABLE_NAMES else by_name.get(str(entry))
        if key is None:
            choices = ", ".join(f"{k} ({n})" for k, n in TABLE_NAMES.items())
            raise ConfigError(f"report.tables: {entry!r} is not a research table; valid choices: {choices}")
        if key not in keys:
            keys.append(key)
    return keys


def build_tables(
    storage: Storage, flt: ReportFilter, settings: ReportConf, scope: ReportScope, factor_names: Sequence[str]
) -> list[ResearchTable]:
    """Every requested table, each from `Storage.aggregate` under the table's fixed factors (and the report scope)."""
    keys = table_keys(settings.tables)
    missing = [f for f in FACTORS if f not in factor_names]
    if missing:
        raise ConfigError(
            f"report.tables: the research tables read factor {missing[0]!r}, which suite {flt.suite!r} does not have; "
            "they are tables of the workflow suite (suite=workflow)"
        )
    tables: list[ResearchTable] = []
    for key in keys:
        context = _Context(storage, flt, settings, scope, [])
        tables.append(_BUILDERS[key](context, key))
        tables.extend(context.paired)
    return tables


@dataclass(frozen=True)
class _Context:
    storage: Storage
    flt: ReportFilter
    settings: ReportConf
    scope: ReportScope
    paired: list[ResearchTable]
    """The paired-comparison tables the table's builder made (printed after it)."""

    def rows(self, key: str, by: Sequence[str]) -> list[dict[str, Any]]:
        flt = ReportFilter(self.flt.suite, self.flt.base_models, self.flt.run_id, {**self.flt.factors,
                           **_SPECS[key].fixed}, self.flt.run_label, self.flt.plans)  # fmt: skip
        return self.storage.aggregate(["base_model", *self.scope.rows_by(by)], flt, ())

    def rate(self, row: Mapping[str, Any]) -> tuple[Rate, Rate, Rate, int, int]:
        """(overall, full, partial, effective units, timeouts excluded) of an aggregate row."""
        timeouts = int(row.get("timeout") or 0)
        effective = int(row["total"]) + (0 if self.settings.exclude_timeouts else timeouts)
        level = self.settings.confidence
        overall = wilson(int(row["success"]) + int(row["partial"]), effective, level)
        return (overall, wilson(int(row["success"]), effective, level), wilson(int(row["partial"]), effective, level),
                effective, timeouts if self.settings.exclude_timeouts else 0)  # fmt: skip

    def head(self) -> list[str]:
        return ["model", *self.scope.split_by]

    def ident(self, row: Mapping[str, Any]) -> list[Any]:
        return [row["base_model"], *(row[name] for name in self.scope.split_by)]

    def pairs(self, key: str, conditions: Sequence[tuple[FactorValue, FactorValue]]) -> ResearchTable:
        table = paired_table(self, key, conditions)
        self.paired.append(table)
        return table


def _baseline(ctx: _Context, key: str) -> ResearchTable:
    table = ResearchTable(key, "5.1 baseline (optimal, easy, tool success rate 0.8)",
                          [*ctx.head(), "overall success", "full success", "partial success", "failure",
                           "effective units", "timeouts excluded"])  # fmt: skip
    for row in ctx.rows(key, []):
        overall, full, partial, effective, excluded = ctx.rate(row)
        failure = wilson(effective - overall.successes, effective, ctx.settings.confidence)
        table.rows.append([*ctx.ident(row), overall, full, partial, failure, effective, excluded])
    return table


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*b(?![a-z])", re.IGNORECASE)


def model_size_b(name: str) -> float | None:
    """Parameters in billions as the model's name states them (`qwen2.5-72b-instruct` → 72), else None."""
    found = _SIZE.findall(name)
    return float(found[-1]) if found else None


def _scale(ctx: _Context, key: str) -> ResearchTable:
    rows = ctx.rows(key, ["difficulty", "task_type"])
    task_types = sorted({str(r["task_type"]) for r in rows})
    table = ResearchTable(key, "5.2 scale by model size (optimal, tool success rate 0.8), per difficulty",
                          [*ctx.head(), "difficulty", "params (B)", *task_types, "overall success",
                           "efficiency (overall % / sqrt(B))"])  # fmt: skip
    groups: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((*ctx.ident(row), row["difficulty"]), {})[str(row["task_type"])] = row
    for ident, by_type in sorted(groups.items(), key=lambda item: (model_size_b(str(item[0][0])) or 0.0, str(item[0]))):
        size = model_size_b(str(ident[0]))
        rates = {t: ctx.rate(r)[0] for t, r in by_type.items()}
        overall = wilson(sum(r.successes for r in rates.values()), sum(r.trials for r in rates.values()),
                         ctx.settings.confidence)  # fmt: skip
        efficiency = 100 * overall.value / math.sqrt(size) if size and overall.value is not None else None
        table.rows.append([*ident, size, *(rates.get(t, wilson(0, 0, 0.95)) for t in task_types), overall, efficiency])
    difficulties = sorted({r["difficulty"] for r in rows}, key=str)
    table.notes.append("sizes come from the model names; a model without one has no efficiency")
    if len(difficulties) > 1:
        ctx_pairs = ctx.pairs(key, [(difficulties[0], d) for d in difficulties[1:]])
        table.notes.extend(_pair_lines(ctx_pairs))
    return table


def _flawed(ctx: _Context, key: str) -> ResearchTable:
    rows = [r for r in ctx.rows(key, ["prompt_type"]) if str(r["prompt_type"]).startswith("flawed_")]
    flaws = sorted({str(r["prompt_type"]) for r in rows})
    table = ResearchTable(key, "5.3 flawed-workflow adaptability (easy, tool success rate 0.8): success per flaw type",
                          [*ctx.head(), *flaws, "average adaptability"])  # fmt: skip
    groups: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(ctx.ident(row)), {})[str(row["prompt_type"])] = row
    for ident, by_flaw in groups.items():
        rates = {f: ctx.rate(r)[0] for f, r in by_flaw.items()}
        pooled = wilson(sum(r.successes for r in rates.values()), sum(r.trials for r in rates.values()),
                        ctx.settings.confidence)  # fmt: skip
        table.rows.append([*ident, *(rates.get(f, wilson(0, 0, 0.95)) for f in flaws), pooled])
    table.notes.extend(_pair_lines(ctx.pairs(key, [("optimal", flaw) for flaw in flaws])))
    return table


def _by_condition(ctx: _Context, key: str, factor: str, title: str, base: FactorValue) -> ResearchTable:
    rows = [r for r in ctx.rows(key, [factor]) if not str(r[factor]).startswith("flawed_")]
    columns = ["overall success", "full success", "partial success", "failure", "effective units",
               "timeouts excluded", "mean duration (s)"]  # fmt: skip
    table = ResearchTable(key, title, [*ctx.head(), factor, *columns])
    for row in rows:
        overall, full, partial, effective, excluded = ctx.rate(row)
        failure = wilson(effective - overall.successes, effective, ctx.settings.confidence)
        table.rows.append([*ctx.ident(row), row[factor], overall, full, partial, failure, effective, excluded,
                           row["mean_duration_s"]])  # fmt: skip
    values = sorted({r[factor] for r in rows if r[factor] != base}, key=str)
    table.notes.extend(_pair_lines(ctx.pairs(key, [(base, v) for v in values])))
    return table


def _tool_reliability(ctx: _Context, key: str) -> ResearchTable:
    return _by_condition(ctx, key, "tool_success_rate", "5.4 tool reliability (optimal, easy)", 0.8)


def _prompt_sensitivity(ctx: _Context, key: str) -> ResearchTable:
    return _by_condition(ctx, key, "prompt_type", "5.5 prompt sensitivity (easy, tool success rate 0.8)", "optimal")


_BUILDERS = {"5.1": _baseline, "5.2": _scale, "5.3": _flawed, "5.4": _tool_reliability, "5.5": _prompt_sensitivity}


def paired_table(ctx: _Context, key: str, conditions: Sequence[tuple[FactorValue, FactorValue]]) -> ResearchTable:
    """McNemar exact tests of each (a, b) condition pair of the table's varied factor, per model and scope.

    Units are matched on everything but the varied factor: model, suite and model scope, seed, the other factors
    and the instance index. Only completed units pair (an infra error has no outcome to compare).
    """
    factor = _SPECS[key].varied
    table = ResearchTable(f"{key} paired", f"{key} paired comparisons (McNemar exact)",
                          ["model", "a", "b", "pairs", "a success", "b success", "only a", "only b", "p"])  # fmt: skip
    if factor is None or not conditions:
        return table
    fixed = {k: v for k, v in _SPECS[key].fixed.items() if k != factor}
    wanted = {value for pair in conditions for value in pair}
    flt = ReportFilter(ctx.flt.suite, ctx.flt.base_models, ctx.flt.run_id, {**ctx.flt.factors, **fixed,
                       factor: tuple(wanted)}, ctx.flt.run_label, ctx.flt.plans)  # fmt: skip
    outcomes: dict[tuple[Any, ...], dict[Any, bool]] = {}
    for unit in ctx.storage.export_rows(flt):
        if unit["outcome"] == "infra_error":
            continue
        match = (unit["base_model"], unit.get("suite_scope"), unit.get("model_scope"), unit["seed"],
                 *(_factor(unit, f) for f in FACTORS if f != factor), unit["instance_index"])  # fmt: skip
        outcomes.setdefault(match, {})[_factor(unit, factor)] = unit["outcome"] in ("success", "partial")
    for a, b in conditions:
        per_model: dict[str, list[int]] = {}
        for match, found in outcomes.items():
            if a in found and b in found:
                counts = per_model.setdefault(str(match[0]), [0, 0, 0, 0, 0])
                counts[0] += 1
                counts[1] += found[a]
                counts[2] += found[b]
                counts[3] += found[a] and not found[b]
                counts[4] += found[b] and not found[a]
        for model, (pairs, a_ok, b_ok, only_a, only_b) in sorted(per_model.items()):
            table.rows.append([model, a, b, pairs, a_ok, b_ok, only_a, only_b, mcnemar_exact(only_a, only_b)])
    return table


def _factor(unit: Mapping[str, Any], name: str) -> Any:
    value = unit.get(f"factor.{name}", unit.get(name))
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _pair_lines(table: ResearchTable) -> list[str]:
    if not table.rows:
        return [f"paired comparisons: no units of two compared conditions share a cell and instance ({table.key})"]
    return [f"paired comparisons: see table {table.key!r}"]


def _cell(value: Any) -> str:
    if isinstance(value, Rate):
        return value.text()
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _plain(value: Any) -> Any:
    return value.plain() if isinstance(value, Rate) else value


_RATE_PARTS = ("rate", "successes", "trials", "ci_low", "ci_high")
"""What `Rate.plain` gives, in the order csv columns carry it."""

_UNBOUNDED = 100_000
"""A width no table reaches: to measure a table's natural width."""


def render_tables(tables: Iterable[ResearchTable], fmt: str, console: Console, scope: str = "") -> str | None:
    """Print `table` format to the console; return the text of `markdown`, `csv` and `json`.

    Rates read `r% [low–high]` (Wilson, `report.confidence`); csv and json carry rate, successes, trials and bounds
    (csv as four more columns after each rate's, named `<column> successes`, `… trials`, `… ci_low`, `… ci_high`).
    `scope` (the report's scope line) is printed under the terminal tables, heads the markdown and is each json
    table's `scope`, as for the overview table.
    """
    tables = list(tables)
    if fmt == "table":
        for table in tables:
            notes = "\n".join(printable(note) for note in table.notes)
            rich = PlainTable(title=Text(table.title), caption=Text(notes) if notes else None)
            for column in table.columns:
                rich.add_column(column, no_wrap=True)
            for row in table.rows:
                rich.add_row(*(_cell(v) for v in row))
            # At its natural width, uncropped, as the overview table: fitted to the terminal, rich cut the model
            # column and the intervals short ("Sim-Ag…", "64.0–94.…"), losing what the table is for.
            natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), rich).maximum
            fitted = console.width
            console.width = max(fitted, natural)  # `print(width=…)` cannot widen past the console's own width
            try:
                console.print(rich, soft_wrap=True, crop=False)
            finally:
                console.width = fitted
        if scope:
            console.print(Text(printable(scope)), soft_wrap=True)
        return None
    if fmt == "markdown":
        parts = []
        for table in tables:
            lines = [
                f"### {table.title}",
                "",
                "| " + " | ".join(table.columns) + " |",
                "|" + "---|" * len(table.columns),
            ]
            lines += ["| " + " | ".join(markdown_cell(_cell(v)) for v in row) + " |" for row in table.rows]
            lines += ["", *table.notes]
            parts.append("\n".join(lines).rstrip() + "\n")
        return (f"{scope}\n\n" if scope else "") + "\n".join(parts)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for table in tables:
            rates = [any(isinstance(row[i], Rate) for row in table.rows) for i in range(len(table.columns))]
            header = ["table"]
            for name, is_rate in zip(table.columns, rates, strict=True):
                header += [name, *(f"{name} {part}" for part in _RATE_PARTS[1:])] if is_rate else [name]
            writer.writerow(header)
            for row in table.rows:
                cells: list[Any] = [table.key]
                for value, is_rate in zip(row, rates, strict=True):
                    if is_rate:  # the rate as a number (0 to 1; empty without trials), then its parts
                        plain = value.plain() if isinstance(value, Rate) else {}
                        cells += [plain.get(part) for part in _RATE_PARTS]
                    else:
                        cells.append(value)
                writer.writerow(cells)
        return buffer.getvalue()
    document = [
        {"table": t.key, "title": t.title, "scope": scope, "columns": t.columns, "notes": t.notes,
         "rows": [dict(zip(t.columns, (_plain(v) for v in row), strict=True)) for row in t.rows]}
        for t in tables
    ]  # fmt: skip
    return strict_json(document)
