"""Upgrading a database made by fleetbench 0.1 (schema 0001, key scheme 1): old units are moved aside, never mixed."""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from fleetbench.types import MetricSpec, Outcome, ReportFilter
from fleetbench_plugins.storage.sql.engine import write_transaction
from fleetbench_plugins.storage.sql.migrate import alembic_config
from tests.conftest import RunCli, stderr_lines

from .builders import key, result, storage

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


def test_a_database_at_head_is_left_to_no_alembic_and_still_proves_it_takes_writes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every start after a database's first finds it at head: alembic (imported and reading its scripts, a tenth of a
    second of the start-up) is not consulted; an older database still is (see the tests above)."""
    store = storage(database_url, migrate=False, run=None)
    assert store.migrate() == []  # created by alembic
    store.close()

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("alembic consulted for a database at head")

    monkeypatch.setattr(command, "upgrade", refused)
    again = storage(database_url, migrate=False, run=None)
    assert again.migrate() == []
    again.close()


def test_a_run_on_an_old_database_prints_the_notice_and_runs_everything(run_cli: RunCli, tmp_path: Path) -> None:
    _database_at_0001(f"sqlite:///{tmp_path / 'fleetbench.db'}", 2)
    process = run_cli("run", "run.instances=2", "suite.categories=[arithmetic]", "run.progress=off")
    assert process.returncode == 0, process.stderr
    (line,) = stderr_lines(process)
    assert line.startswith("note: 2 units stored by fleetbench 0.1 were moved to table legacy_units_v1")
    assert "0 already stored, 2 executed" in process.stdout


_UNIT_0004 = (
    "INSERT INTO units (unit_key, suite, base_model, factors, instance_index, seed, task_id, outcome, metrics, turns, "
    "error_category, infra_status, deployment, lane_id, run_id, started_at, duration_s, suite_scope, model_scope, "
    "cell_key) VALUES (:key, 'workflow', 'DeepSeek-V3-0324', :factors, :index, 0, 't', :outcome, :metrics, 2, NULL, "
    ":status, 'DeepSeek-V3-0324', 'lane', 'run-4', 0, :duration, :suite_scope, :model_scope, :cell)"
)


def test_upgrading_from_0004_adds_up_the_stored_units_and_calls(database_url: str) -> None:
    """Migration 0006 fills the running totals from what is already stored, so reports read the same numbers."""
    engine = create_engine(database_url)
    scope = (("s" * 32), ("m" * 32))
    stored = [  # name, prompt, outcome, score, duration, infra status
        ("a", "optimal", "success", 1.0, 10.0, None),
        ("b", "optimal", "partial", 0.5, 20.0, None),
        ("c", "cot", "failure", 0.0, 30.0, None),
        ("d", "cot", "infra_error", None, 99.0, "timeout"),
    ]
    with write_transaction(engine) as connection:
        command.upgrade(alembic_config(connection), "0004")
        connection.execute(
            text(
                "INSERT INTO runs (run_id, started_at, status, suite, models, config, version, host, planned_units) "
                "VALUES ('run-4', 0, 'completed', 'workflow', '[]', '{}', '0.2.0', 'host', 4)"
            )
        )
        for index, (name, prompt, outcome, score, duration, status) in enumerate(stored):
            metrics = {} if score is None else {"score": score}
            connection.execute(
                text(_UNIT_0004),
                {"key": key(name), "factors": json.dumps({"prompt_type": prompt}), "index": index,
                 "outcome": outcome, "metrics": json.dumps(metrics), "status": status, "duration": duration,
                 "suite_scope": scope[0], "model_scope": scope[1], "cell": f"cell-{prompt}".ljust(32, "0")},
            )  # fmt: skip
        connection.execute(
            text(
                "INSERT INTO calls (unit_key, run_id, lane_id, deployment, credential_id, attempt, started_at, "
                "latency_s, status, prompt_tokens, completion_tokens) VALUES (:key, 'run-4', 'lane', "
                "'DeepSeek-V3-0324', 'c', 1, 0, 0.1, 'ok', 1, 1)"
            ),
            [{"key": key(name)} for name in ("a", "a", "c")],
        )
    engine.dispose()
    store = storage(database_url, run=None)  # migrates to head
    flt = ReportFilter("workflow")
    metrics = (MetricSpec("score", "s", "mean"),)
    cot, optimal = store.aggregate(["prompt_type"], flt, metrics)
    assert (optimal["total"], optimal["success"], optimal["partial"], optimal["score"]) == (2, 1, 1, 0.75)
    assert (cot["total"], cot["failure"], cot["infra_error"], cot["timeout"], cot["score"]) == (1, 1, 1, 1, 0.0)
    assert optimal["mean_duration_s"] == 15.0
    assert [(s["units"], s["calls"]) for s in store.deployment_shares(flt)] == [(3, 3)]
    store.close()


def test_upgrading_from_0006_counts_request_timeouts_as_timeouts(database_url: str) -> None:
    """Before 0007 a unit whose request timed out was stored as an infra error but not added up as a timeout: such a
    database is made here by storing one with today's code, then setting its totals and revision as 0006 left them."""
    store = storage(database_url)
    hung = result("hung", Outcome.INFRA_ERROR)
    hung = dataclasses.replace(hung, episode=dataclasses.replace(hung.episode, infra_status="request_timeout"))
    store.write([result("fine"), hung], [])
    store.close()
    engine = create_engine(database_url)
    with write_transaction(engine) as connection:
        connection.execute(text("UPDATE unit_totals SET n_timeout = 0"))
        command.stamp(alembic_config(connection), "0006")
    engine.dispose()
    store = storage(database_url, run=None)  # migrates to head
    [row] = store.aggregate([], ReportFilter("workflow"), (MetricSpec("score", "s", "mean"),))
    assert (row["total"], row["success"], row["infra_error"], row["timeout"]) == (1, 1, 1, 1)
    store.close()
