"""The SQLAlchemy side of the `sql` storage, imported on first use so that loading the plugin stays cheap."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, exc, insert, make_url, select, update

from fleetbench.errors import StorageError
from fleetbench.interfaces import NamingPolicy
from fleetbench.secrets import redact_text
from fleetbench.types import CallRecord, ClaimInfo, MetricSpec, ReportFilter, RunRecord, Unit, UnitResult, UnitScope

from . import claims, fencing, queries, summaries
from . import migrate as migrations
from .engine import build_engine, dialect_insert, display_url, write_transaction
from .filters import unit_conditions
from .options import SqlOptions
from .rows import decode_transcript, run_row, scope_rows
from .schema import runs, scopes, units
from .writes import ConflictingWrite, batch_committed, prepare_batch, write_prepared

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""

URL_HINT = "(set storage.url, or FLEETBENCH_DATABASE_URL with storage=postgres)"
"""Where a server database's URL comes from, added to a failure to reach it."""

LOCK_NOT_AVAILABLE = "55P03"
"""PostgreSQL's SQLSTATE for a lock wait that `lock_timeout` ended."""
DEADLOCK_DETECTED = "40P01"
"""PostgreSQL's SQLSTATE for a transaction it ended to break a deadlock."""
DEADLOCK_RETRIES = 5
"""Times a transaction the server chose to end to break a deadlock is run again before the failure is raised."""
RECONNECTS = 3
"""Times a transaction whose connection was lost is run again on a new one before the failure is raised: a worker
stopped twice inside one write (its session ended each time, by the idle timeout or fencing) failed its run when
only one was allowed; a server that stays away fails the write after these few."""

STREAM_CHUNK = 10_000
"""Rows fetched per round trip when streaming keys or exports (a server-side cursor on PostgreSQL)."""


class SqlDatabase:
    """One engine per process plus the naming policy; every public method is one storage operation."""

    def __init__(self, options: SqlOptions, naming: NamingPolicy) -> None:
        self._options = options
        self._naming = naming
        self._where = display_url(options)
        self._engines: dict[bool, Engine] = {}  # by `writable`; a reader opens SQLite read-only
        self._pid = os.getpid()
        self._schema_checked = False
        self._names: dict[str, str] = {}
        self._slots: dict[str, dict[str, int]] = {}  # metric slots of `unit_totals` per suite (never reassigned)
        self._experiments: dict[str, str | None] = {}  # run id → experiment preset, for the units it writes

    @property
    def dialect(self) -> str:
        return "sqlite" if self._options.backend == "sqlite" else "postgresql"

    def canonical(self, spelling: str) -> str:
        """The base model a spelling resolves to (cached: the pipeline writes the same few names millions of times)."""
        name = self._names.get(spelling)
        if name is None:
            name = self._names[spelling] = self._naming.base_name(spelling)
        return name

    def engine(self, writable: bool = True) -> Engine:
        """The engine for writing, or for reading only (the writing engine once it exists: one pool per process).

        Made safe to use in a forked child, which must not share its parent's connections.
        """
        if os.getpid() != self._pid:
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._pid = os.getpid()
        # One pool where possible: readers use the writing engine once it exists; PostgreSQL has only that one.
        writable = writable or True in self._engines or self.dialect != "sqlite"
        if writable not in self._engines:
            self._engines[writable] = build_engine(self._options, read_only=not writable)
        return self._engines[writable]

    def ready(self, writable: bool = True) -> Engine:
        """An engine, after checking once that the database exists and is at our schema revision.

        Reading operations pass `writable=False`, so a process that only reads opens SQLite read-only.
        """
        if not self._schema_checked:
            self._check_sqlite_path(writable=False)
        engine = self.engine(writable)
        if not self._schema_checked:
            try:
                found = self._retried("reading the schema version", engine, migrations.stored_revision)
            except StorageError as error:
                # A server cut off mid-read is not a wrong URL: only a database never reached is hinted at.
                if isinstance(error.__cause__, exc.DBAPIError) and error.__cause__.connection_invalidated:
                    raise
                raise self._with_url_hint(error) from error.__cause__
            migrations.check_revision(found, self._where)
            self._schema_checked = True
        return engine

    def _with_url_hint(self, error: StorageError) -> StorageError:
        """`error`, naming where the URL comes from when the server could not be reached or has no such database:
        the postgres preset reads it from the environment."""
        if self.dialect == "sqlite" or not isinstance(error.__cause__, exc.OperationalError):
            return error
        return StorageError(f"{error} {URL_HINT}")

    def _check_sqlite_path(self, writable: bool) -> None:
        """Refuse, before SQLite creates or touches anything, a path it could not use as asked.

        A reader must not create an empty file at a mistyped path; a writer must not leave journal files beside a
        read-only database it then cannot write.
        """
        path = Path(make_url(self._options.url).database or "") if self.dialect == "sqlite" else None
        if path is None:
            return
        folder = path.parent
        if path.is_dir():
            raise StorageError(f"{self._where}: {path} is a directory, not a database file")
        if path.exists() and not path.is_file():  # SQLite said only "disk I/O error", after creating files beside it
            raise StorageError(f"{self._where}: {path} is not a regular file (a FIFO or a device), not a database file")
        if not path.exists() and not writable:
            raise StorageError(f"no database at {path} (storage.url); `fleetbench run` creates it")
        if writable and not folder.is_dir():
            raise StorageError(f"{self._where}: cannot create {path}: directory {folder} does not exist")
        if writable and not (os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))):
            raise StorageError(
                f"{self._where}: {path} is read-only here (SQLite writes the file and its journal files beside it)"
            )

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn driver errors into one `StorageError` naming the action and the database."""
        try:
            yield
        except exc.DBAPIError as error:
            detail = _first_line(error)
            if self.dialect == "sqlite" and detail == "database is locked":
                # No process can take SQLite's write lock from one that stands still holding it.
                detail += (
                    f": another process held its write lock for longer than storage.busy_timeout_s "
                    f"({self._options.busy_timeout_s:g} s); a fleetbench run stopped (Ctrl-Z, SIGSTOP) in the middle "
                    "of a write holds it until it is continued (fg, kill -CONT)"
                )
            raise StorageError(f"{action} in {self._where} failed: {detail}") from error
        except ConflictingWrite as error:
            raise StorageError(f"{action} in {self._where} failed: {error}") from error

    def preflight(self) -> None:
        if self.dialect == "sqlite":
            self._check_sqlite_path(writable=True)
            path = Path(make_url(self._options.url).database or "")
            if path.exists() and path.stat().st_size:
                with path.open("rb") as file:
                    if file.read(16) != SQLITE_HEADER:
                        raise StorageError(f"{self._where}: {path} is not a SQLite database")
            return
        try:
            with self.errors("connecting"), self.engine().connect():
                pass
        except StorageError as error:  # name where the URL comes from: the postgres preset reads the environment
            raise StorageError(f"{error} {URL_HINT}") from None

    def migrate(self) -> list[str]:
        self._check_sqlite_path(writable=True)
        with self.errors("migrating the schema"):
            notices = migrations.upgrade(self.engine())
        self._schema_checked = True
        return notices

    def begin_run(self, run: RunRecord) -> None:
        engine = self.ready()
        try:
            with self.errors(f"recording run {run.run_id!r}"), write_transaction(engine) as connection:
                connection.execute(insert(runs), run_row(run, self.canonical))
                self._experiments[run.run_id] = run.experiment
                if run.scopes:
                    statement = dialect_insert(connection, scopes).on_conflict_do_nothing(index_elements=["scope"])
                    connection.execute(statement, scope_rows(run))
        except StorageError as error:
            if isinstance(error.__cause__, exc.IntegrityError):
                raise StorageError(f"run {run.run_id!r} is already recorded; run ids must be unique") from error
            raise

    def _written(
        self,
        action: str,
        body: Callable[[Connection], T],
        engine: Engine | None = None,
        *,
        committed: Callable[[Connection], bool] | None = None,
        rolled_back: Callable[[], None] | None = None,
        idempotent: bool = False,
    ) -> T:
        """`body` run in one write transaction (`action` names it in errors), run again where that is safe.

        - **A lost connection**, before the transaction's end: run again on a new connection (`RECONNECTS` times at
          most in one call). PostgreSQL ends a
          session left idle inside a transaction for `storage.idle_transaction_timeout_s`, so that a worker stopped
          in the middle of one (SIGSTOP, Ctrl-Z) does not hold its row locks, and with them every other worker,
          until it is continued; continued, it finds its connection gone, and the transaction, rolled back, is run
          again. A connection lost at the commit itself is not retried: the commit may have gone through, and call
          rows are appended, not upserted (an attacker's proxy cutting commit replies stored 19 calls twice), unless
          `committed` is given: it asks a new connection whether the transaction's rows are there, and the
          transaction is run again only if they are not (a worker stopped between its last statement and its
          commit, whose session the server ended meanwhile, failed its run when continued), or the transaction is
          `idempotent` (claims, renewals, heartbeats, a run's end): run again whatever the commit did.
        - `rolled_back` is called whenever a run of `body` fails, before it is run again or the failure is raised:
          caches `body` filled must not outlive a transaction that may not have committed.
        - **A deadlock** (PostgreSQL ended this transaction to break a cycle of lock waits): run again, up to
          `DEADLOCK_RETRIES` times.
        - **A lock waited for longer than `fencing.WAIT_S`** (PostgreSQL): the sessions of workers standing still
          are ended (`fencing.end_stalled_sessions`), and the transaction is run again, for as long as it takes.
        """
        engine = engine or self.ready()
        postgres = engine.dialect.name == "postgresql"
        with self.errors(action):
            reconnects = 0
            deadlocks = 0
            while True:
                ran = False
                try:
                    with write_transaction(engine) as connection:
                        if postgres:
                            fencing.bound_lock_waits(connection)
                        done = body(connection)
                        ran = True
                    return done
                except BaseException as error:
                    if rolled_back is not None:
                        rolled_back()  # a needless reload when the commit turns out to have gone through
                    if not isinstance(error, exc.DBAPIError):
                        raise
                    lost = error.connection_invalidated and reconnects < RECONNECTS
                    if ran and lost and (committed is not None or idempotent):
                        reconnects += 1
                        detail = redact_text(_first_line(error))
                        went_through = False
                        if committed is not None:
                            with engine.connect() as checking:
                                went_through = committed(checking)
                        if went_through:
                            log.warning("%s: the database connection was lost at the commit (%s), which went "
                                        "through", action, detail)  # fmt: skip
                            return done
                        outcome = AGAIN_IDEMPOTENT if idempotent else AGAIN_NOT_COMMITTED
                        log.warning(
                            "%s: the database connection was lost at the commit (%s)%s", action, detail, outcome
                        )
                        continue
                    if ran:
                        raise
                    sqlstate = getattr(error.orig, "sqlstate", None) if postgres else None
                    if sqlstate == LOCK_NOT_AVAILABLE:
                        with engine.connect() as fencer:
                            fencing.end_stalled_sessions(fencer.execution_options(isolation_level="AUTOCOMMIT"))
                        continue
                    if sqlstate == DEADLOCK_DETECTED and deadlocks < DEADLOCK_RETRIES:
                        # The server rolled the whole transaction back to break a cycle of lock waits (a claim
                        # meeting another worker's renewal or release): running it again is what it asks for.
                        deadlocks += 1
                        log.warning("%s: %s; running the transaction again", action, redact_text(_first_line(error)))
                        continue
                    if reconnects >= RECONNECTS or not error.connection_invalidated:
                        raise
                    reconnects += 1
                    log.warning("%s: the database connection was lost (%s); trying again on a new one", action,
                                redact_text(_first_line(error)))  # fmt: skip

    def finish_run(self, run_id: str, status: str, finished_at: float, executed: int) -> None:
        values = {"status": status, "finished_at": finished_at, "executed_units": executed}

        def finish(connection: Connection) -> int:
            updated = connection.execute(update(runs).where(runs.c.run_id == run_id).values(values)).rowcount
            claims.expire_run(connection, run_id, finished_at)
            return int(updated)

        updated = self._written(f"finishing run {run_id!r}", finish, idempotent=True)
        if updated != 1:
            raise StorageError(f"run {run_id!r} was never begun (begin_run) in {self._where}")

    def runs(self) -> list[dict[str, Any]]:
        return self._read(
            "listing runs",
            lambda connection: [queries.run_listing_row(r._mapping) for r in connection.execute(queries.run_listing())],
        )

    def write(self, results: Sequence[UnitResult], calls: Sequence[CallRecord]) -> int:
        if not results and not calls:
            return 0
        engine = self.ready()
        try:
            with self.errors(f"writing {len(results)} units"):
                if {result.run_id for result in results} <= self._experiments.keys():
                    # Every batch of a run names the same run: a connection checked out (and rolled back on its
                    # return to the pool) only to find the cache full cost a tenth of a write's CPU.
                    batch = prepare_batch(results, calls, self.canonical, self._experiments.__getitem__)
                else:
                    with engine.connect() as reading:  # the runs' experiments, read before the write lock is taken
                        batch = prepare_batch(results, calls, self.canonical, self._experiment_of(reading))
            return self._written(
                f"writing {len(results)} units",
                lambda connection: write_prepared(connection, batch, self._slots),
                engine,
                committed=lambda connection: batch_committed(connection, batch),
                rolled_back=self._slots.clear,  # a slot assigned in a transaction that did not commit is not kept
            )
        except StorageError as error:
            if isinstance(error.__cause__, exc.IntegrityError):
                self._explain_unknown_runs(results, calls, error)
            raise

    def _experiment_of(self, connection: Any) -> Any:
        """run id → its experiment preset (runs begun by another process are looked up once)."""

        def experiment(run_id: str) -> str | None:
            if run_id not in self._experiments:
                query = select(runs.c.experiment).where(runs.c.run_id == run_id)
                self._experiments[run_id] = connection.execute(query).scalar()
            return self._experiments[run_id]

        return experiment

    def _explain_unknown_runs(
        self, results: Sequence[UnitResult], calls: Sequence[CallRecord], error: StorageError
    ) -> None:
        """Re-raise a foreign-key failure as what it almost always is: results of a run never begun."""
        named = {r.run_id for r in results} | {c.run_id for c in calls}
        with self.errors("looking up runs"), self.engine(writable=False).connect() as connection:
            known = set(connection.execute(select(runs.c.run_id).where(runs.c.run_id.in_(named))).scalars())
        if named - known:
            missing = ", ".join(sorted(named - known))
            raise StorageError(f"results name runs that begin_run() never recorded: {missing}") from error

    def heartbeat(self, run_id: str, at: float) -> None:
        statement = update(runs).where(runs.c.run_id == run_id).values(heartbeat_at=at)
        self._written(
            f"recording a heartbeat of run {run_id!r}",
            lambda connection: connection.execute(statement),
            idempotent=True,
        )

    def claim(self, run_id: str, batch: Sequence[Unit], now: float, expires_at: float) -> set[str]:
        return self._written(
            f"claiming {len(batch)} units",
            lambda connection: claims.claim(connection, run_id, batch, now, expires_at, self.canonical),
            idempotent=True,  # a run's own live claims are claimed again
        )

    def renew_claims(self, run_id: str, expires_at: float) -> int:
        return self._written(
            f"renewing the claims of run {run_id!r}",
            lambda connection: claims.renew(connection, run_id, expires_at),
            idempotent=True,
        )

    def open_claims(self, scope: UnitScope, seed: int) -> list[ClaimInfo]:
        return self._read("reading claims", lambda connection: claims.open_claims(connection, scope, seed))

    def live_runs(self, plan: str, fresh_after: float) -> list[str]:
        return self._read("counting live runs", lambda connection: claims.live_runs(connection, plan, fresh_after))

    def recent_calls(self, since: float) -> list[dict[str, Any]]:
        return self._read("reading recent calls", lambda connection: claims.recent_calls(connection, since))

    def stored_among(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        statement, parameters = queries.completed_among(), {"keys": list(keys)}
        return self._read(
            "looking up stored units",
            lambda connection: set(connection.execute(statement, parameters).scalars()),
            writable=True,
        )

    def completed_per_cell(self, scope: UnitScope, seed: int, instances: int) -> dict[str, int]:
        statement = queries.completed_per_cell(scope, seed, instances)
        return self._read(
            "counting stored units",
            lambda connection: {str(cell): int(count) for cell, count in connection.execute(statement)},
            writable=True,
        )

    def completed_per_cell_and_deployment(
        self, scope: UnitScope, seed: int, instances: int
    ) -> dict[tuple[str, str], int]:
        statement = queries.completed_per_cell(scope, seed, instances, by=units.c.deployment)
        return self._read(
            "counting stored units",
            lambda connection: {(str(c), str(d)): int(n) for c, d, n in connection.execute(statement)},
        )

    def aggregate(
        self, group_by: Sequence[str], flt: ReportFilter, metrics: Sequence[MetricSpec]
    ) -> list[dict[str, Any]]:
        return self._read(
            "aggregating units",
            lambda connection: summaries.aggregate(connection, group_by, flt, metrics, self.canonical),
        )

    def deployment_shares(self, flt: ReportFilter) -> list[dict[str, Any]]:
        def shares(connection: Connection) -> list[dict[str, Any]]:
            finished = summaries.aggregate(connection, ["base_model", "deployment"], flt, (), self.canonical)
            return queries.deployment_shares(finished, summaries.call_counts(connection, flt, self.canonical))

        return self._read("counting deployment shares", shares)

    def group_calls(self, group_by: Sequence[str], flt: ReportFilter) -> dict[tuple[tuple[Any, ...], str], int] | None:
        return self._read(
            "counting calls per group",
            lambda connection: summaries.group_call_counts(connection, flt, self.canonical, group_by),
        )

    def scope_descriptions(self, digests: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        query = select(scopes.c.scope, scopes.c.description).where(scopes.c.scope.in_(sorted(set(digests))))
        return self._read(
            "reading scopes", lambda connection: {str(scope): text for scope, text in connection.execute(query)}
        )

    def suites(self) -> dict[str, int]:
        return self._read(
            "counting units per suite",
            lambda connection: {str(suite): int(n) for suite, n in connection.execute(queries.units_per_suite())},
        )

    def transcripts(self, key_prefix: str, limit: int) -> list[tuple[str, str, Mapping[str, Any]]]:
        statement = queries.transcript_rows(key_prefix, limit)
        rows = self._read("reading transcripts", lambda connection: connection.execute(statement).all())
        return [(key, suite, decode_transcript(encoding, data)) for key, suite, encoding, data in rows]

    def export_rows(self, flt: ReportFilter) -> Iterable[dict[str, Any]]:
        statement = queries.export_rows(unit_conditions(flt, self.canonical, self.dialect))
        for chunk in self._stream(statement, "exporting units"):
            yield from (queries.flat_row(row._mapping) for row in chunk)

    def export_calls(self, flt: ReportFilter) -> Iterable[dict[str, Any]]:
        statement = queries.export_calls(queries.call_conditions(flt, self.canonical, self.dialect))
        for chunk in self._stream(statement, "exporting calls"):
            yield from (dict(row._mapping) for row in chunk)

    def export_transcripts(self, flt: ReportFilter) -> Iterable[tuple[dict[str, Any], Mapping[str, Any]]]:
        statement = queries.export_transcripts(unit_conditions(flt, self.canonical, self.dialect))
        for chunk in self._stream(statement, "exporting transcripts"):
            for row in chunk:
                mapping = dict(row._mapping)
                encoding, data = mapping.pop("transcript_encoding"), mapping.pop("transcript_data")
                yield queries.flat_row(mapping), decode_transcript(encoding, data)

    def _read(self, action: str, body: Callable[[Connection], T], *, writable: bool = False) -> T:
        """`body` run on a pooled connection, and once more on a new one when the connection was lost meanwhile (a
        server restarted, a session terminated): a read changes nothing, so running it again is always safe.
        `writable` reads through the engine the writes use (a worker's look-ups, which must see its own writes)."""
        return self._retried(action, self.ready(writable=writable), body)

    def _retried(self, action: str, engine: Engine, body: Callable[[Connection], T]) -> T:
        """`body` on a connection of `engine`, once more on a new one when the connection was lost meanwhile."""
        with self.errors(action):
            try:
                with engine.connect() as connection:
                    return body(connection)
            except exc.DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                log.warning("%s: the database connection was lost (%s); trying again on a new one", action,
                            redact_text(_first_line(error)))  # fmt: skip
            with engine.connect() as connection:
                return body(connection)

    def _stream(self, statement: Any, action: str) -> Iterator[Sequence[Any]]:
        """Rows of `statement` in chunks, fetched lazily; the connection stays open until the caller is done."""
        engine = self.ready(writable=False)
        with self.errors(action), engine.connect() as connection:
            result = connection.execution_options(yield_per=STREAM_CHUNK).execute(statement)
            yield from result.partitions()

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


AGAIN_IDEMPOTENT = "; running it again on a new one, which changes nothing if it went through"
AGAIN_NOT_COMMITTED = ", which did not go through; trying again on a new one"


def _first_line(error: exc.DBAPIError) -> str:
    """The driver's message, first line (psycopg adds context lines), or the error's type when it has none."""
    return str(error.orig).strip().splitlines()[0] if error.orig is not None else type(error).__name__
