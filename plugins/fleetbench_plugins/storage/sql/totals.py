"""Running totals of `units` (table `unit_totals`), kept in step with every write, so reports read thousands of rows
instead of millions.

One totals row adds up the units of one (suite, scope, seed, cell, base model, run, deployment): outcome counts, and
over completed units the sums of duration, turns and each metric with the number of values summed. A write adds its
units' contributions with one upsert (`n = n + excluded.n`) in the same transaction that inserts the units, so the
totals are exactly the units, under any number of concurrent writers. A stored infra error that a later result
replaces is subtracted from the totals row it was counted in.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, insert, literal_column, select, text

from fleetbench.scope_groups import TIMEOUT_STATUSES

from .direct import driver_insert, keyed_statement
from .engine import dialect_insert, insert_for
from .schema import (
    INFRA_ERROR,
    METRIC_SLOTS,
    OUTCOME_COUNTS,
    TOTALS_KEY,
    call_totals,
    calls,
    cells,
    metric_slots,
    unit_totals,
    units,
)

_COUNT_OF = {"success": "n_success", "partial": "n_partial", "failure": "n_failure", INFRA_ERROR: "n_infra_error"}
_ADDED = (*OUTCOME_COUNTS, "sum_duration_s", "sum_turns", *(f"s{i}" for i in range(METRIC_SLOTS)),
          *(f"c{i}" for i in range(METRIC_SLOTS)))  # fmt: skip


@dataclass
class _Delta:
    """What a batch adds to one totals row."""

    max_instance: int = -1
    values: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, amount: float) -> None:
        self.values[name] = self.values.get(name, 0) + amount


def totals_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The `unit_totals` key of a `units` row (a unit written before scopes existed has empty scope digests)."""
    return tuple("" if row[name] is None else row[name] for name in TOTALS_KEY)


def slots_for(
    connection: Connection, suite: str, names: Iterable[str], known: dict[str, dict[str, int]]
) -> dict[str, int]:
    """The slot of each metric name of `suite`, assigning free slots to new names (at most `METRIC_SLOTS`).

    `known` caches assignments across batches (an assignment never changes once committed). Two writers assigning
    at once: the unique (suite, slot) makes one of them insert nothing, and it takes the next free slot.
    """
    cache = known.setdefault(suite, {})
    missing = sorted(set(names) - cache.keys())
    if not missing:
        return cache
    cache.update(_stored_slots(connection, suite))
    for name in missing:
        while name not in cache:
            taken = set(cache.values())
            free = next((slot for slot in range(METRIC_SLOTS) if slot not in taken), None)
            if free is None:
                break  # beyond METRIC_SLOTS: reports aggregate this metric from `units`
            statement = dialect_insert(connection, metric_slots).on_conflict_do_nothing()
            connection.execute(statement, {"suite": suite, "name": name, "slot": free})
            cache.update(_stored_slots(connection, suite))
    return cache


def _stored_slots(connection: Connection, suite: str) -> dict[str, int]:
    query = select(metric_slots.c.name, metric_slots.c.slot).where(metric_slots.c.suite == suite)
    return {str(name): int(slot) for name, slot in connection.execute(query)}


def add_units(
    connection: Connection,
    rows: Sequence[Mapping[str, Any]],
    replaced: Sequence[Mapping[str, Any]],
    known: dict[str, dict[str, int]],
) -> None:
    """Add newly written `units` rows to the totals, subtract the infra-error rows they `replaced`, and record
    their cells."""
    deltas: dict[tuple[Any, ...], _Delta] = {}
    for row in rows:
        delta = deltas.setdefault(totals_key(row), _Delta())
        delta.max_instance = max(delta.max_instance, int(row["instance_index"]))
        delta.add(_COUNT_OF[row["outcome"]], 1)
        if row["outcome"] == INFRA_ERROR:
            delta.add("n_timeout", int(row["infra_status"] in TIMEOUT_STATUSES))
            continue
        delta.add("sum_duration_s", float(row["duration_s"]))
        delta.add("sum_turns", float(row["turns"]))
        slots = slots_for(connection, row["suite"], row["metrics"], known)
        for name, value in row["metrics"].items():
            slot = slots.get(name)
            if slot is not None and value is not None:
                delta.add(f"s{slot}", float(value))
                delta.add(f"c{slot}", 1)
    for row in replaced:
        delta = deltas.setdefault(totals_key(row), _Delta())
        delta.add("n_infra_error", -1)
        delta.add("n_timeout", -int(row["infra_status"] in TIMEOUT_STATUSES))
    if deltas:
        _record_cells(connection, rows)
        _upsert(connection, deltas)


def _upsert(connection: Connection, deltas: Mapping[tuple[Any, ...], _Delta]) -> None:
    # Sorted, so concurrent PostgreSQL writers lock totals rows in the same order and queue instead of deadlocking.
    rows = [_totals_row(key, deltas[key]) for key in sorted(deltas)]
    driver_insert("unit_totals", _totals_upsert, connection.dialect, _TOTALS_COLUMNS).run(connection, rows)


_TOTALS_COLUMNS = (*TOTALS_KEY, "max_instance", *_ADDED)
_CALL_TOTALS_COLUMNS = (*TOTALS_KEY, "max_instance", "n_calls")


def _totals_upsert(dialect: str) -> Any:
    """The running-totals upsert (compiled once per driver: building its hundred-odd `column + excluded` terms cost
    more than executing it, once per write batch)."""
    statement = insert_for(dialect, unit_totals)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[unit_totals.c[name] for name in TOTALS_KEY],
        set_={
            "max_instance": _greatest(dialect)(unit_totals.c.max_instance, excluded.max_instance),
            **{name: _added(dialect, unit_totals.c[name], excluded[name], name) for name in _ADDED},
        },
    )


_FLOAT_MAX: Any = literal_column(f"'{sys.float_info.max!r}'::float8")
_INFINITY: Any = literal_column("'Infinity'::float8")
_SUMMED_FLOATS = frozenset(("sum_duration_s", *(f"s{i}" for i in range(METRIC_SLOTS))))


def _added(dialect: str, stored: Any, added: Any, name: str) -> Any:
    """`stored + added`; on PostgreSQL, a float sum beyond the largest float is infinity, as SQLite's and Python's
    are, instead of the error "value out of range: overflow" that failed every later write of the row. The bound is
    compared as `abs(stored) > MAX - abs(added)`, which itself cannot overflow; NaN and infinities add as before."""
    if dialect != "postgresql" or name not in _SUMMED_FLOATS:
        return stored + added
    beyond = and_(func.sign(stored) == func.sign(added), func.abs(stored) > _FLOAT_MAX - func.abs(added))
    return case((beyond, func.sign(stored) * _INFINITY), else_=stored + added)


def _greatest(dialect: str) -> Any:
    """SQL's two-argument maximum: `greatest` in PostgreSQL, the scalar `max` in SQLite."""
    return func.greatest if dialect == "postgresql" else func.max


def _totals_row(key: tuple[Any, ...], delta: _Delta) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(TOTALS_KEY, key, strict=True))
    row["max_instance"] = delta.max_instance
    row.update({name: delta.values.get(name, 0) for name in _ADDED})
    return row


def _cells_insert(dialect: str) -> Any:
    """Records a cell's factors once."""
    return insert_for(dialect, cells).on_conflict_do_nothing(index_elements=["cell_key"])


def _record_cells(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    found = {row["cell_key"]: row for row in rows if row["cell_key"] is not None}
    if not found:
        return
    statement = driver_insert("cells", _cells_insert, connection.dialect, ("cell_key", "suite", "factors"))
    statement.run(
        connection, [{"cell_key": k, "suite": found[k]["suite"], "factors": found[k]["factors"]} for k in sorted(found)]
    )


REPLACED_COLUMNS = (*TOTALS_KEY, "unit_key", "infra_status")
STORED_COLUMNS = (*REPLACED_COLUMNS, "outcome")


WRITE_LOCK_KEY = 0x666C6565747772
"""PostgreSQL advisory lock every write transaction takes (any fixed 64-bit number, the same in every process)."""


def serialize_writers(connection: Connection) -> None:
    """Make concurrent PostgreSQL writers take turns, as SQLite's write lock does.

    A write reads the infra-error rows it may replace and then updates totals rows other writers may also be
    updating; taking turns keeps the totals exact (the row read is the row replaced) and rules out deadlocks between
    row locks and insert conflicts. A write is one group commit, so turns are short.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})


def stored_rows(connection: Connection, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored `units` rows among `keys` (their totals key, status and outcome): which of them a write may still
    replace (infra errors, which it must then subtract) and which are completed. Call after `serialize_writers`."""
    if not keys:
        return {}
    statement = keyed_statement("stored_rows", _stored_rows_query, connection.dialect)
    found = [dict(zip(STORED_COLUMNS, row, strict=True)) for row in statement.execute(connection, keys)]
    return {str(row["unit_key"]): row for row in found}


def _stored_rows_query() -> Any:
    return select(*(units.c[name] for name in STORED_COLUMNS)).where(
        units.c.unit_key.in_(bindparam("keys", expanding=True))
    )


def rebuild(connection: Connection, chunk: int = 10_000) -> None:
    """Compute the totals and cells of every stored unit (the migration that introduces them runs this once).

    Reads by key ranges rather than through one open cursor, since the same connection writes in between.
    """
    known: dict[str, dict[str, int]] = {}
    names = (
        *TOTALS_KEY,
        "unit_key",
        "instance_index",
        "outcome",
        "infra_status",
        "duration_s",
        "turns",
        "metrics",
        "factors",
    )
    query = select(*(units.c[name] for name in names)).order_by(units.c.unit_key).limit(chunk)
    last = ""
    while True:
        part = [dict(row._mapping) for row in connection.execute(query.where(units.c.unit_key > last))]
        if not part:
            return
        add_units(connection, part, (), known)
        add_calls_of_new_units(connection, part)
        last = part[-1]["unit_key"]


UNIT_KEY_COLUMNS = tuple(name for name in TOTALS_KEY if name not in ("run_id", "deployment"))
"""The part of a totals key a unit decides (a call adds its own run and deployment)."""


def add_calls(
    connection: Connection,
    records: Sequence[Mapping[str, Any]],
    rows: Mapping[str, Mapping[str, Any]],
) -> None:
    """Add `calls` rows to `call_totals`, each under its unit's scope, seed, cell and base model.

    `rows` holds `units` rows by key (those of the batch); other units are looked up. A call whose unit is not
    stored yet is added when its unit is (`add_calls_of_new_units`).
    """
    units_of = dict(rows)
    missing = sorted({r["unit_key"] for r in records} - units_of.keys())
    if missing:
        query = select(units.c.unit_key, units.c.instance_index, *(units.c[n] for n in UNIT_KEY_COLUMNS))
        units_of.update({row.unit_key: row._mapping for row in connection.execute(query.where(
            units.c.unit_key.in_(missing)))})  # fmt: skip
    counts: dict[tuple[Any, ...], list[int]] = {}
    for record in records:
        unit = units_of.get(record["unit_key"])
        if unit is not None:
            _count_call(counts, unit, record["run_id"], record["deployment"], 1)
    _upsert_calls(connection, counts)


def add_calls_of_new_units(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add the already stored calls of units stored for the first time (calls can precede their unit's result)."""
    by_key = {row["unit_key"]: row for row in rows}
    if not by_key:
        return
    counts: dict[tuple[Any, ...], list[int]] = {}
    statement = keyed_statement("stored_calls", _stored_calls_query, connection.dialect)
    for unit_key, run_id, deployment, count in statement.execute(connection, sorted(by_key)):
        _count_call(counts, by_key[unit_key], run_id, deployment, int(count))
    _upsert_calls(connection, counts)


def _stored_calls_query() -> Any:
    """The stored calls of the unit keys bound as `keys`, counted per run and deployment."""
    return (
        select(calls.c.unit_key, calls.c.run_id, calls.c.deployment, func.count())
        .where(calls.c.unit_key.in_(bindparam("keys", expanding=True)))
        .group_by(calls.c.unit_key, calls.c.run_id, calls.c.deployment)
    )


def _count_call(
    counts: dict[tuple[Any, ...], list[int]], unit: Mapping[str, Any], run_id: str, deployment: str, n: int
) -> None:
    key = totals_key({**{name: unit[name] for name in UNIT_KEY_COLUMNS}, "run_id": run_id, "deployment": deployment})
    entry = counts.setdefault(key, [-1, 0])
    entry[0] = max(entry[0], int(unit["instance_index"]))
    entry[1] += n


def _upsert_calls(connection: Connection, counts: Mapping[tuple[Any, ...], list[int]]) -> None:
    if not counts:
        return
    rows = [
        {**dict(zip(TOTALS_KEY, key, strict=True)), "max_instance": counts[key][0], "n_calls": counts[key][1]}
        for key in sorted(counts)
    ]
    driver_insert("call_totals", _calls_upsert, connection.dialect, _CALL_TOTALS_COLUMNS).run(connection, rows)


def _calls_upsert(dialect: str) -> Any:
    """The call-totals upsert."""
    statement = insert_for(dialect, call_totals)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[call_totals.c[name] for name in TOTALS_KEY],
        set_={
            "max_instance": _greatest(dialect)(call_totals.c.max_instance, excluded.max_instance),
            "n_calls": call_totals.c.n_calls + excluded.n_calls,
        },
    )


def insert_rows(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk-load `units` rows that are known to be new (benchmarks build large databases this way), with totals."""
    connection.execute(insert(units), list(rows))
    add_units(connection, rows, (), {})
