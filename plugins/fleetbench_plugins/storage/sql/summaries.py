"""Aggregates for reports, read from the running totals (`unit_totals`) wherever they answer exactly, else from
`units`.

Both paths return the same partial sums per group (outcome counts, sums and value counts of duration, turns and every
metric); the groups are then merged in Python — a few thousand rows at most — into the rows `Storage.aggregate`
promises. Totals answer a query when it groups by their key columns, cell factors or scope properties, and asks only
metrics with a slot. Under a plan filter a cell whose totals hold an instance index at or above the plan's count is
read from `units` (restricted to the planned indices); every other planned cell comes from the totals.

Group names beyond plain columns and factors:
- `dataset`: the suite's data digests (`Suite.identity()`), as a short label;
- `suite_version`: the suite's version;
- `suite.<option>`: a result-relevant suite option (`suite.scoring`).
They are properties of the suite scope: the query groups by the scope digest and maps it through the `scopes` table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Double, Table, and_, case, cast, false, func, or_, select
from sqlalchemy.exc import DBAPIError

from fleetbench.limits import checked_name
from fleetbench.scope_groups import TIMEOUT_STATUSES, UNIT_COLUMNS, is_scope_group, scope_property
from fleetbench.types import MetricSpec, Outcome, PlanScope, ReportFilter

from .filters import all_of, factor_in, group_plans, labelled_runs, unit_conditions
from .queries import call_conditions, sort_key
from .schema import (
    INFRA_ERROR,
    METRIC_SLOTS,
    TOTALS_KEY,
    call_totals,
    calls,
    cells,
    metric_slots,
    scopes,
    unit_totals,
    units,
)

COLUMN_GROUPS = UNIT_COLUMNS
"""`group_by` names that are `units` columns."""
COUNTS = ("total", *(o.value for o in Outcome), "timeout")
RESERVED = (*COUNTS, "mean_duration_s", "mean_turns")
_PARTS = ("success", "partial", "failure", INFRA_ERROR, "timeout", "duration", "turns")


def aggregate(
    connection: Connection,
    group_by: Sequence[str],
    flt: ReportFilter,
    metrics: Sequence[MetricSpec],
    canonical: Callable[[str], str],
) -> list[dict[str, Any]]:
    """Per group: its keys, `total` (completed units) and the count of each outcome, `mean_duration_s`,
    `mean_turns`, and each metric (its mean or sum over completed units; None where the group has no value)."""
    _check_names(group_by, metrics)
    if connection.dialect.name != "postgresql":
        return _aggregated(connection, group_by, flt, metrics, canonical, per_row=False)
    try:
        with connection.begin_nested():  # the failed statement must not end the read's transaction
            return _aggregated(connection, group_by, flt, metrics, canonical, per_row=False)
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != NUMERIC_VALUE_OUT_OF_RANGE:
            raise
    # PostgreSQL's SUM over float8 raises where a sum passes the largest float (SQLite's gives infinity, and so does
    # Python's addition): read a row per totals row and unit instead, and add them up in `_merge`.
    return _aggregated(connection, group_by, flt, metrics, canonical, per_row=True)


NUMERIC_VALUE_OUT_OF_RANGE = "22003"
"""PostgreSQL's SQLSTATE for a float sum beyond the largest float ("value out of range: overflow")."""


def _aggregated(
    connection: Connection,
    group_by: Sequence[str],
    flt: ReportFilter,
    metrics: Sequence[MetricSpec],
    canonical: Callable[[str], str],
    per_row: bool,
) -> list[dict[str, Any]]:
    """`aggregate`'s rows; `per_row`: SQL adds nothing up (each SQL group is one totals row or one unit)."""
    dialect = connection.dialect.name
    slots = _slots(connection, flt.suite, metrics)
    parts: list[tuple[tuple[Any, ...], dict[str, float]]] = []
    if slots is None or not all(_totals_can_group(name) for name in group_by):
        parts += _from_units(connection, group_by, unit_conditions(flt, canonical, dialect), metrics, per_row)
    else:
        clean, overfull = _split_plans(connection, flt)
        conditions = _totals_conditions(flt, canonical, dialect, clean)
        join = bool(flt.factors) or any(not is_scope_group(n) and n not in COLUMN_GROUPS for n in group_by)
        if not per_row and not overfull and not any(is_scope_group(name) for name in group_by):
            # Every group is one SQL group: SQL computes the final numbers, nothing is merged here.
            return _final_from_totals(connection, group_by, conditions, metrics, slots, join)
        parts += _from_totals(connection, group_by, conditions, metrics, slots, join, per_row)
        if overfull:
            unit_filter = ReportFilter(flt.suite, flt.base_models, flt.run_id, flt.factors, flt.run_label, overfull)
            conditions = unit_conditions(unit_filter, canonical, dialect)
            parts += _from_units(connection, group_by, conditions, metrics, per_row)
    return _merge(connection, group_by, metrics, parts)


def _check_names(group_by: Sequence[str], metrics: Sequence[MetricSpec]) -> None:
    """Every output key must be unambiguous: a group or metric named like a count would silently replace it."""
    seen: set[str] = set(RESERVED)
    for name, what in [(g, "group_by") for g in group_by] + [(m.name, "metric") for m in metrics]:
        checked_name(name.removeprefix("suite."), what)
        if name in seen:
            raise ValueError(f"{what} {name!r}: clashes with another output column named {name!r}")
        seen.add(name)
    for metric in metrics:
        if metric.aggregate not in ("mean", "sum"):
            raise ValueError(f"metric {metric.name!r}: aggregate {metric.aggregate!r} is not one of mean, sum")


def _totals_can_group(name: str) -> bool:
    return name in TOTALS_KEY or is_scope_group(name) or name not in COLUMN_GROUPS


def _slots(connection: Connection, suite: str | None, metrics: Sequence[MetricSpec]) -> dict[str, int] | None:
    """The totals slot of each metric, or None when the totals cannot answer: no single suite, or a metric without
    a slot while every slot is taken (then it may have values the totals never added up). A metric without a slot
    while slots are free was never written: it has no values, and the totals answer None for it exactly."""
    if suite is None:
        return None
    query = select(metric_slots.c.name, metric_slots.c.slot).where(metric_slots.c.suite == suite)
    found = {str(name): int(slot) for name, slot in connection.execute(query)}
    if len(found) >= METRIC_SLOTS and any(m.name not in found for m in metrics):
        return None
    return found


def _group_key(name: str, table: Any, factors: Any) -> ColumnElement[Any]:
    key: ColumnElement[Any]
    if is_scope_group(name):
        key = table.c.suite_scope
    elif name in COLUMN_GROUPS:
        key = table.c[name]
    else:  # the JSON value itself (not its text): it comes back decoded, so 0.8 stays a float and "cot" a string
        key = factors[name]
    return key


def _from_units(
    connection: Connection,
    group_by: Sequence[str],
    conditions: Sequence[ColumnElement[bool]],
    metrics: Sequence[MetricSpec],
    per_row: bool = False,
) -> list[tuple[tuple[Any, ...], dict[str, float]]]:
    # Group in an outer query over labelled columns: PostgreSQL would not match `factors -> $1` in SELECT with
    # `factors -> $2` in GROUP BY, even though both parameters hold the same name.
    inner = select(
        *(_group_key(name, units, units.c.factors).label(f"g{i}") for i, name in enumerate(group_by)),
        *([units.c.unit_key.label("row")] if per_row else []),
        units.c.outcome,
        units.c.infra_status,
        units.c.duration_s,
        cast(units.c.turns, Double).label("turns"),
        *(units.c.metrics[m.name].as_float().label(f"m{i}") for i, m in enumerate(metrics)),
    )
    sub = inner.where(all_of(conditions)).subquery()
    done = sub.c.outcome != INFRA_ERROR
    keys = [sub.c[f"g{i}"] for i in range(len(group_by))] + ([sub.c.row] if per_row else [])
    values: list[ColumnElement[Any]] = [
        *(func.count(case((sub.c.outcome == o, 1))).label(o) for o in ("success", "partial", "failure", INFRA_ERROR)),
        func.count(case((sub.c.infra_status.in_(TIMEOUT_STATUSES), 1))).label("timeout"),
        func.sum(case((done, sub.c.duration_s))).label("duration"),
        func.sum(case((done, sub.c.turns))).label("turns"),
    ]
    for i in range(len(metrics)):
        values.append(func.sum(case((done, sub.c[f"m{i}"]))).label(f"s{i}"))
        values.append(func.count(case((done, sub.c[f"m{i}"]))).label(f"c{i}"))
    statement = select(*keys, *values).group_by(*keys)
    return [_part(row._mapping, len(group_by), len(metrics)) for row in connection.execute(statement)]


def _from_totals(
    connection: Connection,
    group_by: Sequence[str],
    conditions: Sequence[ColumnElement[bool]],
    metrics: Sequence[MetricSpec],
    slots: Mapping[str, int],
    join_cells: bool,
    per_row: bool = False,
) -> list[tuple[tuple[Any, ...], dict[str, float]]]:
    t = unit_totals.c
    keys = [_group_key(name, unit_totals, cells.c.factors).label(f"g{i}") for i, name in enumerate(group_by)]
    if per_row:  # the totals row's own key: `_part` reads only the groups' labels
        keys += [t[name].label(f"row_{name}") for name in TOTALS_KEY]
    values: list[ColumnElement[Any]] = [
        func.sum(t.n_success).label("success"),
        func.sum(t.n_partial).label("partial"),
        func.sum(t.n_failure).label("failure"),
        func.sum(t.n_infra_error).label(INFRA_ERROR),
        func.sum(t.n_timeout).label("timeout"),
        func.sum(t.sum_duration_s).label("duration"),
        func.sum(t.sum_turns).label("turns"),
    ]
    for i, metric in enumerate(metrics):
        slot = slots.get(metric.name)
        values.append(func.sum(t[f"s{slot}"]).label(f"s{i}") if slot is not None else cast(None, Double).label(f"s{i}"))
        values.append(func.sum(t[f"c{slot}"]).label(f"c{i}") if slot is not None else cast(0, Double).label(f"c{i}"))
    source = unit_totals.join(cells, cells.c.cell_key == t.cell_key) if join_cells else unit_totals
    labels = [key.name for key in keys]
    statement = select(*keys, *values).select_from(source).where(all_of(conditions)).group_by(*labels)
    return [_part(row._mapping, len(group_by), len(metrics)) for row in connection.execute(statement)]


def _final_from_totals(
    connection: Connection,
    group_by: Sequence[str],
    conditions: Sequence[ColumnElement[bool]],
    metrics: Sequence[MetricSpec],
    slots: Mapping[str, int],
    join_cells: bool,
) -> list[dict[str, Any]]:
    """The rows `aggregate` returns, computed by one query over the totals (groups need no merging)."""
    t = unit_totals.c
    done = func.sum(t.n_success + t.n_partial + t.n_failure)
    divisor = func.nullif(done, 0)
    values: list[ColumnElement[Any]] = [
        done.label("total"),
        *(func.sum(t[f"n_{name}"]).label(name) for name in ("success", "partial", "failure", INFRA_ERROR, "timeout")),
        (func.sum(t.sum_duration_s) / divisor).label("mean_duration_s"),
        (func.sum(t.sum_turns) / divisor).label("mean_turns"),
    ]
    for metric in metrics:
        slot = slots.get(metric.name)
        if slot is None:  # never written: no values
            values.append(cast(None, Double).label(metric.name))
        elif metric.aggregate == "mean":
            values.append((func.sum(t[f"s{slot}"]) / func.nullif(func.sum(t[f"c{slot}"]), 0)).label(metric.name))
        else:
            values.append(case((func.sum(t[f"c{slot}"]) > 0, func.sum(t[f"s{slot}"]))).label(metric.name))
    keys = [_group_key(name, unit_totals, cells.c.factors).label(name) for name in group_by]
    source = unit_totals.join(cells, cells.c.cell_key == t.cell_key) if join_cells else unit_totals
    statement = select(*keys, *values).select_from(source).where(all_of(conditions)).group_by(*group_by)
    counts = ("total", "success", "partial", "failure", INFRA_ERROR, "timeout")
    floats = ("mean_duration_s", "mean_turns", *(m.name for m in metrics))
    rows = []
    for found in connection.execute(statement):
        row = found._asdict()
        for name in counts:
            row[name] = int(row[name] or 0)
        for name in floats:
            if row[name] is not None:
                row[name] = float(row[name])
        rows.append(row)
    return sorted(rows, key=lambda row: tuple(sort_key(row[name]) for name in group_by))


def _part(row: Any, groups: int, metrics: int) -> tuple[tuple[Any, ...], dict[str, float]]:
    sums = {name: float(row[name] or 0) for name in _PARTS}
    for i in range(metrics):
        count = float(row[f"c{i}"] or 0)
        sums[f"c{i}"] = count
        sums[f"s{i}"] = float(row[f"s{i}"] or 0) if count else 0.0
    return tuple(row[f"g{i}"] for i in range(groups)), sums


def _totals_conditions(
    flt: ReportFilter,
    canonical: Callable[[str], str],
    dialect: str,
    plans: Sequence[PlanScope] | None,
    table: Table = unit_totals,
) -> list[ColumnElement[bool]]:
    t = table.c
    conditions: list[ColumnElement[bool]] = []
    if flt.suite is not None:
        conditions.append(t.suite == flt.suite)
    if flt.base_models:
        conditions.append(t.base_model.in_(sorted({canonical(m) for m in flt.base_models})))
    if flt.run_id is not None:
        conditions.append(t.run_id == flt.run_id)
    if flt.run_label is not None:
        conditions.append(t.run_id.in_(labelled_runs(flt.run_label)))
    for name, allowed in flt.factors.items():
        conditions.append(factor_in(name, allowed, dialect, cells.c.factors))
    if plans is not None:
        conditions.append(_planned_totals(plans, fitting=True, table=table))
    return conditions


def _planned_totals(plans: Sequence[PlanScope], fitting: bool, table: Table = unit_totals) -> ColumnElement[bool]:
    """Totals rows of planned cells whose units all lie below the planned count (`fitting`), or those with some
    unit at or above it."""
    t = table.c
    clauses = []
    for (suite_scope, seed, by_count), model_scopes in group_plans(plans).items():
        per_count = [
            and_(t.cell_key.in_(keys), t.max_instance < count if fitting else t.max_instance >= count)
            for count, keys in by_count
        ]
        clauses.append(and_(t.suite_scope == suite_scope, t.model_scope.in_(model_scopes), t.seed == seed,
                            or_(false(), *per_count)))  # fmt: skip
    return or_(false(), *clauses)


def _split_plans(
    connection: Connection, flt: ReportFilter, table: Table = unit_totals
) -> tuple[tuple[PlanScope, ...] | None, tuple[PlanScope, ...]]:
    """The plans with the cells the totals answer, and the plans restricted to the cells `units` must answer."""
    if flt.plans is None:
        return None, ()
    t = table.c
    over = select(t.suite_scope, t.model_scope, t.seed, t.cell_key).where(
        _planned_totals(flt.plans, fitting=False, table=table)
    )
    overfull = {tuple(row) for row in connection.execute(over.distinct())}
    if not overfull:
        return flt.plans, ()
    clean, rest = [], []
    for plan in flt.plans:
        mine = {cell for (s, m, seed, cell) in overfull if (s, m, seed) == (plan.suite_scope, plan.model_scope,
                                                                          plan.seed)}  # fmt: skip
        clean.append(PlanScope(plan.suite_scope, plan.model_scope, plan.seed,
                               {k: n for k, n in plan.cells.items() if k not in mine}))  # fmt: skip
        if mine:
            rest.append(PlanScope(plan.suite_scope, plan.model_scope, plan.seed,
                                  {k: n for k, n in plan.cells.items() if k in mine}))  # fmt: skip
    return tuple(clean), tuple(rest)


def call_counts(
    connection: Connection, flt: ReportFilter, canonical: Callable[[str], str]
) -> list[tuple[str, str, int]]:
    """Per (base model, deployment): calls sent there for the filtered units (during the filtered runs, if any),
    from `call_totals`; cells whose totals reach beyond a plan's instance count are counted from `calls`."""
    found = group_call_counts(connection, flt, canonical, ["base_model"]) or {}
    return [(str(key[0]), deployment, count) for (key, deployment), count in sorted(found.items())]


CALL_GROUPS = tuple(name for name in TOTALS_KEY if name not in ("cell_key", "run_id", "deployment"))
"""The unit columns `call_totals` keeps as the units' own, which calls can be grouped by (with any cell factor): its
`run_id` and `deployment` are the call's, not the unit's."""


def group_call_counts(
    connection: Connection, flt: ReportFilter, canonical: Callable[[str], str], group_by: Sequence[str]
) -> dict[tuple[tuple[Any, ...], str], int] | None:
    """Per (group of `group_by`, deployment): calls sent there for the filtered units (during the filtered runs, if
    any), from `call_totals`; cells whose totals reach beyond a plan's instance count are counted from `calls`. None
    when a group is neither a cell factor nor one of `CALL_GROUPS` (a scope property, the unit's deployment or run:
    the totals of calls do not keep them)."""
    if any(is_scope_group(name) or (name in COLUMN_GROUPS and name not in CALL_GROUPS) for name in group_by):
        return None
    dialect = connection.dialect.name
    clean, overfull = _split_plans(connection, flt, call_totals)
    t = call_totals.c
    labels = [f"g{i}" for i in range(len(group_by))]
    keys = [
        _group_key(name, call_totals, cells.c.factors).label(label)
        for name, label in zip(group_by, labels, strict=True)
    ]
    join = bool(flt.factors) or any(name not in COLUMN_GROUPS for name in group_by)
    source = call_totals.join(cells, cells.c.cell_key == t.cell_key) if join else call_totals
    statement = (
        select(*keys, t.deployment, func.sum(t.n_calls))
        .select_from(source)
        .where(all_of(_totals_conditions(flt, canonical, dialect, clean, call_totals)))
        .group_by(*labels, t.deployment)
    )
    found: dict[tuple[tuple[Any, ...], str], int] = {}
    rows = list(connection.execute(statement))
    if overfull:
        rest = ReportFilter(flt.suite, flt.base_models, flt.run_id, flt.factors, flt.run_label, overfull)
        # Grouped in an outer query over labelled columns, as `_from_units` does (PostgreSQL's JSON keys).
        inner = (
            select(
                *(_group_key(n, units, units.c.factors).label(g) for n, g in zip(group_by, labels, strict=True)),
                calls.c.deployment,
            )
            .select_from(calls.join(units, calls.c.unit_key == units.c.unit_key))
            .where(all_of(call_conditions(rest, canonical, dialect)))
            .subquery()
        )
        outer = [inner.c[label] for label in labels]
        rows += list(
            connection.execute(select(*outer, inner.c.deployment, func.count()).group_by(*outer, inner.c.deployment))
        )
    for row in rows:
        key = (tuple(row[: len(group_by)]), str(row[len(group_by)]))
        found[key] = found.get(key, 0) + int(row[-1])
    return found


def _merge(
    connection: Connection,
    group_by: Sequence[str],
    metrics: Sequence[MetricSpec],
    parts: Sequence[tuple[tuple[Any, ...], dict[str, float]]],
) -> list[dict[str, Any]]:
    labels = _scope_labels(connection, group_by, {key[i] for key, _ in parts for i, n in enumerate(group_by)
                                                  if is_scope_group(n)})  # fmt: skip
    merged: dict[str, tuple[tuple[Any, ...], dict[str, float]]] = {}
    for raw, sums in parts:
        key = tuple(labels.get((name, raw[i])) if is_scope_group(name) else raw[i] for i, name in enumerate(group_by))
        token = json.dumps(key, sort_keys=True, default=str)
        entry = merged.setdefault(token, (key, dict.fromkeys(sums, 0.0)))[1]
        for name, value in sums.items():
            entry[name] = entry.get(name, 0.0) + value
    rows = [_row(group_by, metrics, key, sums) for key, sums in merged.values()]
    return sorted(rows, key=lambda row: tuple(sort_key(row[name]) for name in group_by))


def _row(
    group_by: Sequence[str], metrics: Sequence[MetricSpec], key: tuple[Any, ...], sums: Mapping[str, float]
) -> dict[str, Any]:
    out: dict[str, Any] = dict(zip(group_by, key, strict=True))
    done = int(sums["success"] + sums["partial"] + sums["failure"])
    out["total"] = done
    for name in ("success", "partial", "failure", INFRA_ERROR, "timeout"):
        out[name] = int(sums[name])
    out["mean_duration_s"] = sums["duration"] / done if done else None
    out["mean_turns"] = sums["turns"] / done if done else None
    for i, metric in enumerate(metrics):
        count = sums.get(f"c{i}", 0.0)
        if not count:
            out[metric.name] = None
        else:
            out[metric.name] = sums[f"s{i}"] / count if metric.aggregate == "mean" else sums[f"s{i}"]
    return out


def _scope_labels(connection: Connection, group_by: Sequence[str], digests: set[Any]) -> dict[tuple[str, Any], Any]:
    """(group name, suite scope digest) → the group's value, from the scope's stored description."""
    if not digests:
        return {}
    query = select(scopes.c.scope, scopes.c.description).where(scopes.c.scope.in_(sorted(str(d) for d in digests)))
    descriptions = {str(scope): description for scope, description in connection.execute(query)}
    labels: dict[tuple[str, Any], Any] = {}
    for name in group_by:
        if not is_scope_group(name):
            continue
        for scope, description in descriptions.items():
            labels[(name, scope)] = scope_property(name, description)
    return labels
