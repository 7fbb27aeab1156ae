"""Sweep jobs that a Hydra launcher may run in other processes: how a failing job ends, and Ctrl-C while they run.

In the `fleetbench` process itself (Hydra's basic launcher) a failing job prints its one line and exits with its code:
2 bad input, 1 storage or plugin, 130 interrupted, 124 deadline. A launcher may instead run the job in another process
(joblib's loky workers, Ray tasks, submitit jobs), where `sys.exit` is not a result Hydra knows: submitit, for one,
reports a job that "has not produced any output", with a traceback. There the job raises `JobFailed`: Hydra records it
as the job's result, the launcher hands it back to the launching process, and once the batch has run Hydra prints its
one line (it is a `CompactHydraException`: no traceback) and exits 1.

While such a launcher waits for its workers, the first Ctrl-C must not end the launching process: joblib would kill
its workers in the middle of their drain (their in-flight units lost, their runs left `running`). `patient_signals`
records it instead and tells the sweep's jobs on this machine to stop through a file (`sweep_stop_file`): a SIGTERM
sent to the launching process alone (`kill PID`, `timeout`, a batch system) reaches no worker, and joblib would go on
starting the jobs still queued. A running job then drains as on its own first signal; a job not started yet does not
start.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from hydra.errors import CompactHydraException

from fleetbench import interrupts
from fleetbench.errors import FleetbenchError, Interrupted

_launching_pid: int | None = None


def mark_launching_process() -> None:
    """Record this process as the one that hands the sweep to Hydra (`fleetbench run` calls this)."""
    global _launching_pid
    _launching_pid = os.getpid()


def in_launching_process() -> bool:
    """True in the process that called `mark_launching_process` (not in a fork, a spawned worker or a remote task)."""
    return _launching_pid == os.getpid()


class JobFailed(CompactHydraException, FleetbenchError):
    """A sweep job that failed in a launcher's worker process; `exit_code` is the one it would have exited with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message, exit_code)  # both in args: the exception crosses processes by pickle
        self.exit_code = exit_code

    def __str__(self) -> str:
        return str(self.args[0])


def runs_jobs_elsewhere(job_overrides: Sequence[str]) -> bool:
    """Whether the sweep's launcher runs jobs outside this process (anything but Hydra's basic launcher)."""
    from hydra import compose

    from fleetbench.config.compose import CONFIG_NAME, hydra_context

    with hydra_context():
        cfg = compose(config_name=CONFIG_NAME, overrides=list(job_overrides), return_hydra_config=True)
    return str(cfg.hydra.launcher.get("_target_", "")) != BASIC_LAUNCHER


BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


STOP_FILE_ENV = "FLEETBENCH_SWEEP_STOP_FILE"
"""Where a sweep's jobs look for the launching process's request to stop (inherited by the launcher's workers)."""

STOP_POLL_S = 0.25


@contextmanager
def sweep_stop_file() -> Iterator[Path]:
    """In the launching process, for the launcher's lifetime: a path (not yet a file) named in the environment that
    the launcher's workers inherit; `patient_signals` creates the file to stop the sweep's jobs on this machine."""
    folder = Path(tempfile.mkdtemp(prefix="fleetbench-sweep-"))
    path = folder / "stop"
    os.environ[STOP_FILE_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(STOP_FILE_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)  # the folder is ours alone; a leftover is harmless


def sweep_stopped() -> bool:
    """True in a launcher's worker once the launching process (on this machine) was asked to stop the sweep."""
    path = os.environ.get(STOP_FILE_ENV)
    return bool(path) and not in_launching_process() and os.path.exists(str(path))


@contextmanager
def stop_with_the_sweep() -> Iterator[None]:
    """Around one job in a launcher's worker on this machine: when the launching process is asked to stop, this job
    gets a SIGTERM of its own (unless a signal reached it already, from the terminal), and so drains as a run does.
    For the job's duration a signal outside the run's own handling is recorded, never the default death: the run
    then starts already stopping. Elsewhere (the launching process, a machine without the file) nothing changes."""
    path = os.environ.get(STOP_FILE_ENV)
    if not path or in_launching_process() or threading.current_thread() is not threading.main_thread():
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_S):
            if os.path.exists(path):
                if not interrupts.received():
                    os.kill(os.getpid(), signal.SIGTERM)
                return

    previous = {sig: signal.signal(sig, _record_only) for sig in interrupts.stop_signals()}
    watcher = threading.Thread(target=watch, name="fleetbench-sweep-stop", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        for sig, handler in previous.items():
            # Ctrl-C stays recorded only: the worker now waits idle for its next job, and a KeyboardInterrupt there
            # broke joblib's pool, which then killed the jobs still draining (runs left `running`) and printed
            # sixty lines of traceback. SIGTERM gets its handler back: the pool ends idle workers with it.
            signal.signal(sig, _record_only if sig == signal.SIGINT else handler)


def _record_only(signum: int, frame: FrameType | None) -> None:
    interrupts.note()


@contextmanager
def patient_signals(notify: Callable[[str], None], stop_file: Path | None = None) -> Iterator[None]:
    """While a launcher's workers run the sweep: the first Ctrl-C (or SIGTERM) is only recorded, so that this process
    keeps waiting while the sweep's jobs on this machine drain and keep their units (those sharing its terminal got the
    signal too; the others learn it from `stop_file`, and jobs not started yet do not start); a second one stops
    waiting at once (KeyboardInterrupt)."""

    def first(signum: int, frame: FrameType | None) -> None:
        interrupts.note()
        if stop_file is not None:
            stop_file.touch()
        notify(
            "stopping: the sweep's jobs on this machine finish their units in flight and no other job starts here; "
            "jobs elsewhere (Ray, Slurm) go on (press Ctrl-C again to stop waiting)"
        )
        for sig in interrupts.stop_signals():
            signal.signal(sig, interrupts.record_and_interrupt)

    previous = {sig: signal.getsignal(sig) for sig in interrupts.stop_signals()}
    for sig in interrupts.stop_signals():
        signal.signal(sig, first)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


WORKER_DIED = (
    "sweep: a joblib worker process died (killed by a signal such as SIGKILL, or by the out-of-memory killer), and "
    "joblib ended the batch's other jobs with it; every finished unit is kept: run the sweep again to resume"
)


class WorkerDied(CompactHydraException, FleetbenchError):
    """A joblib worker of the sweep died: Hydra prints this one line (no stack) and exits 1."""


@contextmanager
def one_line_when_a_worker_dies() -> Iterator[None]:
    """While a sweep runs: when a loky worker dies, joblib ends the batch's other workers and raises
    `TerminatedWorkerError`, which Hydra would print as some forty lines of stack; hydra-joblib-launcher's `launch`
    (the pinned 1.2.0) raises `WorkerDied` instead. Hydra accepts launchers only from its own `hydra_plugins`
    package, so this wraps the plugin's method rather than configuring a subclass."""
    try:
        from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
    except ImportError:  # the `cluster` extra is not installed: no joblib sweep can run
        yield
        return
    original = JoblibLauncher.launch

    def launch(self: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        try:
            results = original(self, job_overrides, initial_job_idx)
        except TerminatedWorkerError:
            raise WorkerDied(WORKER_DIED) from None
        if interrupts.received() and _only_interrupted(results):
            # Every job that did not complete was interrupted, and each has said so on its own line: ending the sweep
            # as Ctrl-C does spares Hydra's "Error executing job" and HYDRA_FULL_ERROR lines, which read as a crash.
            raise KeyboardInterrupt
        return results

    JoblibLauncher.launch = launch
    try:
        yield
    finally:
        JoblibLauncher.launch = original


def _only_interrupted(results: Sequence[Any]) -> bool:
    """Whether some of a batch's `JobReturn`s ended interrupted (`JobFailed` with exit code 130) and none failed
    otherwise."""
    from hydra.core.utils import JobStatus

    ended = [result._return_value for result in results if result.status is not JobStatus.COMPLETED]
    return bool(ended) and all(
        isinstance(value, JobFailed) and value.exit_code == Interrupted.exit_code for value in ended
    )


def end_worker_pools() -> None:
    """End joblib's loky workers now, if a sweep started them. joblib keeps them for reuse and ends them from an
    atexit hook, which the exit after Ctrl-C (`interrupts.exit_now`) skips: they would linger for minutes, holding this
    command's stdout and stderr open (a caller reading them to the end would wait that long)."""
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)
