"""WHERE clauses for `ReportFilter`s and typed access to cell factors stored as JSON, portable across back ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, case, false, func, or_, select, true

from fleetbench.limits import checked_name
from fleetbench.types import FactorValue, ReportFilter

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
    return conditions


def labelled_runs(label: str) -> Select[tuple[str]]:
    """Ids of the runs whose stored configuration has `run.label` equal to `label` (no column needed: it is in JSON)."""
    return select(runs.c.run_id).where(runs.c.config[("run", "label")].as_string() == label)


def factor_in(name: str, allowed: Sequence[FactorValue], dialect: str) -> ColumnElement[bool]:
    """`factors[name]` is one of `allowed`, comparing numbers as numbers (0.8 == 0.80), strings and booleans exactly.

    Each kind of value is compared only where the stored value has that JSON type (inside CASE, whose order
    PostgreSQL honours), so a string never reaches a numeric cast.
    """
    checked_name(name, "factor")
    value = units.c.factors[name]
    kinds = _JSON_TYPES[dialect]
    json_type = _json_type(name, dialect)
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


def _json_type(name: str, dialect: str) -> ColumnElement[str]:
    if dialect == "postgresql":
        return func.jsonb_typeof(units.c.factors[name], type_=String)
    # SQLite's JSON path syntax; `checked_name` already rules out quotes inside the name.
    return func.json_type(units.c.factors, f'$."{name}"', type_=String)


def completed() -> ColumnElement[bool]:
    """The unit is done: any outcome but an infra error."""
    return units.c.outcome != INFRA_ERROR


def all_of(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """AND of the conditions (true when there are none)."""
    return and_(true(), *conditions)
