"""The built-in storage passes the storage kit, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetbench.interfaces import NamingPolicy, Storage
from fleetbench.testing.contracts import StorageContract
from fleetbench_plugins.storage.sql import SqlOptions, SqlStorage


class TestSqlStorageOnSqlite(StorageContract):
    @pytest.fixture
    def storage(self, naming: NamingPolicy, sqlite_url: str) -> Iterator[Storage]:
        store = SqlStorage(SqlOptions(url=sqlite_url), naming=naming)
        yield store
        store.close()


@pytest.mark.postgres
class TestSqlStorageOnPostgres(StorageContract):
    @pytest.fixture
    def storage(self, naming: NamingPolicy, postgres_url: str) -> Iterator[Storage]:
        store = SqlStorage(SqlOptions(url=postgres_url), naming=naming)
        yield store
        store.close()
