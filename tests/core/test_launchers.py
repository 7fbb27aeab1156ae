"""`fleetbench run -m ... hydra/launcher=<name>`: sweep jobs run in the launcher's worker processes (joblib's loky
workers, a local Ray cluster, submitit's local executor), each storing its units once into the one database of the
sweep: a SQLite file, and PostgreSQL in the same sweep when a server answers. A job that fails there makes the sweep
exit non-zero with one line naming it.

Every sweep runs through the real CLI in a subprocess; the database is read back with SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from fleetbench import launched
from fleetbench.testing.databases import fresh_postgres_database
from tests.conftest import CLI, cli_env

pytestmark = pytest.mark.slow

UNITS_PER_JOB = 10  # run.instances=2 over the jsonl suite's 5 categories, one model
SECRET = "sk-live-DO-NOT-LEAK-2718"


@dataclass
class Launched:
    process: subprocess.CompletedProcess[str]
    pid: int


def _launch(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Launched:
    """The real CLI in `cwd`, with the process id the launcher's workers must differ from."""
    environment = cli_env(env)
    if "RAY_ADDRESS" not in (env or {}):
        environment.pop("RAY_ADDRESS", None)
    with subprocess.Popen(
        [*CLI, *args], cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as popen:
        try:
            stdout, stderr = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            raise
        return Launched(subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr), popen.pid)


@dataclass
class Stored:
    units: int
    distinct_keys: int
    seeds: set[int]
    runs: list[tuple[str, int, int]]  # (status, pid, executed units)
    keys_run_twice: int


def _stored(url: str) -> Stored:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            units, distinct = connection.execute(text("select count(*), count(distinct unit_key) from units")).one()
            seeds = {int(s) for (s,) in connection.execute(text("select distinct seed from units"))}
            runs = [
                (str(status), int(pid), int(executed))
                for status, pid, executed in connection.execute(text("select status, pid, executed_units from runs"))
            ]
            twice = connection.execute(
                text(
                    "select count(*) from (select unit_key from calls group by unit_key"
                    " having count(distinct run_id) > 1) t"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return Stored(int(units), int(distinct), seeds, runs, int(twice))


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[list[str]]:
    """The SQLite file of the sweep, and a fresh PostgreSQL database when a server answers (required in CI)."""
    urls = [f"sqlite:///{tmp_path / 'sweep.db'}"]
    try:
        with fresh_postgres_database() as url:
            yield [*urls, url]
            return
    except pytest.skip.Exception:
        pass
    yield urls


def _sweep(databases: list[str], *launcher: str) -> list[str]:
    """Two seeds into every database: 2 jobs per database, one launcher start."""
    quoted = ",".join(f"'{url}'" for url in databases)
    return ["run", "-m", "run.seed=1,2", "run.instances=2", f"storage.url={quoted}", *launcher]


def _assert_every_job_stored_once(launched: Launched, databases: list[str], tmp_path: Path) -> None:
    process = launched.process
    assert process.returncode == 0, process.stderr[-3000:]
    jobs = 2 * len(databases)
    for url in databases:
        stored = _stored(url)
        assert stored.units == stored.distinct_keys == 2 * UNITS_PER_JOB, url
        assert stored.seeds == {1, 2}
        assert sorted(status for status, _, _ in stored.runs) == ["completed", "completed"], url
        assert [executed for _, _, executed in stored.runs] == [UNITS_PER_JOB, UNITS_PER_JOB]
        assert all(pid != launched.pid for _, pid, _ in stored.runs), "jobs ran in the launcher's workers"
        assert stored.keys_run_twice == 0
    logs = sorted(p.parent.name for p in tmp_path.glob("multirun/*/*/*/fleetbench.log"))
    assert logs == [str(n) for n in range(jobs)], "each job logs into its own numbered sweep directory"


def test_joblib_runs_the_sweep_in_two_worker_processes(tmp_path: Path, databases: list[str]) -> None:
    launched = _launch(tmp_path, *_sweep(databases, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"))
    _assert_every_job_stored_once(launched, databases, tmp_path)
    assert "Joblib.Parallel(n_jobs=2" in launched.process.stdout + launched.process.stderr


def test_submitit_local_runs_the_sweep_and_keeps_literal_secrets_out_of_its_pickles_and_logs(
    tmp_path: Path, databases: list[str]
) -> None:
    key = f"models.sim_agent.deployments.0.api_keys=[{SECRET}]"
    launched = _launch(tmp_path, *_sweep(databases, "hydra/launcher=submitit_local", key))
    _assert_every_job_stored_once(launched, databases, tmp_path)
    submitted = list(tmp_path.glob("multirun/*/*/.submitit/*/*_submitted.pkl"))
    assert len(submitted) == 2 * len(databases), "submitit pickled every job (and the configuration with it)"
    assert SECRET not in launched.process.stdout + launched.process.stderr
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert SECRET.encode() not in path.read_bytes(), f"the literal key leaked into {path.relative_to(tmp_path)}"


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[str]:
    """A running Ray cluster on this machine (`ray start --head --block`, in a directory of its own), stopped after
    the test by ending that one process; yields its address."""
    ports = _free_ports(2)
    head_dir = tmp_path.parent / f"{tmp_path.name}-ray-head"
    head_dir.mkdir()
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray), "start", "--head", "--block", f"--port={ports[0]}", f"--ray-client-server-port={ports[1]}"]
    command += ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"]
    env = {**cli_env(), "RAY_AUTH_MODE": "disabled"}
    with subprocess.Popen(
        command, cwd=head_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as head:
        assert head.stdout is not None
        started = time.monotonic()
        for line in head.stdout:  # the head says when it is up; its later output is not read (it is little)
            if "Ray runtime started" in line:
                break
            assert time.monotonic() - started < 180, "ray start did not come up in 180 s"
        else:
            pytest.fail(f"ray start --head exited with {head.wait()}")
        try:
            yield f"127.0.0.1:{ports[0]}"
        finally:
            head.terminate()  # --block: the head stops every process it started
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                head.kill()
            _forget_cluster(ports[0])


def _forget_cluster(port: int) -> None:
    """Remove ray's note of the stopped head (`ray stop` would, but it stops every cluster on the machine): a later
    `ray.init()` without an address would try to attach to it."""
    note = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    with contextlib.suppress(FileNotFoundError):
        if note.read_text().strip().endswith(f":{port}"):
            note.unlink()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_ray_attaches_by_ray_address_and_runs_the_sweep_on_the_cluster(
    tmp_path: Path, databases: list[str], ray_cluster: str
) -> None:
    env = {"RAY_ADDRESS": ray_cluster, "RAY_AUTH_MODE": "disabled"}
    launched = _launch(tmp_path, *_sweep(databases, "hydra/launcher=ray"), env=env)
    _assert_every_job_stored_once(launched, databases, tmp_path)
    output = launched.process.stdout + launched.process.stderr
    assert "Connecting to existing Ray cluster" in output
    assert "'object_store_memory': None" in output, "the preset's null reached ray.init (ray refuses 75 MB there)"


@pytest.mark.parametrize(("ray_address", "address"), [("10.1.2.3:6379", "10.1.2.3:6379"), (None, "null")])
def test_the_ray_preset_takes_its_address_from_ray_address_and_asks_no_object_store(
    tmp_path: Path, ray_address: str | None, address: str
) -> None:
    """Attach to `RAY_ADDRESS`; unset, `ray.init(address=None)` starts a local cluster, sized by `num_cpus`."""
    preset = ["run", "hydra/launcher=ray", "hydra.launcher.ray.init.num_cpus=2", "--cfg", "hydra", "-p"]
    env = {"RAY_ADDRESS": ray_address} if ray_address else {}
    launched = _launch(tmp_path, *preset, "hydra.launcher", "--resolve", env=env)
    assert launched.process.returncode == 0, launched.process.stderr
    assert f"address: {address}\n" in launched.process.stdout
    assert "object_store_memory: null" in launched.process.stdout
    assert "num_cpus: 2" in launched.process.stdout
    assert "validated against ConfigStore schema" not in launched.process.stderr


EXITING_SHARDING = '''
import itertools

from fleetbench.errors import StorageError
from fleetbench.interfaces import Dispatch, ShardingStrategy


class Queue(Dispatch):
    def __init__(self, units):
        self.units = units

    def next_unit(self, lane_id):
        return next(self.units, None)

    def planned(self, lane_id):
        return None


class Exiting(ShardingStrategy):
    """Fails the job of seed 1 inside the job, after the sweep's checks passed (as a database lost mid-run would);
    any other job runs on a shared queue."""

    def __init__(self, options):
        self.options = options

    def dispatch(self, source, lanes):
        units = source.stream()
        first = next(units, None)
        if first is not None and first.seed == 1:
            raise StorageError("the database went away")
        return Queue(itertools.chain([first] if first is not None else [], units))
'''


@pytest.fixture
def exiting_plugin(tmp_path: Path) -> dict[str, str]:
    site = tmp_path.parent / f"{tmp_path.name}-site"
    (site / "fbtp_exiting").mkdir(parents=True)
    (site / "fbtp_exiting" / "__init__.py").write_text(EXITING_SHARDING)
    dist = site / "fbtp_exiting-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fbtp-exiting\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""
        [fleetbench.sharding]
        exiting = fbtp_exiting:Exiting
    """)
    )
    return {"PYTHONPATH": str(site)}


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_a_job_failing_in_a_worker_fails_the_sweep_with_one_line_and_the_others_run(
    tmp_path: Path, exiting_plugin: dict[str, str], launcher: str
) -> None:
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    args = ("run", "-m", "run.seed=1,2", "run.instances=1", "sharding=exiting", f"storage.url={url}")
    launched = _launch(tmp_path, *args, f"hydra/launcher={launcher}", env=exiting_plugin)
    process = launched.process
    assert process.returncode == 1, process.stderr[-3000:]
    failed = [line for line in process.stderr.splitlines() if " failed (exit code 1): " in line]
    assert len(failed) == 1, process.stderr[-3000:]
    assert failed[0].startswith("sweep job #0 (output ")
    assert failed[0].endswith("failed (exit code 1): error: the database went away")
    assert "Traceback" not in process.stderr
    stored = _stored(url)
    assert (stored.units, stored.seeds) == (UNITS_PER_JOB // 2, {2}), "the job of seed 2 ran all its units"
    assert sorted(status for status, _, _ in stored.runs) == ["completed", "failed"]


def test_every_job_is_validated_before_the_launcher_starts_any(tmp_path: Path) -> None:
    launched = _launch(tmp_path, "run", "-m", "run.instances=1,-1", "hydra/launcher=joblib")
    assert launched.process.returncode == 2
    assert launched.process.stderr.splitlines()[-1].startswith("error: run.instances")
    assert list(tmp_path.iterdir()) == [], "no job ran, nothing was written"


def test_one_plan_spreads_over_worker_jobs_that_claim_from_it(tmp_path: Path, databases: list[str]) -> None:
    """`run.worker=range(2)` on a parallel launcher: two jobs of one plan, every unit executed by exactly one."""
    quoted = ",".join(f"'{url}'" for url in databases)
    latency = [f"models.sim_agent.deployments.{i}.params.latency_ms=20" for i in range(3)]
    launched = _launch(
        tmp_path, "run", "-m", "run.worker=range(2)", "run.instances=40", "suite.items=cycle", f"storage.url={quoted}",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *latency,
    )  # fmt: skip
    assert launched.process.returncode == 0, launched.process.stderr[-3000:]
    for url in databases:
        stored = _stored(url)
        assert stored.units == stored.distinct_keys == 200, url
        assert stored.keys_run_twice == 0, "no unit executed by both workers"
        assert sorted(status for status, _, _ in stored.runs) == ["completed", "completed"]
        assert sum(executed for _, _, executed in stored.runs) == 200


SLOW = [
    override
    for i in range(3)
    for override in (
        f"models.sim_agent.deployments.{i}.params.latency_ms=1000",
        f"models.sim_agent.deployments.{i}.max_concurrency=2",
    )
]


def _signal_mid_sweep(
    tmp_path: Path, command: list[str], signal_it: Callable[[subprocess.Popen[str], Path], bool]
) -> tuple[int, str]:
    """Start the sweep `command` in its own process group (as a terminal starts it) on `tmp_path/sweep.db`; call
    `signal_it(process, db)` every 0.2 s until it says it has signalled (it waits for stored units first); return the
    sweep's exit code and stderr. The group is killed if the sweep has not ended 120 s later."""
    db = tmp_path / "sweep.db"
    with subprocess.Popen(
        [*CLI, *command],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: Ctrl-C in a terminal reaches the whole group
    ) as popen:
        started = time.monotonic()
        while not signal_it(popen, db):
            assert popen.poll() is None and time.monotonic() - started < 120, "no unit stored"
            time.sleep(0.2)
        try:
            _, stderr = popen.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            _, stderr = popen.communicate()
            pytest.fail(f"the sweep did not end within 120 s of the signal: {stderr[-3000:]}")
    return popen.returncode, stderr


def _once_stored(
    units: int, send: Callable[[subprocess.Popen[str]], None]
) -> Callable[[subprocess.Popen[str], Path], bool]:
    """A `signal_it` that calls `send(process)` once `units` units are stored."""

    def signal_it(popen: subprocess.Popen[str], db: Path) -> bool:
        if _count_units(db) < units:
            return False
        send(popen)
        return True

    return signal_it


def test_ctrl_c_lets_the_joblib_workers_drain_then_a_rerun_runs_exactly_what_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "sweep.db"
    sweep = ["run", "-m", "run.seed=1,2", "run.instances=20", f"storage.url=sqlite:///{db}", "hydra/launcher=joblib"]
    sweep.append("hydra.launcher.n_jobs=2")
    returncode, stderr = _signal_mid_sweep(
        tmp_path, [*sweep, *SLOW], _once_stored(6, lambda popen: os.killpg(popen.pid, signal.SIGINT))
    )
    assert returncode == 130, stderr[-3000:]
    # The last line of ours; loky's resource tracker, ending after us, may still warn about joblib's temporary folder.
    assert "interrupted: every finished unit is kept; run again to resume" in stderr.splitlines(), stderr[-3000:]
    assert "Traceback" not in stderr
    # Nothing that reads as a crash: Hydra's lines about a failed job (an interrupted job did not fail).
    assert "Error executing job" not in stderr and "HYDRA_FULL_ERROR" not in stderr and "failed" not in stderr
    stored = _stored(f"sqlite:///{db}")
    assert sorted(status for status, _, _ in stored.runs) == ["interrupted", "interrupted"], "both jobs drained"
    kept = stored.units
    assert kept == sum(executed for _, _, executed in stored.runs) and 6 <= kept < 200

    again = _launch(tmp_path, *sweep[:-1], "hydra.launcher.n_jobs=1").process
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = [int(n) for n in re.findall(r"planned 100 units: (\d+) already stored", again.stdout)]
    assert sum(rerun) == kept and len(rerun) == 2
    assert again.stdout.count("newly stored") == 2
    assert _count_units(db) == 200


def _one_job_completed_and_units_stored(units: int) -> Callable[[subprocess.Popen[str], Path], bool]:
    """A `signal_it` that sends Ctrl-C to the sweep's process group once a job has completed (its loky worker idle)
    and `units` units are stored."""

    def signal_it(popen: subprocess.Popen[str], db: Path) -> bool:
        if _count_units(db) < units or "completed" not in _run_statuses(db):
            return False
        os.killpg(popen.pid, signal.SIGINT)
        return True

    return signal_it


def test_ctrl_c_while_a_joblib_worker_is_idle_still_lets_the_running_job_drain(tmp_path: Path) -> None:
    """Job 0 (5 units) is over and its loky worker waits for work when Ctrl-C reaches the group. The idle worker once
    died of the KeyboardInterrupt, which broke joblib's pool: the job still running was killed mid-drain (its run left
    `running`) and sixty lines of traceback were printed."""
    db = tmp_path / "sweep.db"
    sweep = ["run", "-m", "run.instances=1,24", f"storage.url=sqlite:///{db}", "hydra/launcher=joblib"]
    returncode, stderr = _signal_mid_sweep(
        tmp_path, [*sweep, "hydra.launcher.n_jobs=2", *SLOW], _one_job_completed_and_units_stored(12)
    )
    assert returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "BrokenProcessPool" not in stderr, stderr[-3000:]
    assert "interrupted: every finished unit is kept; run again to resume" in stderr.splitlines(), stderr[-3000:]
    stored = _stored(f"sqlite:///{db}")
    assert sorted(status for status, _, _ in stored.runs) == ["completed", "interrupted"], "the running job drained"
    # Job 1's 120 units include job 0's 5 (a unit's key holds its index, not run.instances).
    assert stored.units == sum(executed for _, _, executed in stored.runs) < 120
    again = _launch(tmp_path, *sweep, "hydra.launcher.n_jobs=1").process
    assert again.returncode == 0, again.stderr[-3000:]
    assert _count_units(db) == 120


def test_sigterm_to_the_launching_process_alone_stops_the_joblib_sweep_and_starts_no_other_job(
    tmp_path: Path,
) -> None:
    """`kill PID` (or `timeout`, or a batch system) signals the launching process only: its loky workers get no signal
    of their own, yet the jobs running drain and the jobs still queued never start."""
    db = tmp_path / "sweep.db"
    sweep = ["run", "-m", "run.seed=1,2,3,4", "run.instances=20", f"storage.url=sqlite:///{db}"]
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    before = set(Path(tempfile.gettempdir()).glob("fleetbench-sweep-*"))
    returncode, stderr = _signal_mid_sweep(
        tmp_path, [*sweep, *launcher, *SLOW], _once_stored(6, lambda popen: os.kill(popen.pid, signal.SIGTERM))
    )
    assert returncode == 130, stderr[-3000:]
    assert "interrupted: every finished unit is kept; run again to resume" in stderr.splitlines(), stderr[-3000:]
    assert "Traceback" not in stderr
    stored = _stored(f"sqlite:///{db}")
    assert len(stored.runs) <= 2, "only the two jobs running when the signal came ever started a run"
    assert {status for status, _, _ in stored.runs} == {"interrupted"}, "the running jobs drained"
    kept = stored.units
    assert kept == sum(executed for _, _, executed in stored.runs) and 6 <= kept < 200
    assert set(Path(tempfile.gettempdir()).glob("fleetbench-sweep-*")) <= before, "the stop file's folder is removed"

    again = _launch(tmp_path, *sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=1").process
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = [int(n) for n in re.findall(r"planned 100 units: (\d+) already stored", again.stdout)]
    assert sum(rerun) == kept and len(rerun) == 4
    assert _count_units(db) == 400


def test_a_joblib_worker_killed_ends_the_sweep_with_one_line_and_a_rerun_completes_it(tmp_path: Path) -> None:
    """SIGKILL of one loky worker (as the out-of-memory killer sends): joblib ends the batch's other workers and
    raises; the sweep says so in one line, with no stack, and exits 1; running it again runs exactly what is missing."""
    db = tmp_path / "sweep.db"
    sweep = ["run", "-m", "run.seed=1,2", "run.instances=20", f"storage.url=sqlite:///{db}"]
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]

    def kill_a_worker(popen: subprocess.Popen[str], db: Path) -> bool:
        storing = _pids_storing(db)
        if storing:
            os.kill(storing[0], signal.SIGKILL)
        return bool(storing)

    returncode, stderr = _signal_mid_sweep(tmp_path, [*sweep, *launcher, *SLOW], kill_a_worker)
    assert returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr and "TerminatedWorkerError" not in stderr, stderr[-3000:]
    assert [line for line in stderr.splitlines() if line.startswith("sweep: ")] == [launched.WORKER_DIED]
    kept = _count_units(db)
    again = _launch(tmp_path, *sweep, *launcher).process
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = [int(n) for n in re.findall(r"planned 100 units: (\d+) already stored", again.stdout)]
    assert sum(rerun) == kept and len(rerun) == 2
    with sqlite3.connect(db) as connection:
        units, keys = connection.execute("select count(*), count(distinct unit_key) from units").fetchone()
    assert units == keys == 200


def _pids_storing(db: Path) -> list[int]:
    """The process ids of the runs that have stored a unit (the sweep's loky workers)."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        try:
            rows = connection.execute(
                "select distinct r.pid from runs r join units u on u.run_id = r.run_id where r.pid is not null"
            )
            return [int(pid) for (pid,) in rows]
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


def _run_statuses(db: Path) -> set[str]:
    """The statuses of the runs recorded so far (a running run has no executed count yet: `_stored` wants one)."""
    if not db.exists():
        return set()
    with sqlite3.connect(db) as connection:
        try:
            return {str(status) for (status,) in connection.execute("select status from runs")}
        except sqlite3.OperationalError:  # the schema is not there yet
            return set()


def _count_units(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        try:
            return int(connection.execute("select count(*) from units").fetchone()[0])
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


def test_inspecting_a_sweeps_configuration_asks_to_drop_m(tmp_path: Path) -> None:
    launched = _launch(tmp_path, "run", "-m", "hydra/launcher=ray", "--cfg", "hydra")
    assert launched.process.returncode == 2
    assert launched.process.stderr.splitlines() == [
        "error: run: -m/--multirun cannot be combined with --cfg or --info; drop -m"
    ]


def test_a_launcher_that_is_not_installed_is_refused_in_one_line_before_anything_runs(tmp_path: Path) -> None:
    # Stands for hydra-ray-launcher missing: fleetbench's own `ray` preset composes whatever is installed.
    target = "hydra_plugins.fleetbench_no_such_launcher.Launcher"
    process = _launch(tmp_path, "run", "-m", "run.seed=1,2", "hydra/launcher=ray", f"hydra.launcher._target_={target}")
    process = process.process
    assert process.returncode == 2, process.stderr
    assert process.stderr.strip() == (
        f"error: hydra/launcher: {target} is not installed; the joblib, submitit and Ray launchers come with the "
        "cluster extra: pip install -c constraints.txt -e '.[cluster]'"
    )
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "fleetbench.db").exists()


def test_a_cluster_launchers_missing_config_names_the_extra_that_brings_it() -> None:
    from hydra.errors import MissingConfigException

    from fleetbench.config import translate

    missing = MissingConfigException(
        "Could not find 'hydra/launcher/joblib'", "hydra/launcher/joblib", ["basic", "ray"]
    )
    assert str(translate(missing)) == (
        "hydra/launcher: no config 'joblib'; valid choices: basic, ray (the joblib, submitit and Ray launchers come "
        "with the cluster extra: pip install -c constraints.txt -e '.[cluster]')"
    )
