"""`fleetbench runs`: every recorded run, with runs whose process died shown as `dead`, never as `running`
(`fleetbench.liveness` decides)."""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console

from fleetbench.interfaces import Storage
from fleetbench.liveness import run_state
from fleetbench.terminal import PlainTable
from fleetbench.types import ReportFilter


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def stored_by_unfinished_run(storage: Storage, runs: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Units stored so far by each run that recorded no executed count (still running, or died first), by run id:
    what `runs` and `status` show for them instead of a bare `-`."""
    return {
        str(run["run_id"]): sum(
            int(row["total"])
            for row in storage.aggregate(["base_model"], ReportFilter(str(run["suite"]), run_id=str(run["run_id"])))
        )
        for run in runs
        if run.get("executed_units") is None
    }


def executed_text(run: Mapping[str, Any], stored: Mapping[str, int]) -> str:
    """A run's `executed` cell: its recorded count, else `N stored` (from `stored_by_unfinished_run`), else `-`."""
    if run.get("executed_units") is not None:
        return str(run["executed_units"])
    count = stored.get(str(run["run_id"]))
    return "-" if count is None else f"{count} stored"


def render_runs(
    runs: Sequence[Mapping[str, Any]],
    console: Console,
    now: float | None = None,
    stored: Mapping[str, int] | None = None,
) -> None:
    """A table of runs, newest first, with their derived state. A run that recorded no executed count (it is still
    running, or died first) shows the units it has stored so far, from `stored` (by run id), as `N stored`."""
    stored = stored or {}
    now = time.time() if now is None else now
    host = socket.gethostname()
    table = PlainTable("run", "state", "started", "last heartbeat", "where", "worker", "suite", "models", "planned",
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
            executed_text(run, stored),
            str(run.get("label") or ""),
            str(run.get("experiment") or ""),
        )
    console.print(table, soft_wrap=True)
