"""A lane's rpm holds for all the workers of a plan together, measured where it matters: at the API (the request log
of `fleetbench serve`), with four `fleetbench run` processes through litellm over real HTTP on one SQLite file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleetbench.testing.server.process import served
from tests.conftest import CLI, cli_env
from tests.core.real_http import environment, rows

pytestmark = pytest.mark.slow

RPM = 120
"""Of deployment DeepSeek-V3-0324 (its siblings -2 and -3 are unlimited): two requests a second for all workers."""
WORKERS = 4
KEYS = {"AZURE_AI_API_KEY": "sk-live-SHARED-LIMITS-0001"}


def test_a_lanes_rpm_holds_across_four_workers_at_the_server(tmp_path: Path) -> None:
    job = [
        "run.models=[DeepSeek-V3-0324]", "run.instances=80", "suite.items=cycle", "run.progress=off",
        "run.heartbeat_s=0.25", "run.lease_s=5", f"storage.url=sqlite:///{tmp_path / 'shared.db'}",
        f"models.deepseek_v3_0324.deployments.0.rpm={RPM}",
        *(f"models.deepseek_v3_0324.deployments.{i}.max_concurrency=2" for i in range(3)),
    ]  # fmt: skip
    with served(tmp_path / "server", {"defaults": {"latency": 0.2}}) as server:
        env = cli_env({**environment(server), **KEYS})
        crew = [
            subprocess.Popen([*CLI, "run", *job, f"run.worker={i}"], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
            for i in range(WORKERS)
        ]  # fmt: skip
        for process in crew:
            assert process.wait(timeout=600) == 0, process.communicate()[1][-2000:]
        requests = server.requests()
    runs = rows(tmp_path / "shared.db", "select run_id, started_at, finished_at from runs")
    all_live = max(r["started_at"] for r in runs) + 1.0  # every worker registered and seen by the others
    first_done = min(r["finished_at"] for r in runs)
    assert first_done - all_live > 5, "the workers did not overlap long enough to measure"
    limited = sorted(e["received_at"] for e in requests if e.get("deployment") == "DeepSeek-V3-0324")
    inside = [t for t in limited if all_live <= t <= first_done]
    allowed = RPM / 60 * (first_done - all_live)
    # One token of burst per worker, plus the rounding of the window's edges.
    assert len(inside) <= allowed + WORKERS + 1, (len(inside), allowed)
    # Unsplit, four workers would send up to four times the budget; the lane must have been used enough to tell (a
    # loaded machine slows the clients themselves, hence a quarter rather than all of it).
    assert len(inside) >= 0.25 * allowed, "the lane was used well below its limit: the test shows nothing"
    per_worker = rows(
        tmp_path / "shared.db",
        "select run_id, count(*) n from calls where deployment = 'DeepSeek-V3-0324' group by run_id",
    )
    assert len(per_worker) == WORKERS, "every worker used its share of the limited lane"
    logs = "".join(path.read_text() for path in tmp_path.glob("outputs/*/*/fleetbench.log"))
    assert f"live workers holding units of this plan: {WORKERS} (this run's rank" in logs
    assert "request slots: DeepSeek-V3-0324 1/2, DeepSeek-V3-0324-2 1/2" in logs, "2 slots over 4 workers: 1 each"
    units = rows(tmp_path / "shared.db", "select count(*) n, count(distinct unit_key) d from units")
    assert units == [{"n": 400, "d": 400}]
