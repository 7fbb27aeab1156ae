"""Read queries: every number a report shows is computed here by SQL, from the stored rows, at read time."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, select

from fleetbench.types import ReportFilter, UnitScope

from .filters import all_of, completed, labelled_runs, unit_conditions
from .schema import calls, runs, transcripts, unit_totals, units


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
    finished: Sequence[Mapping[str, Any]], sent: Sequence[tuple[str, str, int]]
) -> list[dict[str, Any]]:
    """Per (base model, deployment): completed units finished there (`finished`: aggregate rows by base model and
    deployment), and calls sent there for that model's units (`sent`: (base model, deployment, calls))."""
    shares: dict[tuple[str, str], dict[str, Any]] = {}
    counted = [(row["base_model"], row["deployment"], row["total"]) for row in finished if row["total"]]
    for column, found in (("units", counted), ("calls", sent)):
        for base_model, deployment, count in found:
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
    "planned_units", "executed_units", "worker", "plan", "experiment",
)  # fmt: skip


def units_per_suite() -> Select[Any]:
    """Stored units per suite (infra errors included), from the running totals."""
    total = func.sum(unit_totals.c.n_success + unit_totals.c.n_partial + unit_totals.c.n_failure
                     + unit_totals.c.n_infra_error)  # fmt: skip
    return select(unit_totals.c.suite, total).group_by(unit_totals.c.suite)


def run_listing() -> Select[Any]:
    """Every run, newest first, with its label (kept in the stored configuration)."""
    label = runs.c.config[("run", "label")].as_string().label("label")
    return select(*(runs.c[name] for name in RUN_COLUMNS), label).order_by(runs.c.started_at.desc())


def run_listing_row(row: Any) -> dict[str, Any]:
    return {**{name: row[name] for name in RUN_COLUMNS}, "label": row["label"] or ""}


@functools.cache
def completed_among() -> Select[Any]:
    """Which of the unit keys bound as `keys` are completed (one primary-key look-up each); built once, since claims
    and writes ask it for every batch."""
    return select(units.c.unit_key).where(units.c.unit_key.in_(bindparam("keys", expanding=True)), completed())


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
