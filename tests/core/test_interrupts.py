"""Ctrl-C and SIGTERM stop a run at once, whenever they arrive, and every committed result is counted.

The repeated-trial tests run the real runner in this process and deliver real signals to it (through the kernel, to
the event loop's handlers) at a random moment of each run: when the n-th result has been committed. On Python 3.11,
`asyncio.wait_for` used to swallow a cancellation that arrived as a request completed, and about 1 run in 15 kept a
worker taking units until the plan was done; these trials would catch that in almost every run of the suite.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import os
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from fleetbench.config import RunSpec, compose_config, resolve_run
from fleetbench.errors import Interrupted
from fleetbench.runner import RunSummary, run
from fleetbench.types import Lane, Outcome
from tests.conftest import CLI, cli_env

UNITS_PER_TRIAL = 5 * 40  # five jsonl categories × 40 instances
LATENCY = [f"models.sim_agent.deployments.{i}.params.latency_ms=0" for i in range(3)]
WORKERS = 3 * 8  # three deployments × max_concurrency 8


class SignalAt:
    """A progress view that signals this process when the n-th result has been committed (once or twice).

    With `delay_s`, the signal goes that long after the n-th commit, from a timer thread (the kernel delivers it to the
    event loop's handlers all the same).
    """

    def __init__(self, after: int, sig: int, twice: bool, delay_s: float = 0.0) -> None:
        self.after, self.sig, self.twice, self.delay_s = after, sig, twice, delay_s
        self.done = 0
        self.sent_at: float | None = None

    def start(self, lanes: Sequence[Lane], total: int, *_: object) -> None:
        return None

    def tick(self) -> None:
        return None

    def unit_done(self, lane: Lane, outcome: Outcome) -> None:
        self.done += 1
        if self.done != self.after:
            return
        if self.delay_s:
            threading.Timer(self.delay_s, self._send).start()
        else:
            self._send()

    def _send(self) -> None:
        self.sent_at = time.time()
        os.kill(os.getpid(), self.sig)
        if self.twice:
            os.kill(os.getpid(), self.sig)

    def stop(self) -> None:
        return None


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    """A hang is the bug these tests look for: fail loudly with every thread's stack instead of hanging CI."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _spec(url: str) -> RunSpec:
    overrides = [f"storage.url={url}", "suite.items=cycle", "run.instances=40", "run.progress=off", *LATENCY]
    return resolve_run(compose_config(overrides))


def _trial(spec: RunSpec, seed: int, rng: random.Random) -> tuple[int, SignalAt, str]:
    sig = rng.choice([signal.SIGINT, signal.SIGTERM])
    view = SignalAt(rng.randint(1, UNITS_PER_TRIAL - WORKERS * 3), sig, twice=rng.random() < 0.25)
    trial_spec = dataclasses.replace(spec, run=dataclasses.replace(spec.run, seed=seed))
    with pytest.raises(Interrupted) as stopped:
        run(trial_spec, view)
    match = re.search(r"interrupted: (\d+) units finished and kept", str(stopped.value))
    assert match, str(stopped.value)
    return int(match.group(1)), view, signal.Signals(sig).name


def _stored(url: str, seed: int) -> tuple[int, float, str, int]:
    """Units of the trial's seed, their latest start, and the run's status and executed count."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            count, latest = connection.execute(
                text("select count(*), max(started_at) from units where seed = :seed"), {"seed": seed}
            ).one()
            status, executed = connection.execute(
                text("select status, executed_units from runs order by started_at desc limit 1")
            ).one()
    finally:
        engine.dispose()
    return int(count), float(latest or 0.0), str(status), int(executed)


def _trials(url: str, count: int) -> None:
    spec = _spec(url)
    rng = random.Random(20261126)
    for seed in range(1, count + 1):
        reported, view, name = _trial(spec, seed, rng)
        stored, latest, status, executed = _stored(url, seed)
        where = f"trial {seed} ({name}{' twice' if view.twice else ''} after {view.after} units)"
        assert status == "interrupted", where
        assert reported == stored == executed, where  # every committed result is counted, none invented
        # At the signal at most WORKERS units were in flight, and each worker could take at most one more before
        # the loop handled the signal: nothing close to finishing the plan (the bug ran all 200).
        assert view.after <= stored <= view.after + 2 * WORKERS, where
        assert view.sent_at is not None and latest <= view.sent_at + 1.0, where


def test_hundreds_of_signals_stop_every_run_on_sqlite(tmp_path: Path) -> None:
    _trials(f"sqlite:///{tmp_path / 'signals.db'}", 150)


@pytest.mark.postgres
def test_signals_stop_every_run_on_postgresql(postgres_url: str) -> None:
    _trials(postgres_url, 50)


def test_a_second_signal_abandons_units_in_flight_at_once(tmp_path: Path) -> None:
    # Slow units (5 s each): the first signal would let them drain; the second must not wait for them.
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    overrides = [f"storage.url={url}", "suite.items=cycle", "run.instances=40", "run.progress=off"]
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=5000" for i in range(3)]
    spec = resolve_run(compose_config([*overrides, *slow]))
    signaller = subprocess.Popen(["sh", "-c", f"sleep 1; kill -INT {os.getpid()}; sleep 0.5; kill -INT {os.getpid()}"])
    started = time.monotonic()
    with pytest.raises(Interrupted, match="interrupted: 0 units finished and kept"):
        run(spec)
    elapsed = time.monotonic() - started
    signaller.wait()
    assert elapsed < 5.0, "the second signal must not wait for the 5-second units in flight"
    with sqlite3.connect(tmp_path / "slow.db") as connection:
        assert connection.execute("select status from runs").fetchall() == [("interrupted",)]


def test_the_first_signal_lets_units_in_flight_finish_and_keeps_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'drain.db'}"
    overrides = [f"storage.url={url}", "suite.items=cycle", "run.instances=40", "run.progress=off"]
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=800" for i in range(3)]
    spec = resolve_run(compose_config([*overrides, *slow]))
    # The signal goes 0.3 s after the first wave of 24 units (one per worker) has been committed, whenever a loaded
    # machine gets there: the second wave has started and is 0.5 s from finishing.
    view = SignalAt(WORKERS, signal.SIGTERM, twice=False, delay_s=0.3)
    with pytest.raises(Interrupted) as stopped:
        run(spec, view)
    assert view.sent_at is not None
    # The 24 units in flight at the signal drained and were kept; no third wave started.
    with sqlite3.connect(tmp_path / "drain.db") as connection:
        stored = connection.execute("select count(*) from units where outcome != 'infra_error'").fetchone()[0]
    assert stored == 2 * WORKERS
    assert f"interrupted: {stored} units finished and kept" in str(stopped.value)


# From 0.2 s: earlier, a loaded machine may still be starting the interpreter itself (before any fleetbench code runs,
# a signal is Python's own business); from then on every moment (imports, composition, planning, execution) is ours.
@pytest.mark.parametrize("delay_s", [0.2, 0.3, 0.45, 0.6, 0.8, 1.1, 1.5, 1.9, 2.4])
def test_ctrl_c_at_any_moment_of_a_cli_run_exits_130_with_no_traceback(tmp_path: Path, delay_s: float) -> None:
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=200" for i in range(3)]
    returncode, stderr = _ctrl_c_after(delay_s, tmp_path, "suite.items=cycle", "run.instances=200", *slow)
    assert returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "error:" not in stderr, stderr  # an interruption is never reported as a configuration error
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("interrupted"), stderr
    assert len(lines) <= 2, stderr  # "stopping: ..." while units run, then the one-line outcome


def _cli_burst(tmp_path: Path, url: str) -> tuple[subprocess.CompletedProcess[str], int, str, int]:
    """A CLI run signalled once mid-run, then hundreds of times while it drains, records and closes."""
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=300" for i in range(3)]
    command = [*CLI, "run", "suite.items=cycle", "run.instances=100", "run.progress=off", f"storage.url={url}", *slow]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:  # wait for the first stored results
            with engine.connect() as connection:
                try:
                    if connection.execute(text("select count(*) from units")).scalar_one() >= 5:
                        break
                except Exception as exc:  # the schema may not be there yet: not an error, keep polling
                    assert "units" in str(exc).lower() or "relation" in str(exc).lower(), exc
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        time.sleep(0.1)
        while process.poll() is None:  # then a burst until it exits: while it drains, records the run and closes
            process.send_signal(signal.SIGINT)
            time.sleep(0.003)
        stdout, stderr = process.communicate(timeout=60)
        with engine.connect() as connection:
            stored = connection.execute(text("select count(*) from units")).scalar_one()
            status, executed = connection.execute(text("select status, executed_units from runs")).one()
    finally:
        engine.dispose()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), int(stored), status, executed


def _assert_burst_recorded(result: tuple[subprocess.CompletedProcess[str], int, str, int]) -> None:
    process, stored, status, executed = result
    output = process.stdout + process.stderr
    assert process.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output and "Exception" not in output, output
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert re.fullmatch(rf"interrupted: {stored} units finished and kept \(run [0-9a-f]{{12}}\); run again to resume",
                        lines[-1]), output  # fmt: skip
    assert (status, executed) == ("interrupted", stored)
    # Its table on stdout, as a completed run prints it (an interrupted run once printed nothing there).
    words = " ".join(process.stdout.split())  # rich wraps long lines at the terminal's width
    assert re.search(rf"planned \d+ units: 0 already stored, {stored} executed ", words), output


def test_a_burst_of_signals_while_a_run_stops_still_records_it_on_sqlite(tmp_path: Path) -> None:
    _assert_burst_recorded(_cli_burst(tmp_path, f"sqlite:///{tmp_path / 'burst.db'}"))


@pytest.mark.postgres
def test_a_burst_of_signals_while_a_run_stops_still_records_it_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    _assert_burst_recorded(_cli_burst(tmp_path, postgres_url))


def test_a_process_that_handled_an_interrupted_run_can_run_again_to_completion(tmp_path: Path) -> None:
    """As in a notebook: after a run stopped by Ctrl-C, the next run in the same process is not stopped by it."""
    spec = _spec(f"sqlite:///{tmp_path / 'again.db'}")
    with pytest.raises(Interrupted):
        run(spec, SignalAt(10, signal.SIGINT, twice=False))
    summary = run(spec)
    assert summary.status == "completed"
    assert summary.already_stored + summary.executed == summary.planned == UNITS_PER_TRIAL


def test_a_signal_whose_keyboard_interrupt_was_swallowed_still_stops_a_command_line_run(tmp_path: Path) -> None:
    """Python ignores an exception raised in some callbacks (an import lock's weakref callback): the signal is
    counted, and the run started after it stops at once instead of running the whole plan."""
    from fleetbench import interrupts

    spec = _spec(f"sqlite:///{tmp_path / 'swallowed.db'}")
    since = interrupts.count()
    interrupts.note()  # what the handler records before its KeyboardInterrupt is swallowed
    with pytest.raises(Interrupted, match="interrupted before any unit ran"):
        run(spec, signals_since=since)


@pytest.mark.parametrize("delay_s", [2.0, 3.5, 5.0, 6.5])
def test_ctrl_c_during_a_sweep_in_this_process_exits_130_with_no_hydra_error(tmp_path: Path, delay_s: float) -> None:
    # Hydra composes each job of a basic-launcher sweep between the jobs: a signal then is held, not raised inside
    # the composition (where it used to surface as Hydra's own error, exit 1).
    returncode, stderr = _ctrl_c_after(delay_s, tmp_path, "-m", "run.seed=range(1,13)", "run.instances=2")
    assert returncode == 130, stderr  # twelve jobs: the sweep is still validating or running
    assert "Traceback" not in stderr and "HYDRA_FULL_ERROR" not in stderr and "error" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted"), stderr


@pytest.mark.parametrize("delay_s", [3.0, 4.5])
def test_ctrl_c_while_a_sweeps_jobs_are_validated_exits_130_with_no_traceback(tmp_path: Path, delay_s: float) -> None:
    """Every job of a sweep is composed and validated before the first runs: 600 jobs keep it validating for tens of
    seconds, so the signal lands there (once it surfaced inside OmegaConf's merge as a ConfigKeyError, exit 1)."""
    returncode, stderr = _ctrl_c_after(delay_s, tmp_path, "-m", "run.seed=range(1,601)", "run.instances=1")
    assert returncode == 130, stderr
    assert "Traceback" not in stderr and "error" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted"), stderr
    assert not (tmp_path / "fleetbench.db").exists(), "nothing ran, so nothing was written"


def _ctrl_c_after(delay_s: float, cwd: Path, *args: str) -> tuple[int, str]:
    """`fleetbench run ARGS` (no progress view), sent SIGINT after `delay_s`: its exit code and stderr."""
    process = subprocess.Popen(
        [*CLI, "run", "run.progress=off", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay_s)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def test_a_signal_in_a_garbage_collection_callback_prints_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """A KeyboardInterrupt raised in a weakref callback cannot propagate; after a recorded signal it is not printed
    (the flag stops the run), while any other unraisable exception still is."""
    import sys
    import weakref

    from fleetbench import interrupts

    class Thing:
        pass

    def interrupted(_: object) -> None:
        raise KeyboardInterrupt

    def broken(_: object) -> None:
        raise ValueError("a real bug")

    saved = sys.unraisablehook
    sys.unraisablehook = interrupts._quiet_about_interrupted_callbacks
    baseline = interrupts.count()
    try:
        interrupts.note()
        thing = Thing()
        references = [weakref.ref(thing, interrupted), weakref.ref(thing, broken)]
        del thing
        assert all(reference() is None for reference in references)
    finally:
        sys.unraisablehook = saved
        interrupts._count = baseline  # leave no recorded signal behind for later tests in this process
    err = capsys.readouterr().err
    assert "KeyboardInterrupt" not in err
    assert "ValueError: a real bug" in err


def test_a_stopped_runs_last_line_counts_infrastructure_errors_apart_from_what_it_kept() -> None:
    # An infra error is stored but not done: "finished and kept" would promise a result the resume runs again.
    summary = RunSummary("r" * 32, planned=10, already_stored=0, executed=5)
    summary.outcomes.update({Outcome.SUCCESS.value: 2, Outcome.FAILURE.value: 1, Outcome.INFRA_ERROR.value: 2})
    assert summary.kept() == "3 units finished and kept, 2 not done (infrastructure errors: they run again)"
    summary.outcomes[Outcome.INFRA_ERROR.value] = 0
    summary.executed = 3
    assert summary.kept() == "3 units finished and kept"


def test_a_run_started_with_ctrl_c_ignored_keeps_ignoring_it_and_still_stops_on_sigterm(tmp_path: Path) -> None:
    # A shell starts `fleetbench run &` (in a script) and `nohup fleetbench run` with SIGINT ignored: a Ctrl-C meant
    # for the foreground must not stop them.
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=50" for i in range(3)]
    command = [*CLI, "run", "suite.items=cycle", "run.instances=20", "run.progress=off", *slow]

    def start(cwd: Path, *more: str) -> subprocess.Popen[str]:
        cwd.mkdir()
        return subprocess.Popen(
            [*command, *more], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )  # fmt: skip

    ignoring = start(tmp_path / "ignoring")
    for _ in range(20):  # through start-up and the run
        time.sleep(0.1)
        ignoring.send_signal(signal.SIGINT)
    stdout, stderr = ignoring.communicate(timeout=120)
    assert ignoring.returncode == 0, stderr
    assert "planned 100 units: 0 already stored, 100 executed" in " ".join(stdout.split())
    terminated = start(tmp_path / "terminated", "run.instances=400")  # 2,000 units: seconds
    time.sleep(3)
    terminated.send_signal(signal.SIGTERM)
    _, stderr = terminated.communicate(timeout=120)
    assert terminated.returncode == 130 and "interrupted" in stderr, stderr
