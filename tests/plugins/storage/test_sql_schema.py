"""Schema, migrations, options and construction of the `sql` storage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from fleetbench import registry
from fleetbench.errors import ConfigError, StorageError
from fleetbench.types import ReportFilter
from fleetbench_plugins.storage.sql import SqlOptions, SqlStorage
from fleetbench_plugins.storage.sql.engine import build_engine
from fleetbench_plugins.storage.sql.migrate import head_revision
from fleetbench_plugins.storage.sql.schema import SCHEMA_REVISION, VERSION_TABLE, metadata

from .builders import key, naming, result, storage


def test_head_revision_is_the_one_the_code_reads() -> None:
    assert head_revision() == SCHEMA_REVISION


def test_migrations_create_exactly_the_schema(database_url: str) -> None:
    storage(database_url, run=None).close()
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == SCHEMA_REVISION
    engine.dispose()


def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    store = storage(database_url)
    assert store.write([result("a")], []) == 1
    store.migrate()
    store.close()
    again = SqlStorage(SqlOptions(url=database_url), naming=naming())
    again.migrate()
    assert again.stored_among([key("a")]) == {key("a")}
    again.close()


def test_constructing_touches_neither_disk_nor_network(tmp_path: Path) -> None:
    path = tmp_path / "not-yet" / "fleetbench.db"
    SqlStorage(SqlOptions(url=f"sqlite:///{path}"), naming=naming()).close()
    SqlStorage(SqlOptions(url="postgresql://nobody@127.0.0.1:1/none"), naming=naming()).close()
    assert not path.parent.exists()


def test_reading_a_missing_database_says_so(tmp_path: Path) -> None:
    store = SqlStorage(SqlOptions(url=f"sqlite:///{tmp_path / 'missing.db'}"), naming=naming())
    missing = r"no database at .*missing\.db \(storage\.url\); `fleetbench run` creates it"
    with pytest.raises(StorageError, match=missing):
        store.aggregate(["base_model"], ReportFilter())
    assert not (tmp_path / "missing.db").exists()


def test_unmigrated_or_foreign_revision_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE placeholder (id INTEGER)"))
    with pytest.raises(StorageError, match="has no fleetbench schema"):
        storage(database_url, migrate=False, run=None).stored_among(["x"])
    storage(database_url, run=None).close()
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StorageError, match=r"is at schema revision '9999', newer than this fleetbench's"):
        storage(database_url, migrate=False, run=None).stored_among(["x"])
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0006'"))
    engine.dispose()
    with pytest.raises(StorageError, match=r"older than this fleetbench's .*: a `fleetbench run` with this storage"):
        storage(database_url, migrate=False, run=None).stored_among(["x"])


def test_sqlite_runs_in_wal_mode_with_normal_sync(sqlite_url: str, tmp_path: Path) -> None:
    store = storage(sqlite_url)
    with store._db().engine().connect() as connection:  # the storage's own pooled connection, pragmas applied
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    store.close()
    with sqlite3.connect(tmp_path / "fleetbench.db") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("fleetbench.db", "url: 'fleetbench.db' is not a database URL"),
        ("mysql://root@localhost/x", "scheme 'mysql' is not supported"),
        ("postgresql+psycopg2://u@h/db", "scheme 'postgresql\\+psycopg2' is not supported"),
        ("sqlite://", "SQLite needs a file path"),
        ("sqlite:///:memory:", "SQLite needs a file path"),
    ],
)
def test_bad_urls_are_refused_naming_the_field(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SqlOptions(url=url)


@pytest.mark.parametrize("seconds", [-1, 86401, 1e7, float("inf"), float("nan")])
def test_bad_busy_timeout_is_refused(seconds: float) -> None:
    """Beyond a day, too: SQLite keeps the timeout in a 32-bit number of milliseconds, and 1e7 s became 0 (no wait)."""
    with pytest.raises(ValueError, match=r"busy_timeout_s: must be from 0 to 86400 seconds"):
        SqlOptions(busy_timeout_s=seconds)


def test_the_longest_busy_timeout_reaches_sqlite_whole(tmp_path: Path) -> None:
    engine = build_engine(SqlOptions(url=f"sqlite:///{tmp_path / 'day.db'}", busy_timeout_s=86400))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 86_400_000
    engine.dispose()


def test_url_password_is_not_echoed() -> None:
    with pytest.raises(ValueError) as raised:
        SqlOptions(url="oracle://scott:tiger@db/x")
    assert "tiger" not in str(raised.value)


def test_bare_postgresql_urls_use_psycopg_3() -> None:
    assert SqlOptions(url="postgresql://u@h:5432/db").url == "postgresql+psycopg://u@h:5432/db"
    assert SqlOptions(url="postgres://u@h/db").url == "postgresql+psycopg://u@h/db"
    assert SqlOptions(url="sqlite:///x.db").backend == "sqlite"


def test_registry_builds_it_from_config(sqlite_url: str) -> None:
    ref = registry.load("storage", {"plugin": "sql", "url": sqlite_url, "busy_timeout_s": 5}, "storage")
    store = ref.create(naming=naming())
    assert isinstance(store, SqlStorage) and store.options.busy_timeout_s == 5
    with pytest.raises(ConfigError, match=r"storage\.urll"):
        registry.load("storage", {"plugin": "sql", "urll": sqlite_url}, "storage")
    with pytest.raises(ConfigError, match="url: scheme 'mysql'"):
        registry.load("storage", {"plugin": "sql", "url": "mysql://x/y"}, "storage")


def test_columns_hold_what_validation_lets_through() -> None:
    from sqlalchemy import BigInteger, String

    from fleetbench.limits import NAME_MAX_CHARS
    from fleetbench_plugins.storage.sql.schema import calls, units

    assert isinstance(units.c.seed.type, BigInteger), "seeds are validated as signed 64-bit integers"
    for column in (units.c.base_model, units.c.deployment, units.c.lane_id, units.c.task_id, calls.c.lane_id):
        assert isinstance(column.type, String) and column.type.length == NAME_MAX_CHARS, column
