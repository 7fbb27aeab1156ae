"""The `fleetbench` command through litellm against `fleetbench serve`, in subprocesses: a runner killed with
SIGKILL at random moments, then run again, stores exactly the planned units; no configured key reaches the database,
the logs, the transcripts, `outputs/`, `multirun/`, the server's request log or the terminal, even when the API
echoes the key in its error text."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fleetbench.testing.server.config import key_fingerprint
from fleetbench.testing.server.process import RunningServer, served
from tests.conftest import CLI, RunCli, cli_env
from tests.core.real_http import environment, rows, run_through
from tests.core.test_secrets import _database_text

pytestmark = pytest.mark.slow

KEYS = {
    "AZURE_AI_API_KEY": "sk-live-SERVE-DO-NOT-LEAK-0001",
    "GATEWAY_API_KEY_0": "sk-live-SERVE-DO-NOT-LEAK-0002",
    "GATEWAY_API_KEY_1": "sk-live-SERVE-DO-NOT-LEAK-0003",
    "GATEWAY_API_KEY_2": "sk-live-SERVE-DO-NOT-LEAK-0004",
}
TWO_EACH = [f"models.deepseek_v3_0324.deployments.{i}.max_concurrency=2" for i in range(3)]
JOB = ["run.models=[DeepSeek-V3-0324]", "run.instances=6", *TWO_EACH]


def run_env(server: RunningServer) -> dict[str, str]:
    return {**environment(server), **KEYS}


def assert_no_key_anywhere(root: Path, server: RunningServer, *outputs: str) -> None:
    database = f"sqlite:///{root / 'fleetbench.db'}"
    texts = list(_database_text(database))
    files = [p for p in [*root.rglob("*"), server.log_path] if p.is_file()]
    for key in KEYS.values():
        assert all(key not in output for output in outputs), f"{key} printed"
        assert all(key not in row for row in texts), f"{key} stored in the database"
        for path in files:
            assert key.encode() not in path.read_bytes(), f"{key} leaked into {path}"


def test_sigkill_at_random_moments_then_a_rerun_stores_exactly_the_planned_units(tmp_path: Path) -> None:
    """Three runs killed after a random number of requests (each resumes what the previous left), then one that
    finishes (in process, to save a start-up): 50 units stored once each, none lost, none twice, no key anywhere.
    Each kill comes within 8 requests of its run's start, so even three kills leave work for the last run."""
    chance = random.Random(8)
    job = ["run.models=[DeepSeek-V3-0324]", "run.instances=10", *TWO_EACH]
    with served(tmp_path / "server", {"defaults": {"latency": 0.3}}) as server:
        command = [*CLI, "run", "run.progress=off", *job]
        kills = 0
        for _ in range(3):
            seen = len(server.requests())
            process = subprocess.Popen(command, cwd=tmp_path, env=cli_env(run_env(server)), stdout=subprocess.DEVNULL)
            target = seen + chance.randrange(1, 9)
            deadline = time.monotonic() + 120
            while len(server.requests()) < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            kills += process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait()
            stored = rows(tmp_path / "fleetbench.db", "select count(*) n, count(distinct unit_key) d from units")
            assert stored[0]["n"] == stored[0]["d"] <= 50
        assert kills == 3, "every trial was killed mid-run"
        before = rows(tmp_path / "fleetbench.db", "select count(*) n from units where outcome != 'infra_error'")[0]
        final = run_through(server, tmp_path / "fleetbench.db", job, KEYS)
        assert (final.planned, final.already_stored, final.executed) == (50, before["n"], 50 - before["n"])
        units = rows(tmp_path / "fleetbench.db", "select count(*) n, count(distinct unit_key) d from units")
        assert units == [{"n": 50, "d": 50}]
        infra = rows(tmp_path / "fleetbench.db", "select count(*) n from units where outcome = 'infra_error'")
        assert infra == [{"n": 0}]
        assert_no_key_anywhere(tmp_path, server)


def test_no_configured_key_reaches_anything_a_sweep_writes_or_prints(run_cli: RunCli, tmp_path: Path) -> None:
    """A `-m` sweep through litellm; the gateway refuses one key with a 401 that quotes it, and fails 10% of
    requests with 500s."""
    refused = key_fingerprint(KEYS["GATEWAY_API_KEY_1"])
    config = {"seed": 1, "defaults": {"faults": {"error_500": 0.1}, "reject_keys": [refused]}}
    with served(tmp_path / "server", config) as server:
        process = run_cli(
            "run", "-m", "run.seed=1,2", "run.instances=1", "run.models=[DeepSeek-V3-0324,qwen2.5-7b-instruct]",
            "scheduler.backoff_base_s=0.01", "scheduler.backoff_max_s=0.05", env=run_env(server), timeout=300,
        )  # fmt: skip
        assert process.returncode == 0, process.stderr
        assert process.stdout.count("planned 10 units") == 2
        assert {e["status"] for e in server.requests()} >= {200, 401, 500}
        assert len(list(tmp_path.glob("multirun/*/*/*/fleetbench.log"))) == 2
        auth = rows(tmp_path / "fleetbench.db", "select error from calls where status = 'auth'")
        assert auth and all("***" in row["error"] for row in auth), "the quoted key is redacted, not dropped"
        assert_no_key_anywhere(tmp_path, server, process.stdout, process.stderr)


def test_a_run_reports_its_wait_for_litellm_apart_and_a_run_with_nothing_to_do_does_not_wait(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """litellm's import (seconds) is awaited before the first request and printed apart from the work's rate; a
    rerun with nothing missing never waits for it."""
    with served(tmp_path / "server", {"defaults": {"latency": 0.01}}) as server:
        first = run_cli("run", "run.progress=off", *JOB, env=run_env(server), timeout=300)
        assert first.returncode == 0, first.stderr
        summary = next(line for line in first.stdout.splitlines() if line.startswith("planned 30 units"))
        assert re.search(r"30 newly stored in [\d.]+s, of which [\d.]+s starting providers \(\d+ units/s\)", summary)
        again = run_cli("run", "run.progress=off", *JOB, env=run_env(server), timeout=300)
        assert again.returncode == 0, again.stderr
        assert "planned 30 units: 30 already stored, 0 executed" in again.stdout
        assert "starting providers" not in again.stdout


def _broken_litellm(tmp_path: Path, body: str) -> dict[str, str]:
    """An environment whose `import litellm` runs `body` (a package of that name first on the path)."""
    package = tmp_path / "broken" / "litellm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body)
    # No server: the run must stop before any request. The endpoint is never reached.
    return {**KEYS, "AZURE_AI_ENDPOINT": "http://127.0.0.1:9/v1", "PYTHONPATH": str(tmp_path / "broken")}


def test_litellm_that_cannot_be_imported_stops_the_run_with_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    env = _broken_litellm(tmp_path, "raise RuntimeError('a broken build of litellm')\n")
    process = run_cli("run", "run.progress=off", *JOB, env=env, timeout=300)
    assert process.returncode == 1, process.stderr
    assert process.stderr.strip().splitlines()[-1] == (
        "error: provider 'litellm': litellm could not be imported: RuntimeError: a broken build of litellm"
    )
    assert "Traceback" not in process.stderr + process.stdout
    runs = run_cli("runs")
    assert "failed" in runs.stdout, runs.stdout


def test_a_run_stopped_while_litellm_still_imports_ends_at_once(tmp_path: Path) -> None:
    # The attacker's slow import: a run waited for it to end, twice, after Ctrl-C (121 s for a 60 s import).
    env = _broken_litellm(tmp_path, "import time\ntime.sleep(60)\n")
    process = subprocess.Popen(
        [*CLI, "run", "run.progress=off", *JOB], cwd=tmp_path, env=cli_env(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(5)  # start-up done: the run waits for the import
    process.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert time.monotonic() - stopped < 20, "it waited for the import"
    assert stderr.strip().splitlines()[-1].startswith("interrupted: 0 units finished and kept"), stderr
