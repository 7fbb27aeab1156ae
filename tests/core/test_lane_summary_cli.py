"""What the user sees when lanes fail, through the real `fleetbench run` in a subprocess: one line per deployment
that had problems, naming what to check (environment variable, catalog key, endpoint) and never a secret; no
traceback; the other lanes finish. And a run stopped by its deadline: status, exit code, nothing finished lost."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from fleetbench.errors import DEADLINE_EXIT
from tests.conftest import RunCli

pytestmark = pytest.mark.slow

KEY_SECRET = "sk-live-never-print-4f1c"
ENDPOINT_SECRET = "sig-never-print-77aa"


def _lines_about(stdout: str, deployment: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines() if line.strip().startswith(f"{deployment} (")]


def test_each_failing_deployment_gets_one_line_naming_what_to_check(run_cli: RunCli, tmp_path: Path) -> None:
    process = run_cli(
        "run",
        "run.models=[Sim-Agent,Sim-Weak]",
        "run.instances=10",
        "run.progress=plain",
        "scheduler.backoff_base_s=0.001",
        # Sim-Agent-2: its key (from the environment) is refused.
        "models.sim_agent.deployments.1.api_keys=[${oc.env:SIM_AGENT_2_KEY}]",
        "models.sim_agent.deployments.1.params.auth_failure=true",
        # Sim-Agent-3: nothing listens at its endpoint (which carries a secret query parameter).
        f"models.sim_agent.deployments.2.endpoint='http://127.0.0.1:9/v1?sig={ENDPOINT_SECRET}'",
        "models.sim_agent.deployments.2.params.refuse_connections=true",
        # Sim-Weak-2: the deployment name is wrong.
        "models.sim_weak.deployments.1.params.not_found=true",
        env={"SIM_AGENT_2_KEY": KEY_SECRET},
    )
    assert process.returncode == 0, process.stderr
    output = process.stdout + process.stderr
    assert "Traceback" not in output
    assert "planned 100 units: 0 already stored, 100 executed" in process.stdout
    assert "infra_error" not in process.stdout, "the other lanes finished every unit"

    [auth] = _lines_about(process.stdout, "Sim-Agent-2")
    assert "API key refused (HTTP 401) ×1" in auth and "stopped for the rest of the run" in auth
    assert "SIM_AGENT_2_KEY (models.sim_agent.deployments[1].api_keys[0])" in auth
    [refused] = _lines_about(process.stdout, "Sim-Agent-3")
    assert "connection refused or endpoint unreachable ×5" in refused and "parked ×1" in refused
    assert "models.sim_agent.deployments[2].endpoint" in refused and "http://127.0.0.1:9/v1" in refused
    [missing] = _lines_about(process.stdout, "Sim-Weak-2")
    assert "deployment not found (HTTP 404) ×1" in missing
    assert "the deployment name 'Sim-Weak-2' (models.sim_weak.deployments[1].name)" in missing
    assert _lines_about(process.stdout, "Sim-Agent") == _lines_about(process.stdout, "Sim-Weak") == []

    logs = [path.read_text() for path in tmp_path.glob("outputs/*/*/fleetbench.log")]
    assert len(logs) == 1 and auth in logs[0] and missing in logs[0], "the log file keeps the same lines"
    stored = (tmp_path / "fleetbench.db").read_bytes()
    for secret in (KEY_SECRET, ENDPOINT_SECRET):
        assert secret not in output and secret not in logs[0] and secret.encode() not in stored

    # The unit whose request met the refused key started again elsewhere; `show` says where it ran.
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        [(unit_key,)] = connection.execute("select unit_key from calls where status = 'auth'").fetchall()
    shown = run_cli("show", unit_key[:16])
    assert shown.returncode == 0, shown.stderr
    where = shown.stdout.splitlines()[1]
    assert re.fullmatch(r"ran on Sim-Agent-2 → (Sim-Agent-3 → )?Sim-Agent \((1 restart|2 restarts)\)", where), where


def test_a_run_stopped_by_its_deadline_exits_124_and_resumes(run_cli: RunCli, tmp_path: Path) -> None:
    plan = ["run.instances=400", "suite.items=cycle", "run.progress=off"]  # 2,000 units: about 4 s at 50 ms each
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=50" for i in range(3)]
    process = run_cli("run", *plan, "scheduler.deadline_s=1.5", *slow)
    assert process.returncode == DEADLINE_EXIT == 124, process.stderr
    assert "Traceback" not in process.stderr
    assert "deadline reached (scheduler.deadline_s): no new units" in process.stderr
    assert "deadline: scheduler.deadline_s=1.5 passed;" in process.stderr
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        assert connection.execute("select status from runs").fetchall() == [("deadline",)]
        (stored,) = connection.execute("select count(*) from units where outcome != 'infra_error'").fetchone()
    assert 0 < stored < 2000
    assert f"{stored} newly stored" in process.stdout, "the summary is printed and counts what was kept"
    assert f"passed; {stored} units finished and kept" in process.stderr
    again = run_cli("run", *plan)
    assert again.returncode == 0, again.stderr
    assert f"planned 2000 units: {stored} already stored, {2000 - stored} executed" in again.stdout
