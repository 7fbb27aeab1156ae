"""A complete `Storage` held in memory, for core tests that need a storage but are not about one.

It keeps the storage contract in full (fleetbench's own tests run it through the storage kit): writes are idempotent on
the unit key, a completed unit is never replaced while an infra error is, model names go through the naming policy,
and aggregates follow `Storage.aggregate`. Nothing is persisted; one instance is one database.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from fleetbench.errors import StorageError, UnknownNameError
from fleetbench.interfaces import NamingPolicy, NoOptions, Storage
from fleetbench.scope_groups import TIMEOUT_STATUSES, UNIT_COLUMNS, is_scope_group, scope_property
from fleetbench.types import (
    CallRecord,
    ClaimInfo,
    FactorValue,
    MetricSpec,
    Outcome,
    PlanScope,
    ReportFilter,
    RunRecord,
    Unit,
    UnitResult,
    UnitScope,
)

COLUMNS = UNIT_COLUMNS
"""`group_by` names that are columns of a stored unit; any other name is a scope property or a cell factor."""


@dataclasses.dataclass(frozen=True)
class _Row:
    result: UnitResult
    base_model: str
    experiment: str | None = None

    @property
    def done(self) -> bool:
        return self.result.episode.outcome is not Outcome.INFRA_ERROR

    def column(self, name: str) -> Any:
        """A column (`base_model`, `deployment`, ...) or a cell factor."""
        result = self.result
        columns = {
            "base_model": self.base_model,
            "deployment": result.deployment,
            "suite": result.unit.cell.suite,
            "run_id": result.run_id,
            "task_id": result.episode.task_id,
            "lane_id": result.lane_id,
            "seed": result.unit.seed,
            "suite_scope": result.unit.scope.suite,
            "model_scope": result.unit.scope.model,
            "experiment": self.experiment,
            "instance_index": result.unit.index,
        }
        return columns[name] if name in COLUMNS else result.unit.cell.as_dict().get(name)

    def flat(self) -> dict[str, Any]:
        result, unit, episode = self.result, self.result.unit, self.result.episode
        out: dict[str, Any] = {
            "unit_key": unit.key, "suite": unit.cell.suite, "base_model": self.base_model,
            "deployment": result.deployment, "lane_id": result.lane_id, "run_id": result.run_id,
            "cell_key": unit.cell_key, "instance_index": unit.index, "seed": unit.seed, "task_id": episode.task_id,
            "outcome": episode.outcome.value, "error_category": episode.error_category,
            "infra_status": episode.infra_status, "turns": episode.turns, "started_at": result.started_at,
            "duration_s": result.duration_s, "suite_scope": unit.scope.suite, "model_scope": unit.scope.model,
            "experiment": self.experiment,
        }  # fmt: skip
        for prefix, values in (("factor.", unit.cell.as_dict()), ("metric.", episode.metrics)):
            for name, value in values.items():
                out[prefix + name if name in out else name] = value
        return out


class MemoryStorage(Storage):
    """Results in dictionaries. Constructed as `MemoryStorage(NoOptions(), naming=policy)`."""

    def __init__(self, options: Any = None, *, naming: NamingPolicy) -> None:
        super().__init__(NoOptions() if options is None else options)
        self._naming = naming
        self._units: dict[str, _Row] = {}
        self._calls: list[tuple[CallRecord, str]] = []
        self._runs: dict[str, dict[str, Any]] = {}
        self._claims: dict[str, tuple[str, float, Unit]] = {}
        """unit key -> (run id, expiry, unit)"""
        self._scopes: dict[str, Mapping[str, Any]] = {}

    def migrate(self) -> Sequence[str]:
        return []

    def stored_among(self, keys: Sequence[str]) -> set[str]:
        return {key for key in keys if key in self._units and self._units[key].done}

    def completed_per_cell(self, scope: UnitScope, seed: int, instances: int) -> Mapping[str, int]:
        counts: dict[str, int] = {}
        for row in self._units.values():
            unit = row.result.unit
            if row.done and unit.scope == scope and unit.seed == seed and unit.index < instances:
                counts[unit.cell_key] = counts.get(unit.cell_key, 0) + 1
        return counts

    def completed_per_cell_and_deployment(
        self, scope: UnitScope, seed: int, instances: int
    ) -> Mapping[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for row in self._units.values():
            unit = row.result.unit
            if row.done and unit.scope == scope and unit.seed == seed and unit.index < instances:
                key = (unit.cell_key, row.result.deployment)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def begin_run(self, run: RunRecord) -> None:
        if run.run_id in self._runs:
            raise StorageError(f"run {run.run_id!r} is already recorded")
        label = run.config.get("run", {}).get("label") or ""
        self._runs[run.run_id] = {
            "run_id": run.run_id, "started_at": run.started_at, "finished_at": None, "status": "running",
            "suite": run.suite, "models": [self._naming.base_name(m) for m in run.models], "host": run.host,
            "pid": run.pid, "heartbeat_at": run.started_at, "planned_units": run.planned_units,
            "executed_units": 0, "label": str(label), "worker": run.worker, "plan": run.plan or None,
            "experiment": run.experiment,
        }  # fmt: skip
        for digest, description in run.scopes.items():
            self._scopes.setdefault(digest, copy.deepcopy(dict(description)))

    def heartbeat(self, run_id: str, at: float) -> None:
        self._run(run_id)["heartbeat_at"] = at

    def finish_run(self, run_id: str, status: str, finished_at: float, executed: int) -> None:
        self._run(run_id).update(status=status, finished_at=finished_at, executed_units=executed)
        self._claims = {
            key: (held[0], finished_at, held[2]) if held[0] == run_id else held for key, held in self._claims.items()
        }

    def claim(self, run_id: str, units: Sequence[Unit], now: float, expires_at: float) -> set[str]:
        self._run(run_id)
        taken = set()
        for unit in units:
            held = self._claims.get(unit.key)
            if held is not None and held[0] != run_id and held[1] > now:
                continue
            if unit.key in self._units and self._units[unit.key].done:
                continue
            self._claims[unit.key] = (run_id, expires_at, unit)
            taken.add(unit.key)
        return taken

    def renew_claims(self, run_id: str, expires_at: float) -> int:
        mine = [key for key, held in self._claims.items() if held[0] == run_id]
        for key in mine:
            self._claims[key] = (run_id, expires_at, self._claims[key][2])
        return len(mine)

    def open_claims(self, scope: UnitScope, seed: int) -> list[ClaimInfo]:
        return [
            ClaimInfo(key, run_id, expires, unit.cell_key, unit.index)
            for key, (run_id, expires, unit) in self._claims.items()
            if unit.scope == scope and unit.seed == seed
        ]

    def live_runs(self, plan: str, fresh_after: float) -> list[str]:
        holding = {held[0] for held in self._claims.values()}
        return sorted(
            run["run_id"]
            for run in self._runs.values()
            if run["plan"] == plan
            and run["status"] == "running"
            and run["heartbeat_at"] >= fresh_after
            and run["run_id"] in holding
        )

    def recent_calls(self, since: float) -> list[dict[str, Any]]:
        return [
            {
                "deployment": c.deployment,
                "latency_s": c.latency_s,
                "status": c.status.value,
                "http_status": c.http_status,
            }
            for c, _ in self._calls
            if c.started_at >= since
        ]

    def _run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self._runs:
            raise StorageError(f"run {run_id!r} was never begun")
        return self._runs[run_id]

    def runs(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(run) for run in sorted(self._runs.values(), key=lambda r: -r["started_at"])]

    def write(self, results: Sequence[UnitResult], calls: Sequence[CallRecord]) -> int:
        for run_id in {r.run_id for r in results} | {c.run_id for c in calls}:
            self._run(run_id)
        completed = 0
        for result in results:
            held = self._claims.get(result.key)
            # A completed unit frees its claim, whoever holds it; an infra error only the writer's own (see `write`).
            if result.episode.outcome is not Outcome.INFRA_ERROR or (held is not None and held[0] == result.run_id):
                self._claims.pop(result.key, None)
            stored = self._units.get(result.key)
            if stored is not None and stored.done:
                continue
            row = _Row(
                result, self._naming.base_name(result.unit.cell.base_model), self._runs[result.run_id]["experiment"]
            )
            self._units[result.key] = row
            completed += row.done
        self._calls.extend((call, self._base_of(call.unit_key)) for call in calls)
        return completed

    def _base_of(self, unit_key: str) -> str:
        row = self._units.get(unit_key)
        return row.base_model if row is not None else ""

    def aggregate(
        self, group_by: Sequence[str], filter: ReportFilter, metrics: Sequence[MetricSpec] = ()
    ) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], list[_Row]] = {} if group_by else {(): []}
        for row in self._selected(filter):
            groups.setdefault(tuple(self._group_value(row, name) for name in group_by), []).append(row)
        out = [_aggregate(dict(zip(group_by, key, strict=True)), rows, metrics) for key, rows in groups.items()]
        return sorted(out, key=lambda row: tuple(_sort_key(row[name]) for name in group_by))

    def _group_value(self, row: _Row, name: str) -> Any:
        if is_scope_group(name):
            description = self._scopes.get(row.result.unit.scope.suite)
            return None if description is None else scope_property(name, description)
        return row.column(name)

    def scope_descriptions(self, digests: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        return {d: copy.deepcopy(dict(self._scopes[d])) for d in digests if d in self._scopes}

    def suites(self) -> Mapping[str, int]:
        counts: dict[str, int] = {}
        for row in self._units.values():
            counts[row.result.unit.cell.suite] = counts.get(row.result.unit.cell.suite, 0) + 1
        return counts

    def deployment_shares(self, filter: ReportFilter) -> list[dict[str, Any]]:
        shares: dict[tuple[str, str], dict[str, Any]] = {}

        def share(base: str, deployment: str) -> dict[str, Any]:
            empty = {"base_model": base, "deployment": deployment, "units": 0, "calls": 0}
            return shares.setdefault((base, deployment), empty)

        for row in self._selected(filter):
            if row.done:
                share(row.base_model, row.result.deployment)["units"] += 1
        for call, row in self._filtered_calls(filter):
            share(row.base_model, call.deployment)["calls"] += 1
        return [shares[key] for key in sorted(shares) if self._belongs(shares[key])]

    def group_calls(self, group_by: Sequence[str], filter: ReportFilter) -> list[dict[str, Any]] | None:
        counts: dict[tuple[Any, ...], int] = {}
        for call, row in self._filtered_calls(filter):
            if self._belongs({"base_model": row.base_model, "deployment": call.deployment}):
                key = tuple(self._group_value(row, name) for name in group_by)
                counts[key] = counts.get(key, 0) + 1
        found = [{**dict(zip(group_by, key, strict=True)), "calls": n} for key, n in counts.items()]
        return sorted(found, key=lambda row: tuple(_sort_key(row[name]) for name in group_by))

    def _filtered_calls(self, filter: ReportFilter) -> Iterator[tuple[CallRecord, _Row]]:
        """Every call of the filtered units (sent during the filtered runs, if any), with its unit's stored row (its
        base model as stored now: calls may precede their unit's result)."""
        rows = {row.result.key: row for row in self._selected(dataclasses.replace(filter, run_id=None, run_label=None))}
        for call, _ in self._calls:
            row = rows.get(call.unit_key)
            if row is not None and self._run_matches(call.run_id, filter):
                yield call, row

    def _belongs(self, share: Mapping[str, Any]) -> bool:
        try:
            return bool(self._naming.base_name(str(share["deployment"])) == share["base_model"])
        except UnknownNameError:
            return True

    def transcripts(self, key_prefix: str, limit: int = 2) -> list[tuple[str, str, Mapping[str, Any]]]:
        found = sorted(key for key, row in self._units.items() if key.startswith(key_prefix) and _transcript(row))
        return [(key, self._units[key].result.unit.cell.suite, _transcript(self._units[key])) for key in found[:limit]]

    def export_rows(self, filter: ReportFilter) -> Iterable[dict[str, Any]]:
        rows = sorted(self._selected(filter), key=lambda row: (row.base_model, row.result.key))
        return [row.flat() for row in rows]

    def export_calls(self, filter: ReportFilter) -> Iterable[dict[str, Any]]:
        units = {row.result.key for row in self._selected(dataclasses.replace(filter, run_id=None, run_label=None))}
        return [
            {**_call_row(call), "base_model": base}
            for call, base in self._calls
            if call.unit_key in units and self._run_matches(call.run_id, filter)
        ]

    def export_transcripts(self, filter: ReportFilter) -> Iterable[tuple[dict[str, Any], Mapping[str, Any]]]:
        rows = sorted(self._selected(filter), key=lambda row: (row.base_model, row.result.key))
        return [(row.flat(), _transcript(row)) for row in rows if row.result.episode.transcript is not None]

    def _selected(self, filter: ReportFilter) -> list[_Row]:
        models = {self._naming.base_name(m) for m in filter.base_models}
        return [
            row
            for row in self._units.values()
            if (filter.suite is None or row.result.unit.cell.suite == filter.suite)
            and (not models or row.base_model in models)
            and self._run_matches(row.result.run_id, filter)
            and all(_factor_in(row.column(name), allowed) for name, allowed in filter.factors.items())
            and (filter.plans is None or any(_planned(plan, row) for plan in filter.plans))
        ]

    def _run_matches(self, run_id: str, filter: ReportFilter) -> bool:
        if filter.run_id is not None and run_id != filter.run_id:
            return False
        return filter.run_label is None or self._runs.get(run_id, {}).get("label") == filter.run_label


def _call_row(call: CallRecord) -> dict[str, Any]:
    names = (
        "unit_key", "run_id", "lane_id", "deployment", "credential_id", "attempt", "started_at", "latency_s",
        "prompt_tokens", "completion_tokens", "http_status", "error", "cost_usd",
    )  # fmt: skip
    return {**{name: getattr(call, name) for name in names}, "status": call.status.value}


def _planned(plan: PlanScope, row: _Row) -> bool:
    unit = row.result.unit
    return plan.contains(unit.scope.suite, unit.scope.model, unit.seed, unit.cell_key, unit.index)


def _transcript(row: _Row) -> dict[str, Any]:
    transcript = row.result.episode.transcript
    return copy.deepcopy(dict(transcript)) if transcript is not None else {}


def _aggregate(keys: dict[str, Any], rows: list[_Row], metrics: Sequence[MetricSpec]) -> dict[str, Any]:
    done = [row for row in rows if row.done]
    out: dict[str, Any] = {**keys, "total": len(done)}
    for outcome in Outcome:
        out[outcome.value] = sum(row.result.episode.outcome is outcome for row in rows)
    out["timeout"] = sum(row.result.episode.infra_status in TIMEOUT_STATUSES for row in rows if not row.done)
    out["mean_duration_s"] = _mean([row.result.duration_s for row in done])
    out["mean_turns"] = _mean([float(row.result.episode.turns) for row in done])
    for metric in metrics:
        values = [
            float(row.result.episode.metrics[metric.name]) for row in done if metric.name in row.result.episode.metrics
        ]
        out[metric.name] = (sum(values) if values else None) if metric.aggregate == "sum" else _mean(values)
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _factor_in(value: Any, allowed: Sequence[FactorValue]) -> bool:
    """Numbers compare as numbers (0.8 == 0.80), strings and booleans exactly (True is not 1)."""
    return any(isinstance(value, bool) == isinstance(a, bool) and value == a for a in allowed)


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, bool):
        return (1, float(value), "")
    if isinstance(value, int | float):
        return (2, float(value), "")
    return (3, 0.0, str(value))
