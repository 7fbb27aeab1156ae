"""Database fixtures for the storage tests: real SQLite files and real, freshly created PostgreSQL databases.

`sqlite_url` and `postgres_url` come from fleetbench's pytest plugin (`fleetbench.testing.pytest_plugin`).
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once per back end."""
    url: str = request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'postgres'}_url")
    return url
