"""The whole pipeline through the real CLI in subprocesses, on the simulated provider and a real SQLite file."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, RunCli, cli_env, stderr_lines

pytestmark = pytest.mark.slow
SLOW = [f"models.sim_agent.deployments.{i}.params.latency_ms=150" for i in range(3)]


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        try:
            return int(connection.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


def _report(run_cli: RunCli, *overrides: str) -> dict:  # type: ignore[type-arg]
    process = run_cli("report", "report.format=json", *overrides)
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)  # type: ignore[no-any-return]


def test_first_command_reports_one_base_model_with_three_deployment_shares(run_cli: RunCli, tmp_path: Path) -> None:
    first = run_cli("run")
    assert first.returncode == 0, first.stderr
    assert "planned 100 units: 0 already stored, 100 executed" in first.stdout
    assert (tmp_path / "fleetbench.db").exists()
    report = _report(run_cli)
    assert [row["base_model"] for row in report["rows"]] == ["Sim-Agent"]
    assert report["rows"][0]["total"] == 100
    shares = {share["deployment"]: share for share in report["deployment_shares"]}
    assert set(shares) == {"Sim-Agent", "Sim-Agent-2", "Sim-Agent-3"}
    assert sum(share["units"] for share in shares.values()) == 100
    assert all(share["base_model"] == "Sim-Agent" and share["units"] > 0 for share in shares.values())
    table = run_cli("report")
    assert "└ Sim-Agent-2" in table.stdout
    assert "\n│ Sim-Agent-2" not in table.stdout, "a deployment must never get a statistics row of its own"


def test_running_again_executes_zero_units(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("run").returncode == 0
    again = run_cli("run")
    assert again.returncode == 0, again.stderr
    assert "planned 100 units: 100 already stored, 0 executed" in again.stdout
    assert _count(tmp_path / "fleetbench.db", "select count(*) from units") == 100
    # The rerun is a run of its own, as `runs` lists it: its id is printed even with no table to title.
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        [(rerun_id,)] = connection.execute("select run_id from runs order by started_at desc limit 1").fetchall()
    assert f"run {rerun_id[:12]}\n" in again.stdout


def test_sigkill_midway_then_rerun_completes_exactly_the_missing_units(tmp_path: Path, run_cli: RunCli) -> None:
    db = tmp_path / "fleetbench.db"
    args = ["run", "run.instances=60", "suite.items=cycle", *SLOW]  # 300 units at 150 ms over 24 slots: about 2 s
    victim = subprocess.Popen(
        [*CLI, *args], cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while _count(db, "select count(*) from units") < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    stored_before = _count(db, "select count(*) from units")
    assert 0 < stored_before < 300, "the kill must land midway"
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"planned 300 units: {stored_before} already stored, {300 - stored_before} executed" in resumed.stdout
    assert _count(db, "select count(*) from units") == 300
    assert _count(db, "select count(distinct unit_key) from units") == 300
    assert run_cli(*args).stdout.count("0 executed") == 1


def test_ctrl_c_stops_cleanly_keeps_finished_results_and_exits_non_zero(tmp_path: Path, run_cli: RunCli) -> None:
    db = tmp_path / "fleetbench.db"
    args = ["run", "run.instances=60", "suite.items=cycle", *SLOW]
    process = subprocess.Popen(
        [*CLI, *args], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while _count(db, "select count(*) from units") < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "run again to resume" in stderr
    kept = _count(db, "select count(*) from units")
    assert 30 <= kept < 300
    assert _count(db, "select count(*) from runs where status = 'interrupted'") == 1
    resumed = run_cli(*args)
    assert f"{kept} already stored, {300 - kept} executed" in resumed.stdout
    assert _count(db, "select count(*) from units") == 300


def test_dynamic_gives_a_ten_times_slower_deployment_clearly_fewer_units(run_cli: RunCli) -> None:
    latencies = [
        "models.sim_agent.deployments.0.params.latency_ms=5",
        "models.sim_agent.deployments.1.params.latency_ms=5",
        "models.sim_agent.deployments.2.params.latency_ms=50",
    ]
    concurrency = [f"models.sim_agent.deployments.{i}.max_concurrency=2" for i in range(3)]
    for strategy, db in (("dynamic", "dynamic.db"), ("even", "even.db")):
        url = f"storage.url=sqlite:///{db}"
        args = ("run", f"sharding={strategy}", "run.instances=30", "suite.items=cycle", url)
        process = run_cli(*args, *latencies, *concurrency)
        assert process.returncode == 0, process.stderr
    plan = ("run.instances=30", "suite.items=cycle")  # the report covers the plan it is given
    dynamic = {
        s["deployment"]: s["units"]
        for s in _report(run_cli, *plan, "storage.url=sqlite:///dynamic.db")["deployment_shares"]
    }
    even = {
        s["deployment"]: s["units"]
        for s in _report(run_cli, *plan, "storage.url=sqlite:///even.db")["deployment_shares"]
    }
    assert even == {"Sim-Agent": 50, "Sim-Agent-2": 50, "Sim-Agent-3": 50}
    assert sum(dynamic.values()) == 150
    assert dynamic["Sim-Agent-3"] < 0.5 * min(dynamic["Sim-Agent"], dynamic["Sim-Agent-2"])


def test_multirun_sweep_runs_every_job(run_cli: RunCli, tmp_path: Path) -> None:
    process = run_cli("run", "-m", "run.seed=1,2", "run.instances=2")
    assert process.returncode == 0, process.stderr
    assert process.stdout.count("0 already stored, 10 executed") == 2
    assert _count(tmp_path / "fleetbench.db", "select count(*) from units") == 20


def test_hydra_mode_decides_between_run_and_multirun_directories(run_cli: RunCli, tmp_path: Path) -> None:
    # The CLI tells Hydra a single job's mode from its own composition: a mode set in the configuration still wins.
    single = run_cli("run", "run.instances=1")
    assert single.returncode == 0, single.stderr
    assert list(tmp_path.glob("outputs/*/*/fleetbench.log")) and not (tmp_path / "multirun").exists()
    # `hydra.mode=MULTIRUN` is a sweep as `-m` is: comma values sweep, and the sweep directory is checked first.
    refused = run_cli("run", "hydra.mode=MULTIRUN", "hydra.sweep.dir=/etc/passwd/x", "run.instances=1")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: hydra.sweep.dir: cannot create"), refused.stderr
    swept = run_cli("run", "hydra.mode=MULTIRUN", "run.instances=1", "run.seed=2,3")
    assert swept.returncode == 0, swept.stderr
    assert len(list(tmp_path.glob("multirun/*/*/[01]/fleetbench.log"))) == 2
    assert _count(tmp_path / "fleetbench.db", "select count(*) from units") == 15
    quoted = run_cli("run", "++hydra.mode='MULTIRUN'", "run.instances=1", "run.seed=4,5")
    assert quoted.returncode == 0, quoted.stderr
    assert _count(tmp_path / "fleetbench.db", "select count(*) from units") == 25


def test_show_prints_a_stored_transcript(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("run", "run.instances=1").returncode == 0
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        key = connection.execute("select unit_key from units order by unit_key limit 1").fetchone()[0]
    shown = run_cli("show", key[:10])
    assert shown.returncode == 0, shown.stderr
    assert key in shown.stdout and "reference: " in shown.stdout and "--- assistant ---" in shown.stdout
    missing = run_cli("show", "zzzz")
    assert missing.returncode == 2 and "no stored transcript" in missing.stderr


@pytest.mark.postgres
def test_the_pipeline_on_postgresql_resumes_and_reports(run_cli: RunCli, postgres_url: str) -> None:
    url = f"storage.url={postgres_url}"
    first = run_cli("run", url, "run.instances=10")
    assert first.returncode == 0, first.stderr
    assert "planned 50 units: 0 already stored, 50 executed" in first.stdout
    again = run_cli("run", url, "run.instances=12")
    assert "planned 60 units: 50 already stored, 10 executed" in again.stdout
    report = _report(run_cli, url)
    assert [row["base_model"] for row in report["rows"]] == ["Sim-Agent"]
    assert report["rows"][0]["total"] == 60
    assert {share["deployment"] for share in report["deployment_shares"]} == {"Sim-Agent", "Sim-Agent-2", "Sim-Agent-3"}


def test_report_on_a_missing_database_says_so_and_creates_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    process = run_cli("report")
    assert process.returncode != 0
    assert [line for line in process.stderr.splitlines() if line.strip()] == [
        "error: no database at fleetbench.db (storage.url); `fleetbench run` creates it"
    ]
    assert list(tmp_path.iterdir()) == []


def test_show_renders_a_workflow_transcript_as_readable_turns(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("run", "experiment=workflow_demo", "run.instances=1").returncode == 0
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        key = connection.execute("select unit_key from units where outcome = 'partial' limit 1").fetchone()[0]
    shown = run_cli("show", key[:12], "experiment=workflow_demo")
    assert shown.returncode == 0, shown.stderr
    assert "Turn 1" in shown.stdout or "TURN 1" in shown.stdout.upper()
    assert "<tool_call>" in shown.stdout
    assert not shown.stdout.lstrip().split("\n", 1)[1].startswith("{"), "workflow transcripts render as text"


@pytest.mark.parametrize("command", ["show", "names"])
def test_an_argument_that_is_not_utf8_is_one_line(run_cli: RunCli, tmp_path: Path, command: str) -> None:
    """The byte 0xff reaches Python as a lone surrogate, which SQLAlchemy failed to encode (a traceback)."""
    assert run_cli("run", "run.instances=1").returncode == 0
    refused = run_cli(command, "a\udcff")  # subprocess passes it on as the bytes 61 ff
    assert refused.returncode == 2
    assert stderr_lines(refused) == ["error: b'a\\xff': not UTF-8 text; spellings and unit keys are text"]
