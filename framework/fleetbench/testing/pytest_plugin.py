"""fleetbench's pytest plugin, registered under the `pytest11` entry point: installing fleetbench gives every test
session these fixtures.

- `sqlite_url`: the URL of a SQLite file (not created yet) in the test's temporary directory;
- `postgres_url`: the URL of a fresh PostgreSQL database at 127.0.0.1:5432, dropped after the test; the test is
  skipped when no server answers, unless `FLEETBENCH_REQUIRE_POSTGRES=1` (then it fails);
- `simulated_provider`: the installed `simulated` provider with its default options (loaded through its entry point,
  as a run loads it), closed after the test.

It also makes pytest rewrite the asserts of the contract kits (`fleetbench.testing.contracts`), so a plugin failing
its kit gets pytest's detailed assertion messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbench.interfaces import Provider

pytest.register_assert_rewrite("fleetbench.testing.contracts")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file (not created yet) in the test's temporary directory."""
    from fleetbench.testing.databases import sqlite_url as url_in

    return url_in(tmp_path)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test (skips when no server answers, unless
    FLEETBENCH_REQUIRE_POSTGRES=1)."""
    from fleetbench.testing.databases import fresh_postgres_database

    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def simulated_provider() -> Iterator[Provider]:
    """The installed `simulated` provider with default options (`seed` 0)."""
    from fleetbench import registry

    provider: Provider = registry.load("providers", {"plugin": "simulated"}, "providers.simulated").create()
    yield provider
    asyncio.run(provider.aclose())
