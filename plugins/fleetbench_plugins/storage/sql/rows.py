"""Conversions between fleetbench value types and table rows, and the transcript codec."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fleetbench.errors import StorageError
from fleetbench.limits import checked_name
from fleetbench.secrets import redact_text
from fleetbench.types import CallRecord, CallStatus, Outcome, RunRecord, UnitResult

from .schema import INFRA_ERROR, UNIT_KEY_LENGTH, calls, units

TRANSCRIPT_ENCODING = "json+zlib"
TRANSCRIPT_COLUMNS = ("unit_key", "run_id", "encoding", "data")
UNIT_COLUMNS = tuple(column.name for column in units.columns)
"""The columns of a `unit_row`: every column of `units`."""
CALL_COLUMNS = tuple(column.name for column in calls.columns if column.name != "id")
"""The columns of a `call_row`: every column of `calls` but its id."""


def unit_row(result: UnitResult, base_model: str, experiment: str | None = None) -> dict[str, Any]:
    """The `units` row of one result; `base_model` is already canonical, `experiment` is its run's preset."""
    unit, episode = result.unit, result.episode
    if not unit.key or len(unit.key) > UNIT_KEY_LENGTH:
        raise StorageError(f"unit key {unit.key!r} must have 1 to {UNIT_KEY_LENGTH} characters")
    return {
        "unit_key": unit.key,
        "suite": unit.cell.suite,
        "base_model": base_model,
        "factors": {checked_name(k, "factor"): v for k, v in unit.cell.factors},
        "instance_index": unit.index,
        "seed": unit.seed,
        "task_id": episode.task_id,
        "outcome": Outcome(episode.outcome).value,
        "metrics": {checked_name(k, "metric"): _finite_or_none(v) for k, v in episode.metrics.items()},
        "turns": episode.turns,
        "error_category": episode.error_category,
        "infra_status": episode.infra_status,
        "deployment": result.deployment,
        "lane_id": result.lane_id,
        "run_id": result.run_id,
        "started_at": result.started_at,
        "duration_s": result.duration_s,
        "suite_scope": unit.scope.suite,
        "model_scope": unit.scope.model,
        "cell_key": unit.cell_key,
        "experiment": experiment,
    }


def _finite_or_none(value: float) -> float | None:
    # NaN/inf are not JSON: SQLite's JSON functions would reject the whole column and PostgreSQL the row. A
    # non-finite score is stored as missing, which every aggregate then skips.
    number = float(value)
    return number if math.isfinite(number) else None


def call_row(call: CallRecord) -> dict[str, Any]:
    """The `calls` row of one request."""
    return {
        "unit_key": call.unit_key,
        "run_id": call.run_id,
        "lane_id": call.lane_id,
        "deployment": call.deployment,
        "credential_id": call.credential_id,
        "attempt": call.attempt,
        "started_at": call.started_at,
        "latency_s": call.latency_s,
        "status": CallStatus(call.status).value,
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "http_status": call.http_status,
        "cost_usd": call.cost_usd,
        # Provider errors may quote the request URL, query string (`?api-key=...`) included.
        "error": redact_text(call.error) if call.error else call.error,
    }


def run_row(run: RunRecord, canonical: Callable[[str], str]) -> dict[str, Any]:
    """The `runs` row of a starting run, with model names made canonical."""
    return {
        "run_id": run.run_id,
        "started_at": run.started_at,
        "finished_at": None,
        "status": "running",
        "suite": run.suite,
        "models": [canonical(m) for m in run.models],
        "config": dict(run.config),
        "version": run.version,
        "host": run.host,
        "planned_units": run.planned_units,
        "executed_units": None,
        "pid": run.pid,
        "heartbeat_at": run.started_at,
        "worker": run.worker,
        "plan": run.plan or None,
        "experiment": run.experiment,
    }


def scope_rows(run: RunRecord) -> list[dict[str, Any]]:
    """The `scopes` rows of a starting run: each digest with what it stands for."""
    return [
        {"scope": scope, "kind": str(description.get("kind", "")), "description": dict(description)}
        for scope, description in sorted(run.scopes.items())
    ]


def first_per_key(results: Sequence[UnitResult]) -> list[UnitResult]:
    """One result per unit key, sorted by key: the first completed one, else the last infra error.

    Mirrors what the database would keep if the results arrived one by one, and lets one INSERT carry the batch
    (PostgreSQL refuses an upsert that touches the same row twice). Sorting gives every writer the same lock order,
    so concurrent PostgreSQL writers of overlapping keys queue instead of deadlocking.
    """
    chosen: dict[str, UnitResult] = {}
    for result in results:
        kept = chosen.get(result.key)
        if kept is None or kept.episode.outcome == INFRA_ERROR:
            chosen[result.key] = result
    return [chosen[key] for key in sorted(chosen)]


def encode_transcript(transcript: Mapping[str, Any]) -> bytes:
    """Compressed JSON; values JSON cannot hold are stored as their `str()` (a transcript is for reading)."""
    data = json.dumps(transcript, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
    return zlib.compress(data, wbits=_window_bits(len(data)))


def _window_bits(size: int) -> int:
    """The smallest deflate window that still reaches back over all of `size` bytes, so the output is as small as
    with the default 32 KiB window (a match may reach back the window less 262 bytes). Setting up the default
    window cost ~37 µs of a ~250-byte transcript's ~40; 512 bytes, ~14. `zlib.decompress` reads any window size."""
    return min(zlib.MAX_WBITS, max(9, (size + 262).bit_length()))


def decode_transcript(encoding: str, data: bytes) -> Mapping[str, Any]:
    """The transcript stored as `data` in `encoding`."""
    if encoding != TRANSCRIPT_ENCODING:
        raise StorageError(f"transcript encoding {encoding!r} is unknown to this fleetbench")
    decoded: Mapping[str, Any] = json.loads(zlib.decompress(data).decode("utf-8"))
    return decoded
