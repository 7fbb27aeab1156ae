"""Whether a recorded run is still alive: its heartbeat, and on the machine it ran on, its process.

A run records its host, pid and a heartbeat every few seconds while it executes. A `running` run is dead when its
heartbeat is older than `STALE_AFTER_S`, or, on the machine it ran on, when its process no longer exists (a SIGKILLed
run is recognised at once there, from any other machine after the heartbeat goes stale). `fleetbench runs` and
`fleetbench status` show the state; a worker finishing a plan ends a dead run's claims early (`ended_here`) instead of
waiting out their lease.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HEARTBEAT_S = 5.0
"""How often a running run records that it is alive (`runs.heartbeat_at`), by default (`run.heartbeat_s`)."""
STALE_AFTER_S = 6 * HEARTBEAT_S
"""A running run whose heartbeat is older than this is dead (allows for a few slow transactions)."""


def process_exists(pid: int) -> bool:
    """Whether a process `pid` lives on this machine (owned by anyone); a zombie, killed but not yet reaped by its
    parent, does not: it will never renew a claim (a survivor waited out a whole lease for one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether `pid` is a zombie (Linux's /proc; elsewhere, never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses, so read past the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] in ("Z", "X")


def run_state(run: Mapping[str, Any], now: float, this_host: str) -> str:
    """The run's status as recorded, except that a `running` run whose process is gone is `dead`."""
    if run["status"] != "running":
        return str(run["status"])
    heartbeat = run.get("heartbeat_at") or run["started_at"]
    if now - float(heartbeat) > STALE_AFTER_S:
        return "dead"
    if _gone_here(run, this_host):
        return "dead"
    return "running"


def ended_here(run: Mapping[str, Any], now: float, this_host: str, quiet_s: float) -> bool:
    """A `running` run that is certainly over: it ran on this machine, its process is gone, and it has not beaten for
    `quiet_s` seconds.

    The silence guards against two machines that share a host name (containers given a fixed one): a live run
    elsewhere keeps beating, so it is never taken for this machine's dead process, whatever its pid.
    """
    if run["status"] != "running":
        return False
    heartbeat = float(run.get("heartbeat_at") or run["started_at"])
    return now - heartbeat > quiet_s and _gone_here(run, this_host)


def _gone_here(run: Mapping[str, Any], this_host: str) -> bool:
    return bool(run.get("host") == this_host and run.get("pid") and not process_exists(int(run["pid"])))
