"""`fleetbench status`: the plan's runs, done / claimed / planned, and deployment health, read from the database."""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fleetbench.interfaces import NoOptions
from fleetbench.plan import model_plan
from fleetbench.report.status import gather
from fleetbench.testing.contracts.storage import KIT_CATALOG, RUN, SUITE, call, result, run_record
from fleetbench.testing.fakes import ExactNaming
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.types import CallStatus, Cell, UnitScope
from tests.conftest import CLI, RunCli, cli_env, stderr_lines

SCOPE = UnitScope("a" * 32, "b" * 32)


def test_gather_counts_done_live_claims_and_lane_health() -> None:
    storage = MemoryStorage(naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG))
    cells = [(Cell(SUITE, "Kit-Model", (("level", level),)), 4) for level in ("low", "high")]
    plan = model_plan("Kit-Model", cells, SCOPE, 0)
    units = list(plan.units())
    storage.begin_run(run_record())
    now = time.time()
    calls = [call(units[0], "Kit-Model-2") for _ in range(8)]
    calls += [
        call(units[1], "Kit-Model-2", attempt=2),  # 429
        *(call(units[1], "Kit-Model", attempt=1) for _ in range(3)),
    ]
    calls = [
        c.__class__(**{**c.__dict__, "started_at": now - 10, "latency_s": 0.1 * (i + 1)}) for i, c in enumerate(calls)
    ]
    calls.append(call(units[2], "Kit-Model-2"))  # outside the window (started at 1000.0)
    failed = calls[-2].__class__(**{**calls[-2].__dict__, "status": CallStatus.TIMEOUT, "http_status": None})
    storage.write([result(units[0], deployment="Kit-Model-2"), result(units[1])], [*calls[:-2], failed, calls[-1]])
    storage.claim(RUN, units[4:6], now, now + 60)  # live
    storage.claim(RUN, units[6:7], now - 120, now - 60)  # expired: not counted
    status = gather(storage, [plan], "", window_s=60)
    by_cell = {c.factors: (c.done, c.claimed, c.planned) for c in status.cells}
    assert by_cell == {"level=low": (2, 0, 4), "level=high": (0, 2, 4)}
    assert status.totals() == {"Kit-Model": (2, 2, 8)}
    lanes = {lane.deployment: lane for lane in status.lanes}
    two = lanes["Kit-Model-2"]
    assert (two.done, two.calls) == (1, 9)
    assert two.rate_limited == pytest.approx(1 / 9) and two.errors == 0
    assert two.p50_s == pytest.approx(0.5) and two.p95_s == pytest.approx(0.9)
    one = lanes["Kit-Model"]
    assert (one.done, one.calls, one.rate_limited) == (1, 3, 0) and one.errors == pytest.approx(1 / 3)
    assert status.runs == [], "only runs of this plan's digest are listed"
    # As if Kit-Model-2 served another plan sharing the database: its calls are not this plan's lane health.
    only_one = gather(storage, [plan], "", window_s=60, deployments={"Kit-Model"})
    assert [(lane.deployment, lane.done, lane.calls) for lane in only_one.lanes] == [
        ("Kit-Model", 1, 3),
        ("Kit-Model-2", 1, 0),  # this plan's units done there still count
    ]


def test_a_dead_workers_claims_are_not_counted_as_claimed() -> None:
    storage = MemoryStorage(naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG))
    plan = model_plan("Kit-Model", [(Cell(SUITE, "Kit-Model", (("level", "low"),)), 4)], SCOPE, 0)
    units = list(plan.units())
    storage.begin_run(dataclasses.replace(run_record(), plan="d" * 32))  # its heartbeat is long stale: dead
    now = time.time()
    storage.claim(RUN, units[:3], now, now + 60)  # unexpired, but held by a dead run
    status = gather(storage, [plan], "d" * 32, window_s=60)
    assert [run["state"] for run in status.runs] == ["dead"]
    assert [(c.done, c.claimed, c.planned) for c in status.cells] == [(0, 0, 4)]


def test_status_shows_a_live_worker_its_claims_and_then_the_finished_plan(run_cli: RunCli, tmp_path: Path) -> None:
    plan = ["run.instances=12", "suite.items=cycle"]
    # Three requests in flight, half a second each: the run lasts about ten seconds, long enough to be watched.
    slow = [
        f"models.sim_agent.deployments.{i}.{knob}"
        for i in range(3)
        for knob in ("params.latency_ms=500", "max_concurrency=1")
    ]
    worker = subprocess.Popen(
        [*CLI, "run", *plan, *slow, "run.worker=3", "run.progress=off"], cwd=tmp_path, env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            during = run_cli("status", *plan)
            if re.search(r"running", during.stdout) and _plan_row(during.stdout)[0] > 0:
                break
            assert time.monotonic() < deadline and worker.poll() is None, during.stdout + during.stderr
            time.sleep(0.3)
        assert re.search(rf"│ 3 +│ running +│ \S+:{worker.pid} +│ 60 ", during.stdout), during.stdout
        done, claimed, planned = _plan_row(during.stdout)
        assert planned == 60 and claimed > 0 and done + claimed <= planned
    finally:
        assert worker.wait(timeout=300) == 0
    after = run_cli("status", *plan, "status.window_s=600")
    assert after.returncode == 0, after.stderr
    assert _plan_row(after.stdout) == (60, 0, 60)
    assert re.search(r"│ 3 +│ completed ", after.stdout)
    calls = [int(m) for m in re.findall(r"│ Sim-Agent(?:-\d)? +│ \d+ +│ (\d+) +│ \d\.\d+s", after.stdout)]
    assert len(calls) == 3 and sum(calls) >= 60, after.stdout


def _plan_row(stdout: str) -> tuple[int, int, int]:
    found = re.search(r"│ Sim-Agent +│ (\d+) +│ (\d+) +│ (\d+) +│ [\d.]+%", stdout)
    return (0, 0, 0) if found is None else (int(found[1]), int(found[2]), int(found[3]))


def test_status_refuses_a_bad_window_with_one_line(run_cli: RunCli) -> None:
    refused = run_cli("status", "status.window_s=-1")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: status.window_s: must be more than 0 and at most 2592000 seconds, got -1.0"
    ]


@pytest.mark.parametrize("key", ["report.run_id", "report.label"])
def test_status_refuses_a_run_selection_it_would_ignore(run_cli: RunCli, tmp_path: Path, key: str) -> None:
    """It shows the configured plan whatever runs ran it: a run id or label would be silently ignored."""
    refused = run_cli("status", f"{key}=zzzz")
    assert refused.returncode == 2
    assert stderr_lines(refused) == [
        f"error: {key}: status shows the configured plan and all its runs; `fleetbench runs {key}=...` shows that run"
    ]
    assert list(tmp_path.iterdir()) == []


def test_status_of_a_real_model_plan_needs_no_api_key(run_cli: RunCli, tmp_path: Path) -> None:
    """Status reads the database only: a plan of real models is shown with none of their keys or endpoints set."""
    db = [f"storage.url=sqlite:///{tmp_path / 'status.db'}"]
    assert run_cli("run", *db, "run.instances=2", "run.progress=off").returncode == 0  # creates the database
    env = {name: value for name, value in cli_env().items() if not name.startswith("AZURE_")}
    plan = [*db, "run.models=[DeepSeek-V3-0324]", "run.instances=3"]
    shown = subprocess.run([*CLI, "status", *plan], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "AZURE" not in shown.stdout + shown.stderr
    assert re.search(r"│ DeepSeek-V3-0324 +│ 0 +│ 0 +│ 15 ", shown.stdout), shown.stdout


def test_ctrl_c_ends_a_watch_quietly_with_exit_0(run_cli: RunCli, tmp_path: Path) -> None:
    """Ctrl-C is how a watch ends: the last tables stay, ended by a newline; nothing says a run was interrupted."""
    assert run_cli("run", "run.instances=2", "run.progress=off").returncode == 0
    with subprocess.Popen(
        [*CLI, "status", "run.instances=2", "status.watch=true", "status.every_s=0.2"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watch:
        assert watch.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(watch.stdout.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        # Piped, every redraw is printed, each under a "status at" line (rich's live display printed the last only).
        while sum(line.startswith("status at ") for line in lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=60)
        reader.join(timeout=60)
        assert watch.stderr is not None
        err = watch.stderr.read()
        out = "".join(lines)
    assert out.count("status at ") >= 2, "a piped watch printed one snapshot only"
    assert watch.returncode == 0, err
    assert err == ""
    assert "plan" in out and "Sim-Agent" in out, out[-500:]
    assert out.endswith("\n")
