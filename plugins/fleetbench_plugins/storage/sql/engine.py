"""Engine construction: SQLite pragmas and transaction control, the psycopg check, and write transactions."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Connection, Engine, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite

from fleetbench.errors import ConfigError
from fleetbench.secrets import redact_text

from . import fencing
from .direct import driver_execute
from .options import SqlOptions

_WRITE_LOCK = "fleetbench_write_lock"
PSYCOPG_HINT = (
    "PostgreSQL storage needs psycopg 3; install it with: pip install -c constraints.txt -e '.[postgres]' "
    "(in a fleetbench checkout) or pip install 'psycopg[binary]'"
)


def build_engine(options: SqlOptions, *, read_only: bool = False) -> Engine:
    """A new engine for `options.url`; connects to nothing until first used.

    `read_only` opens a SQLite file so that nothing can change it (`mode=ro`, and no journal-mode switch, which
    would write the header); PostgreSQL readers use the ordinary engine.
    """
    if options.backend == "postgresql":
        _require_psycopg()
        # Positional parameters: psycopg re-parses every multi-row INSERT (too long for its statement cache), and
        # splitting `%s` is much cheaper than `%(name_123)s`; measured ~1.8x more units/s at batches of 512.
        engine = create_engine(options.url, echo=options.echo, pool_pre_ping=True, paramstyle="format")
        _configure_postgres(engine, options.idle_transaction_timeout_s)
        return engine
    url = _read_only_url(make_url(options.url)) if read_only else options.url
    engine = create_engine(url, echo=options.echo)
    _configure_sqlite(engine, options.busy_timeout_s, read_only)
    return engine


def _read_only_url(url: URL) -> URL:
    """A SQLite URI that opens the file read-only.

    A WAL database is read through a `-shm` index that SQLite creates beside the file. Where this process may not
    write the file or its directory, it could not create that index (or would leave it behind), and when no `-wal`
    file exists no connection is open on the database: then the file is read as immutable, without the index.
    """
    path = Path(url.database or "")
    query = {"mode": "ro", "uri": "true"}
    writable = os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)
    if not writable and not path.with_name(path.name + "-wal").exists():
        query["immutable"] = "1"
    return url.set(database=f"file:{quote(str(path))}", query=query)


def _require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401 - imported only to prove it is installed
    except ImportError:
        raise ConfigError(PSYCOPG_HINT) from None


def _configure_postgres(engine: Engine, idle_transaction_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SET, not the `options` startup parameter, which connection poolers such as PgBouncer refuse.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {int(idle_transaction_timeout_s * 1000)}")
            # Names this process, so that a worker whose writes it holds up can tell it stands still (`fencing`).
            cursor.execute("SELECT set_config('application_name', %s, false)", [fencing.application_name()])
        dbapi_connection.commit()


def _configure_sqlite(engine: Engine, busy_timeout_s: float, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module: it would not BEGIN before DDL (so migrations
        # would not be atomic) and cannot BEGIN IMMEDIATE. `_on_begin` emits BEGIN instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: the journal-mode switch itself may have to wait for another process.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if not read_only:
                _enter_wal(cursor, busy_timeout_s)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A writer takes the write lock up front (IMMEDIATE): a deferred transaction that reads and then writes can
        # fail with SQLITE_BUSY without waiting when another process committed in between.
        immediate = connection.get_execution_options().get(_WRITE_LOCK, False)
        driver_execute(connection, "BEGIN IMMEDIATE" if immediate else "BEGIN", ())


def _enter_wal(cursor: Any, busy_timeout_s: float) -> None:
    """Switch to WAL, retrying while another process holds the lock, until the busy timeout.

    Switching a new database into WAL needs an exclusive lock for which SQLite does not call its busy handler, so
    processes starting on the same new file at once would otherwise fail at once with "database is locked".
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction that holds the write lock from its start (SQLite); commits on exit."""
    with _in_process_writers(engine), engine.connect() as connection:
        connection.execution_options(**{_WRITE_LOCK: True})
        with connection.begin():
            yield connection


class _SqliteWriters:
    """The writers of one SQLite file: a lock for this process's threads, then one across processes.

    SQLite has one writer at a time, and a writer that finds the lock taken polls it, sleeping 1, 2, 5, 10 ... up
    to 100 ms between tries: the run's event loop, claiming units while the result writer's thread commits,
    stalled for 1.2 s of a 10.5 s run of 1,500 calls (226 ms at worst) behind transactions of 2 to 20 ms. Writers
    queue here instead, and take over the moment the last one commits: the threads of one process on a lock, the
    processes on an `flock` of a file beside the database (`<database>-writers`), which the next waiter, polling
    every millisecond, takes within a millisecond of the commit (see `_wait_for` for why it polls). Only a hint
    for speed: SQLite's own lock still decides, so a lost or replaced side file costs waiting, never correctness.
    """

    def __init__(self, side_file: str | None) -> None:
        self._threads = threading.RLock()
        self._side_file = side_file
        self._descriptor: int | None = None
        self._depth = 0
        self._skip_until = 0.0

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1:
            try:
                self._descriptor = self._lock_processes()
            except BaseException:
                self._depth -= 1
                self._threads.release()
                raise

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._descriptor is not None:
                # Closing the descriptor drops its lock; opened per transaction, so no descriptor stays open.
                descriptor, self._descriptor = self._descriptor, None
                os.close(descriptor)
        finally:
            self._threads.release()

    def close_in_child(self) -> None:
        """Close the descriptor a forked child inherited (the child never uses this object again)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def _lock_processes(self) -> int | None:
        """The side file's descriptor, locked; None when it is not to be used now (see `SIDE_FILE_WAIT_S`)."""
        if self._side_file is None or time.monotonic() < self._skip_until:
            return None
        try:
            # Non-blocking: opening a FIFO put there for reading would wait for a writer for ever.
            descriptor = os.open(self._side_file, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o666)
        except OSError:
            return None  # a directory this process may not create files in: SQLite's own lock orders the writers
        locked = False
        try:
            if stat.S_ISREG(os.fstat(descriptor).st_mode):  # a FIFO or a device in its place is not ours to lock
                locked = self._wait_for(descriptor)
        finally:
            if not locked:
                os.close(descriptor)
        return descriptor if locked else None

    def _wait_for(self, descriptor: int) -> bool:
        """Take the side file's lock, polling every `SIDE_FILE_POLL_S`, for at most `SIDE_FILE_WAIT_S`.

        Bounded, because a holder can stop without dying (SIGSTOP, a debugger, `flock FILE sleep`): waiting in the
        kernel made every other process hang past its busy timeout, deaf to Ctrl-C and to its deadline. After a wait
        that timed out this process leaves the side file alone for `SIDE_FILE_RETRY_S` and meets SQLite's own lock,
        whose busy timeout (`storage.busy_timeout_s`) then bounds the wait as it did before the side file."""
        deadline = time.monotonic() + SIDE_FILE_WAIT_S
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._skip_until = time.monotonic() + SIDE_FILE_RETRY_S
                    return False
                time.sleep(SIDE_FILE_POLL_S)


SIDE_FILE_WAIT_S = 2.0
"""The longest a writer waits for the side file's lock (transactions hold it for milliseconds)."""
SIDE_FILE_RETRY_S = 60.0
"""How long a process leaves the side file alone after a wait for it timed out."""
SIDE_FILE_POLL_S = 0.001
"""Between tries for the side file's lock: the next writer takes over at most this long after a commit."""


_SQLITE_WRITERS: dict[str, _SqliteWriters] = {}
_WRITERS_OF_ENGINE: weakref.WeakKeyDictionary[Engine, _SqliteWriters] = weakref.WeakKeyDictionary()
"""The writers of each engine's file, as `_in_process_writers` found them (an engine's URL never changes)."""
_SQLITE_WRITERS_GUARD = threading.Lock()


def _forget_writers_in_child() -> None:
    """A forked child starts with new locks: one that another thread held at the fork is never released there, and
    a side file's descriptor that the child kept open would hold the parent's `flock` for as long as the child
    lives."""
    global _SQLITE_WRITERS_GUARD
    _SQLITE_WRITERS_GUARD = threading.Lock()
    for writers in _SQLITE_WRITERS.values():
        writers.close_in_child()
    _SQLITE_WRITERS.clear()
    _WRITERS_OF_ENGINE.clear()


os.register_at_fork(after_in_child=_forget_writers_in_child)


def _in_process_writers(engine: Engine) -> AbstractContextManager[object]:
    """The queue of writers to `engine`'s SQLite file (a no-op for PostgreSQL's row locks); see `_SqliteWriters`."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    known = _WRITERS_OF_ENGINE.get(engine)
    if known is not None:  # every transaction asks: resolving the path took a system call per directory each time
        return known
    database = engine.url.database or ""
    on_disk = bool(database) and database != ":memory:" and not database.startswith("file:")
    key = os.path.realpath(database) if on_disk else f"engine:{id(engine)}"
    with _SQLITE_WRITERS_GUARD:
        writers = _SQLITE_WRITERS.get(key)
        if writers is None:
            writers = _SQLITE_WRITERS[key] = _SqliteWriters(f"{key}-writers" if on_disk else None)
        _WRITERS_OF_ENGINE[engine] = writers
        return writers


def display_url(options: SqlOptions) -> str:
    """The configured URL with its password and secret query parameters hidden, for messages."""
    return redact_text(make_url(options.url).render_as_string(hide_password=True))


def dialect_insert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT construct, which knows ON CONFLICT (both back ends spell it the same way)."""
    return insert_for(connection.dialect.name, table)


def insert_for(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """`dialect_insert` by dialect name, for statements built once per dialect and cached (see `writes.py`)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
