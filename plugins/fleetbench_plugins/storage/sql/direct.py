"""Write statements compiled once per dialect and handed to the driver as they are.

SQLAlchemy Core spends tens of microseconds executing even a cached construct, and more per row of an executemany
(parameter construction and processing for every column). A write batch runs about ten statements, and at the rate
a real API answers a batch holds one or two units, so this overhead was most of the storage thread's CPU per call.
Here SQLAlchemy still compiles each statement (once, cached) and supplies its columns' bind processors (JSON
serialisation), and its transaction still brackets the statements; what it would add per execution is skipped:

- SQLite: the statement runs on the sqlite3 connection itself, and a driver error is wrapped as SQLAlchemy would
  wrap it (`DBAPIError.instance`), so callers see the same errors (a locked database, an integrity error).
- PostgreSQL: through `Connection.exec_driver_sql`, which keeps SQLAlchemy's detection of a lost connection (the
  `connection_invalidated` the write path's retries rely on) and skips compilation and parameter processing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import ClauseElement

__all__ = ["DriverInsert", "KeyedStatement", "driver_execute", "driver_insert", "keyed_statement"]

_COMPILED: dict[tuple[str, str, str, tuple[str, ...]], DriverInsert] = {}
_KEYED: dict[tuple[str, str, str], KeyedStatement] = {}
_CACHED_COUNTS = 256
"""Key counts up to which a keyed statement's expanded SQL is kept (a write batch's keys; larger lists expand anew)."""
KEYS_PER_STATEMENT = 30_000
"""Keys bound in one statement at most; more are sent in parts. PostgreSQL takes at most 65,535 parameters in a
statement and SQLite 32,766 unless built otherwise, and `scheduler.write_batch` allows batches of 100,000 units."""


@dataclass(frozen=True)
class DriverInsert:
    """An INSERT (ON CONFLICT ... included) of rows given as mappings by column name, without RETURNING."""

    sql: str
    names: tuple[str, ...]
    """The bound columns, in the order a positional driver takes them."""
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool
    constants: Mapping[str, Any]
    """The values of the statement's own parameters (`outcome = 'infra_error'` in an ON CONFLICT ... WHERE)."""

    @classmethod
    def compile(cls, statement: Insert, dialect: Dialect, columns: Sequence[str]) -> DriverInsert:
        """`statement` compiled for rows holding exactly `columns` (compiled as for many rows: no RETURNING)."""
        compiled = statement.compile(dialect=dialect, column_keys=list(columns), for_executemany=True)
        names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(compiled.binds)
        constants = {
            name: value
            for name, value in compiled.construct_params(dict.fromkeys(columns)).items()
            if name not in columns
        }
        if not set(columns) <= set(names) or not set(names) - set(columns) <= constants.keys():
            raise ValueError(f"statement binds {sorted(names)}, rows hold {sorted(columns)}")
        processors = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
        return cls(compiled.string, names, processors, dialect.positional, constants)

    def run(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> int | None:
        """Insert `rows` in the caller's transaction (one driver call: executemany for more than one row); the rows
        it inserted or updated, where the driver counts them (None where it cannot)."""
        if not rows:
            return 0
        parameters = [self._parameters(row) for row in rows]
        many = len(parameters) > 1
        changed, _ = driver_execute(connection, self.sql, parameters if many else parameters[0], many=many)
        dialect = connection.dialect
        countable = dialect.supports_sane_multi_rowcount if many else dialect.supports_sane_rowcount
        return changed if countable and changed >= 0 else None

    def _parameters(self, row: Mapping[str, Any]) -> Any:
        if self.constants:
            row = {**self.constants, **row}
        values = [
            row[name] if process is None else process(row[name])  # as SQLAlchemy does, None included
            for name, process in zip(self.names, self.processors, strict=True)
        ]
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))


def driver_insert(name: str, build: Callable[[str], Insert], dialect: Dialect, columns: Sequence[str]) -> DriverInsert:
    """The statement `build(dialect name)` compiled for `dialect` and rows of `columns`, compiled once per driver
    (`name` tells the caller's statements apart)."""
    key = (name, dialect.name, dialect.driver, tuple(columns))
    found = _COMPILED.get(key)
    if found is None:
        # Two threads compiling the same statement at once store equal values: no lock needed.
        found = _COMPILED[key] = DriverInsert.compile(build(dialect.name), dialect, columns)
    return found


class KeyedStatement:
    """A statement whose one list parameter is the unit keys bound as `keys` (an expanding IN), its SQL expanded
    once per number of keys. Its other parameters are fixed in the statement. Rows come back as the driver gives
    them (no result processing: use it for columns of plain strings and numbers)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"{statement!r} does not compile to SQL")
        self._compiled = compiled
        bound = compiled.construct_params({"keys": [""]})
        self._fixed = {name: value for name, value in bound.items() if name != "keys"}
        self._positional = dialect.positional
        self._by_count: dict[int, tuple[str, tuple[str, ...]]] = {}

    def execute(self, connection: Connection, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """Run with `keys` bound (at least one) in the caller's transaction; the rows it returns (none for DML).

        More than `KEYS_PER_STATEMENT` keys run as several statements, whose rows are joined (the statement must
        treat each key on its own, as a look-up or a delete by key does)."""
        if not keys:
            raise ValueError("a keyed statement needs at least one key")
        if len(keys) > KEYS_PER_STATEMENT:
            parts = range(0, len(keys), KEYS_PER_STATEMENT)
            return [row for i in parts for row in self.execute(connection, keys[i : i + KEYS_PER_STATEMENT])]
        sql, names = self._expanded(len(keys))
        values = {**self._fixed, **{f"keys_{i}": key for i, key in enumerate(keys, 1)}}
        parameters = tuple(values[name] for name in names) if self._positional else {n: values[n] for n in names}
        return driver_execute(connection, sql, parameters)[1]

    def _expanded(self, count: int) -> tuple[str, tuple[str, ...]]:
        found = self._by_count.get(count)
        if found is None:
            state = self._compiled.construct_expanded_state({"keys": [""] * count})
            names = tuple(state.positiontup) if state.positiontup is not None else tuple(state.parameters)
            if set(names) != {*self._fixed, *(f"keys_{i}" for i in range(1, count + 1))}:
                raise ValueError(f"unexpected parameters {sorted(names)} in {state.statement!r}")
            found = (state.statement, names)
            if count <= _CACHED_COUNTS:
                self._by_count[count] = found
        return found


def keyed_statement(name: str, build: Callable[[], ClauseElement], dialect: Dialect) -> KeyedStatement:
    """`build()` as a `KeyedStatement` for `dialect`, made once per driver (`name` tells the caller's apart)."""
    key = (name, dialect.name, dialect.driver)
    found = _KEYED.get(key)
    if found is None:
        found = _KEYED[key] = KeyedStatement(build(), dialect)
    return found


def driver_execute(connection: Connection, sql: str, parameters: Any, *, many: bool = False) -> tuple[int, list[Any]]:
    """Run `sql` (in the driver's parameter style) in the caller's transaction: the rows it changed as the driver
    counts them, and the rows it returned (empty for a statement that returns none)."""
    if connection.dialect.name != "sqlite":
        result = connection.exec_driver_sql(sql, parameters)
        return result.rowcount, [tuple(row) for row in result] if result.returns_rows else []
    driver = connection.connection.driver_connection
    if driver is None:
        raise exc.InvalidRequestError("the connection is closed")
    try:
        cursor = driver.executemany(sql, parameters) if many else driver.execute(sql, parameters)
        return cursor.rowcount, cursor.fetchall() if cursor.description else []
    except sqlite3.Error as error:
        # As SQLAlchemy wraps it (OperationalError for a locked database, IntegrityError ...), parameters left out.
        raise exc.DBAPIError.instance(sql, parameters, error, sqlite3.Error, hide_parameters=True) from error
