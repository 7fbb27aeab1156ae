"""`fleetbench.log` (the Hydra job log in outputs/...) records the run's events through `logging`: start, plan, lanes
parked and resumed, the retries per lane, the end; never a secret."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from fleetbench.cli import WARNING_LOGGERS, warnings_to_stderr
from tests.conftest import RunCli

SECRET = "sk-live-log-never-9e1d"


def test_the_run_log_records_start_plan_lane_health_retries_and_end(run_cli: RunCli, tmp_path: Path) -> None:
    process = run_cli(
        "run",
        "run.instances=10",
        "run.progress=off",
        "run.worker=5",
        "scheduler.backoff_base_s=0.001",
        "scheduler.breaker_failures=2",
        "scheduler.breaker_cooldown_s=0.2",
        # Sim-Agent-2 answers 503 to its 3rd to 5th requests: it parks, its first probe fails, the second is answered
        # and it resumes; every request takes 150 ms, so the run lasts well beyond that.
        "models.sim_agent.deployments.1.params.outage=transient",
        "models.sim_agent.deployments.1.params.outage_after=2",
        "models.sim_agent.deployments.1.params.outage_requests=3",
        *(
            f"models.sim_agent.deployments.{i}.{knob}"
            for i in range(3)
            for knob in ("params.latency_ms=150", "max_concurrency=2")
        ),
        "models.sim_agent.deployments.1.api_keys=[${oc.env:SIM_LOG_KEY}]",
        env={"SIM_LOG_KEY": SECRET},
    )
    assert process.returncode == 0, process.stderr
    [log_file] = tmp_path.glob("outputs/*/*/fleetbench.log")
    log = log_file.read_text()
    assert re.search(r"\[INFO\] - run [0-9a-f]{32} started: worker 5 on \S+:\d+, suite jsonl, models Sim-Agent", log)
    assert re.search(r"\[INFO\] - plan [0-9a-f]{12}: 50 units planned, 0 already stored, 50 missing", log)
    assert re.search(r"lane Sim-Agent-2 parked for 0\.2s after 2 failures in a row", log), log
    assert re.search(r"lane Sim-Agent-2 resumed: its probe was answered", log), log
    assert re.search(r"lane Sim-Agent-2: \d+ requests, not answered at once: \{'transient': [1-9]\d*\}", log), log
    assert re.search(r"ended completed after [\d.]+s: 50 units executed \(.*\), 50 newly stored; 50 claimed", log)
    assert re.search(r"storage: \d+ write transactions, \d+ ms of CPU on the storage thread", log), log
    assert SECRET not in log and SECRET not in process.stdout + process.stderr
    assert "INFO" not in process.stdout + process.stderr, "the events go to the log file, not the terminal"
    # A lane parked and resumed reaches the terminal too (as a warning): a run waiting on a lane is never silent.
    # On stderr, as the CLI's other notices: stdout carries the run's table alone.
    assert re.search(r"^warning: lane Sim-Agent-2 parked for 0\.2s after 2 failures in a row \(last: \w+\); ",
                     process.stderr, re.MULTILINE)  # fmt: skip
    assert "warning: lane Sim-Agent-2 resumed: its probe was answered" in process.stderr.splitlines()
    assert "lane Sim-Agent-2" not in process.stdout


def test_a_reading_commands_warnings_reach_stderr_as_warning_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """`fleetbench status` retrying a lost connection printed its warning as a bare line (logging's last resort):
    reading commands show warnings as a run does, `warning: …` on stderr, once however often they are set up."""
    before = {name: list(logging.getLogger(name).handlers) for name in WARNING_LOGGERS}
    try:
        warnings_to_stderr()
        warnings_to_stderr()
        logging.getLogger("fleetbench_plugins.storage.sql.database").warning("reading recent calls: lost (%s)", "x")
        logging.getLogger("fleetbench.report").info("not shown")
        assert capsys.readouterr() == ("", "warning: reading recent calls: lost (x)\n")
    finally:
        for name, handlers in before.items():
            logging.getLogger(name).handlers[:] = handlers
