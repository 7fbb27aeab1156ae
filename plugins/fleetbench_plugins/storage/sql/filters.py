"""WHERE clauses for `ReportFilter`s and typed access to cell factors stored as JSON, portable across back ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, case, false, func, or_, select, true

from fleetbench.limits import checked_name
from fleetbench.types import FactorValue, PlanScope, ReportFilter

from .schema import INFRA_ERROR, runs, units

# What each back end's JSON type function answers for the three kinds of factor values.
_JSON_TYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "sqlite": {"bool": ("true", "false"), "number": ("integer", "real"), "string": ("text",)},
    "postgresql": {"bool": ("boolean",), "number": ("number",), "string": ("string",)},
}


def unit_conditions(
    flt: ReportFilter, canonical: Callable[[str], str], dialect: str, *, with_run: bool = True
) -> list[ColumnElement[bool]]:
    """Conditions on `units` selecting what `flt` covers; model names pass through the naming policy."""
    conditions: list[ColumnElement[bool]] = []
    if flt.suite is not None:
        conditions.append(units.c.suite == flt.suite)
    if flt.base_models:
        conditions.append(units.c.base_model.in_(sorted({canonical(m) for m in flt.base_models})))
    if with_run and flt.run_id is not None:
        conditions.append(units.c.run_id == flt.run_id)
    if with_run and flt.run_label is not None:
        conditions.append(units.c.run_id.in_(labelled_runs(flt.run_label)))
    for name, allowed in flt.factors.items():
        conditions.append(factor_in(name, allowed, dialect))
    if flt.plans is not None:
        conditions.append(planned_units(flt.plans))
    return conditions


def planned_units(plans: Sequence[PlanScope]) -> ColumnElement[bool]:
    """The units some plan contains: its scopes and seed, a planned cell, an instance index below the cell's count.

    Plans that differ only in their model scope (the usual case: several models, one cell list) share one clause.
    """
    clauses = []
    for (suite_scope, seed, by_count), model_scopes in group_plans(plans).items():
        cells = or_(
            false(), *(and_(units.c.cell_key.in_(keys), units.c.instance_index < count) for count, keys in by_count)
        )
        clauses.append(
            and_(units.c.suite_scope == suite_scope, units.c.model_scope.in_(model_scopes), units.c.seed == seed, cells)
        )
    return or_(false(), *clauses)


PlanGroups = dict[tuple[str, int, tuple[tuple[int, tuple[str, ...]], ...]], list[str]]


def group_plans(plans: Sequence[PlanScope]) -> PlanGroups:
    """Plans by (suite scope, seed, cell keys per instance count) → their model scopes."""
    groups: PlanGroups = {}
    for plan in plans:
        by_count: dict[int, list[str]] = {}
        for key, count in plan.cells.items():
            by_count.setdefault(count, []).append(key)
        cells = tuple(sorted((count, tuple(sorted(keys))) for count, keys in by_count.items()))
        groups.setdefault((plan.suite_scope, plan.seed, cells), []).append(plan.model_scope)
    return groups


def labelled_runs(label: str) -> Select[tuple[str]]:
    """Ids of the runs whose stored configuration has `run.label` equal to `label` (no column needed: it is in JSON)."""
    return select(runs.c.run_id).where(runs.c.config[("run", "label")].as_string() == label)


def factor_in(
    name: str, allowed: Sequence[FactorValue], dialect: str, column: Any = units.c.factors
) -> ColumnElement[bool]:
    """`factors[name]` is one of `allowed`, comparing numbers as numbers (0.8 == 0.80), strings and booleans exactly.

    Each kind of value is compared only where the stored value has that JSON type (inside CASE, whose order
    PostgreSQL honours), so a string never reaches a numeric cast.
    """
    checked_name(name, "factor")
    value = column[name]
    kinds = _JSON_TYPES[dialect]
    json_type = _json_type(name, dialect, column)
    by_kind: dict[str, tuple[Any, list[Any]]] = {
        "bool": (value.as_boolean(), [v for v in allowed if isinstance(v, bool)]),
        "number": (value.as_float(), [float(v) for v in allowed if _is_number(v)]),
        "string": (value.as_string(), [v for v in allowed if isinstance(v, str)]),
    }
    clauses = [
        case((json_type.in_(kinds[kind]), typed), else_=None).in_(values)
        for kind, (typed, values) in by_kind.items()
        if values
    ]
    return or_(*clauses) if clauses else false()


def _is_number(value: FactorValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(name: str, dialect: str, column: Any) -> ColumnElement[str]:
    if dialect == "postgresql":
        return func.jsonb_typeof(column[name], type_=String)
    # SQLite's JSON path syntax; `checked_name` already rules out quotes inside the name.
    return func.json_type(column, f'$."{name}"', type_=String)


def completed() -> ColumnElement[bool]:
    """The unit is done: any outcome but an infra error."""
    return units.c.outcome != INFRA_ERROR


def all_of(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """AND of the conditions (true when there are none)."""
    return and_(true(), *conditions)
