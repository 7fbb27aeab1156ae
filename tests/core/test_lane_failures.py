"""Lanes that fail, through the real runner, simulated provider and SQLite: the circuit breaker, lanes stopped by
auth or not-found, failover of static shares, episodes restarted mid-way, and the run deadline.

Every test checks the result the user relies on — stored = planned, each unit once, infrastructure failures never
counted as model failures — and how the lanes behaved, from the recorded calls and the run's lane reports.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

from fleetbench.config import compose_config, resolve_run
from fleetbench.lane_report import problem_lines
from fleetbench.lanes import Mode
from fleetbench.runner import RunSummary, run
from fleetbench.types import CallStatus

FAST = ["scheduler.backoff_base_s=0.001", "scheduler.backoff_max_s=0.005"]
LATENCY = [f"models.sim_agent.deployments.{i}.params.latency_ms=5" for i in range(3)]
SIM_AGENT_2 = "models.sim_agent.deployments.1.params"
TRANSCRIPT_ENCODING = "json+zlib"


def _run(db: Path, *overrides: str) -> RunSummary:
    settings = [f"storage.url=sqlite:///{db}", "run.progress=off", *FAST]
    if "suite=workflow" not in overrides:
        settings.append("suite.items=cycle")  # jsonl: more units per category than it holds items, on purpose
    return run(resolve_run(compose_config([*settings, *overrides])))


def _rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchall()


def _assert_all_stored_once(db: Path, summary: RunSummary) -> None:
    """Stored = planned, every unit once, none an infrastructure failure, so none counted as a model failure."""
    assert summary.newly_completed == summary.planned
    keys = [key for (key,) in _rows(db, "select unit_key from units")]
    assert len(keys) == len(set(keys)) == summary.planned
    assert _rows(db, "select count(*) from units where outcome = 'infra_error'") == [(0,)]


def _lane(summary: RunSummary, lane_id: str) -> Any:
    return next(report for report in summary.lanes if report.lane.lane_id == lane_id)


def _placements(db: Path) -> list[dict[str, Any]]:
    """Placements read from the transcripts table as any reader of the database would (zlib-compressed JSON)."""
    found = []
    for encoding, data in _rows(db, "select encoding, data from transcripts"):
        assert encoding == TRANSCRIPT_ENCODING
        placement = json.loads(zlib.decompress(data)).get("placement")
        if placement:
            found.append(placement)
    return found


@pytest.mark.parametrize(
    ("fault", "status"), [("refuse_connections=true", "unreachable"), ("transient_error_rate=1", "transient")]
)
def test_one_deployment_failing_every_request_leaves_no_unit_undone(tmp_path: Path, fault: str, status: str) -> None:
    """The issue's case: before lane health, one dead deployment left units "not done" while the others sat idle."""
    db = tmp_path / "dead.db"
    summary = _run(db, "run.instances=100", *LATENCY, f"{SIM_AGENT_2}.{fault}")
    _assert_all_stored_once(db, summary)
    assert summary.units_by_deployment["Sim-Agent-2"] == 0
    assert summary.units_by_deployment["Sim-Agent"] + summary.units_by_deployment["Sim-Agent-3"] == 500
    # The breaker parked the lane after `breaker_failures` (5) failed requests: none was sent to it afterwards. A
    # refused connection fails at once, so exactly 5 were sent; a 503 comes after the latency, so the lane's other
    # requests already in flight (at most 7 more) fail too.
    [(recorded, calls)] = _rows(db, "select status, count(*) from calls where deployment = 'Sim-Agent-2' group by 1")
    assert recorded == status
    assert calls == 5 if status == "unreachable" else 5 <= calls <= 5 + 7
    lane = _lane(summary, "Sim-Agent-2")
    # Every failed request lost its episode to another lane; so did an episode still waiting for one of the lane's
    # slots to open (`scheduler.ramp_step_s`) when it parked.
    assert (lane.mode, lane.parks) == (Mode.PARKED, 1) and calls <= lane.episodes_lost <= 8
    assert summary.restarts == lane.episodes_lost


def test_a_parked_lane_is_probed_after_its_cool_down_and_resumes(tmp_path: Path) -> None:
    db = tmp_path / "probe.db"
    outage = [f"{SIM_AGENT_2}.outage=transient", f"{SIM_AGENT_2}.outage_after=0", f"{SIM_AGENT_2}.outage_requests=5"]
    summary = _run(db, "run.instances=60", *LATENCY, *outage, "scheduler.breaker_cooldown_s=0.05")
    _assert_all_stored_once(db, summary)
    # In the order the requests were sent: call rows are written when their unit ends, and the units of the outage's
    # requests ended on other lanes, some after the probe's unit.
    statuses = [s for (s,) in _rows(db, "select status from calls where deployment = 'Sim-Agent-2' "
                                        "order by started_at, id")]  # fmt: skip
    assert statuses[:5] == ["transient"] * 5
    assert set(statuses[5:]) == {"ok"}, "after the cool-down one probe succeeded and the lane took units again"
    lane = _lane(summary, "Sim-Agent-2")
    assert (lane.mode, lane.parks, lane.probes_failed) == (Mode.ACTIVE, 1, 0)
    assert summary.units_by_deployment["Sim-Agent-2"] > 0


def test_a_failed_probe_parks_the_lane_again(tmp_path: Path) -> None:
    db = tmp_path / "probe_fails.db"
    outage = [f"{SIM_AGENT_2}.outage=unreachable", f"{SIM_AGENT_2}.outage_after=0", f"{SIM_AGENT_2}.outage_requests=6"]
    summary = _run(db, "run.instances=100", *LATENCY, *outage, "scheduler.breaker_cooldown_s=0.02")
    _assert_all_stored_once(db, summary)
    lane = _lane(summary, "Sim-Agent-2")
    assert (lane.parks, lane.probes_failed, lane.mode) == (1, 1, Mode.ACTIVE)  # 5 park it, the 6th is the probe


def test_an_auth_failure_on_one_key_stops_that_lane_after_one_call(tmp_path: Path) -> None:
    db = tmp_path / "auth.db"
    summary = _run(
        db, "run.models=[Sim-Qwen]", "run.instances=8", "models.sim_qwen.deployments.0.params.auth_failure_keys=[key1]"
    )
    _assert_all_stored_once(db, summary)
    by_lane = dict(_rows(db, "select lane_id, count(*) from calls where status = 'auth' group by lane_id"))
    assert by_lane == {"Sim-Qwen#key1": 1}
    assert _rows(db, "select count(*) from calls where lane_id = 'Sim-Qwen#key1'") == [(1,)]
    assert _rows(db, "select count(*) from units where lane_id = 'Sim-Qwen#key1'") == [(0,)]
    lane = _lane(summary, "Sim-Qwen#key1")
    assert (lane.mode, lane.stop_cause) == (Mode.STOPPED, CallStatus.AUTH)
    [line] = summary.lane_problems
    assert line.startswith("Sim-Qwen (Sim-Qwen): API key refused (HTTP 401) ×1; key1: stopped")
    assert "models.sim_qwen.deployments[0].api_keys[1]" in line
    assert "sim-key-1" not in line, "the key's value is never shown"


@pytest.mark.parametrize("fault", ["auth_failure=true", "not_found=true"])
@pytest.mark.parametrize("sharding", ["dynamic", "even"])
def test_the_first_lane_stopped_before_its_siblings_start_leaves_its_units_to_them(
    tmp_path: Path, fault: str, sharding: str
) -> None:
    """The catalog's first deployment refused on its very first request, before the other lanes' workers ran:
    its units still go to them (once they counted only after starting, a third of the plan ended not done)."""
    db = tmp_path / "first.db"
    summary = _run(db, "run.instances=10", f"sharding={sharding}", f"models.sim_agent.deployments.0.params.{fault}")
    _assert_all_stored_once(db, summary)
    assert _lane(summary, "Sim-Agent").units_not_run == 0


def test_when_every_lane_of_a_model_is_stopped_its_units_end_not_done_at_once(tmp_path: Path) -> None:
    db = tmp_path / "dead_model.db"
    dead = [f"models.sim_weak.deployments.{i}.params.not_found=true" for i in range(2)]
    summary = _run(db, "run.models=[Sim-Weak,Sim-Agent]", "run.instances=40", *dead)
    assert summary.newly_completed == 200, "the other model completed"
    assert _rows(db, "select count(*) from units where base_model = 'Sim-Agent' and outcome != 'infra_error'") == [
        (200,)
    ]
    weak = dict(_rows(db, "select outcome, count(*) from units where base_model = 'Sim-Weak' group by outcome"))
    assert weak == {"infra_error": 200}
    # One request per lane found the name wrong; every other unit ended without calling the API.
    assert _rows(db, "select deployment, status from calls where deployment like 'Sim-Weak%' order by 1") == [
        ("Sim-Weak", "not_found"),
        ("Sim-Weak-2", "not_found"),
    ]
    assert set(summary.infra) == {"not_found", "lanes_stopped"}
    lines = summary.lane_problems
    assert len(lines) == 2 and all("models.sim_weak.deployments[" in line and "].name" in line for line in lines)


def test_an_episode_whose_lane_dies_mid_way_starts_again_on_another_lane(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    dies = "models.sim_agent.deployments.0"
    summary = _run(
        db,
        "suite=workflow",
        "suite.prompt_types=[optimal]",
        "suite.difficulties=[easy]",
        "suite.tool_success_rates=[0.9]",
        "run.instances=6",
        f"{dies}.max_concurrency=1",
        f"{dies}.params.outage=unreachable",
        f"{dies}.params.outage_after=2",
    )
    _assert_all_stored_once(db, summary)
    [placement] = _placements(db)
    assert placement["lanes"][0] == "Sim-Agent" and placement["lanes"][1] in ("Sim-Agent-2", "Sim-Agent-3")
    assert placement["restarts"] == 1 and placement["home_lane"] is None
    # Its first try really was mid-episode: two turns answered on the dead lane before it went down.
    [(unit_key,)] = _rows(db, "select unit_key from units where lane_id != 'Sim-Agent' and unit_key in "
                              "(select unit_key from calls where deployment = 'Sim-Agent')")  # fmt: skip
    statuses = [s for (s,) in _rows(db, "select status from calls where unit_key = ? and deployment = 'Sim-Agent' "
                                        "order by id", unit_key)]  # fmt: skip
    assert statuses == ["ok", "ok", *["unreachable"] * 5]
    assert summary.restarts == 1


def test_a_request_that_hangs_restarts_its_episode_elsewhere(tmp_path: Path) -> None:
    db = tmp_path / "hang.db"
    summary = _run(db, "run.instances=40", *LATENCY, f"{SIM_AGENT_2}.hang_rate=0.5", "scheduler.request_timeout_s=0.05")
    _assert_all_stored_once(db, summary)
    assert _rows(db, "select count(*) from calls where status = 'timeout'")[0][0] >= 1
    assert summary.restarts >= 1


def test_without_restarts_a_lost_episode_is_left_not_done_and_the_summary_says_so(tmp_path: Path) -> None:
    db = tmp_path / "no-restarts.db"
    summary = _run(db, "run.instances=8", *LATENCY, f"{SIM_AGENT_2}.auth_failure=true", "scheduler.max_restarts=0")
    lost = _lane(summary, "Sim-Agent-2")
    assert lost.episodes_lost == lost.episodes_given_up >= 1
    not_done = _rows(db, "select count(*) from units where outcome = 'infra_error'")[0][0]
    assert not_done == lost.episodes_given_up and summary.restarts == 0
    [line] = [line for line in problem_lines(summary.lanes) if line.startswith("Sim-Agent-2")]
    assert f"episodes lost mid-way ×{lost.episodes_lost} (not started again: left not done)" in line, line
    assert "(started again)" not in line


@pytest.mark.parametrize("failover", [True, False])
def test_static_sharding_with_a_stopped_lane_fails_over_only_when_allowed(tmp_path: Path, failover: bool) -> None:
    db = tmp_path / "static.db"
    summary = _run(
        db, "sharding=even", f"sharding.failover={str(failover).lower()}", "run.instances=60", *LATENCY,
        f"{SIM_AGENT_2}.auth_failure=true",
    )  # fmt: skip
    quota = 100  # 300 units over three lanes
    if failover:
        _assert_all_stored_once(db, summary)
        moved = [p for p in _placements(db) if p["home_lane"] == "Sim-Agent-2"]
        assert len(moved) == quota, "every unit of the stopped lane's share ran elsewhere, and says so"
        assert all(p["lanes"][-1] in ("Sim-Agent", "Sim-Agent-3") for p in moved)
        assert summary.moved == quota
    else:
        assert summary.newly_completed == 2 * quota, "the other lanes ran exactly their own shares"
        assert dict(_rows(db, "select lane_id, count(*) from units where outcome != 'infra_error' group by 1")) == {
            "Sim-Agent": quota,
            "Sim-Agent-3": quota,
        }
        assert _rows(db, "select count(*) from units where outcome = 'infra_error' and lane_id = 'Sim-Agent-2'") == [
            (quota,)
        ]
        assert _lane(summary, "Sim-Agent-2").units_not_run == quota - 1  # one unit made the call that stopped it
        assert summary.moved == 0


def test_static_sharding_without_failover_waits_for_a_parked_lane_to_come_back(tmp_path: Path) -> None:
    db = tmp_path / "static_wait.db"
    outage = [f"{SIM_AGENT_2}.outage=transient", f"{SIM_AGENT_2}.outage_after=0", f"{SIM_AGENT_2}.outage_requests=5"]
    summary = _run(
        db, "sharding=even", "sharding.failover=false", "run.instances=60", *LATENCY, *outage,
        "scheduler.breaker_cooldown_s=0.05",
    )  # fmt: skip
    _assert_all_stored_once(db, summary)
    assert dict(_rows(db, "select lane_id, count(*) from units group by 1")) == {
        "Sim-Agent": 100,
        "Sim-Agent-2": 100,
        "Sim-Agent-3": 100,
    }
    assert all(p["lanes"] == ["Sim-Agent-2"] * len(p["lanes"]) for p in _placements(db))


def test_a_deadline_stops_taking_units_and_keeps_every_finished_one(tmp_path: Path) -> None:
    db = tmp_path / "deadline.db"
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=40" for i in range(3)]
    summary = _run(db, "run.instances=400", *slow, "scheduler.deadline_s=1")
    assert summary.status == "deadline"
    assert 0 < summary.executed < summary.planned
    stored = _rows(db, "select count(*) from units where outcome != 'infra_error'")[0][0]
    assert stored == summary.newly_completed == summary.executed
    assert _rows(db, "select status from runs") == [("deadline",)]
    again = _run(db, "run.instances=400", *LATENCY)
    assert again.status == "completed"
    assert again.already_stored == stored and again.newly_completed == summary.planned - stored


def test_the_summary_counts_each_http_status_and_the_failures_that_got_none() -> None:
    """Two 500s and a malformed body (no status line): the line must not call all three HTTP 500."""
    from fleetbench.lane_report import LaneReport
    from fleetbench.lanes import LaneState
    from fleetbench.testing.lanes import make_lane
    from fleetbench.types import CallStatus

    state = LaneState.of(make_lane("Sim-Agent", max_concurrency=4))

    async def three_failures() -> None:
        for http_status in (500, None, 500):
            state.leave(await state.enter(), CallStatus.TRANSIENT, http_status)

    asyncio.run(three_failures())
    (line,) = problem_lines([LaneReport.of(state)])
    assert "(HTTP 500 ×2, no HTTP status ×1) ×3" in line, line
    only = LaneState.of(make_lane("Sim-Agent", max_concurrency=4))

    async def one_status() -> None:
        for _ in range(2):
            only.leave(await only.enter(), CallStatus.TRANSIENT, 503)

    asyncio.run(one_status())
    assert "(HTTP 503) ×2" in problem_lines([LaneReport.of(only)])[0]


def test_a_run_whose_lanes_are_all_parked_ends_once_its_last_unit_is_done(tmp_path: Path) -> None:
    """Every deployment answers 503: each unit fails its one attempt and parks its lane for an hour. Once the last
    unit is recorded not done, no unit is left, yet no lane was active to find the shared queue empty: the run
    waited for a probe, up to the longest cool-down, doing nothing (an attacker's run ended 55 s after its last
    unit). The deadline only bounds the wait: without the fix the run ends by it."""
    db = tmp_path / "all-parked.db"
    failing = [f"models.sim_agent.deployments.{i}.params.transient_error_rate=1" for i in range(3)]
    hour = ["scheduler.breaker_cooldown_s=3600", "scheduler.breaker_cooldown_max_s=3600"]
    once = ["scheduler.max_attempts=1", "scheduler.max_restarts=0", "scheduler.breaker_failures=1"]
    summary = _run(db, "run.instances=3", "suite.categories=[arithmetic]", *LATENCY, *failing, *hour, *once,
                   "scheduler.deadline_s=60")  # fmt: skip
    assert summary.status == "completed", "the run ended when its units did, not at its deadline"
    assert _rows(db, "select count(*) from units where outcome = 'infra_error'") == [(3,)]
    assert {report.mode for report in summary.lanes} == {Mode.PARKED}, "every lane was parked at the end"
