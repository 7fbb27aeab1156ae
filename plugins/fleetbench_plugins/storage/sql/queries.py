"""Read queries: every number a report shows is computed here by SQL, from the stored rows, at read time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Double, Select, case, cast, func, select

from fleetbench.limits import checked_name
from fleetbench.types import MetricSpec, Outcome, ReportFilter, UnitScope

from .filters import all_of, completed, labelled_runs, unit_conditions
from .schema import INFRA_ERROR, calls, runs, transcripts, units

COLUMN_GROUPS = ("base_model", "deployment", "suite", "run_id", "task_id", "lane_id")
"""`group_by` names that are columns; any other name is a cell factor."""
COUNTS = ("total", *(o.value for o in Outcome))
RESERVED = (*COUNTS, "mean_duration_s", "mean_turns")
AGGREGATES: dict[str, Callable[[Any], Any]] = {"mean": func.avg, "sum": func.sum}


def aggregate(
    connection: Connection,
    group_by: Sequence[str],
    conditions: Sequence[ColumnElement[bool]],
    metrics: Sequence[MetricSpec],
) -> list[dict[str, Any]]:
    """One dict per group: its keys, outcome counts, mean duration/turns and each metric, over completed units."""
    _check_names(group_by, metrics)
    # Group in an outer query over labelled columns: PostgreSQL would not match `factors -> $1` in SELECT with
    # `factors -> $2` in GROUP BY, even though both parameters hold the same name.
    inner = select(
        *(_group_expression(name).label(f"g{i}") for i, name in enumerate(group_by)),
        units.c.outcome,
        units.c.duration_s,
        cast(units.c.turns, Double).label("turns"),
        *(units.c.metrics[m.name].as_float().label(f"m{i}") for i, m in enumerate(metrics)),
    )
    sub = inner.where(all_of(conditions)).subquery()
    done = sub.c.outcome != INFRA_ERROR
    keys = [sub.c[f"g{i}"] for i in range(len(group_by))]
    statement = select(
        *keys,
        func.count(case((done, 1))).label("total"),
        *(func.count(case((sub.c.outcome == o.value, 1))).label(o.value) for o in Outcome),
        func.avg(case((done, sub.c.duration_s))).label("mean_duration_s"),
        func.avg(case((done, sub.c.turns))).label("mean_turns"),
        *(AGGREGATES[m.aggregate](case((done, sub.c[f"m{i}"]))).label(m.name) for i, m in enumerate(metrics)),
    ).group_by(*keys)
    rows = [_aggregate_row(row._mapping, group_by, metrics) for row in connection.execute(statement)]
    return sorted(rows, key=lambda row: tuple(sort_key(row[name]) for name in group_by))


def _check_names(group_by: Sequence[str], metrics: Sequence[MetricSpec]) -> None:
    """Every output key must be unambiguous: a group or metric named like a count would silently replace it."""
    seen: set[str] = set(RESERVED)
    for name, what in [(g, "group_by") for g in group_by] + [(m.name, "metric") for m in metrics]:
        checked_name(name, what)
        if name in seen:
            raise ValueError(f"{what} {name!r}: clashes with another output column named {name!r}")
        seen.add(name)
    for metric in metrics:
        if metric.aggregate not in AGGREGATES:
            raise ValueError(f"metric {metric.name!r}: aggregate {metric.aggregate!r} is not one of mean, sum")


def _group_expression(name: str) -> ColumnElement[Any]:
    if name in COLUMN_GROUPS:
        return units.c[name]
    # The JSON value itself (not its text): it comes back decoded, so 0.8 stays a float and "cot" a string.
    return units.c.factors[name]


def _aggregate_row(row: Any, group_by: Sequence[str], metrics: Sequence[MetricSpec]) -> dict[str, Any]:
    out: dict[str, Any] = {name: row[f"g{i}"] for i, name in enumerate(group_by)}
    out.update({name: int(row[name]) for name in COUNTS})
    for name in ("mean_duration_s", "mean_turns", *(m.name for m in metrics)):
        out[name] = None if row[name] is None else float(row[name])
    return out


def sort_key(value: Any) -> tuple[int, float, str]:
    """Orders mixed group values the same way on every back end: missing, booleans, numbers, then strings."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, bool):
        return (1, float(value), "")
    if isinstance(value, int | float):
        return (2, float(value), "")
    return (3, 0.0, str(value))


def deployment_shares(
    connection: Connection,
    unit_filter: Sequence[ColumnElement[bool]],
    call_filter: Sequence[ColumnElement[bool]],
) -> list[dict[str, Any]]:
    """Per (base model, deployment): completed units finished there, and calls sent there for that model's units.

    `call_filter` selects the units whose calls count (and may restrict the calls' own run id).
    """
    finished = (
        select(units.c.base_model, units.c.deployment, func.count())
        .where(all_of([*unit_filter, completed()]))
        .group_by(units.c.base_model, units.c.deployment)
    )
    sent = (
        select(units.c.base_model, calls.c.deployment, func.count())
        .select_from(calls.join(units, calls.c.unit_key == units.c.unit_key))
        .where(all_of(call_filter))
        .group_by(units.c.base_model, calls.c.deployment)
    )
    shares: dict[tuple[str, str], dict[str, Any]] = {}
    for column, statement in (("units", finished), ("calls", sent)):
        for base_model, deployment, count in connection.execute(statement):
            entry = shares.setdefault(
                (base_model, deployment),
                {"base_model": base_model, "deployment": deployment, "units": 0, "calls": 0},
            )
            entry[column] = int(count)
    return [shares[key] for key in sorted(shares)]


def call_conditions(flt: ReportFilter, canonical: Callable[[str], str], dialect: str) -> list[ColumnElement[bool]]:
    """Which calls a filter covers: those of the filtered units, sent during the filtered run(s) (if any)."""
    conditions = unit_conditions(flt, canonical, dialect, with_run=False)
    if flt.run_id is not None:
        conditions.append(calls.c.run_id == flt.run_id)
    if flt.run_label is not None:
        conditions.append(calls.c.run_id.in_(labelled_runs(flt.run_label)))
    return conditions


RUN_COLUMNS = (
    "run_id", "started_at", "finished_at", "status", "suite", "models", "host", "pid", "heartbeat_at",
    "planned_units", "executed_units", "worker", "plan",
)  # fmt: skip


def run_listing() -> Select[Any]:
    """Every run, newest first, with its label (kept in the stored configuration)."""
    label = runs.c.config[("run", "label")].as_string().label("label")
    return select(*(runs.c[name] for name in RUN_COLUMNS), label).order_by(runs.c.started_at.desc())


def run_listing_row(row: Any) -> dict[str, Any]:
    return {**{name: row[name] for name in RUN_COLUMNS}, "label": row["label"] or ""}


def completed_among(keys: Sequence[str]) -> Select[Any]:
    """Which of these unit keys are completed (one primary-key look-up each)."""
    return select(units.c.unit_key).where(units.c.unit_key.in_(keys), completed())


def completed_per_cell(scope: UnitScope, seed: int, instances: int, by: Any = None) -> Select[Any]:
    """Per cell key (and `by` column, if any), completed units of a scope and seed with an instance index below
    `instances`."""
    keys = [units.c.cell_key] if by is None else [units.c.cell_key, by]
    return (
        select(*keys, func.count())
        .where(
            units.c.suite_scope == scope.suite,
            units.c.model_scope == scope.model,
            units.c.seed == seed,
            units.c.instance_index < instances,
            completed(),
        )
        .group_by(*keys)
    )


def export_rows(conditions: Sequence[ColumnElement[bool]]) -> Select[Any]:
    """Every unit row the conditions select, in a stable order."""
    return select(units).where(all_of(conditions)).order_by(units.c.base_model, units.c.unit_key)


CALL_EXPORT_COLUMNS = (
    "unit_key", "run_id", "lane_id", "deployment", "credential_id", "attempt", "started_at", "latency_s", "status",
    "prompt_tokens", "completion_tokens", "http_status", "error", "cost_usd",
)  # fmt: skip


def export_calls(conditions: Sequence[ColumnElement[bool]]) -> Select[Any]:
    """Every call the conditions select (see `call_conditions`), with its unit's base model, in recording order."""
    return (
        select(*(calls.c[name] for name in CALL_EXPORT_COLUMNS), units.c.base_model)
        .select_from(calls.join(units, calls.c.unit_key == units.c.unit_key))
        .where(all_of(conditions))
        .order_by(calls.c.id)
    )


def export_transcripts(conditions: Sequence[ColumnElement[bool]]) -> Select[Any]:
    """Every selected unit that has a transcript, with the stored transcript, in `export_rows` order."""
    return (
        select(units, transcripts.c.encoding.label("transcript_encoding"), transcripts.c.data.label("transcript_data"))
        .join(transcripts, transcripts.c.unit_key == units.c.unit_key)
        .where(all_of(conditions))
        .order_by(units.c.base_model, units.c.unit_key)
    )


def flat_row(row: Any) -> dict[str, Any]:
    """A `units` row as one flat dict: identity and outcome columns, then factors, then metrics.

    A factor or metric named like a column (or like each other) gets a `factor.` / `metric.` prefix instead of
    replacing it.
    """
    out = {key: value for key, value in row.items() if key not in ("factors", "metrics")}
    for prefix, values in (("factor.", row["factors"]), ("metric.", row["metrics"])):
        for name, value in values.items():
            out[prefix + name if name in out else name] = value
    return out


def transcript_rows(key_prefix: str, limit: int) -> Select[Any]:
    """Stored transcripts whose unit key starts with `key_prefix`, with their unit's suite, by key."""
    return (
        select(transcripts.c.unit_key, units.c.suite, transcripts.c.encoding, transcripts.c.data)
        .join(units, units.c.unit_key == transcripts.c.unit_key)
        .where(transcripts.c.unit_key.startswith(key_prefix, autoescape=True))
        .order_by(transcripts.c.unit_key)
        .limit(limit)
    )
