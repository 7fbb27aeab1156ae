"""The sql storage's row conversions and transcript codec, value by value (the write path itself is tested against
real SQLite and PostgreSQL in test_sql_write.py)."""

from __future__ import annotations

import dataclasses
import math
import zlib

import pytest

from fleetbench.errors import StorageError
from fleetbench.testing.units import TEST_SCOPE, make_unit
from fleetbench.types import CallRecord, CallStatus, Cell, Episode, Outcome, ReportFilter, RunRecord, UnitResult
from fleetbench_plugins.storage.sql.rows import (
    CALL_COLUMNS,
    TRANSCRIPT_ENCODING,
    UNIT_COLUMNS,
    call_row,
    decode_transcript,
    encode_transcript,
    first_per_key,
    run_row,
    scope_rows,
    unit_row,
)
from tests.plugins.storage.builders import DEEPSEEK, call, result, storage

CELL = Cell("jsonl", "deepseek-v3-0324-2", (("category", "arithmetic"), ("rate", 0.8)))


def _result(key: str = "k" * 32, outcome: Outcome = Outcome.SUCCESS, **episode: object) -> UnitResult:
    unit = make_unit(key, CELL, index=4, seed=-7)
    return UnitResult(
        unit, "run-1", "DeepSeek-V3-0324-2", "DeepSeek-V3-0324-2#key0", 1000.5, 2.25, Episode(outcome, **episode)
    )  # type: ignore[arg-type]


def test_a_unit_row_holds_every_field_of_the_result_under_the_canonical_model() -> None:
    result = _result(
        metrics={"correct": 1.0, "tokens": 12},
        task_id="t-1",
        turns=3,
        error_category="wrong_tool",
        infra_status=None,
    )
    assert unit_row(result, "DeepSeek-V3-0324") == {
        "unit_key": "k" * 32,
        "suite": "jsonl",
        "base_model": "DeepSeek-V3-0324",
        "factors": {"category": "arithmetic", "rate": 0.8},
        "instance_index": 4,
        "seed": -7,
        "task_id": "t-1",
        "outcome": "success",
        "metrics": {"correct": 1.0, "tokens": 12.0},
        "turns": 3,
        "error_category": "wrong_tool",
        "infra_status": None,
        "deployment": "DeepSeek-V3-0324-2",
        "lane_id": "DeepSeek-V3-0324-2#key0",
        "run_id": "run-1",
        "started_at": 1000.5,
        "duration_s": 2.25,
        "suite_scope": TEST_SCOPE.suite,
        "model_scope": TEST_SCOPE.model,
        "cell_key": result.unit.cell_key,
        "experiment": None,
    }


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_metrics_become_missing(value: float) -> None:
    assert unit_row(_result(metrics={"score": value, "ok": 0.0}), "M")["metrics"] == {"score": None, "ok": 0.0}


@pytest.mark.parametrize("key", ["", "k" * 65])
def test_a_unit_key_outside_1_to_64_characters_is_refused(key: str) -> None:
    with pytest.raises(StorageError, match=r"must have 1 to 64 characters"):
        unit_row(_result(key), "M")


def test_a_64_character_key_is_fine() -> None:
    assert unit_row(_result("k" * 64), "M")["unit_key"] == "k" * 64


def test_metric_and_factor_names_must_be_identifiers() -> None:
    with pytest.raises(ValueError, match=r"^metric 'bad name': names must match"):
        unit_row(_result(metrics={"bad name": 1.0}), "M")
    result = _result()
    odd = dataclasses.replace(result, unit=dataclasses.replace(result.unit, cell=Cell("jsonl", "M", (("9x", 1),))))
    with pytest.raises(ValueError, match=r"^factor '9x': names must match"):
        unit_row(odd, "M")


def test_a_call_row_redacts_secrets_quoted_in_the_error() -> None:
    call = CallRecord(
        "k" * 32, "run-1", "lane", "dep", "key0", 2, 1000.0, 0.5, CallStatus.RATE_LIMITED, 10, 3, 429,
        "429 from https://gw/v1?api-key=SECRET123",
    )  # fmt: skip
    assert call_row(call) == {
        "unit_key": "k" * 32,
        "run_id": "run-1",
        "lane_id": "lane",
        "deployment": "dep",
        "credential_id": "key0",
        "attempt": 2,
        "started_at": 1000.0,
        "latency_s": 0.5,
        "status": "rate_limited",
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "http_status": 429,
        "error": "429 from https://gw/v1?api-key=***",
        "cost_usd": None,
    }
    assert call_row(CallRecord("k", "r", "l", "d", "c", 1, 0.0, 0.0, CallStatus.OK))["error"] is None


def test_a_run_row_starts_running_with_canonical_models_and_a_first_heartbeat() -> None:
    run = RunRecord("run-1", 1000.0, "jsonl", ("a", "b"), {"x": 1}, "0.1.0", "host", 12, 345)
    assert run_row(run, str.upper) == {
        "run_id": "run-1",
        "started_at": 1000.0,
        "finished_at": None,
        "status": "running",
        "suite": "jsonl",
        "models": ["A", "B"],
        "config": {"x": 1},
        "version": "0.1.0",
        "host": "host",
        "planned_units": 12,
        "executed_units": None,
        "pid": 345,
        "heartbeat_at": 1000.0,
        "worker": 0,
        "plan": None,
        "experiment": None,
    }


def test_scope_rows_are_sorted_by_digest_with_their_kind() -> None:
    run = RunRecord(
        "r", 0.0, "s", (), {}, "v", "h", scopes={"b" * 32: {"kind": "model", "m": 1}, "a" * 32: {"suite": "s"}}
    )
    assert scope_rows(run) == [
        {"scope": "a" * 32, "kind": "", "description": {"suite": "s"}},
        {"scope": "b" * 32, "kind": "model", "description": {"kind": "model", "m": 1}},
    ]


def test_first_per_key_keeps_the_first_completed_result_else_the_last_infra_error_sorted_by_key() -> None:
    infra_1 = _result("b" * 32, Outcome.INFRA_ERROR, infra_status="first")
    infra_2 = _result("b" * 32, Outcome.INFRA_ERROR, infra_status="second")
    done_1 = _result("a" * 32, Outcome.FAILURE, task_id="first")
    done_2 = _result("a" * 32, Outcome.SUCCESS, task_id="second")
    late = _result("c" * 32, Outcome.INFRA_ERROR)
    late_done = _result("c" * 32, Outcome.PARTIAL)
    chosen = first_per_key([infra_1, done_1, late, infra_2, done_2, late_done])
    assert chosen == [done_1, infra_2, late_done]


def test_transcripts_round_trip_compressed_with_unicode_and_odd_values() -> None:
    transcript = {"answer": "é ✓", "n": 3, "when": 1.5}
    data = encode_transcript(transcript)
    assert zlib.decompress(data).decode("utf-8") == '{"answer":"é ✓","n":3,"when":1.5}'
    assert decode_transcript(TRANSCRIPT_ENCODING, data) == transcript
    assert decode_transcript(TRANSCRIPT_ENCODING, encode_transcript({"x": object})) == {"x": str(object)}


def test_an_unknown_transcript_encoding_is_refused_naming_it() -> None:
    with pytest.raises(StorageError, match=r"^transcript encoding 'msgpack' is unknown to this fleetbench$"):
        decode_transcript("msgpack", b"")


def test_calls_alone_are_appended_without_touching_any_unit(database_url: str) -> None:
    """A write may carry call records only (no result): nothing is upserted, the calls are kept."""
    store = storage(database_url)
    store.write([result("a")], [])
    assert store.write([], [call("a", DEEPSEEK), call("a", DEEPSEEK, attempt=2)]) == 0
    (share,) = store.deployment_shares(ReportFilter())
    assert (share["deployment"], share["units"], share["calls"]) == (DEEPSEEK, 1, 2)
    store.close()


def test_rows_hold_exactly_the_columns_the_driver_statements_bind() -> None:
    """The write path hands rows to the driver by these column lists: a field a row builder added but the list
    lacked would be dropped silently, so the two must be the same."""
    assert set(unit_row(_result(), "DeepSeek-V3-0324")) == set(UNIT_COLUMNS)
    record = CallRecord("k" * 32, "run-1", "lane", "dep", "key0", 1, 1.0, 0.5, CallStatus.OK)
    assert set(call_row(record)) == set(CALL_COLUMNS)
