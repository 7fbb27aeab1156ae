"""How a sweep job ends when it fails, wherever a Hydra launcher runs it.

In the `fleetbench` process itself (Hydra's basic launcher) a failing job prints its one line and exits with its code:
2 bad input, 1 storage or plugin, 130 interrupted, 124 deadline. A launcher may instead run the job in another process
(joblib's loky workers, Ray tasks, submitit jobs), where `sys.exit` would end the worker (joblib, Ray) or leave
submitit without a result, and the message would be lost with it. There the job raises `JobFailed`: Hydra records it
as the job's result, the launcher hands it back to the launching process, and once the batch has run Hydra prints its
one line (it is a `CompactHydraException`: no traceback) and exits 1.
"""

from __future__ import annotations

import os

from hydra.errors import CompactHydraException

from fleetbench.errors import FleetbenchError

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
