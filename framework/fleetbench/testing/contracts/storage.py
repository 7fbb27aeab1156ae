"""The storage kit: what every `Storage` must do, as tests an author inherits.

Subclass `StorageContract` (as `TestMyStorage`) and define the `storage` fixture: a new, empty storage built with the
kit's `naming` policy (not migrated yet). The published fixtures `sqlite_url` and `postgres_url` give fresh
databases. `export_rows` must give at least `unit_key`, `suite`, `base_model`, `deployment`, `run_id`, `outcome` and
each factor and metric by name::

    class TestSqlStorage(StorageContract):
        @pytest.fixture
        def storage(self, naming: NamingPolicy, sqlite_url: str) -> Iterator[Storage]:
            store = SqlStorage(SqlOptions(url=sqlite_url), naming=naming)
            yield store
            store.close()
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from fleetbench.contracts import contract_problem
from fleetbench.interfaces import NamingPolicy, NoOptions, Storage
from fleetbench.plan import model_plan
from fleetbench.testing.fakes import ExactNaming
from fleetbench.types import (
    CallRecord,
    CallStatus,
    Catalog,
    Cell,
    DeploymentSpec,
    Episode,
    MetricSpec,
    ModelSpec,
    Outcome,
    PlanScope,
    ReportFilter,
    RunRecord,
    Unit,
    UnitResult,
    UnitScope,
)

MODEL, OTHER = "Kit-Model", "Kit-Other"
SUITE = "kit"
SCOPE, OTHER_SCOPE = UnitScope("a" * 32, "b" * 32), UnitScope("a" * 32, "c" * 32)
RUN, LATER_RUN = "kit-run-1", "kit-run-2"
METRICS = (MetricSpec("score", "a score", "mean"), MetricSpec("tokens", "tokens used", "sum"))
KIT_CATALOG = Catalog(
    (
        ModelSpec(MODEL, "scripted", (DeploymentSpec(MODEL), DeploymentSpec(f"{MODEL}-2")), aliases=("kit",)),
        ModelSpec(OTHER, "scripted", (DeploymentSpec(OTHER),)),
    )
)
"""Two base models; Kit-Model has two deployments and an alias."""


def kit_units(
    model: str = MODEL,
    instances: int = 3,
    scope: UnitScope = SCOPE,
    seed: int = 0,
    levels: Sequence[str] = ("low", "high"),
) -> list[Unit]:
    """Planned units (real keys) of cells `level=low` and `level=high`, in plan order."""
    cells = [(Cell(SUITE, model, (("level", level), ("rate", 0.8))), instances) for level in levels]
    return list(model_plan(model, cells, scope, seed).units())


def result(
    unit: Unit,
    outcome: Outcome = Outcome.SUCCESS,
    *,
    run_id: str = RUN,
    deployment: str | None = None,
    metrics: Mapping[str, float] | None = None,
    transcript: Mapping[str, Any] | None = None,
    duration_s: float = 2.0,
    turns: int = 3,
) -> UnitResult:
    """A finished unit as the scheduler reports it."""
    infra = outcome is Outcome.INFRA_ERROR
    episode = Episode(
        outcome,
        metrics={} if infra else dict(metrics if metrics is not None else {"score": 1.0, "tokens": 10.0}),
        task_id=f"task-{unit.index}",
        turns=turns,
        infra_status="request_timeout" if infra else None,
        transcript=transcript,
    )
    where = deployment or unit.cell.base_model
    return UnitResult(unit, run_id, where, f"{where}#key0", 1000.0 + unit.index, duration_s, episode)


def call(unit: Unit, deployment: str, attempt: int = 1, run_id: str = RUN) -> CallRecord:
    """One request sent for `unit` to `deployment`."""
    status = CallStatus.OK if attempt == 1 else CallStatus.RATE_LIMITED
    return CallRecord(unit.key, run_id, f"{deployment}#key0", deployment, "key0", attempt, 1000.0, 0.5, status, 10, 2)


def run_record(run_id: str = RUN, started_at: float = 1000.0, label: str = "") -> RunRecord:
    config = {"run": {"label": label, "models": [MODEL]}, "suite": {"plugin": SUITE}}
    return RunRecord(run_id, started_at, SUITE, (MODEL,), config, "0.0-kit", "kit-host", planned_units=6, pid=4242)


def ready(storage: Storage, *runs: RunRecord) -> Storage:
    """Migrate, then begin the runs (the kit's run when none is given)."""
    storage.migrate()
    for run in runs or (run_record(),):
        storage.begin_run(run)
    return storage


class StorageContract:
    """Inherited tests proving a storage is idempotent, exact about what is completed, and reads back what it wrote."""

    @pytest.fixture
    def naming(self) -> NamingPolicy:
        """The naming policy to construct the storage with (knows `Kit-Model`, `Kit-Model-2`, `kit`, `Kit-Other`)."""
        return ExactNaming(NoOptions(), catalog=KIT_CATALOG)

    @pytest.fixture
    def storage(self, naming: NamingPolicy) -> Storage:
        """A new, empty storage built with `naming`. Override this."""
        raise NotImplementedError("define the `storage` fixture in your StorageContract subclass")

    def test_passes_the_load_time_contract_check(self, storage: Storage) -> None:
        assert contract_problem(Storage, type(storage)) is None

    def test_migrate_is_safe_to_repeat(self, storage: Storage) -> None:
        for _ in range(2):
            notices = storage.migrate()
            assert all(isinstance(notice, str) for notice in notices)
        assert storage.stored_among([unit.key for unit in kit_units()]) == set()

    def test_writes_are_idempotent_on_unit_keys(self, storage: Storage) -> None:
        units = kit_units()
        ready(storage)
        assert storage.write([result(u) for u in units], []) == len(units)
        assert storage.write([result(u) for u in units], []) == 0
        assert storage.stored_among([u.key for u in units] + ["f" * 32]) == {u.key for u in units}
        assert _single(storage.aggregate([], ReportFilter(SUITE)))["total"] == len(units)

    def test_a_completed_unit_is_never_replaced(self, storage: Storage) -> None:
        unit = kit_units()[0]
        ready(storage, run_record(), run_record(LATER_RUN, 2000.0))
        storage.write([result(unit, metrics={"score": 1.0, "tokens": 1.0})], [])
        later = result(unit, Outcome.FAILURE, run_id=LATER_RUN, metrics={"score": 0.0, "tokens": 9.0})
        assert storage.write([later], []) == 0
        row = _single(storage.aggregate([], ReportFilter(SUITE), METRICS))
        assert (row["success"], row["failure"], row["score"], row["tokens"]) == (1, 0, 1.0, 1.0)
        assert [r["run_id"] for r in storage.export_rows(ReportFilter(SUITE))] == [RUN]

    def test_an_infra_error_stays_missing_until_a_real_result_replaces_it(self, storage: Storage) -> None:
        unit = kit_units()[0]
        ready(storage)
        assert storage.write([result(unit, Outcome.INFRA_ERROR)], []) == 0
        assert storage.stored_among([unit.key]) == set()
        assert storage.write([result(unit, Outcome.PARTIAL)], []) == 1
        assert storage.stored_among([unit.key]) == {unit.key}
        row = _single(storage.aggregate([], ReportFilter(SUITE)))
        assert (row["total"], row["partial"], row["infra_error"]) == (1, 1, 0)

    def test_completed_per_cell_counts_only_its_scope_seed_and_indices(self, storage: Storage) -> None:
        low, high = kit_units(instances=4)[:4], kit_units(instances=4)[4:]
        others = kit_units(scope=OTHER_SCOPE) + kit_units(seed=1)
        ready(storage)
        written = [result(u) for u in low] + [result(high[0]), result(high[1], Outcome.INFRA_ERROR)]
        storage.write(written + [result(u) for u in others], [])
        assert dict(storage.completed_per_cell(SCOPE, 0, 4)) == {low[0].cell_key: 4, high[0].cell_key: 1}
        assert dict(storage.completed_per_cell(SCOPE, 0, 2)) == {low[0].cell_key: 2, high[0].cell_key: 1}
        assert dict(storage.completed_per_cell(OTHER_SCOPE, 0, 9)) == {low[0].cell_key: 3, high[0].cell_key: 3}
        assert dict(storage.completed_per_cell(SCOPE, 7, 9)) == {}
        by_lane = storage.completed_per_cell_and_deployment
        assert dict(by_lane(SCOPE, 0, 4)) == {(low[0].cell_key, MODEL): 4, (high[0].cell_key, MODEL): 1}
        assert dict(by_lane(SCOPE, 0, 2)) == {(low[0].cell_key, MODEL): 2, (high[0].cell_key, MODEL): 1}
        assert dict(by_lane(SCOPE, 7, 9)) == {}

    def test_transcripts_round_trip(self, storage: Storage) -> None:
        units = kit_units()
        transcript = {"messages": [{"role": "user", "content": "Grüße, 世界"}], "score": 0.5, "ok": True, "n": None}
        ready(storage)
        storage.write([result(units[0], transcript=transcript), result(units[1])], [])
        assert storage.transcripts(units[0].key[:10]) == [(units[0].key, SUITE, transcript)]
        assert storage.transcripts(units[1].key) == []  # stored without a transcript
        assert storage.transcripts("zz") == []
        assert len(storage.transcripts("", limit=1)) == 1  # every key starts with the empty prefix

    def test_runs_record_begin_heartbeat_and_finish(self, storage: Storage) -> None:
        ready(storage, run_record(), run_record(LATER_RUN, 2000.0, label="kit-label"))
        first, later = {r["run_id"]: r for r in storage.runs()}[RUN], storage.runs()[0]
        assert later["run_id"] == LATER_RUN and later["label"] == "kit-label", "newest first, with its label"
        assert (first["status"], first["suite"], first["host"], first["pid"]) == ("running", SUITE, "kit-host", 4242)
        storage.heartbeat(RUN, 1500.0)
        storage.finish_run(RUN, "finished", 1600.0, 6)
        first = {r["run_id"]: r for r in storage.runs()}[RUN]
        assert (first["status"], first["finished_at"], first["executed_units"]) == ("finished", 1600.0, 6)
        assert first["heartbeat_at"] >= 1500.0

    def test_renewing_to_an_earlier_time_ends_the_claims(self, storage: Storage) -> None:
        """How a worker ends the claims of a run that died on its machine: their expiry is set to now."""
        units = kit_units()
        ready(storage, run_record(), run_record(LATER_RUN, 2000.0))
        assert storage.claim(RUN, units[:3], now=100.0, expires_at=1000.0) == {u.key for u in units[:3]}
        assert storage.claim(LATER_RUN, units[:3], now=150.0, expires_at=200.0) == set(), "live until 1000"
        assert storage.renew_claims(RUN, 150.0) == 3
        assert {c.expires_at for c in storage.open_claims(SCOPE, 0)} == {150.0}
        assert storage.claim(LATER_RUN, units[:3], now=150.0, expires_at=200.0) == {u.key for u in units[:3]}

    def test_a_live_claim_is_held_by_one_run_until_it_expires(self, storage: Storage) -> None:
        units = kit_units()
        ready(storage, run_record(), run_record(LATER_RUN, 2000.0))
        assert storage.claim(RUN, units[:4], now=100.0, expires_at=160.0) == {u.key for u in units[:4]}
        assert storage.claim(LATER_RUN, units, now=110.0, expires_at=170.0) == {u.key for u in units[4:]}
        assert storage.claim(RUN, units[:1], now=120.0, expires_at=180.0) == {units[0].key}, "a run retakes its own"
        assert storage.renew_claims(RUN, 300.0) == 4
        assert storage.claim(LATER_RUN, units[:4], now=200.0, expires_at=260.0) == set(), "renewed: still live"
        assert storage.claim(LATER_RUN, units[:4], now=300.0, expires_at=360.0) == {u.key for u in units[:4]}
        held = {c.unit_key: c for c in storage.open_claims(SCOPE, 0)}
        assert set(held) == {u.key for u in units} and {c.run_id for c in held.values()} == {LATER_RUN}
        assert (held[units[5].key].cell_key, held[units[5].key].index) == (units[5].cell_key, units[5].index)
        assert storage.open_claims(OTHER_SCOPE, 0) == [] and storage.open_claims(SCOPE, 1) == []

    def test_writing_releases_a_claim_and_completed_units_cannot_be_claimed(self, storage: Storage) -> None:
        units = kit_units()
        ready(storage, run_record(), run_record(LATER_RUN, 2000.0))
        storage.claim(RUN, units[:2], now=100.0, expires_at=1e12)
        storage.write([result(units[0]), result(units[1], Outcome.INFRA_ERROR)], [])
        assert storage.open_claims(SCOPE, 0) == []
        assert storage.claim(LATER_RUN, units[:2], now=101.0, expires_at=1e12) == {units[1].key}, "infra errors re-run"
        storage.finish_run(LATER_RUN, "interrupted", 102.0, 0)
        ended = storage.open_claims(SCOPE, 0)
        assert [(c.unit_key, c.run_id, c.expires_at) for c in ended] == [(units[1].key, LATER_RUN, 102.0)], (
            "finishing a run ends its claims at once; they stay, as orphans, for the plan's other workers"
        )
        assert storage.claim(RUN, units[:2], now=102.0, expires_at=1e12) == {units[1].key}

    def test_a_late_infra_error_leaves_the_claim_of_the_run_that_took_the_unit_over(self, storage: Storage) -> None:
        """A worker stopped past its lease writes its request's failure late, after another run took the unit over
        and may be running it: that run keeps its claim, so no third worker can take the unit meanwhile."""
        units = kit_units()
        ready(storage, run_record(), run_record(LATER_RUN, 2000.0))
        assert storage.claim(RUN, units[:2], now=100.0, expires_at=110.0) == {units[0].key, units[1].key}
        assert storage.claim(LATER_RUN, units[:2], now=120.0, expires_at=1e12) == {units[0].key, units[1].key}
        storage.write([result(units[0], Outcome.INFRA_ERROR)], [])  # RUN's late write
        held = {c.unit_key: c.run_id for c in storage.open_claims(SCOPE, 0)}
        assert held == {units[0].key: LATER_RUN, units[1].key: LATER_RUN}
        assert storage.claim(RUN, units[:2], now=130.0, expires_at=1e12) == set(), "still LATER_RUN's"
        storage.write([result(units[1])], [])  # a late completed result ends the unit: its claim goes, whoever's
        assert {c.unit_key for c in storage.open_claims(SCOPE, 0)} == {units[0].key}
        storage.write([result(units[0], Outcome.INFRA_ERROR, run_id=LATER_RUN)], [])
        assert storage.open_claims(SCOPE, 0) == [], "the holder's own infra error gives its claim back"

    def test_live_runs_and_recent_calls(self, storage: Storage) -> None:
        units = kit_units()
        plan_a = dataclasses.replace(run_record(), plan="p" * 32, worker=3)
        plan_b = dataclasses.replace(run_record(LATER_RUN, 2000.0), plan="p" * 32)
        ready(storage, plan_a, plan_b)
        storage.heartbeat(RUN, 5000.0)
        assert storage.live_runs("p" * 32, 1000.0) == [], "a run holding no claim sends nothing: it is not counted"
        storage.claim(RUN, units[1:2], now=100.0, expires_at=1e12)
        storage.claim(LATER_RUN, units[2:3], now=100.0, expires_at=1e12)
        assert storage.live_runs("p" * 32, 4000.0) == [RUN]
        assert storage.live_runs("p" * 32, 1000.0) == sorted([RUN, LATER_RUN]), "every worker sees one order"
        assert storage.live_runs("q" * 32, 0.0) == []
        assert {r["run_id"]: r["worker"] for r in storage.runs()}[RUN] == 3
        storage.write([result(units[0])], [call(units[0], MODEL), call(units[0], MODEL, attempt=2)])
        recent = storage.recent_calls(999.0)
        assert sorted((c["deployment"], c["status"]) for c in recent) == [(MODEL, "ok"), (MODEL, "rate_limited")]
        assert storage.recent_calls(1001.0) == []

    def test_aggregates_count_outcomes_and_metrics_over_completed_units(self, storage: Storage) -> None:
        units = kit_units(instances=3)
        outcomes = [Outcome.SUCCESS, Outcome.SUCCESS, Outcome.FAILURE, Outcome.PARTIAL, Outcome.INFRA_ERROR]
        scores = [1.0, 1.0, 0.0, 0.5]
        ready(storage)
        written = [
            result(u, o, metrics={"score": s, "tokens": 10.0}, duration_s=2.0 * (i + 1))
            for i, (u, o, s) in enumerate(zip(units, outcomes, [*scores, 0.0], strict=False))
        ]
        storage.write(written, [])
        row = _single(storage.aggregate(["base_model"], ReportFilter(SUITE), METRICS))
        assert row["base_model"] == MODEL
        assert (row["total"], row["success"], row["failure"], row["partial"], row["infra_error"]) == (4, 2, 1, 1, 1)
        assert row["score"] == pytest.approx(sum(scores) / 4)
        assert row["tokens"] == pytest.approx(40.0)
        assert row["mean_duration_s"] == pytest.approx((2 + 4 + 6 + 8) / 4)
        by_level = storage.aggregate(["level"], ReportFilter(SUITE), METRICS)
        assert [(r["level"], r["total"]) for r in by_level] == [("high", 1), ("low", 3)]
        assert storage.aggregate(["rate"], ReportFilter(SUITE, factors={"rate": (0.80,)}))[0]["rate"] == 0.8

    def test_model_names_go_through_the_naming_policy(self, storage: Storage) -> None:
        ready(storage)
        # Units planned under a deployment spelling and an alias are stored and found under the base model.
        units = kit_units(model=f"{MODEL}-2")[:3] + kit_units(model="kit")[3:]
        storage.write([result(u, deployment=MODEL) for u in units], [])
        for spelling in (MODEL, f"{MODEL}-2", "kit"):
            row = _single(storage.aggregate(["base_model"], ReportFilter(SUITE, (spelling,))))
            assert (row["base_model"], row["total"]) == (MODEL, len(units)), spelling

    def test_deployment_shares_count_units_and_calls_per_deployment(self, storage: Storage) -> None:
        units = kit_units()
        ready(storage)
        results = [result(u, deployment=f"{MODEL}-2" if i % 3 == 0 else MODEL) for i, u in enumerate(units)]
        calls = [call(u, r.deployment) for u, r in zip(units, results, strict=True)]
        calls.append(call(units[1], MODEL, attempt=2))
        storage.write(results, calls)
        shares = {
            (s["base_model"], s["deployment"]): (s["units"], s["calls"])
            for s in storage.deployment_shares(ReportFilter(SUITE))
        }
        assert shares == {(MODEL, MODEL): (4, 5), (MODEL, f"{MODEL}-2"): (2, 2)}

    def test_group_calls_count_each_groups_calls_to_its_own_models_deployments(self, storage: Storage) -> None:
        units = kit_units()  # three units of cell level=low, then three of level=high
        ready(storage)
        extra = [call(units[0], MODEL, attempt=2), call(units[3], f"{MODEL}-2", attempt=2)]
        judged = call(units[4], OTHER)  # a judge's request to another model's deployment: not this model's call
        storage.write([result(u) for u in units], [*(call(u, MODEL) for u in units), *extra, judged])
        found = storage.group_calls(["base_model", "level"], ReportFilter(SUITE))
        if found is None:
            pytest.skip("this storage does not count calls per group (optional: reports leave grouped calls blank)")
        assert sorted((r["base_model"], r["level"], r["calls"]) for r in found) == [
            (MODEL, "high", 4),
            (MODEL, "low", 4),
        ]
        assert storage.group_calls(["suite", "seed"], ReportFilter(SUITE)) == [{"suite": SUITE, "seed": 0, "calls": 8}]
        narrowed = storage.group_calls(["base_model", "level"], ReportFilter(SUITE, factors={"level": ("low",)}))
        assert [(r["level"], r["calls"]) for r in narrowed or []] == [("low", 4)]
        # Under a plan of two instances per cell, the calls of instance 2 are left out, as its unit is.
        plan = PlanScope(SCOPE.suite, SCOPE.model, 0, {u.cell_key: 2 for u in units})
        planned = storage.group_calls(["level"], ReportFilter(SUITE, plans=(plan,)))
        assert sorted((r["level"], r["calls"]) for r in planned or []) == [("high", 3), ("low", 3)]

    def test_filters_select_by_run_and_label(self, storage: Storage) -> None:
        units = kit_units()
        ready(storage, run_record(), run_record(LATER_RUN, 2000.0, label="kit-label"))
        storage.write([result(u) for u in units[:2]] + [result(u, run_id=LATER_RUN) for u in units[2:]], [])
        assert _single(storage.aggregate([], ReportFilter(SUITE, run_id=RUN)))["total"] == 2
        assert _single(storage.aggregate([], ReportFilter(SUITE, run_label="kit-label")))["total"] == 4
        assert _single(storage.aggregate([], ReportFilter(SUITE, factors={"level": ("low",)})))["total"] == 3

    def test_export_rows_hold_every_unit_flat(self, storage: Storage) -> None:
        units = kit_units()
        ready(storage)
        storage.write([result(u) for u in units[:-1]] + [result(units[-1], Outcome.INFRA_ERROR)], [])
        rows = list(storage.export_rows(ReportFilter(SUITE)))
        assert sorted(r["unit_key"] for r in rows) == sorted(u.key for u in units)
        by_key = {r["unit_key"]: r for r in rows}
        first = by_key[units[0].key]
        assert (first["outcome"], first["base_model"], first["deployment"]) == ("success", MODEL, MODEL)
        assert (first["level"], first["score"], first["tokens"]) == ("low", 1.0, 10.0)
        assert by_key[units[-1].key]["outcome"] == "infra_error"

    def test_export_calls_hold_every_call_of_the_filtered_units_with_their_base_model(self, storage: Storage) -> None:
        units = kit_units() + kit_units(OTHER, scope=OTHER_SCOPE)
        ready(storage, run_record(), run_record(LATER_RUN, 2000.0))
        storage.write([result(u, deployment=u.cell.base_model) for u in units], [])
        sent = [call(units[0], MODEL), call(units[0], MODEL, attempt=2), call(units[1], f"{MODEL}-2", run_id=LATER_RUN)]
        storage.write([], [*sent, call(units[-1], OTHER)])
        rows = list(storage.export_calls(ReportFilter(SUITE, base_models=(MODEL,))))
        assert [(r["unit_key"], r["deployment"], r["attempt"], r["status"]) for r in rows] == [
            (c.unit_key, c.deployment, c.attempt, c.status.value) for c in sent
        ], "every call of the model's units, in the order they were recorded"
        assert {r["base_model"] for r in rows} == {MODEL}
        assert (rows[0]["latency_s"], rows[0]["prompt_tokens"], rows[0]["run_id"]) == (0.5, 10, RUN)
        assert len(list(storage.export_calls(ReportFilter(SUITE, run_id=LATER_RUN)))) == 1

    def test_export_transcripts_pair_each_unit_row_with_its_transcript(self, storage: Storage) -> None:
        units = kit_units()
        ready(storage)
        storage.write([result(u, transcript={"said": u.key}) for u in units[:2]] + [result(units[2])], [])
        pairs = list(storage.export_transcripts(ReportFilter(SUITE)))
        with_transcript = {row["unit_key"]: transcript for row, transcript in pairs if transcript}
        assert with_transcript == {u.key: {"said": u.key} for u in units[:2]}
        row = next(row for row, _ in pairs if row["unit_key"] == units[0].key)
        assert (row["outcome"], row["base_model"], row["level"], row["score"]) == ("success", MODEL, "low", 1.0)

    def test_plan_filters_select_exactly_the_planned_units(self, storage: Storage) -> None:
        units, other_seed, other_scope = kit_units(instances=4), kit_units(seed=1), kit_units(scope=OTHER_SCOPE)
        ready(storage)
        storage.write([result(u) for u in units + other_seed + other_scope], [call(units[0], MODEL)])
        cells = {u.cell_key: 2 for u in units}
        plan = PlanScope(SCOPE.suite, SCOPE.model, 0, cells)
        row = _single(storage.aggregate(["base_model"], ReportFilter(SUITE, plans=(plan,)), METRICS))
        assert (row["total"], row["tokens"]) == (4, pytest.approx(40.0)), "indices 0 and 1 of two cells"
        both = (plan, PlanScope(SCOPE.suite, SCOPE.model, 1, cells))
        assert _single(storage.aggregate([], ReportFilter(SUITE, plans=both)))["total"] == 8
        assert storage.aggregate([], ReportFilter(SUITE, plans=()))[0]["total"] == 0
        shares = storage.deployment_shares(ReportFilter(SUITE, plans=(plan,)))
        assert [(s["units"], s["calls"]) for s in shares] == [(4, 1)]
        exported = {r["unit_key"] for r in storage.export_rows(ReportFilter(SUITE, plans=(plan,)))}
        assert exported == {u.key for u in units if u.index < 2}

    def test_scope_columns_and_properties_group_rows(self, storage: Storage) -> None:
        description = {"kind": "suite", "suite": SUITE, "version": "3", "data": {"items": "d" * 40},
                       "options": {"scorer": "exact"}}  # fmt: skip
        ready(
            storage, RunRecord(RUN, 1000.0, SUITE, (MODEL,), {}, "kit", "kit-host", scopes={SCOPE.suite: description})
        )
        storage.write([result(u) for u in kit_units() + kit_units(seed=5)], [])
        rows = storage.aggregate(["seed", "dataset", "suite.scorer", "suite_version"], ReportFilter(SUITE))
        assert [(r["seed"], r["dataset"], r["suite.scorer"], r["suite_version"], r["total"]) for r in rows] == [
            (0, "d" * 12, "exact", "3", 6), (5, "d" * 12, "exact", "3", 6),
        ]  # fmt: skip
        assert storage.scope_descriptions([SCOPE.suite, "f" * 32]) == {SCOPE.suite: description}
        assert dict(storage.suites()) == {SUITE: 12}

    def test_close_releases_and_the_storage_reopens(self, storage: Storage) -> None:
        unit = kit_units()[0]
        ready(storage)
        storage.write([result(unit)], [])
        storage.close()
        assert storage.stored_among([unit.key]) == {unit.key}
        storage.close()


def _single(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    assert len(rows) == 1, rows
    row = rows[0]
    for name, value in row.items():
        if isinstance(value, float):
            assert math.isfinite(value), name
    return row
