"""Claims with leases, through real `fleetbench run` processes on real SQLite files and the real PostgreSQL: workers
sharing one plan split it, a SIGKILLed worker's units return to the pool when its claims expire, nothing is stored
twice, and no unit is executed twice except one whose claim died with its worker."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fleetbench.claims import plan_digest
from fleetbench.config import compose_config, resolve_run
from fleetbench.errors import ConfigError
from fleetbench.runner import plans
from tests.conftest import CLI, cli_env

SLOW = [
    *(f"models.sim_agent.deployments.{i}.params.latency_ms=250" for i in range(3)),
    *(f"models.sim_agent.deployments.{i}.max_concurrency=2" for i in range(3)),
]
"""Six requests in flight per worker, a quarter second each: workers overlap however slowly they start."""
LEASE = ["run.lease_s=2", "run.heartbeat_s=0.5", "run.progress=off"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """(URL, storage overrides) of an empty database of each back end."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        yield url, [f"storage.url={url}"]
    else:
        url = request.getfixturevalue("postgres_url")
        yield url, ["storage=postgres", f"storage.url={url}"]


def _start(cwd: Path, overrides: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "run", *overrides], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _query(url: str, statement: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.text(statement))]
    except sa.exc.OperationalError:  # the schema is still being created
        return []
    except sa.exc.ProgrammingError:
        return []
    finally:
        engine.dispose()


def _runs_per_unit(url: str) -> dict[str, set[str]]:
    """Unit key -> the runs that sent calls for it (one per execution: these runs inject no faults)."""
    executed: dict[str, set[str]] = {}
    for row in _query(url, "select unit_key, run_id from calls"):
        executed.setdefault(row["unit_key"], set()).add(row["run_id"])
    return executed


def _wait(condition: Callable[[], bool], processes: Sequence[subprocess.Popen[str]], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        for process in processes:
            # Alive, finished, or killed by the test: anything else failed.
            assert process.poll() in (None, 0, -signal.SIGKILL), process.communicate()[1][-2000:]
        time.sleep(0.1)


def _finish(processes: Sequence[subprocess.Popen[str]], timeout_s: float = 300) -> list[str]:
    """Each process's stdout, once all have exited 0."""
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=timeout_s)
        assert process.returncode == 0, err[-2000:]
        outputs.append(out)
    return outputs


@pytest.mark.parametrize("sharding", ["dynamic", "even"])
def test_two_identical_runs_started_together_execute_each_unit_once(
    database: tuple[str, list[str]], tmp_path: Path, sharding: str
) -> None:
    """Under static sharding too: there each lane's share is a slice of the missing units, and as the other run
    stores units a lane's slice reaches into the next lane's; a run once ran such units on two or three lanes."""
    url, storage = database
    overrides = [*storage, *SLOW, *LEASE, "run.instances=12", f"sharding={sharding}"]
    pair = [_start(tmp_path, [*overrides, f"run.worker={i}"]) for i in range(2)]
    outputs = _finish(pair)
    runs = _query(url, "select run_id, planned_units, executed_units, status, worker from runs")
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert sorted(r["worker"] for r in runs) == [0, 1]
    planned = runs[0]["planned_units"]
    units = _query(url, "select unit_key, run_id from units")
    assert len(units) == planned and sum(r["executed_units"] for r in runs) == planned
    executed = _runs_per_unit(url)
    assert set(executed) == {u["unit_key"] for u in units}
    assert all(len(by) == 1 for by in executed.values()), "a unit was executed by both runs"
    calls = _query(url, "select unit_key from calls")
    assert len(calls) == len(units), "a unit was executed twice by one run (one call per execution here)"
    assert all(r["executed_units"] > 0 for r in runs), "the two runs did not split the plan"
    # A run says on the terminal how many units it left to the other, so its summary accounts for the plan.
    assert any("skipped as held or completed by other workers of the plan: " in out for out in outputs), outputs
    for out in outputs:  # each run's summary accounts for the whole plan (it once fell up to 7 units short)
        words = " ".join(out.split())  # rich wraps long lines at the terminal's width
        counts = re.search(r"planned \d+ units: (\d+) already stored, (\d+) executed", words)
        left = re.search(r"skipped as held or completed by other workers of the plan: (\d+)", words)
        assert counts is not None, out
        assert sum(map(int, counts.groups())) + (int(left.group(1)) if left else 0) == planned, out
    assert _query(url, "select * from claims") == [], "finished runs hold no claims"


@pytest.mark.parametrize("sharding", ["even", "weighted"])
def test_three_workers_with_static_shares_on_uneven_lanes_execute_each_unit_once(
    database: tuple[str, list[str]], tmp_path: Path, sharding: str
) -> None:
    """Lanes of 100, 200 and 300 ms: the fast lanes' slices reach into the slow ones' while batches claimed earlier
    still hold units that another lane has run meanwhile; no unit may run twice, even after its result is written."""
    url, storage = database
    lanes = [
        f"models.sim_agent.deployments.{i}.{knob}"
        for i in range(3)
        for knob in (f"params.latency_ms={100 * (i + 1)}", "max_concurrency=2")
    ]
    overrides = [*storage, *lanes, *LEASE, "run.instances=40", "suite.items=cycle", f"sharding={sharding}"]
    _finish([_start(tmp_path, [*overrides, f"run.worker={i}"]) for i in range(3)])
    units = _query(url, "select unit_key from units")
    calls = _query(url, "select unit_key from calls")
    assert len(units) == 200
    assert len(calls) == len(units), "a unit was executed twice (one call per execution here)"


def test_a_worker_waiting_for_units_another_worker_holds_says_so_on_the_terminal(tmp_path: Path) -> None:
    """Worker 0 holds all 5 units for 12 s each; worker 1, started then, finds them held and waits for them: one line
    on the terminal says so (it may wait up to a lease when the holder died on another machine). 12 s, because on a
    loaded machine worker 1's own start-up took longer than the 3 s this test once gave it."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=12000" for i in range(3)]
    overrides = [f"storage.url={url}", *slow, *LEASE, "run.instances=1"]
    holder = _start(tmp_path, [*overrides, "run.worker=0"])
    _wait(lambda: len(_query(url, "select unit_key from claims")) == 5, [holder])
    waiter = subprocess.run([*CLI, "run", *overrides, "run.worker=1"], cwd=tmp_path, env=cli_env(),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    _finish([holder])
    assert waiter.returncode == 0, waiter.stderr
    assert "warning: waiting for 5 units other workers hold (run when they finish" in waiter.stderr
    assert len(_query(url, "select unit_key from units")) == 5 and len(_query(url, "select unit_key from calls")) == 5
    # It polled every 0.2 s for seconds; its log names each count once, not every poll.
    logs = [p.read_text() for p in tmp_path.glob("outputs/*/*/fleetbench.log")]
    waits = [line for log in logs for line in log.splitlines() if "waiting for" in line]
    assert 1 <= len(waits) <= 5, waits


def test_rerunning_a_run_killed_on_this_machine_ends_its_claims_without_waiting_out_the_lease(
    database: tuple[str, list[str]], tmp_path: Path
) -> None:
    """The SIGKILLed run's claims would live an hour (`run.lease_s=3600`); the rerun on the same machine sees its
    process gone and its heartbeat silent, ends them and runs their units: it finishes long before the hour."""
    url, storage = database
    overrides = [*storage, *SLOW, "run.lease_s=3600", "run.heartbeat_s=0.5", "run.progress=off", "run.instances=12"]
    victim = _start(tmp_path, overrides)
    held = f"select count(*) n from claims c join runs r on r.run_id = c.run_id where r.pid = {victim.pid}"
    _wait(lambda: bool(_query(url, held)) and _query(url, held)[0]["n"] > 0, [victim], timeout_s=300)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    orphaned = {r["unit_key"] for r in _query(url, f"select unit_key from claims c join runs r using (run_id) "
                                                    f"where r.pid = {victim.pid}")}  # fmt: skip
    assert orphaned, "the killed run held no claims: the test would show nothing"
    rerun = subprocess.run([*CLI, "run", *overrides], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    runs = _query(url, "select run_id, pid, status, planned_units from runs")
    assert sorted(r["status"] for r in runs) == ["completed", "running"]  # the killed one, as SIGKILL left it
    units = _query(url, "select unit_key, run_id from units")
    assert len(units) == runs[0]["planned_units"] and len({u["unit_key"] for u in units}) == len(units)
    rerun_id = next(r["run_id"] for r in runs if r["status"] == "completed")
    assert orphaned <= {u["unit_key"] for u in units if u["run_id"] == rerun_id}, "the orphans were run by the rerun"
    assert "skipped as held or completed by other workers" not in rerun.stdout, "it took them over: none was left"
    assert _query(url, "select * from claims") == []
    log = (tmp_path / "outputs").rglob("fleetbench.log")
    assert any("died on this machine holding" in path.read_text() for path in log)


@pytest.mark.parametrize(("database", "workers"), [("sqlite", 4), ("postgresql", 8)], indirect=["database"])
def test_workers_share_a_plan_and_the_units_of_killed_workers_return(
    database: tuple[str, list[str]], tmp_path: Path, workers: int
) -> None:
    url, storage = database
    overrides = [*storage, *SLOW, *LEASE, "run.instances=40", "suite.items=cycle"]
    crew = [_start(tmp_path, [*overrides, f"run.worker={i}"]) for i in range(workers)]
    victims = crew[:2]
    # Kill two workers while each holds claims (units in flight): those claims die with them.
    for process in victims:
        held = f"select count(*) n from claims c join runs r on r.run_id = c.run_id where r.pid = {process.pid}"
        _wait(lambda held=held: bool(_query(url, held)) and _query(url, held)[0]["n"] > 0, crew, timeout_s=600)
        process.send_signal(signal.SIGKILL)
        process.wait()
    pids = ", ".join(str(p.pid) for p in victims)
    orphaned = _query(
        url, f"select c.unit_key from claims c join runs r on r.run_id = c.run_id where r.pid in ({pids})"
    )
    assert orphaned, "the killed workers held no claims: the test would not show them returning to the pool"
    _finish(crew[2:])
    resume = subprocess.run([*CLI, "run", *overrides], cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
    assert resume.returncode == 0, resume.stderr
    runs = {r["pid"]: r for r in _query(url, "select run_id, pid, status, planned_units from runs")}
    killed = {runs[p.pid]["run_id"] for p in victims}
    assert {runs[p.pid]["status"] for p in victims} == {"running"}, "as the SIGKILL left them"
    planned = next(iter(runs.values()))["planned_units"]
    units = _query(url, "select unit_key, outcome from units")
    assert len(units) == planned and all(u["outcome"] != "infra_error" for u in units)
    twice = {key: by for key, by in _runs_per_unit(url).items() if len(by) > 1}
    assert all(len(by - killed) == 1 for by in twice.values()), f"units executed twice by live workers: {twice}"
    assert _query(url, "select * from claims") == []


def test_the_claims_an_interrupted_worker_never_started_are_run_by_the_worker_that_lives(
    database: tuple[str, list[str]], tmp_path: Path
) -> None:
    """Worker 1 claims 64 units at a time and is interrupted after its first unit is stored: the units it claimed and
    never started end with its run, as orphans; worker 0, which skipped them as held, runs them at the end of its
    pass, so the plan completes while one worker lives."""
    url, storage = database
    # 400 units: enough that worker 1 claims some while worker 0 holds its batch of 64.
    overrides = [*storage, *SLOW, *LEASE, "run.instances=80", "suite.items=cycle", "run.claim_batch=64"]
    survivor = _start(tmp_path, [*overrides, "run.worker=0"])
    quitter = _start(tmp_path, [*overrides, "run.worker=1"])
    stored = f"select count(*) n from units u join runs r on r.run_id = u.run_id where r.pid = {quitter.pid}"
    _wait(lambda: bool(_query(url, stored)) and _query(url, stored)[0]["n"] > 0, [survivor, quitter], timeout_s=300)
    quitter.send_signal(signal.SIGINT)
    _, err = quitter.communicate(timeout=120)
    assert quitter.returncode == 130, err[-2000:]
    _finish([survivor])
    runs = {r["pid"]: r for r in _query(url, "select run_id, pid, status, planned_units, executed_units from runs")}
    assert (runs[survivor.pid]["status"], runs[quitter.pid]["status"]) == ("completed", "interrupted")
    planned = runs[survivor.pid]["planned_units"]
    units = _query(url, "select unit_key from units")
    assert len(units) == len({u["unit_key"] for u in units}) == planned, "every planned unit stored once"
    assert sum(r["executed_units"] for r in runs.values()) == planned
    assert all(len(by) == 1 for by in _runs_per_unit(url).values()), "no unit executed twice"
    assert _query(url, "select * from claims") == []


def _stop_between_writes(process: subprocess.Popen[str], url: str) -> None:
    """SIGSTOP `process`; on SQLite, at a moment it holds no write lock (continued and stopped again until then).

    No process can take SQLite's write lock from one that stands still holding it, so every other writer waits
    `storage.busy_timeout_s` and fails (the README says so): stopped at random, the worker did that in one of a few
    tries, and the test would have shown that limit instead of what happens to its claims. PostgreSQL ends such a
    worker's session (`fencing`), so there any moment will do."""
    process.send_signal(signal.SIGSTOP)
    if not url.startswith("sqlite"):
        return
    path = url.removeprefix("sqlite:///")
    for _ in range(1000):
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError as error:
            assert "locked" in str(error), error
        finally:
            probe.close()
        process.send_signal(signal.SIGCONT)
        time.sleep(0.005)
        process.send_signal(signal.SIGSTOP)
    raise AssertionError("the worker held SQLite's write lock at every one of 1,000 stops")


def _stop_past_the_lease_while_another_runs_the_plan(
    url: str, tmp_path: Path, sleeper_overrides: Sequence[str], taker_overrides: Sequence[str]
) -> tuple[list[str], int]:
    """Start worker 0, stop it (SIGSTOP) once its first unit is stored, for 3 s past its 2 s lease; meanwhile worker 1
    runs the whole 200-unit plan; continue worker 0 and let it finish. Checks that every planned unit is stored once
    and no claim is left; returns the units both workers ran, and how many requests worker 0 sent once continued."""
    sleeper = _start(tmp_path, [*sleeper_overrides, "run.worker=0"])
    stored = f"select count(*) n from units u join runs r on r.run_id = u.run_id where r.pid = {sleeper.pid}"
    _wait(lambda: bool(_query(url, stored)) and _query(url, stored)[0]["n"] > 0, [sleeper], timeout_s=300)
    _stop_between_writes(sleeper, url)
    try:
        time.sleep(3)  # past the lease: its claims expire
        held = _query(url, "select count(*) n from claims")[0]["n"]
        assert held > 6, "the stopped worker held only the units in flight: the test would show nothing"
        taker = subprocess.run([*CLI, "run", *taker_overrides, "run.worker=1"], cwd=tmp_path, env=cli_env(),
                               capture_output=True, text=True, timeout=300)  # fmt: skip
        assert taker.returncode == 0, taker.stderr[-2000:]
    finally:
        continued_at = time.time()
        sleeper.send_signal(signal.SIGCONT)
    _finish([sleeper])
    units = _query(url, "select unit_key from units")
    assert len(units) == len({u["unit_key"] for u in units}) == 200, "every planned unit stored once"
    assert _query(url, "select * from claims") == []
    after = f"select count(*) n from calls c join runs r on r.run_id = c.run_id where r.pid = {sleeper.pid} and "
    sent_after = _query(url, after + f"c.started_at >= {continued_at}")[0]["n"]
    return [key for key, by in _runs_per_unit(url).items() if len(by) > 1], sent_after


def test_a_worker_stopped_past_its_lease_runs_none_of_the_units_others_took_over_meanwhile(
    database: tuple[str, list[str]], tmp_path: Path
) -> None:
    """Worker 0 claims 64 units at a time; worker 1 takes its claims over while it stands still. Continued, worker 0
    finishes the units it had in flight (their claims died while it stood still) and none of the rest of its batch:
    it once ran them all again, which with a paid API is paid twice."""
    url, storage = database
    overrides = [*storage, *SLOW, *LEASE, "run.instances=40", "suite.items=cycle", "run.claim_batch=64"]
    twice, _ = _stop_past_the_lease_while_another_runs_the_plan(url, tmp_path, overrides, overrides)
    assert len(twice) <= 6, f"{len(twice)} units run by both workers; at most the 6 in flight at the stop may be"


def test_a_worker_stopped_past_its_lease_runs_none_of_the_units_waiting_in_its_lanes(
    database: tuple[str, list[str]], tmp_path: Path
) -> None:
    """Worker 0's lanes hold 8 units each but send one request a second (rpm 60): most of what it pulled waits for a
    token. Stopped past its lease while worker 1 runs the plan, then continued, it may finish only the requests in
    flight at the stop (at most one per lane); the units that waited must ask whether they are still its own before
    their first request. It once ran them all (24 units twice, paid twice with a paid API)."""
    url, storage = database
    plan = [*storage, *LEASE, "run.instances=40", "suite.items=cycle", "run.claim_batch=64"]
    queued = [
        f"models.sim_agent.deployments.{i}.{knob}"
        for i in range(3)
        for knob in ("params.latency_ms=250", "max_concurrency=8", "rpm=60")
    ]
    twice, _ = _stop_past_the_lease_while_another_runs_the_plan(url, tmp_path, [*plan, *queued], [*plan, *SLOW])
    assert len(twice) <= 3, f"{len(twice)} units run by both workers; at most the 3 in flight at the stop may be"


def test_a_worker_stopped_past_its_lease_sends_no_request_again_for_units_others_ran(
    database: tuple[str, list[str]], tmp_path: Path
) -> None:
    """Worker 0's requests take 0.8 s and time out after 1.5 s: those in flight when it is stopped have timed out when
    it is continued, 3 s later. It must not send them again, nor any other request: worker 1 has run the whole plan
    meanwhile (the attacker saw 10 to 30 requests sent again for units already stored)."""
    url, storage = database
    plan = [*storage, *LEASE, "run.instances=40", "suite.items=cycle", "run.claim_batch=64"]
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=800" for i in range(3)]
    sleeper = [*plan, *slow, "scheduler.request_timeout_s=1.5", "scheduler.backoff_base_s=0.01"]
    twice, sent_after = _stop_past_the_lease_while_another_runs_the_plan(url, tmp_path, sleeper, [*plan, *SLOW])
    assert sent_after == 0, f"worker 0 sent {sent_after} requests once continued"
    assert len(twice) <= 24, "at most the units in flight at the stop (8 slots a lane) ran on both workers"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("run.worker=-1", "run.worker: must be an integer from 0 to 1000000, got -1"),
        ("run.heartbeat_s=0", "run.heartbeat_s: must be from 0.05 to 10 seconds, got 0.0"),
        (
            "run.lease_s=9",
            "run.lease_s: must be from 10 (2 s and at least twice run.heartbeat_s) to 86400 seconds, got 9.0",
        ),
        (
            "run.lease_s=0.5 run.heartbeat_s=0.1",
            "run.lease_s: must be from 2 (2 s and at least twice run.heartbeat_s) to 86400 seconds, got 0.5",
        ),
        ("run.claim_batch=0", "run.claim_batch: must be from 1 to 1024 units, got 0"),
    ],
)
def test_claim_settings_out_of_range_are_refused_with_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        resolve_run(compose_config(override.split()))
    assert str(refused.value) == message


def test_the_worker_number_never_enters_a_unit_key(tmp_path: Path) -> None:
    plans_of = [plans(resolve_run(compose_config([f"run.worker={n}", "run.instances=2"]))) for n in (0, 7)]
    keys = [[unit.key for plan in found for unit in plan.units()] for found in plans_of]
    assert keys[0] == keys[1] and len(keys[0]) == 10
    assert plan_digest(plans_of[0]) == plan_digest(plans_of[1])
