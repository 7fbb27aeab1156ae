"""PostgreSQL: end the database sessions of a worker that stands still while it holds locks other workers wait for.

A worker stopped (SIGSTOP, Ctrl-Z) while it still sends a write's rows leaves its session `active`, waiting for the
client, holding the writers' lock (`totals.serialize_writers`) and its rows' locks; no server timeout ends that
state, and every other worker's writes waited until it was continued. Every session names its process in
`application_name` (`fleetbench <pid> <host>`, set on connect). A write transaction waits `WAIT_S` at most for a lock;
when that passes, the writer ends the sessions that wait for their client inside a transaction (`wait_event_type`
'Client': a process standing still between two statements, or in the middle of sending one) of processes whose runs
are `running` but have not recorded a heartbeat for `STALE_AFTER_S`, and tries again. Continued, such a worker finds
its connection gone and runs its transaction again.

A live worker queued for the lock behind a stopped holder cannot beat meanwhile (its heartbeat waits on the same
storage thread), so its heartbeat grows as old as the holder's; its session waits for a lock, not for its client, so
it is left alone. Once the holder is gone, the first in the queue takes the lock and, between two statements, waits
for its client too, its heartbeat still old: the other queued workers, whose lock waits end at about that moment,
ended it as well (an attacker's run with the CPU loaded, 2 of 2 trials; a worker cut twice in one write failed its
run). So a session is ended only when its state has not changed for `WAIT_S` either: a stopped holder's has not
changed since before the writer began to wait for it, a live worker's changes with every statement. A session
running a long statement (the server works, the client waits) is never ended.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

APPLICATION = "fleetbench"
WAIT_S = 10.0
"""How long a write transaction waits for a lock before it looks for a worker standing still."""
STALE_AFTER_S = 30.0
"""A running run whose heartbeat is this old stands still (as `fleetbench runs` shows it dead: six default
heartbeats, three of the longest `run.heartbeat_s`)."""


def application_name() -> str:
    """This process's name for its database sessions."""
    # PostgreSQL keeps 63 bytes: the pid comes first, so that a long host name is what is cut, and a cut one then
    # matches no run (a pid cut short could have named another process's run).
    return f"{APPLICATION} {os.getpid()} {socket.gethostname()}"[:63]


def bound_lock_waits(connection: Connection) -> None:
    """Make the transaction's lock waits fail after `WAIT_S` instead of lasting as long as the holder stands still."""
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(WAIT_S * 1000)}")


def end_stalled_sessions(connection: Connection) -> int:
    """End the other sessions of this database that have waited for their client inside a transaction for `WAIT_S`
    and whose processes' runs are running without a recent heartbeat; how many were ended. `connection` is outside
    any transaction of the caller's (autocommit)."""
    sessions = connection.execute(
        text(
            "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state <> 'idle' AND wait_event_type = 'Client' "
            "AND state_change < now() - make_interval(secs => :still) AND application_name LIKE :prefix"
        ),
        {"prefix": f"{APPLICATION} %", "still": WAIT_S},
    ).all()
    ended = 0
    for backend, name in sessions:
        parts = str(name).split(" ")
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        pid, host = int(parts[1]), parts[2]
        # The newest of the process's running runs decides (a pid reused by a live run on the same host is live).
        newest = connection.execute(
            text(
                "SELECT run_id, coalesce(heartbeat_at, started_at) AS beat FROM runs "
                "WHERE status = 'running' AND host = :host AND pid = :pid ORDER BY beat DESC LIMIT 1"
            ),
            {"host": host, "pid": pid},
        ).first()
        if newest is None or float(newest.beat) >= time.time() - STALE_AFTER_S:
            continue
        connection.execute(text("SELECT pg_terminate_backend(:backend)"), {"backend": backend})
        ended += 1
        log.warning(
            "ended a database session of run %s (process %d on %s): it held up this worker's writes and its last "
            "heartbeat is %.0fs old (stopped or hung)",
            newest.run_id, pid, host, time.time() - float(newest.beat),
        )  # fmt: skip
    return ended
