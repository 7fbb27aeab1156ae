"""A run whose process died is shown as `dead`, never as `running` for ever (host, pid and a heartbeat are recorded)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

from fleetbench import runner
from fleetbench.config import compose_config, resolve_run
from fleetbench.liveness import STALE_AFTER_S, process_exists, run_state
from tests.conftest import CLI, RunCli, cli_env

HOST = socket.gethostname()


def _row(**overrides: object) -> dict[str, object]:
    now = time.time()
    return {"status": "running", "started_at": now - 100, "heartbeat_at": now - 1, "host": HOST, "pid": os.getpid(),
            **overrides}  # fmt: skip


def test_a_running_run_is_alive_while_its_process_lives_and_beats() -> None:
    assert run_state(_row(), time.time(), HOST) == "running"
    assert run_state(_row(status="completed"), time.time(), HOST) == "completed"


def test_a_run_whose_process_is_gone_on_this_host_is_dead_at_once() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert run_state(_row(pid=gone.pid), time.time(), HOST) == "dead"


def test_a_killed_process_its_parent_has_not_reaped_is_gone() -> None:
    """A zombie (SIGKILLed, not yet waited for by its parent) never beats again: its run is dead, and a worker on
    this machine takes its claims over after two heartbeats instead of a whole lease."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert process_exists(child.pid)
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":  # not reaped yet
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not process_exists(child.pid)
        assert run_state(_row(pid=child.pid), time.time(), HOST) == "dead"
    finally:
        child.wait()


def test_a_run_on_another_host_is_dead_once_its_heartbeat_is_stale() -> None:
    now = time.time()
    assert run_state(_row(host="elsewhere", pid=1), now, HOST) == "running"
    stale = _row(host="elsewhere", pid=1, heartbeat_at=now - STALE_AFTER_S - 1)
    assert run_state(stale, now, HOST) == "dead"


def test_a_sigkilled_run_is_listed_as_dead(run_cli: RunCli, tmp_path: Path) -> None:
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=300" for i in range(3)]
    process = subprocess.Popen(
        [*CLI, "run", "run.progress=off", *slow], cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _units(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    listing = run_cli("runs")
    assert listing.returncode == 0, listing.stderr
    (line,) = [row for row in listing.stdout.splitlines() if "jsonl" in row]
    assert " dead " in line and f":{process.pid}" in line
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        kept = connection.execute("select count(*) from units where outcome != 'infra_error'").fetchone()[0]
    assert kept > 0 and f" {kept} stored " in line, "a killed run shows what it stored, not '-'"
    status = run_cli("status", *slow)  # the same plan: `status` shows the run as `runs` does
    assert status.returncode == 0, status.stderr
    (line,) = [row for row in status.stdout.splitlines() if f":{process.pid}" in row]
    assert " dead " in line and f" {kept} stored " in line
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        assert connection.execute("select status from runs").fetchall() == [("running",)]  # as the killed run left it


def _units(directory: Path) -> int:
    if not (directory / "fleetbench.db").exists():
        return 0
    try:
        with sqlite3.connect(directory / "fleetbench.db") as connection:
            return int(connection.execute("select count(*) from units").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is still being created
        return 0


def test_a_running_run_renews_its_heartbeat(tmp_path: Path) -> None:
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=100" for i in range(3)]
    db = tmp_path / "beat.db"
    runner.run(
        resolve_run(compose_config([f"storage.url=sqlite:///{db}", "run.progress=off", "run.heartbeat_s=0.1", *slow]))
    )
    with sqlite3.connect(db) as connection:
        started, beat, finished = connection.execute(
            "select started_at, heartbeat_at, finished_at from runs"
        ).fetchone()
    assert started < beat <= finished


def test_the_claims_of_a_run_that_died_here_are_ended_once_and_a_live_or_foreign_run_keeps_its_own() -> None:
    import dataclasses

    from fleetbench.claims import end_dead_claims
    from fleetbench.interfaces import NoOptions
    from fleetbench.testing.contracts.storage import KIT_CATALOG, kit_units, run_record
    from fleetbench.testing.fakes import ExactNaming
    from fleetbench.testing.memory_storage import MemoryStorage

    gone = subprocess.Popen(["true"])
    gone.wait()
    storage = MemoryStorage(naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG))
    runs = {
        "dead": dataclasses.replace(run_record("dead"), host=HOST, pid=gone.pid),
        "alive": dataclasses.replace(run_record("alive"), host=HOST, pid=os.getpid()),
        "elsewhere": dataclasses.replace(run_record("elsewhere"), host="another-machine", pid=gone.pid),
        "me": dataclasses.replace(run_record("me"), host=HOST, pid=os.getpid()),
    }
    units = kit_units()
    for index, run in enumerate(runs.values()):
        storage.begin_run(run)  # heartbeat at 1000.0: silent for long
        storage.claim(run.run_id, units[index : index + 1], now=1000.0, expires_at=10_000.0)
    ended = end_dead_claims(storage, "me", now=2000.0, host=HOST, quiet_s=10.0)
    assert ended == {"dead": 1}, "only the run whose process is gone from this machine"
    assert {c.run_id: c.expires_at for c in storage.open_claims(units[0].scope, units[0].seed)} == {
        "dead": 2000.0, "alive": 10_000.0, "elsewhere": 10_000.0, "me": 10_000.0,
    }  # fmt: skip
    # Its claims on other plans stay its own (expired) until that plan's workers take them: not ended again and again.
    assert end_dead_claims(storage, "me", now=2001.0, host=HOST, quiet_s=10.0, skip=ended) == {}
    storage.heartbeat("dead", 1995.0)  # had it beaten within quiet_s, it would be left alone
    assert end_dead_claims(storage, "me", now=2000.0, host=HOST, quiet_s=10.0) == {}
