"""`fleetbench runs`: every recorded run, with runs whose process died shown as `dead`, never as `running`.

A run records its host, pid and a heartbeat every few seconds while it executes. A `running` run is dead when its
heartbeat is older than `STALE_AFTER_S`, or, on the machine it ran on, when its process no longer exists (a SIGKILLed
run is recognised at once there, from any other machine after the heartbeat goes stale).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

HEARTBEAT_S = 5.0
"""How often a running run records that it is alive (`runs.heartbeat_at`)."""
STALE_AFTER_S = 6 * HEARTBEAT_S
"""A running run whose heartbeat is older than this is dead (allows for a few slow transactions)."""


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def run_state(run: Mapping[str, Any], now: float, this_host: str) -> str:
    """The run's status as recorded, except that a `running` run whose process is gone is `dead`."""
    if run["status"] != "running":
        return str(run["status"])
    heartbeat = run.get("heartbeat_at") or run["started_at"]
    if now - float(heartbeat) > STALE_AFTER_S:
        return "dead"
    if run.get("host") == this_host and run.get("pid") and not _process_exists(int(run["pid"])):
        return "dead"
    return "running"


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def render_runs(runs: Sequence[Mapping[str, Any]], console: Console, now: float | None = None) -> None:
    """A table of runs, newest first, with their derived state."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    table = Table("run", "state", "started", "last heartbeat", "where", "worker", "suite", "models", "planned",
                  "executed", "label", "experiment", title="fleetbench runs")  # fmt: skip
    for run in runs:
        table.add_row(
            str(run["run_id"])[:12],
            run_state(run, now, host),
            _when(run["started_at"]),
            _when(run.get("heartbeat_at")),
            f"{run.get('host', '?')}:{run.get('pid') or '?'}",
            str(run.get("worker") or 0),
            str(run["suite"]),
            ", ".join(run.get("models") or ()),
            str(run["planned_units"]),
            "-" if run.get("executed_units") is None else str(run["executed_units"]),
            str(run.get("label") or ""),
            str(run.get("experiment") or ""),
        )
    console.print(table, soft_wrap=True)
