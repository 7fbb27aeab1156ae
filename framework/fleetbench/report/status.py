"""`fleetbench status`: where a plan stands, read from the database alone (so it works from any machine reaching it).

- the runs of the plan (running, dead, interrupted, completed...), who (`run.worker`) and where (host:pid);
- per cell and per base model: units done / claimed by a live worker / planned;
- per deployment: units done there, and its health over the last `status.window_s` seconds from the calls table
  (calls, p50/p95 latency, share of 429 answers, share of other failures).

Every number is one aggregate query (done per cell, claims of the plan, recent calls), so a plan of a million units
costs about what counting its stored rows costs.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group

from fleetbench.interfaces import Storage
from fleetbench.liveness import run_state
from fleetbench.plan import ModelPlan
from fleetbench.report.runs import executed_text, stored_by_unfinished_run
from fleetbench.terminal import PlainTable
from fleetbench.types import CallStatus

RATE_LIMITED = 429


@dataclass(frozen=True)
class CellStatus:
    """One cell of the plan: units completed, units a live worker holds, units planned."""

    base_model: str
    factors: str
    done: int
    claimed: int
    planned: int


@dataclass(frozen=True)
class LaneHealth:
    """One deployment over the window: units done there (ever), and its recent calls."""

    deployment: str
    done: int
    calls: int = 0
    p50_s: float | None = None
    p95_s: float | None = None
    rate_limited: float = 0.0
    """Share of calls answered 429."""
    errors: float = 0.0
    """Share of calls that failed otherwise (timeouts, 5xx, refused...)."""


@dataclass
class PlanStatus:
    """Everything `fleetbench status` shows."""

    runs: list[dict[str, Any]]
    cells: list[CellStatus]
    lanes: list[LaneHealth]
    window_s: float
    at: float = field(default_factory=time.time)
    stored: dict[str, int] = field(default_factory=dict)
    """Units stored so far by each run that recorded no executed count (`stored_by_unfinished_run`)."""

    def totals(self) -> dict[str, tuple[int, int, int]]:
        """Per base model: (done, claimed, planned)."""
        out: dict[str, tuple[int, int, int]] = {}
        for cell in self.cells:
            done, claimed, planned = out.get(cell.base_model, (0, 0, 0))
            out[cell.base_model] = (done + cell.done, claimed + cell.claimed, planned + cell.planned)
        return out


def gather(
    storage: Storage,
    plans: Sequence[ModelPlan],
    digest: str,
    window_s: float,
    deployments: Collection[str] | None = None,
) -> PlanStatus:
    """Read the plan's status from storage; deployment health covers `deployments` (the plan's models' deployments;
    None: every deployment that answered calls), not other plans' deployments sharing the database."""
    now = time.time()
    host = socket.gethostname()
    runs = [{**run, "state": run_state(run, now, host)} for run in storage.runs() if run.get("plan") == digest]
    dead = {run["run_id"] for run in runs if run["state"] == "dead"}
    cells: list[CellStatus] = []
    done_at: Counter[str] = Counter()
    for plan in plans:
        sizes = {cell.key: cell.instances for cell in plan.cells}
        done: dict[int, Counter[str]] = {}
        for size in {c.instances for c in plan.cells}:
            done[size] = Counter()
            for (cell_key, deployment), count in storage.completed_per_cell_and_deployment(
                plan.scope, plan.seed, size
            ).items():
                done[size][cell_key] += count
                if sizes[cell_key] == size:  # each cell's units counted once, at its own size
                    done_at[deployment] += count
        live = Counter(
            c.cell_key
            for c in storage.open_claims(plan.scope, plan.seed)
            if c.expires_at > now and c.run_id not in dead  # a dead worker's claims wait only for their expiry
        )
        for cell in plan.cells:
            factors = ", ".join(f"{name}={value}" for name, value in cell.cell.factors)
            done_here = min(done[cell.instances].get(cell.key, 0), cell.instances)
            cells.append(CellStatus(plan.base_model, factors, done_here, live[cell.key], cell.instances))
    recent = [c for c in storage.recent_calls(now - window_s) if deployments is None or c["deployment"] in deployments]
    lanes = _health(recent, done_at)
    return PlanStatus(runs, cells, lanes, window_s, now, stored_by_unfinished_run(storage, runs))


def _health(calls: Sequence[Mapping[str, Any]], done: Mapping[str, int]) -> list[LaneHealth]:
    by: dict[str, list[Mapping[str, Any]]] = {}
    for call in calls:
        by.setdefault(str(call["deployment"]), []).append(call)
    lanes = []
    for deployment in sorted(set(by) | set(done)):
        recent = by.get(deployment, [])
        if not recent:
            lanes.append(LaneHealth(deployment, done.get(deployment, 0)))
            continue
        latencies = sorted(float(c["latency_s"]) for c in recent)
        limited = [c["http_status"] == RATE_LIMITED or c["status"] == CallStatus.RATE_LIMITED for c in recent]
        failed = sum(not hit and c["status"] != CallStatus.OK for c, hit in zip(recent, limited, strict=True))
        lanes.append(
            LaneHealth(
                deployment,
                done.get(deployment, 0),
                len(recent),
                _quantile(latencies, 0.50),
                _quantile(latencies, 0.95),
                sum(limited) / len(recent),
                failed / len(recent),
            )
        )
    return lanes


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank quantile of sorted values."""
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def render_status(status: PlanStatus, console: Console) -> None:
    """The runs, the totals per model, the cells, the deployments' health."""
    console.print(status_tables(status), soft_wrap=True)


def status_tables(status: PlanStatus) -> Group:
    """The four tables as one renderable (a live display redraws it)."""
    runs = PlainTable("run", "worker", "state", "where", "planned", "executed", title="runs of this plan")
    for run in status.runs:
        where = f"{run.get('host', '?')}:{run.get('pid') or '?'}"
        runs.add_row(str(run["run_id"])[:12], str(run.get("worker") or 0), run["state"], where,
                     str(run["planned_units"]), executed_text(run, status.stored))  # fmt: skip
    models = PlainTable("base model", "done", "claimed", "planned", "share done", title="plan")
    for model, (done, claimed, planned) in status.totals().items():
        models.add_row(model, str(done), str(claimed), str(planned), f"{done / planned:.1%}" if planned else "-")
    cells = PlainTable("base model", "cell", "done", "claimed", "planned", title="cells")
    for cell in status.cells:
        cells.add_row(cell.base_model, cell.factors, str(cell.done), str(cell.claimed), str(cell.planned))
    window = f"{status.window_s:g}s"
    lanes = PlainTable("deployment", "done", f"calls ({window})", "p50", "p95", "429", "errors", title="deployments")
    for lane in status.lanes:
        lanes.add_row(lane.deployment, str(lane.done), str(lane.calls), _seconds(lane.p50_s), _seconds(lane.p95_s),
                      f"{lane.rate_limited:.1%}", f"{lane.errors:.1%}")  # fmt: skip
    return Group(runs, models, cells, lanes)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"
