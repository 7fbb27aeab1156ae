"""Four processes migrate and write overlapping units to one database at once: every key is stored and counted once.

This is the failure the system we replace kept having (lost updates, double counts under parallel writers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import multiprocessing
import os
import queue
import random
import re
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, func, select, update

from fleetbench.errors import StorageError
from fleetbench.interfaces import NoOptions
from fleetbench.testing.contracts.storage import KIT_CATALOG, LATER_RUN, RUN, kit_units, ready
from fleetbench.testing.contracts.storage import result as kit_result
from fleetbench.testing.contracts.storage import run_record as kit_run
from fleetbench.testing.fakes import ExactNaming
from fleetbench.types import Outcome, ReportFilter
from fleetbench_plugins.storage.sql import SqlOptions, SqlStorage, fencing, queries
from fleetbench_plugins.storage.sql.database import SqlDatabase
from fleetbench_plugins.storage.sql.engine import build_engine, write_transaction
from fleetbench_plugins.storage.sql.schema import calls, runs, units
from fleetbench_plugins.storage.sql.totals import WRITE_LOCK_KEY
from tests.conftest import CLI, cli_env

from .builders import DEEPSEEK, SUITE, call, key, naming, result, run_record, storage

WORKERS = 4
SPAN = 250  # keys per worker; worker i writes keys [i*50, i*50+250): every key is written by one to four workers
BATCH = 25


def worker_keys(worker: int) -> list[str]:
    return [f"unit-{n:04d}" for n in range(worker * 50, worker * 50 + SPAN)]


def write_overlapping(url: str, worker: int, start: Barrier, done: Queue[tuple[int, int]]) -> None:
    """One writer process: migrate the (possibly fresh) database, then write its keys in a shuffled order.

    The last worker first writes all its units as infra errors, which the others (and its own second pass) replace.
    """
    store = storage(url, migrate=False, run=None)
    start.wait(timeout=60)
    store.migrate()
    run_id = f"run-{worker}"
    store.begin_run(run_record(run_id))
    names = worker_keys(worker)
    random.Random(worker).shuffle(names)
    passes = [Outcome.INFRA_ERROR, Outcome.SUCCESS] if worker == WORKERS - 1 else [Outcome.SUCCESS]
    counted = written_calls = 0
    for outcome in passes:
        for first in range(0, len(names), BATCH):
            batch = names[first : first + BATCH]
            results = [result(n, outcome, run_id=run_id, deployment=f"{DEEPSEEK}-2") for n in batch]
            counted += store.write(results, [call(n, f"{DEEPSEEK}-2", run_id=run_id) for n in batch])
            written_calls += len(batch)
    store.close()
    done.put((counted, written_calls))


def run_writers(url: str) -> tuple[int, int]:
    """Start the writers together; the sum of what their writes returned, and how many calls they sent."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WORKERS)
    done: Queue[tuple[int, int]] = context.Queue()
    processes = [
        context.Process(target=write_overlapping, args=(url, worker, start, done)) for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    reports: list[tuple[int, int]] = []
    deadline = time.monotonic() + 180
    while len(reports) < WORKERS:
        # Fail as soon as a writer dies (a deadlock or lock timeout raises in it) instead of waiting out the deadline.
        crashed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
        assert not crashed and time.monotonic() < deadline, f"writer exit codes {[p.exitcode for p in processes]}"
        with contextlib.suppress(queue.Empty):
            reports.append(done.get(timeout=0.5))
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return sum(r[0] for r in reports), sum(r[1] for r in reports)


def test_concurrent_writers_store_and_count_each_key_once(database_url: str) -> None:
    counted, sent_calls = run_writers(database_url)
    distinct = {name for worker in range(WORKERS) for name in worker_keys(worker)}
    assert counted == len(distinct) == 400

    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(units)).scalar_one() == len(distinct)
        outcomes = connection.execute(select(units.c.outcome, func.count()).group_by(units.c.outcome)).all()
        assert outcomes == [("success", len(distinct))]
        assert connection.execute(select(func.count()).select_from(calls)).scalar_one() == sent_calls
    engine.dispose()

    store = storage(database_url, run=None)
    keys = [result(n).key for n in distinct]
    assert store.stored_among(keys) == set(keys)
    # The running totals the writers kept agree with the units: every infra error they replaced was subtracted.
    (row,) = store.aggregate(["base_model"], ReportFilter(SUITE))
    assert (row["total"], row["success"], row["infra_error"], row["timeout"]) == (len(distinct), len(distinct), 0, 0)
    assert sum(share["calls"] for share in store.deployment_shares(ReportFilter(SUITE))) == sent_calls
    store.close()


def test_writers_of_one_process_take_turns_without_sqlite_busy_waiting(sqlite_url: str) -> None:
    """Two threads of one process writing one SQLite file queue in the process: with SQLite's busy timeout at 0, a
    write that meets another thread's open transaction waits for it instead of failing with "database is locked"
    (SQLite's own waiting polls with sleeps of up to 100 ms, which stalled the run's event loop)."""
    options = SqlOptions(url=sqlite_url, busy_timeout_s=0)
    store = SqlStorage(options, naming=naming())
    store.migrate()
    store.begin_run(run_record())
    other_engine = build_engine(options)  # another engine of the process on the same file: the lock is the file's
    holding, order = threading.Event(), []

    def hold_the_write_lock() -> None:
        with write_transaction(other_engine) as connection:
            connection.execute(update(runs).values(heartbeat_at=1.0))
            holding.set()
            time.sleep(0.3)
            order.append("first committed")

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert holding.wait(10)
    written = store.write([result("after")], [])
    order.append("second wrote")
    holder.join()
    assert written == 1 and order == ["first committed", "second wrote"]
    store.close()
    other_engine.dispose()


def test_a_write_lock_held_past_the_busy_timeout_fails_in_one_line_that_says_what_to_do(sqlite_url: str) -> None:
    """Another connection that keeps SQLite's write lock (a fleetbench run stopped with Ctrl-Z in the middle of a
    write) fails a writer after `storage.busy_timeout_s`, in one line that names the key and the likely cause,
    instead of SQLite's bare "database is locked"."""
    store = SqlStorage(SqlOptions(url=sqlite_url, busy_timeout_s=0.1), naming=naming())
    store.migrate()
    store.begin_run(run_record())
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError) as failure:
            store.write([result("blocked")], [])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = str(failure.value)
    assert "\n" not in message
    assert "database is locked: another process held its write lock" in message
    assert "storage.busy_timeout_s (0.1 s)" in message and "kill -CONT" in message
    assert store.write([result("after")], []) == 1, "the lock let go, the store writes again"
    store.close()


def hold_write_lock(url: str, holding: Event, seconds: float) -> None:
    """Another process: open a write transaction, say so, keep it open for `seconds`, commit."""
    engine = build_engine(SqlOptions(url=url, busy_timeout_s=0))
    with write_transaction(engine) as connection:
        connection.execute(update(runs).values(heartbeat_at=2.0))
        holding.set()
        time.sleep(seconds)
    engine.dispose()


def write_one_unit(url: str) -> None:
    """Another process: write one unit with SQLite's busy timeout at 0 (a busy lock fails it at once)."""
    store = SqlStorage(SqlOptions(url=url, busy_timeout_s=0), naming=naming())
    assert store.write([result("from-another-process")], []) == 1
    store.close()


def test_writers_of_two_processes_take_turns_without_sqlite_busy_waiting(sqlite_url: str) -> None:
    """Processes queue for the file's write lock on a lock file beside it, handed on the moment a writer commits: with
    SQLite's busy timeout at 0, a write that meets another process's open transaction waits for it instead of failing
    with "database is locked"."""
    store = SqlStorage(SqlOptions(url=sqlite_url, busy_timeout_s=0), naming=naming())
    store.migrate()
    store.begin_run(run_record())
    context = multiprocessing.get_context("spawn")
    holding = context.Event()
    holder = context.Process(target=hold_write_lock, args=(sqlite_url, holding, 0.5))
    holder.start()
    assert holding.wait(60)
    assert store.write([result("after")], []) == 1
    holder.join(timeout=60)
    assert holder.exitcode == 0  # it committed: its transaction was not cut short by the write
    assert store.stored_among([result("after").key]) == {result("after").key}
    store.close()


def test_a_forked_child_does_not_keep_its_parents_write_lock(sqlite_url: str) -> None:
    """A child forked while its parent writes inherits the lock file's descriptor: it must not hold the lock after
    the parent commits (then every other process would wait for as long as the child lives)."""
    store = storage(sqlite_url)
    engine = build_engine(SqlOptions(url=sqlite_url))
    sleeper = multiprocessing.get_context("fork").Process(target=time.sleep, args=(120,))
    with write_transaction(engine) as connection:
        connection.execute(update(runs).values(heartbeat_at=3.0))
        sleeper.start()
    writer = multiprocessing.get_context("spawn").Process(target=write_one_unit, args=(sqlite_url,))
    try:
        writer.start()
        writer.join(timeout=60)
        assert writer.exitcode == 0
        assert sleeper.is_alive()
    finally:
        sleeper.kill()
        sleeper.join()
        writer.kill()
    engine.dispose()
    store.close()


def _write_within(store: SqlStorage, name: str, seconds: float) -> bool:
    """Whether `store` writes one unit within `seconds` (on a thread: a hang must fail the test, not stall it)."""
    written: list[int] = []
    writer = threading.Thread(target=lambda: written.append(store.write([result(name)], [])), daemon=True)
    writer.start()
    writer.join(timeout=seconds)
    return written == [1]


def test_a_stopped_holder_of_the_lock_file_delays_writers_by_a_bounded_wait_not_for_ever(sqlite_url: str) -> None:
    """A holder of `<database>-writers` that never lets go (a worker stopped with SIGSTOP, `flock FILE sleep`): the
    kernel's waiting made every other writer hang past its busy timeout, deaf to Ctrl-C and to its deadline. Now a
    writer waits `SIDE_FILE_WAIT_S` at most, then meets SQLite's own lock alone (free here: the write succeeds)."""
    store = storage(sqlite_url)
    side_file = f"{sqlite_url.removeprefix('sqlite:///')}-writers"
    holder = os.open(side_file, os.O_RDONLY | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert _write_within(store, "while-held", 60)
        assert _write_within(store, "later, without waiting again", 60)
    finally:
        os.close(holder)
    store.close()


def test_a_fifo_in_place_of_the_lock_file_is_left_alone(sqlite_url: str) -> None:
    """Opening a FIFO for reading waits for a writer: every run on the database hung before its first write."""
    store = storage(sqlite_url, run=None)
    side_file = f"{sqlite_url.removeprefix('sqlite:///')}-writers"
    os.unlink(side_file)  # migrating created it
    os.mkfifo(side_file)
    store.begin_run(run_record())
    assert _write_within(store, "beside-a-fifo", 60)
    store.close()


@pytest.mark.postgres
def test_a_worker_stopped_inside_a_transaction_holds_its_postgres_locks_no_longer_than_the_idle_timeout(
    postgres_url: str,
) -> None:
    """A worker stopped (SIGSTOP, Ctrl-Z) between two statements of a transaction keeps its row locks, and another
    worker's claim of those units waits for them: until it was continued (a test's second worker, for ever). The
    server now ends such a session after `idle_transaction_timeout_s`, and the claim goes through."""
    naming = ExactNaming(NoOptions(), catalog=KIT_CATALOG)
    options = SqlOptions(url=postgres_url, idle_transaction_timeout_s=1)
    stopped = ready(SqlStorage(options, naming=naming), kit_run(), kit_run(LATER_RUN, 2000.0))
    units = kit_units()
    assert stopped.claim(RUN, units, now=100.0, expires_at=160.0) == {u.key for u in units}
    engine = build_engine(options)
    held = engine.connect()
    held.begin()
    held.execute(sa.text("update claims set expires_at = 100 where run_id = :run"), {"run": RUN})  # then it stops
    pool = ThreadPoolExecutor(1)
    try:
        taker = SqlStorage(SqlOptions(url=postgres_url), naming=naming)
        started = time.monotonic()
        claimed = pool.submit(taker.claim, LATER_RUN, units, now=200.0, expires_at=300.0)
        assert claimed.result(timeout=30) == {u.key for u in units}
        assert time.monotonic() - started >= 0.8, "the claim waited for the stopped worker's locks"
        with pytest.raises(sa.exc.DBAPIError) as lost:  # continued, the stopped worker finds its session ended
            held.execute(sa.text("select 1"))
        assert lost.value.connection_invalidated
    finally:
        held.invalidate()  # no rollback: its session may be gone
        pool.shutdown(wait=False)
        engine.dispose()


@pytest.mark.postgres
def test_a_write_whose_connection_was_ended_mid_transaction_is_run_again_on_a_new_one(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Continued after the server ended its idle session, a worker runs the transaction again rather than failing
    the run: its first attempt was rolled back. Stopped a second time inside the same write (an attacker's
    SIGSTOP twice), it runs it a third time: one loss per write was allowed, and the run failed."""
    naming = ExactNaming(NoOptions(), catalog=KIT_CATALOG)
    database = SqlDatabase(SqlOptions(url=postgres_url, idle_transaction_timeout_s=1), naming)
    database.migrate()
    attempts: list[int] = []

    def body(connection: sa.Connection) -> int:
        attempts.append(connection.execute(sa.text("select pg_backend_pid()")).scalar_one())
        if len(attempts) <= 2:
            time.sleep(1.5)  # stopped inside the transaction, past the idle timeout; and again when continued
        return int(connection.execute(sa.text("select 42")).scalar_one())

    assert database._written("testing", body) == 42
    assert len(attempts) == 3 and len(set(attempts)) == 3, "each attempt after a loss ran on a new connection"
    assert "testing: the database connection was lost (terminating connection due to idle-in-transaction" in caplog.text
    database.close()


@pytest.mark.postgres
def test_a_read_whose_session_the_server_ended_is_read_again_on_a_new_connection(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An attacker terminated PostgreSQL sessions every 0.3-1.5 s: a worker's look-up of its stored units, cut in
    the middle, ended the run. A read changes nothing, so it runs once more on a new connection."""
    store = storage(postgres_url)
    assert store.write([result("kept")], []) == 1
    database = store._db()
    ended: list[int] = []

    def read_once_cut(connection: sa.Connection) -> set[str]:
        if not ended:
            ended.append(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            connection.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        looked_up = connection.execute(queries.completed_among(), {"keys": [key("kept"), key("missing")]})
        return set(looked_up.scalars())

    assert database._read("looking up stored units", read_once_cut, writable=True) == {key("kept")}
    assert len(ended) == 1 and "looking up stored units: the database connection was lost" in caplog.text
    with pytest.raises(StorageError, match=r"^reading scopes in .+ failed: .*terminat"):
        database._read("reading scopes", lambda c: c.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())"))
    store.close()


@pytest.mark.postgres
def test_a_transaction_the_server_ends_to_break_a_deadlock_is_run_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two transactions take two locks in opposite orders: PostgreSQL ends one of them ("deadlock detected"), which
    failed an attacker's worker in the middle of a claim. It is run again, and both transactions complete."""
    store = storage(postgres_url)
    database = store._db()
    both_hold_one = threading.Barrier(2, timeout=10)
    runs_of: dict[str, int] = {"first": 0, "second": 0}

    def locking(name: str, order: tuple[int, int]) -> Any:
        def body(connection: sa.Connection) -> str:
            runs_of[name] += 1
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({order[0]})")
            if runs_of[name] == 1:
                both_hold_one.wait()
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({order[1]})")
            return name

        return lambda: database._written(f"locking for {name}", body)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.submit(locking("first", (71, 72))), pool.submit(locking("second", (72, 71)))
        assert (first.result(timeout=60), second.result(timeout=60)) == ("first", "second")
    assert sorted(runs_of.values()) == [1, 2], "one of them was run again"
    assert "deadlock detected; running the transaction again" in caplog.text
    store.close()


@pytest.mark.postgres
def test_a_write_whose_connection_was_lost_at_its_commit_is_not_run_again(postgres_url: str) -> None:
    """The commit may have gone through: call rows are appended, so running the write again could store them twice
    (an attacker's proxy cutting commit replies stored 19 calls twice). The write fails with one error instead."""
    naming = ExactNaming(NoOptions(), catalog=KIT_CATALOG)
    database = SqlDatabase(SqlOptions(url=postgres_url), naming)
    database.migrate()
    bodies: list[int] = []
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def body(connection: sa.Connection) -> int:
        pid = connection.execute(sa.text("select pg_backend_pid()")).scalar_one()
        bodies.append(pid)
        with admin.connect() as other:  # the session dies between the last statement and the commit
            other.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
        time.sleep(0.2)
        return 1

    try:
        with pytest.raises(StorageError, match=r"^testing in .* failed: "):
            database._written("testing", body)
        assert len(bodies) == 1
    finally:
        admin.dispose()
        database.close()


def _lose_the_next_commit(engine: sa.Engine, postgres_url: str, *, reached: bool) -> list[int]:
    """Make the next commit on `engine` lose its connection: the server ends the session just before the commit
    (`reached=False`: the commit never arrives), or just after it (`reached=True`: committed, but the client hears
    only that the connection closed, as when a proxy or the network cuts the reply). Returns the ended sessions."""
    ended: list[int] = []
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def end(pid: int) -> None:
        with admin.connect() as other:
            other.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
        ended.append(pid)
        time.sleep(0.2)

    @sa.event.listens_for(engine, "commit")
    def _before_commit(connection: sa.Connection) -> None:
        if ended:
            return
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        pid = dbapi.info.backend_pid
        if not reached:
            end(pid)
            return
        real_commit = dbapi.commit

        def commit_then_lose_the_reply() -> None:
            real_commit()
            end(pid)
            dbapi.execute("select 1")  # fails, as the lost reply would have: the client sees its connection broken

        dbapi.commit = commit_then_lose_the_reply

    return ended


@pytest.mark.postgres
@pytest.mark.parametrize("reached", [False, True], ids=["commit-lost", "reply-lost"])
def test_a_write_whose_connection_was_lost_at_its_commit_stores_its_units_and_calls_once(
    postgres_url: str, caplog: pytest.LogCaptureFixture, reached: bool
) -> None:
    """A worker stopped between a write's last statement and its commit, whose session the server ended meanwhile
    (`idle_transaction_timeout_s`, or fencing), failed its run once continued: the commit might have gone through,
    and calls are appended, so the write was not run again. It now asks a new connection whether the batch's rows
    are there: run again when they are not, done when they are; either way every unit and call is stored once."""
    store = storage(postgres_url)
    engine = store._db().engine()
    ended = _lose_the_next_commit(engine, postgres_url, reached=reached)
    results = [result(f"at-commit-{i}", index=i) for i in range(3)]
    calls_made = [call(f"at-commit-{i}", DEEPSEEK, attempt=a) for i in range(3) for a in (1, 2)]
    assert store.write(results, calls_made) == 3
    assert len(ended) == 1, "the connection was lost at the commit"
    went = "which went through" if reached else "which did not go through; trying again on a new one"
    assert "writing 3 units: the database connection was lost at the commit (" in caplog.text and went in caplog.text
    with engine.connect() as connection:
        stored = connection.execute(select(units.c.unit_key)).scalars().all()
        stored_calls = connection.execute(select(func.count()).select_from(calls)).scalar_one()
    assert sorted(stored) == sorted(r.key for r in results)
    assert stored_calls == len(calls_made), "no call stored twice, none lost"
    (row,) = store.aggregate(["base_model"], ReportFilter(SUITE))
    assert (row["total"], row["success"]) == (3, 3), "the totals count each unit once"
    store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("reached", [False, True], ids=["commit-lost", "reply-lost"])
def test_a_claim_whose_connection_was_lost_at_its_commit_is_claimed_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture, reached: bool
) -> None:
    """Claims (and renewals, heartbeats, a run's end) change nothing when run twice: a claim whose commit is in doubt
    is run again on a new connection and takes the same units, where the run failed before."""
    store = ready(
        SqlStorage(SqlOptions(url=postgres_url), naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG)), kit_run()
    )
    ended = _lose_the_next_commit(store._db().engine(), postgres_url, reached=reached)
    units = kit_units()
    assert store.claim(RUN, units, now=100.0, expires_at=160.0) == {u.key for u in units}
    assert len(ended) == 1, "the connection was lost at the commit"
    assert f"claiming {len(units)} units: the database connection was lost at the commit (" in caplog.text
    assert "running it again on a new one, which changes nothing if it went through" in caplog.text
    with store._db().engine().connect() as connection:
        held = connection.execute(sa.text("select run_id from claims")).scalars().all()
    assert held == [RUN] * len(units)
    store.close()


@pytest.mark.postgres
def test_a_metric_slot_assigned_in_a_write_that_did_not_commit_is_assigned_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The first write of a suite's metrics assigns them slots of the running totals and caches them; when that
    write's commit is lost and it runs again, the slots it assigned must be assigned again, not taken from the
    cache, or the totals would sum into slots no metric owns."""
    store = storage(postgres_url)
    engine = store._db().engine()
    _lose_the_next_commit(engine, postgres_url, reached=False)
    assert store.write([result("slotted", metrics={"fresh_metric": 0.5})], []) == 1
    with engine.connect() as connection:
        slots = connection.execute(sa.text("select name from metric_slots where suite = :s"), {"s": SUITE}).all()
    assert ("fresh_metric",) in slots
    store.close()


HOLDER = "fleetbench 4242 kit-host"


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _hold_the_writers_lock_while_sending(url: str) -> psycopg.Connection[Any]:
    """A session of process 4242 on kit-host (the kit's runs' process) that took the writers' lock and stopped in
    the middle of a write: `active`, waiting for the client, a state no server timeout ends."""
    holder = psycopg.connect(_plain(url), application_name=HOLDER)
    holder.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
    holder.pipeline().__enter__()
    holder.cursor().execute("SELECT %s::int", [1])
    holder.pgconn.flush()  # sent without its Sync: the server waits for the rest
    return holder


@pytest.mark.postgres
def test_a_writer_ends_the_session_of_a_worker_stopped_while_holding_the_writers_lock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The holder's runs are running with heartbeats long past (`fencing.STALE_AFTER_S`): it stands still. The
    writer, once its wait for the lock passes `fencing.WAIT_S`, ends the holder's session and writes (it waited
    until the holder was continued)."""
    monkeypatch.setattr(fencing, "WAIT_S", 0.5)
    store = ready(SqlStorage(SqlOptions(url=postgres_url), naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG)))
    holder = _hold_the_writers_lock_while_sending(postgres_url)
    pool = ThreadPoolExecutor(1)
    try:
        assert pool.submit(store.write, [kit_result(kit_units()[0])], []).result(timeout=30) == 1
        assert "ended a database session of run kit-run-1 (process 4242 on kit-host)" in caplog.text
        with psycopg.connect(_plain(postgres_url)) as look:
            left = look.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [HOLDER])
            assert left.fetchone() == (0,), "the holder's session is gone"
    finally:
        holder.close()
        pool.shutdown()
        store.close()


@pytest.mark.postgres
def test_a_worker_queued_for_the_writers_lock_is_not_cut_off_however_old_its_heartbeat(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A live worker queued behind a stopped holder cannot beat meanwhile (its heartbeat waits on the same storage
    thread), so its heartbeat grows as old as the holder's. It waits for a lock, not for its client: the fencing
    writer ends the holder's session only, and the queued worker then takes the lock and commits."""
    monkeypatch.setattr(fencing, "WAIT_S", 0.5)
    queued_run = dataclasses.replace(kit_run("kit-run-queued", 1000.0), pid=4343)
    store = ready(
        SqlStorage(SqlOptions(url=postgres_url), naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG)),
        kit_run(),
        queued_run,
    )
    holder = _hold_the_writers_lock_while_sending(postgres_url)
    queued = psycopg.connect(_plain(postgres_url), application_name="fleetbench 4343 kit-host")

    def wait_for_the_lock_then_commit() -> None:
        queued.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
        queued.commit()

    pool = ThreadPoolExecutor(2)
    try:
        taken = pool.submit(wait_for_the_lock_then_commit)
        time.sleep(0.3)  # queued before the writer
        assert pool.submit(store.write, [kit_result(kit_units()[0])], []).result(timeout=30) == 1
        taken.result(timeout=30)  # raises if its session was ended
        assert "ended a database session of run kit-run-1 (process 4242 on kit-host)" in caplog.text
        assert "process 4343" not in caplog.text
    finally:
        holder.close()
        queued.close()
        pool.shutdown()
        store.close()


@pytest.mark.postgres
def test_a_worker_just_out_of_the_lock_queue_is_not_cut_off_by_the_next_fencing_scan(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued behind a stopped holder, a live worker's heartbeat grew as old as the holder's. Once the holder was
    ended, it took the lock and waited for its client between two statements, and the other queued workers' fencing
    scans, due at about that moment, ended it too (an attacker's loaded machine). A session is ended only when its
    state has not changed for `fencing.WAIT_S`: just out of the queue, it is left alone; stopped there, it is not."""
    monkeypatch.setattr(fencing, "WAIT_S", 1.0)
    store = ready(SqlStorage(SqlOptions(url=postgres_url), naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG)))
    taken = psycopg.connect(_plain(postgres_url), application_name=HOLDER)  # the kit's run: heartbeat long past
    taken.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])  # now between two statements
    fencer = store._db().ready().connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        assert fencing.end_stalled_sessions(fencer) == 0, "its state changed a moment ago"
        time.sleep(1.2)
        assert fencing.end_stalled_sessions(fencer) == 1, "no change for WAIT_S: it stands still"
    finally:
        fencer.close()
        taken.close()
        store.close()


@pytest.mark.postgres
def test_a_writer_waits_for_a_worker_holding_the_writers_lock_whose_heartbeat_is_fresh(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live worker (fresh heartbeat) is never cut off, however long its write holds the lock."""
    monkeypatch.setattr(fencing, "WAIT_S", 0.3)
    store = ready(SqlStorage(SqlOptions(url=postgres_url), naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG)))
    store.heartbeat(RUN, time.time())
    holder = _hold_the_writers_lock_while_sending(postgres_url)
    pool = ThreadPoolExecutor(1)
    try:
        written = pool.submit(store.write, [kit_result(kit_units()[0])], [])
        time.sleep(2.0)
        assert not written.done(), "it waits for the live holder"
    finally:
        holder.close()  # the holder finishes: its session ends, and with it the lock
    assert written.result(timeout=30) == 1
    pool.shutdown()
    store.close()


def test_an_idle_transaction_timeout_out_of_range_is_refused_naming_the_option() -> None:
    with pytest.raises(ValueError, match=r"^idle_transaction_timeout_s: must be from 1 to 86400 seconds, got 0$"):
        SqlOptions(url="sqlite:///x.db", idle_transaction_timeout_s=0)


@pytest.mark.postgres
def test_the_storage_plugins_warnings_reach_stderr_and_the_run_log_but_never_stdout(
    postgres_url: str, tmp_path: Path
) -> None:
    """The plugin's warning that a lost connection is being replaced went through the root logger, whose console
    handler (Hydra's) wrote it to stdout, which carries the run's table alone, in the log file's format. It now
    reaches stderr as `warning: …`, and fleetbench.log. The run's write is made to wait for the writers' lock, which
    the test holds, and its session is ended while it waits."""
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=300" for i in range(3)]
    overrides = ["storage=postgres", f"storage.url={postgres_url}", "run.instances=20", "suite.items=cycle", *slow]
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    holder_engine = create_engine(postgres_url)
    worker = subprocess.Popen([*CLI, "run", *overrides, "run.progress=off"], cwd=tmp_path, env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        with admin.connect() as connection:
            while not _units_stored(connection):
                assert worker.poll() is None and time.monotonic() < deadline, "the run stored no unit"
                time.sleep(0.05)
            with holder_engine.connect() as holder:
                holder.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
                ended = 0
                while not ended:
                    assert worker.poll() is None and time.monotonic() < deadline, "no write waited for the lock"
                    ended = connection.execute(WAITING_SESSION_ENDED, {"mine": f"fleetbench {worker.pid} %"}).scalar()
                    time.sleep(0.05)
                holder.rollback()
        out, err = worker.communicate(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()
        admin.dispose()
        holder_engine.dispose()
    assert worker.returncode == 0, err[-2000:]
    lost = r"^warning: writing \d+ units: the database connection was lost \(.*\); trying again on a new one$"
    assert re.search(lost, err, re.MULTILINE), err
    assert "connection was lost" not in out and "WARNING" not in out
    [log_file] = tmp_path.glob("outputs/*/*/fleetbench.log")
    assert "the database connection was lost" in log_file.read_text()


def _units_stored(connection: sa.Connection) -> int:
    if connection.execute(sa.text("select to_regclass('units') is null")).scalar_one():
        return 0  # the run has not created its schema yet
    return int(connection.execute(sa.text("select count(*) from units")).scalar_one())


WAITING_SESSION_ENDED = sa.text(
    "select count(pg_terminate_backend(pid)) from pg_stat_activity "
    "where application_name like :mine and wait_event_type = 'Lock'"
)


def test_a_write_lock_held_mid_run_fails_the_run_fast_naming_the_write_not_the_runs_end(tmp_path: Path) -> None:
    """The run's writes meet a lock held past the busy timeout: it stops within seconds, its error line names the
    failed write (it named the run's end, whose record the same lock refused, so a user looked for the wrong
    failure), the end's failure is a warning, and stdout holds no traceback."""
    db = tmp_path / "held.db"
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=100" for i in range(3)]
    overrides = [f"storage.url=sqlite:///{db}", "storage.busy_timeout_s=1", "run.instances=40", "suite.items=cycle"]
    worker = subprocess.Popen([*CLI, "run", *overrides, *slow, "run.progress=off"], cwd=tmp_path, env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    holder: sqlite3.Connection | None = None
    try:
        deadline = time.monotonic() + 120
        while not _stored_units(db):
            assert worker.poll() is None and time.monotonic() < deadline, "the run stored no unit"
            time.sleep(0.02)
        holder = sqlite3.connect(db, isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")
        out, err = worker.communicate(timeout=60)
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 1, err
    assert re.search(r"^error: writing \d+ units in sqlite:///.* failed: database is locked: ", err, re.MULTILINE), err
    assert "warning: the run's end could not be recorded either: finishing run" in err
    assert "Traceback" not in out + err and "never retrieved" not in out + err


def _stored_units(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as connection:
            return int(connection.execute("select count(*) from units").fetchone()[0])
    except sqlite3.OperationalError:  # no file or no schema yet
        return 0
