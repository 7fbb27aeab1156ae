"""Database fixtures for the storage tests: real SQLite files and real, freshly created PostgreSQL databases.

`postgres_url` comes from `tests/conftest.py`; `fleetbench.testing.databases` does the work.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.testing.databases import sqlite_url as make_sqlite_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file (not created yet) in the test's temporary directory."""
    return make_sqlite_url(tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once per back end."""
    url: str = request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'postgres'}_url")
    return url
