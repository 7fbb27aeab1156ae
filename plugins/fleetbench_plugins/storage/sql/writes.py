"""The write path: one transaction that upserts units exactly once, their transcripts, and appends calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from fleetbench.errors import StorageError
from fleetbench.types import CallRecord, UnitResult

from .claims import release_keys, release_own
from .direct import driver_insert
from .engine import insert_for
from .rows import (
    CALL_COLUMNS,
    TRANSCRIPT_COLUMNS,
    TRANSCRIPT_ENCODING,
    UNIT_COLUMNS,
    call_row,
    encode_transcript,
    first_per_key,
    unit_row,
)
from .schema import INFRA_ERROR, calls, transcripts, units
from .totals import add_calls, add_calls_of_new_units, add_units, serialize_writers, stored_rows

__all__ = ["PreparedBatch", "batch_committed", "prepare_batch", "write_prepared"]


@dataclass(frozen=True)
class PreparedBatch:
    """A batch's rows, built before its transaction opens (`prepare_batch`): the transaction then only talks to
    the database, and holds SQLite's write lock (for which the run's event loop may be waiting) for less time."""

    rows: list[dict[str, Any]]
    """One `units` row per unit key, sorted by key (`first_per_key`)."""
    transcripts: dict[str, dict[str, Any] | None]
    """Each row's `transcripts` row by unit key; None: the result has no transcript."""
    call_rows: list[dict[str, Any]]


def prepare_batch(
    results: Sequence[UnitResult],
    call_records: Sequence[CallRecord],
    canonical: Callable[[str], str],
    experiments: Callable[[str], str | None] = lambda run_id: None,
) -> PreparedBatch:
    """The rows of a batch: units under their canonical base model and run's experiment, compressed transcripts,
    calls."""
    chosen = first_per_key(results)
    return PreparedBatch(
        rows=[unit_row(r, canonical(r.unit.cell.base_model), experiments(r.run_id)) for r in chosen],
        transcripts={
            r.key: None if r.episode.transcript is None else _transcript_row(r, r.episode.transcript) for r in chosen
        },
        call_rows=[call_row(c) for c in call_records],
    )


def write_prepared(connection: Connection, batch: PreparedBatch, slots: dict[str, dict[str, int]] | None = None) -> int:
    """Store a prepared batch inside the caller's transaction; return how many units it newly completed.

    A unit row is inserted when its key is new and replaced only while the stored row is an infra error, so a
    completed unit is never overwritten and never counted twice, however many writers race on the same keys: they
    take turns (`serialize_writers`, SQLite's write lock), and each reads what is stored once its turn has come.
    `slots` caches the metric slots of `unit_totals`, which this transaction keeps equal to the units it stores.
    """
    serialize_writers(connection)
    rows = batch.rows
    stored = stored_rows(connection, [row["unit_key"] for row in rows])
    replaceable = {key: row for key, row in stored.items() if row["outcome"] == INFRA_ERROR}
    completed = stored.keys() - replaceable.keys()
    written = _upsert_units(connection, [row for row in rows if row["unit_key"] not in completed])
    add_units(
        connection,
        [row for row in rows if row["unit_key"] in written],
        [replaceable[key] for key in sorted(written & replaceable.keys())],
        {} if slots is None else slots,
    )
    # Calls stored before their unit's first row (a run stopped mid-episode) join the call totals now.
    first_stored = written - replaceable.keys()  # once, not per row: a batch can hold tens of thousands of units
    add_calls_of_new_units(connection, [row for row in rows if row["unit_key"] in first_stored])
    _store_transcripts(connection, {key: batch.transcripts[key] for key in sorted(written)})
    if batch.call_rows:
        driver_insert("calls", lambda _: insert(calls), connection.dialect, CALL_COLUMNS).run(
            connection, batch.call_rows
        )
        add_calls(connection, batch.call_rows, {row["unit_key"]: row for row in rows})
    # A completed unit (written, or refused because another worker completed it first): nobody needs its claim any
    # more. An infra error gives back only the writer's own claim: a worker stopped past its lease writes one late,
    # after another worker took the unit over and may be running it; dropping that claim would let a third take it.
    release_keys(connection, [row["unit_key"] for row in rows if row["outcome"] != INFRA_ERROR])
    for run_id in sorted({row["run_id"] for row in rows if row["outcome"] == INFRA_ERROR}):
        release_own(
            connection, run_id, [r["unit_key"] for r in rows if r["outcome"] == INFRA_ERROR and r["run_id"] == run_id]
        )
    return sum(1 for row in rows if row["unit_key"] in written and row["outcome"] != INFRA_ERROR)


def batch_committed(connection: Connection, batch: PreparedBatch) -> bool:
    """Whether the transaction that wrote `batch` committed, asked on a new connection after the old one was lost at
    the commit (the commit may or may not have reached the server).

    A call row is appended by exactly one transaction, so finding one of the batch's calls proves the commit. A
    batch without calls committed if one of its units is stored as this result (its run, lane and start); finding
    none is safe to act on even when every unit of the batch had been completed by others (the transaction then
    stored nothing of them): writing such a batch again stores nothing twice."""
    if batch.call_rows:
        first = batch.call_rows[0]
        query = select(calls.c.unit_key).where(
            *(calls.c[name] == first[name] for name in ("unit_key", "run_id", "lane_id", "attempt", "started_at"))
        )
        return connection.execute(query.limit(1)).first() is not None
    if not batch.rows:
        return False
    ours = {(row["unit_key"], row["run_id"], row["lane_id"], row["started_at"]) for row in batch.rows}
    query = select(units.c.unit_key, units.c.run_id, units.c.lane_id, units.c.started_at).where(
        units.c.unit_key.in_(sorted({key for key, *_ in ours}))
    )
    return any(tuple(row) in ours for row in connection.execute(query))


class ConflictingWrite(StorageError):
    """The database changed under a write that held the writers' lock (a writer that ignored it): the write fails
    whole, and `SqlDatabase.errors` names the action and the database, as it does for a driver's error."""


def _upsert_units(connection: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows whose keys are new, replace those stored as infra errors; their keys.

    The caller read which keys are stored after taking the write lock (`serialize_writers`; SQLite's is held from
    the transaction's start), so no other writer can have changed them since, and the rows to write are known
    without RETURNING (which a driver's executemany cannot collect). The upsert's WHERE still refuses to overwrite
    a completed row, and the count of rows changed is checked: a writer that ignored the lock fails this write.
    """
    if not rows:
        return set()
    statement = driver_insert("units", _units_upsert, connection.dialect, UNIT_COLUMNS)
    changed = statement.run(connection, rows)
    if changed is not None and changed != len(rows):
        raise ConflictingWrite(f"{len(rows)} units to write, {changed} written: another writer changed them meanwhile")
    return {row["unit_key"] for row in rows}


def _units_upsert(dialect: str) -> Any:
    """The unit upsert."""
    statement = insert_for(dialect, units)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[units.c.unit_key],
        set_={c.name: excluded[c.name] for c in units.columns if c.name != "unit_key"},
        where=units.c.outcome == INFRA_ERROR,
    )


def _store_transcripts(connection: Connection, written: Mapping[str, dict[str, Any] | None]) -> None:
    """Transcripts for the units this call wrote (`transcripts` rows by unit key; None: none); a replaced infra
    error's old transcript never outlives it."""
    with_transcript = [row for row in written.values() if row is not None]
    without = [key for key, row in written.items() if row is None]
    if without:
        connection.execute(delete(transcripts).where(transcripts.c.unit_key.in_(without)))
    if not with_transcript:
        return
    statement = driver_insert("transcripts", _transcripts_upsert, connection.dialect, TRANSCRIPT_COLUMNS)
    statement.run(connection, with_transcript)


def _transcripts_upsert(dialect: str) -> Any:
    """The transcript upsert."""
    statement = insert_for(dialect, transcripts)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[transcripts.c.unit_key],
        set_={"run_id": excluded.run_id, "encoding": excluded.encoding, "data": excluded.data},
    )


def _transcript_row(result: UnitResult, transcript: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "unit_key": result.key,
        "run_id": result.run_id,
        "encoding": TRANSCRIPT_ENCODING,
        "data": encode_transcript(transcript),
    }
