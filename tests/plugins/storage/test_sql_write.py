"""Writes of the `sql` storage: round trip, exactly-once counting, infra-error replacement, names, transcripts."""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from typing import Any

import pytest
from sqlalchemy import Table, create_engine, select

from fleetbench.errors import StorageError
from fleetbench.testing.units import TEST_SCOPE
from fleetbench.types import CallStatus, MetricSpec, Outcome, ReportFilter, UnitScope
from fleetbench_plugins.storage.sql.schema import calls, runs, transcripts, units

from .builders import DEEPSEEK, LLAMA, RUN, SUITE, call, key, result, run_record, storage


def rows(url: str, table: Table) -> list[dict[str, Any]]:
    """Every row of a table, read straight from the database (not through the storage under test)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(select(table))]
    finally:
        engine.dispose()


def test_round_trip(database_url: str) -> None:
    store = storage(database_url)
    stored = result("a", factors={"prompt_type": "cot", "tool_success_rate": 0.9}, metrics={"score": 0.25})
    written = store.write([stored], [call("a", DEEPSEEK)])
    assert written == 1
    (row,) = rows(database_url, units)
    assert row["unit_key"] == key("a")
    assert row["suite"] == SUITE and row["base_model"] == DEEPSEEK and row["deployment"] == DEEPSEEK
    assert row["factors"] == {"prompt_type": "cot", "tool_success_rate": 0.9}
    assert row["metrics"] == {"score": 0.25}
    assert (row["outcome"], row["turns"], row["task_id"], row["seed"]) == ("success", 3, "task-a", 7)
    (stored_call,) = rows(database_url, calls)
    assert stored_call["unit_key"] == key("a") and stored_call["status"] == "ok"
    assert stored_call["prompt_tokens"] == 100 and stored_call["http_status"] == 200
    assert store.stored_among([key("a"), key("b")]) == {key("a")}
    scope = (row["suite_scope"], row["model_scope"], row["cell_key"])
    assert scope == (TEST_SCOPE.suite, TEST_SCOPE.model, stored.unit.cell_key)
    store.close()


def test_same_unit_twice_in_one_write_counts_once(database_url: str) -> None:
    store = storage(database_url)
    assert store.write([result("a"), result("a", Outcome.FAILURE)], []) == 1
    assert [r["outcome"] for r in rows(database_url, units)] == ["success"]


def test_same_unit_in_separate_writes_counts_once(database_url: str) -> None:
    store = storage(database_url)
    assert store.write([result("a"), result("b")], [call("a", DEEPSEEK)]) == 2
    assert store.write([result("a"), result("b")], [call("a", DEEPSEEK)]) == 0
    assert len(rows(database_url, units)) == 2
    # Calls are real requests: both batches' calls are kept.
    assert len(rows(database_url, calls)) == 2


def test_infra_error_is_replaced_but_completed_never(database_url: str) -> None:
    store = storage(database_url)
    assert store.write([result("a", Outcome.INFRA_ERROR, deployment=f"{DEEPSEEK}-2")], []) == 0
    assert store.stored_among([key("a")]) == set()

    assert store.write([result("a", Outcome.PARTIAL, deployment=DEEPSEEK, duration_s=4.0)], []) == 1
    (row,) = rows(database_url, units)
    assert (row["outcome"], row["deployment"], row["duration_s"]) == ("partial", DEEPSEEK, 4.0)

    assert store.write([result("a", Outcome.SUCCESS)], []) == 0
    assert store.write([result("a", Outcome.INFRA_ERROR)], []) == 0
    assert [r["outcome"] for r in rows(database_url, units)] == ["partial"]
    assert store.stored_among([key("a")]) == {key("a")}


def test_infra_error_and_success_in_one_batch_keeps_the_success(database_url: str) -> None:
    store = storage(database_url)
    batch = [result("a", Outcome.INFRA_ERROR), result("a", Outcome.SUCCESS), result("a", Outcome.INFRA_ERROR)]
    assert store.write(batch, []) == 1
    assert [r["outcome"] for r in rows(database_url, units)] == ["success"]


def test_stored_among_excludes_infra_errors_and_unknown_keys(database_url: str) -> None:
    store = storage(database_url)
    store.write(
        [
            result("done"),
            result("infra", Outcome.INFRA_ERROR),
            result("failed", Outcome.FAILURE),
            result("llama", model=LLAMA),
        ],
        [],
    )
    asked = [key(n) for n in ("done", "infra", "failed", "llama", "never")]
    assert store.stored_among(asked) == {key("done"), key("failed"), key("llama")}
    assert store.stored_among([]) == set()


def test_completed_per_cell_counts_by_scope_seed_and_index(database_url: str) -> None:
    store = storage(database_url)
    low = {"prompt_type": "optimal", "tool_success_rate": 0.8}
    high = {"prompt_type": "cot", "tool_success_rate": 0.8}
    store.write(
        [
            *(result(f"low-{i}", factors=low, index=i) for i in range(4)),
            result("high-0", factors=high, index=0),
            result("high-1", Outcome.INFRA_ERROR, factors=high, index=1),
        ],
        [],
    )
    low_key, high_key = result("x", factors=low).unit.cell_key, result("x", factors=high).unit.cell_key
    assert store.completed_per_cell(TEST_SCOPE, 7, 10) == {low_key: 4, high_key: 1}
    assert store.completed_per_cell(TEST_SCOPE, 7, 2) == {low_key: 2, high_key: 1}  # index 2 and 3 are beyond
    assert store.completed_per_cell(TEST_SCOPE, 8, 10) == {}  # another seed
    assert store.completed_per_cell(UnitScope(TEST_SCOPE.suite, "f" * 32), 7, 10) == {}  # another model scope


def test_names_are_canonical_when_written_and_looked_up(database_url: str) -> None:
    store = storage(database_url, run=None)
    store.begin_run(run_record(models=("deepseek-v3-0324", "Llama-3.3-70B-Instruct")))
    store.write(
        [
            result("suffix", model=f"{DEEPSEEK}-2", deployment=f"{DEEPSEEK}-2"),
            result("lower", model="deepseek-v3-0324"),
            result("alias", model="llama-3.3-70b", deployment=LLAMA),
        ],
        [],
    )
    by_key = {r["unit_key"]: r for r in rows(database_url, units)}
    assert by_key[key("suffix")]["base_model"] == DEEPSEEK
    assert by_key[key("suffix")]["deployment"] == f"{DEEPSEEK}-2"  # deployments keep their exact name
    assert by_key[key("lower")]["base_model"] == DEEPSEEK
    assert by_key[key("alias")]["base_model"] == LLAMA
    assert rows(database_url, runs)[0]["models"] == [DEEPSEEK, LLAMA]
    (group,) = store.aggregate(["base_model"], ReportFilter(base_models=("deepseek-v3-0324-2",)))
    assert (group["base_model"], group["total"]) == (DEEPSEEK, 2)


def test_transcripts_round_trip_compressed(database_url: str) -> None:
    store = storage(database_url)
    transcript = {"messages": [{"role": "user", "content": "use the tools " * 200}], "score": 0.5, "ok": True}
    store.write([result("a", transcript=transcript), result("b")], [])
    assert store.transcripts(key("a")[:8]) == [(key("a"), SUITE, transcript)]
    assert store.transcripts(key("b")) == []
    (raw,) = rows(database_url, transcripts)
    data = bytes(raw["data"])
    assert raw["encoding"] == "json+zlib"
    assert json.loads(zlib.decompress(data)) == transcript
    assert len(data) < len(json.dumps(transcript)) / 10


def test_transcripts_follow_the_row_that_was_kept(database_url: str) -> None:
    store = storage(database_url)
    store.write([result("a", Outcome.INFRA_ERROR, transcript={"attempt": 1})], [])
    assert store.transcripts(key("a")) == [(key("a"), SUITE, {"attempt": 1})]
    store.write([result("a", transcript={"attempt": 2})], [])
    store.write([result("a", Outcome.FAILURE, transcript={"attempt": 3})], [])
    assert store.transcripts(key("a")) == [(key("a"), SUITE, {"attempt": 2})]
    # An infra error replaced by a result without a transcript must not keep the infra error's transcript.
    store.write([result("b", Outcome.INFRA_ERROR, transcript={"attempt": 1})], [])
    store.write([result("b")], [])
    assert store.transcripts(key("b")) == []


def test_transcripts_prefix_is_literal_and_limited(database_url: str) -> None:
    store = storage(database_url)
    store.write([result(name, transcript={"n": name}) for name in "abcdef"], [])
    assert len(store.transcripts("", limit=4)) == 4
    assert store.transcripts("%") == []
    assert store.transcripts("_") == []


def test_non_finite_metrics_are_stored_as_missing(database_url: str) -> None:
    store = storage(database_url)
    store.write([result("a", metrics={"score": float("nan")}), result("b", metrics={"score": 0.5})], [])
    assert {r["unit_key"]: r["metrics"] for r in rows(database_url, units)}[key("a")] == {"score": None}


def test_runs_begin_and_finish(database_url: str) -> None:
    store = storage(database_url)
    store.finish_run(RUN, "completed", 2000.0, 5)
    (row,) = rows(database_url, runs)
    assert (row["status"], row["finished_at"], row["executed_units"], row["planned_units"]) == (
        "completed",
        2000.0,
        5,
        10,
    )
    assert row["config"] == {"storage": {"url": "***"}}
    with pytest.raises(StorageError, match="already recorded"):
        store.begin_run(run_record())
    with pytest.raises(StorageError, match="never begun"):
        store.finish_run("no-such-run", "completed", 2000.0, 0)


def test_results_of_an_unknown_run_are_refused_whole(database_url: str) -> None:
    store = storage(database_url)
    with pytest.raises(StorageError, match="never recorded: ghost"):
        store.write([result("a"), result("b", run_id="ghost")], [call("a", DEEPSEEK)])
    assert rows(database_url, units) == [] and rows(database_url, calls) == []


def test_unit_key_longer_than_64_is_refused(database_url: str) -> None:
    store = storage(database_url)
    valid = result("a")
    too_long = dataclasses.replace(valid, unit=dataclasses.replace(valid.unit, key="k" * 65))
    with pytest.raises(StorageError, match="unit key"):
        store.write([too_long], [])


def test_write_of_nothing_touches_nothing(sqlite_url: str) -> None:
    store = storage(sqlite_url, migrate=False, run=None)
    assert store.write([], []) == 0


def test_empty_database_counts(database_url: str) -> None:
    store = storage(database_url)
    (overall,) = store.aggregate([], ReportFilter())
    assert overall["total"] == 0 and overall["mean_duration_s"] is None


def test_secrets_quoted_in_provider_errors_are_not_stored(database_url: str) -> None:
    store = storage(database_url)
    failed = dataclasses.replace(
        call("a", "DeepSeek-V3-0324", status=CallStatus.AUTH),
        error="401 for url 'https://gw.example/v1/chat?api-version=2&api-key=sk-LEAK' via https://u:pw-LEAK@proxy:8080",
    )
    store.write([result("a")], [failed])
    (stored,) = rows(database_url, calls)
    assert (
        stored["error"]
        == "401 for url 'https://gw.example/v1/chat?api-version=2&api-key=***' via https://u:***@proxy:8080"
    )


@pytest.mark.parametrize("size", [1, 2, 300])
def test_a_batch_of_any_size_stores_every_column_as_written_one_by_one(database_url: str, size: int) -> None:
    """Batches go to the driver as one statement for one row and as executemany for several (and a batch of more
    keys than the cached expansions, 256, expands its key list anew): every column must come back the same."""
    batch = [
        result(f"u{i}", Outcome.FAILURE if i % 3 else Outcome.SUCCESS, metrics={"score": i / 7, "nan": math.nan},
               factors={"prompt_type": "cot", "rate": 0.5, "nested": "x"}, transcript={"turn": [i, None]}, index=i)
        for i in range(size)
    ]  # fmt: skip
    batched = storage(database_url)
    assert batched.write(batch, [call(f"u{i}", f"{DEEPSEEK}-2") for i in range(size)]) == size
    stored = {row["unit_key"]: row for row in rows(database_url, units)}
    stored_calls = sorted((row["unit_key"], row["deployment"], row["error"]) for row in rows(database_url, calls))
    batched.close()
    engine = create_engine(database_url)  # emptied, for the same units written one per batch
    with engine.begin() as connection:
        for table in (calls, transcripts, units):
            connection.execute(table.delete())
    engine.dispose()
    single = storage(database_url, run=None)
    for i, unit_result in enumerate(batch):
        assert single.write([unit_result], [call(f"u{i}", f"{DEEPSEEK}-2")]) == 1
    assert {row["unit_key"]: row for row in rows(database_url, units)} == stored
    assert sorted((r["unit_key"], r["deployment"], r["error"]) for r in rows(database_url, calls)) == stored_calls
    assert stored[key("u0")]["metrics"] == {"score": 0.0, "nan": None}
    assert stored[key("u0")]["experiment"] is None
    assert len(stored) == size
    single.close()


def test_the_unit_upsert_refuses_to_overwrite_a_completed_unit_and_says_so(database_url: str) -> None:
    """The write path reads which keys are stored under the write lock and sends only new keys and infra errors; a
    completed row the read did not see (a writer that ignored the lock) is not overwritten: the write fails, in one
    line that names the write and the database as a driver's error would."""
    from fleetbench_plugins.storage.sql.rows import unit_row
    from fleetbench_plugins.storage.sql.writes import _upsert_units

    store = storage(database_url)
    assert store.write([result("done")], []) == 1
    engine = create_engine(database_url)
    row = unit_row(result("done", Outcome.FAILURE), DEEPSEEK)
    with pytest.raises(StorageError, match="1 units to write, 0 written"), engine.begin() as connection:
        _upsert_units(connection, [row])
    engine.dispose()
    with pytest.raises(StorageError, match=r"^writing 1 units in .+ failed: 1 units to write, 0 written: another"):
        store._db()._written("writing 1 units", lambda connection: _upsert_units(connection, [row]))
    assert [r["outcome"] for r in rows(database_url, units)] == ["success"]
    store.close()


def test_a_look_up_of_more_keys_than_a_statement_can_bind_is_sent_in_parts(database_url: str) -> None:
    """`scheduler.write_batch` allows 100,000 units, PostgreSQL 65,535 parameters a statement (an attacker's write of
    70,000 units failed): the stored-units look-up and the claims' release go in parts, and find every key."""
    from fleetbench_plugins.storage.sql.claims import release_keys
    from fleetbench_plugins.storage.sql.totals import stored_rows

    store = storage(database_url)
    assert store.write([result("first"), result("last")], []) == 2
    keys = [key("first"), *(f"{i:064x}" for i in range(70_000)), key("last")]
    engine = create_engine(database_url)
    with engine.begin() as connection:
        assert sorted(stored_rows(connection, keys)) == sorted([key("first"), key("last")])
        release_keys(connection, keys)
    engine.dispose()
    store.close()


def test_metric_sums_beyond_the_largest_float_add_up_to_infinity_on_every_database(database_url: str) -> None:
    """Two units of one totals row, each with a finite metric of 1e308, written in two batches: the stored sum is
    2e308, beyond the largest float. SQLite's addition gives infinity; PostgreSQL's raised "value out of range:
    overflow" and failed every write of that row (an attacker's finding), so the run could never store them."""
    store = storage(database_url)
    assert store.write([result("big", metrics={"score": 1e308}, index=0)], []) == 1
    assert store.write([result("bigger", metrics={"score": 1e308}, index=1)], []) == 1
    assert store.write([result("negative", metrics={"score": -1e308}, index=2)], []) == 1
    (row,) = store.aggregate([], ReportFilter(SUITE), (MetricSpec("score", "s", "sum"),))
    assert row["total"] == 3 and row["score"] == math.inf
    store.close()


@pytest.mark.parametrize("group_by", [[], ["base_model"], ["prompt_type"], ["experiment"]])
def test_a_report_summing_past_the_largest_float_gives_infinity_on_every_database(
    database_url: str, group_by: list[str]
) -> None:
    """A metric of 1e308 in two totals rows (two deployments) and in two units: the report's sum across them passes
    the largest float. SQLite's SUM gives infinity; PostgreSQL's raised "value out of range: overflow", so the report
    failed (an attacker's finding). Grouped by nothing, a column and a factor (the totals answer) and by `experiment`
    (the units answer); the counts and a second, finite metric stay exact."""
    store = storage(database_url)
    for index, deployment in enumerate(("DeepSeek-V3-0324", "DeepSeek-V3-0324-2")):
        name = f"big-{index}"
        metrics = {"score": 1e308, "small": 0.25}
        stored = store.write([result(name, metrics=metrics, index=index, deployment=deployment)], [])
        assert stored == 1
    specs = (MetricSpec("score", "s", "sum"), MetricSpec("small", "s", "mean"))
    (row,) = store.aggregate(group_by, ReportFilter(SUITE), specs)
    assert row["total"] == 2 and row["success"] == 2
    assert row["score"] == math.inf and row["small"] == 0.25
    store.close()
