"""Upgrading a database made by fleetbench 0.1 (schema 0001, key scheme 1): old units are moved aside, never mixed."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from fleetbench_plugins.storage.sql.engine import write_transaction
from fleetbench_plugins.storage.sql.migrate import alembic_config
from tests.conftest import RunCli, stderr_lines

from .builders import key, storage

_OLD_UNIT = (
    "INSERT INTO units (unit_key, suite, base_model, factors, instance_index, seed, task_id, outcome, metrics, turns, "
    "error_category, infra_status, deployment, lane_id, run_id, started_at, duration_s) VALUES (:key, 'jsonl', "
    "'Sim-Agent', '{\"category\": \"arithmetic\"}', :index, 0, 'item', 'success', '{\"correct\": 1.0}', 1, NULL, NULL, "
    "'Sim-Agent-2', 'Sim-Agent-2', 'old-run', 0, 1)"
)


def _database_at_0001(url: str, units: int) -> None:
    """What fleetbench 0.1 left: the 0001 schema with units (and transcripts) under scheme-1 keys."""
    engine = create_engine(url)
    with write_transaction(engine) as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(
            text(
                "INSERT INTO runs (run_id, started_at, status, suite, models, config, version, host, planned_units) "
                "VALUES ('old-run', 0, 'completed', 'jsonl', '[]', '{}', '0.1.0', 'old-host', 2)"
            )
        )
        for index in range(units):
            connection.execute(text(_OLD_UNIT), {"key": key(f"old-{index}"), "index": index})
            data = zlib.compress(json.dumps({"answer": index}).encode())
            connection.execute(
                text("INSERT INTO transcripts VALUES (:key, 'old-run', 'json+zlib', :data)"),
                {"key": key(f"old-{index}"), "data": data},
            )
    engine.dispose()


def _count(url: str, table: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        count = int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return count


def test_upgrading_moves_scheme_1_units_aside_and_says_so(database_url: str) -> None:
    _database_at_0001(database_url, 3)
    store = storage(database_url, migrate=False, run=None)
    (notice,) = store.migrate()
    assert "3 units stored by fleetbench 0.1 were moved to table legacy_units_v1" in notice
    assert "nothing was deleted" in notice
    assert (_count(database_url, "units"), _count(database_url, "transcripts")) == (0, 0)
    assert (_count(database_url, "legacy_units_v1"), _count(database_url, "legacy_transcripts_v1")) == (3, 3)
    assert store.stored_among([key("old-0")]) == set()  # an old key never counts as done
    assert store.migrate() == []  # said once, when it happened
    store.close()


def test_an_empty_0001_database_upgrades_silently(database_url: str) -> None:
    _database_at_0001(database_url, 0)
    store = storage(database_url, migrate=False, run=None)
    assert store.migrate() == []
    store.close()


def test_a_run_on_an_old_database_prints_the_notice_and_runs_everything(run_cli: RunCli, tmp_path: Path) -> None:
    _database_at_0001(f"sqlite:///{tmp_path / 'fleetbench.db'}", 2)
    process = run_cli("run", "run.instances=2", "suite.categories=[arithmetic]", "run.progress=off")
    assert process.returncode == 0, process.stderr
    (line,) = stderr_lines(process)
    assert line.startswith("note: 2 units stored by fleetbench 0.1 were moved to table legacy_units_v1")
    assert "0 already stored, 2 executed" in process.stdout
