"""Schema migrations, driven from code: no alembic.ini, safe to run on every start and from many processes at once.

Every upgrade runs inside one transaction that first takes a database-wide lock (SQLite: `BEGIN IMMEDIATE`;
PostgreSQL: a transaction-scoped advisory lock), so concurrent starters queue up and all but the first find the
schema already at head. DDL is transactional on both back ends, so a failed upgrade leaves nothing half-done.

Developers add a revision with `alembic.command.revision(alembic_config(), message=..., autogenerate=...)` from a
Python shell (autogenerate needs `alembic_config(connection)` with a connection to a database at head).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, column, func, inspect, select, table, text

from fleetbench.errors import StorageError

from .engine import write_transaction
from .schema import SCHEMA_REVISION, VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).with_name("migrations")
# Any fixed 64-bit number; it only has to be the same in every process that migrates fleetbench tables.
_PG_LOCK_KEY = 0x666C656574626E63


def alembic_config(connection: Connection | None = None) -> Config:
    """An in-memory alembic configuration pointing at our migration scripts, bound to `connection` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> list[str]:
    """Bring the database to the head revision (a no-op when it is there already), prove it takes writes, and
    return notices for the user about what the upgrade did to existing data.

    The proof is an update that changes nothing: a read-only file or a user without write permission fails here,
    when a run starts, instead of at its first result.
    """
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        before = stored_revision(connection)
        # At head already (every start after a database's first): alembic would find nothing to do, after importing
        # itself and reading every migration script, a tenth of a second of each run's start-up. Any other revision,
        # a newer one included (alembic refuses it), goes through alembic as before.
        if before != SCHEMA_REVISION:
            from alembic import command

            command.upgrade(alembic_config(connection), "head")
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = version_num"))
        return _notices(connection, before)


def _notices(connection: Connection, before: str | None) -> list[str]:
    if before != "0001":
        return []
    moved = connection.execute(select(func.count()).select_from(table("legacy_units_v1"))).scalar_one()
    if not moved:
        return []
    return [
        f"note: {moved} units stored by fleetbench 0.1 were moved to table legacy_units_v1 (nothing was deleted): "
        "their keys left out options that change results, so they run again and are never counted with new units"
    ]


def head_revision() -> str:
    """The newest revision among the migration scripts (tests check it equals `schema.SCHEMA_REVISION`)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StorageError(f"no migration scripts found in {SCRIPT_LOCATION}")
    return head


def stored_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None when it has no fleetbench schema."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    # One row unless someone branched the migrations, which this project does not do.
    found: str | None = connection.execute(select(column("version_num")).select_from(table(VERSION_TABLE))).scalar()
    return found


def check_revision(found: str | None, where: str) -> None:
    """Fail with a clear message unless `found`, the revision `stored_revision` read from the database (`where`, for
    messages), is this code's."""
    if found == SCHEMA_REVISION:
        return
    if found is None:
        raise StorageError(
            f"{where} is not a fleetbench database: it has no fleetbench schema (fleetbench run creates it)"
        )
    if found < SCHEMA_REVISION:  # revisions are zero-padded numbers
        raise StorageError(
            f"{where} is at schema revision {found!r}, older than this fleetbench's {SCHEMA_REVISION!r}: a "
            "`fleetbench run` with this storage upgrades it in place, keeping every stored result"
        )
    raise StorageError(
        f"{where} is at schema revision {found!r}, newer than this fleetbench's {SCHEMA_REVISION!r}: use the "
        "fleetbench version that wrote it, or a newer one"
    )
