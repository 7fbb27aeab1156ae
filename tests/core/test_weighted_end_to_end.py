"""`sharding=weighted` through the real CLI: the issue's case, one deployment declaring `weight: 3`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import RunCli

pytestmark = pytest.mark.slow


def test_a_declared_weight_of_3_gets_three_times_the_units_of_lanes_declaring_none(run_cli: RunCli) -> None:
    # The others keep max_concurrency 8; before the fix they counted 8 each and weight 3 got the fewest (16/42/42).
    process = run_cli("run", "sharding=weighted", "models.sim_agent.deployments.0.weight=3", "run.progress=off")
    assert process.returncode == 0, process.stderr
    report = run_cli("report", "report.format=json")
    shares = {share["deployment"]: share["units"] for share in json.loads(report.stdout)["deployment_shares"]}
    assert shares == {"Sim-Agent": 60, "Sim-Agent-2": 20, "Sim-Agent-3": 20}
