"""Database URLs for tests: a SQLite file in a temporary directory, or a fresh PostgreSQL database.

Use them from fixtures::

    @pytest.fixture
    def postgres_url() -> Iterator[str]:
        with fresh_postgres_database() as url:
            yield url

The PostgreSQL helper creates a uniquely named database (default 127.0.0.1:5432, user `postgres`, trust auth) and
drops it afterwards. When no server answers, the test is skipped, unless `FLEETBENCH_REQUIRE_POSTGRES=1` is set (as
in CI), in which case it fails loudly. Nothing here imports a plugin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    import psycopg

REQUIRE_POSTGRES_ENV = "FLEETBENCH_REQUIRE_POSTGRES"


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    """Where the test server listens. Trust authentication: no password is ever needed or stored."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    connect_timeout_s: int = 3

    def conninfo(self, dbname: str) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} dbname={dbname} "
            f"connect_timeout={self.connect_timeout_s}"
        )

    def url(self, dbname: str) -> str:
        """A SQLAlchemy URL for psycopg 3."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"


def sqlite_url(directory: Path, name: str = "fleetbench.db") -> str:
    """A SQLite URL for a (not yet existing) file in `directory`, e.g. pytest's `tmp_path`."""
    return f"sqlite:///{directory / name}"


def postgres_required() -> bool:
    """True when a missing PostgreSQL server must fail the test instead of skipping it."""
    return os.environ.get(REQUIRE_POSTGRES_ENV, "") == "1"


def _unavailable(reason: str) -> NoReturn:
    if postgres_required():
        pytest.fail(f"PostgreSQL is required ({REQUIRE_POSTGRES_ENV}=1) but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


def _admin_connection(server: PostgresServer) -> psycopg.Connection[Any]:
    """An autocommit connection to the `postgres` maintenance database (CREATE DATABASE cannot run in a transaction)."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
    try:
        return psycopg.connect(server.conninfo("postgres"), autocommit=True)
    except psycopg.OperationalError as exc:
        _unavailable(f"no server answers at {server.host}:{server.port} ({str(exc).strip().splitlines()[0]})")


@contextlib.contextmanager
def fresh_postgres_database(server: PostgresServer | None = None, prefix: str = "fleetbench_test") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, then drop it (even if sessions are still connected)."""
    server = server or PostgresServer()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    from psycopg import sql

    with _admin_connection(server) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.url(name)
    finally:
        with _admin_connection(server) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
