"""Claims with leases: which run is executing which unit, so workers sharing a plan never run a unit twice at once.

Taking a claim is one upsert whose conflict branch only fires on an expired claim or one the same run holds; the
database decides every race on the claims table's primary key (PostgreSQL locks the conflicting row and re-reads it
after the other transaction commits; SQLite runs the whole transaction under its write lock, `BEGIN IMMEDIATE`).
Completion is checked after the claim is taken, in the same transaction, so a result committed by another worker just
before is always seen and the claim is dropped again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fleetbench.types import ClaimInfo, Unit, UnitScope

from .direct import keyed_statement
from .queries import completed_among
from .schema import calls, claims, runs


def claim(
    connection: Connection,
    run_id: str,
    batch: Sequence[Unit],
    now: float,
    expires_at: float,
    canonical: Callable[[str], str],
) -> set[str]:
    """Claim what can be claimed of `batch` inside the caller's transaction; the keys claimed."""
    if not batch:
        return set()
    # In key order, as releases and deletes take their rows, so that two transactions lock shared rows in the same
    # order and one waits for the other instead of deadlocking.
    rows = [
        _claim_row(unit, run_id, expires_at, canonical) | {"claim_now": now}
        for _, unit in sorted({u.key: u for u in batch}.items())
    ]
    upsert = _upsert(connection.dialect.name)
    taken = set(connection.execute(upsert, rows).scalars())
    if not taken:
        return taken
    done = set(connection.execute(completed_among(), {"keys": sorted(taken)}).scalars())
    release_keys(connection, sorted(done))
    return taken - done


@functools.cache
def _upsert(dialect: str) -> Any:
    """The claiming upsert, built once per dialect (building it costs more than running it): `claim_now` is bound per
    call."""
    statement = postgresql.insert(claims) if dialect == "postgresql" else sqlite.insert(claims)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[claims.c.unit_key],
        set_={"run_id": excluded.run_id, "expires_at": excluded.expires_at},
        where=or_(claims.c.run_id == excluded.run_id, claims.c.expires_at <= bindparam("claim_now")),
    ).returning(claims.c.unit_key)


def _claim_row(unit: Unit, run_id: str, expires_at: float, canonical: Callable[[str], str]) -> dict[str, Any]:
    return {
        "unit_key": unit.key,
        "run_id": run_id,
        "expires_at": expires_at,
        "base_model": canonical(unit.cell.base_model),
        "suite_scope": unit.scope.suite,
        "model_scope": unit.scope.model,
        "seed": unit.seed,
        "cell_key": unit.cell_key,
        "instance_index": unit.index,
    }


def renew(connection: Connection, run_id: str, expires_at: float) -> int:
    """Extend every claim of the run; how many it holds."""
    return int(
        connection.execute(update(claims).where(claims.c.run_id == run_id).values(expires_at=expires_at)).rowcount
    )


def expire_run(connection: Connection, run_id: str, at: float) -> None:
    """End every claim the run still holds at `at` (it finished, however it ended): they stay as orphans, which the
    plan's other workers take over and a rerun claims, instead of vanishing while others skipped them as held."""
    connection.execute(update(claims).where(claims.c.run_id == run_id).values(expires_at=at))


def release_keys(connection: Connection, keys: Sequence[str]) -> None:
    """Drop the claims of these units (they were just completed, whoever held them)."""
    if keys:
        keyed_statement("release_claims", _release, connection.dialect).execute(connection, keys)


def release_own(connection: Connection, run_id: str, keys: Sequence[str]) -> None:
    """Drop `run_id`'s claims of these units; a claim another run holds on them stays."""
    if keys:
        connection.execute(_release().where(claims.c.run_id == run_id), {"keys": list(keys)})


@functools.cache
def _release() -> Any:
    """Deletes the claims of the unit keys bound as `keys` (built once: every write batch runs it)."""
    return delete(claims).where(claims.c.unit_key.in_(bindparam("keys", expanding=True)))


def open_claims(connection: Connection, scope: UnitScope, seed: int) -> list[ClaimInfo]:
    statement = select(
        claims.c.unit_key, claims.c.run_id, claims.c.expires_at, claims.c.cell_key, claims.c.instance_index
    ).where(claims.c.suite_scope == scope.suite, claims.c.model_scope == scope.model, claims.c.seed == seed)
    return [ClaimInfo(str(k), str(r), float(e), str(c), int(i)) for k, r, e, c, i in connection.execute(statement)]


def live_runs(connection: Connection, plan: str, fresh_after: float) -> list[str]:
    holding = select(claims.c.unit_key).where(claims.c.run_id == runs.c.run_id).exists()
    statement = (
        select(runs.c.run_id)
        .where(runs.c.plan == plan, runs.c.status == "running", runs.c.heartbeat_at >= fresh_after, holding)
        .order_by(runs.c.run_id)
    )
    return [str(run_id) for run_id in connection.execute(statement).scalars()]


def recent_calls(connection: Connection, since: float) -> list[dict[str, Any]]:
    statement = select(calls.c.deployment, calls.c.latency_s, calls.c.status, calls.c.http_status).where(
        calls.c.started_at >= since
    )
    return [dict(row._mapping) for row in connection.execute(statement)]
