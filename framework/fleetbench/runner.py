"""Wires the stages in order — plan, diff, shard, execute, persist — and owns cancellation and clean shutdown.

Validation already constructed the suite and sharding strategy; the runner constructs the providers and opens the
storage, so nothing is written before the whole configuration has been checked.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench import __version__
from fleetbench.config import RunSpec
from fleetbench.errors import Interrupted
from fleetbench.interfaces import Provider, Storage
from fleetbench.plan import diff, iter_units
from fleetbench.progress import NullProgress, ProgressView
from fleetbench.schedule import Executor, JudgePool, LaneState, lane_workers
from fleetbench.types import CallRecord, RunRecord, Unit, UnitResult
from fleetbench.writer import ResultWriter


@dataclass
class RunSummary:
    """What a run did. Counters are per deployment (lanes of one deployment are summed)."""

    run_id: str
    planned: int
    already_stored: int
    executed: int = 0
    newly_completed: int = 0
    status: str = "running"
    wall_s: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    infra: Counter[str] = field(default_factory=Counter)
    units_by_deployment: Counter[str] = field(default_factory=Counter)
    calls_by_deployment: Counter[str] = field(default_factory=Counter)
    base_model_of: dict[str, str] = field(default_factory=dict)
    transactions: int = 0

    def record(self, result: UnitResult, calls: Sequence[CallRecord]) -> None:
        self.executed += 1
        self.outcomes[result.episode.outcome.value] += 1
        if result.episode.infra_status:
            self.infra[result.episode.infra_status] += 1
        self.units_by_deployment[result.deployment] += 1
        for call in calls:
            self.calls_by_deployment[call.deployment] += 1


def run(spec: RunSpec, progress: ProgressView | None = None) -> RunSummary:
    """Execute exactly the units of the spec that storage does not hold yet. Raises `Interrupted` on Ctrl-C/SIGTERM."""
    providers = {name: ref.create() for name, ref in spec.providers.items()}
    storage = spec.common.storage.create(naming=spec.common.naming)
    try:
        storage.migrate()
        models = [model.name for model in spec.models]
        stored = set(storage.stored_keys(spec.suite.name, models))
        plan = diff(iter_units(spec.suite, models, spec.run.instances, spec.run.seed), stored)
        run_id = uuid.uuid4().hex
        summary = RunSummary(run_id, planned=plan.planned, already_stored=plan.planned - plan.missing_count)
        summary.base_model_of.update(
            {lane.deployment: lane.base_model for model_lanes in spec.lanes.values() for lane in model_lanes}
        )
        storage.begin_run(
            RunRecord(
                run_id,
                time.time(),
                spec.suite.name,
                tuple(models),
                spec.redacted_config,
                __version__,
                socket.gethostname(),
                plan.planned,
            )
        )
        started = time.perf_counter()
        try:
            asyncio.run(_execute(spec, providers, storage, plan.missing, summary, progress or NullProgress()))
        finally:
            summary.wall_s = time.perf_counter() - started
            storage.finish_run(run_id, summary.status, time.time(), summary.executed)
    finally:
        storage.close()
    if summary.status == "interrupted":
        raise Interrupted(f"interrupted: {summary.executed} units finished and kept; run again to resume")
    return summary


async def _execute(
    spec: RunSpec,
    providers: Mapping[str, Provider],
    storage: Storage,
    missing: Mapping[str, list[Unit]],
    summary: RunSummary,
    progress: ProgressView,
) -> None:
    writer = ResultWriter(storage, spec.scheduler.write_batch)
    writer.start()
    lanes = {lane.lane_id: lane for model in spec.models if model.name in missing for lane in spec.lanes[model.name]}

    async def sink(result: UnitResult, calls: list[CallRecord]) -> None:
        await writer.submit(result, calls)
        summary.record(result, calls)
        progress.unit_done(lanes[result.lane_id], result.episode.outcome)

    # One limiter per lane for the whole run, shared by its workers and by judge requests sent to it.
    states = {lane.lane_id: LaneState.of(lane) for model_lanes in spec.lanes.values() for lane in model_lanes}
    judge = None
    if spec.judge is not None:
        judge_states = [states[lane.lane_id] for lane in spec.lanes[spec.judge.name]]
        judge = JudgePool(providers[spec.judge.provider], judge_states)
    workers = []
    for model in spec.models:
        if model.name not in missing:
            continue
        provider = providers[model.provider]
        executor = Executor(spec.suite, model, provider, spec.scheduler, summary.run_id, judge)
        dispatch = spec.sharding.dispatch(missing[model.name], spec.lanes[model.name])
        model_states = [states[lane.lane_id] for lane in spec.lanes[model.name]]
        workers.extend(lane_workers(executor, model_states, dispatch, sink))
    progress.start(list(lanes.values()), sum(len(units) for units in missing.values()))
    try:
        summary.status = "failed"  # what finish_run records if a worker's exception propagates
        summary.status = await _until_done_or_signal(workers)
    finally:
        progress.stop()
        await writer.close()
        summary.newly_completed, summary.transactions = writer.newly_completed, writer.transactions
        for provider in providers.values():
            await provider.aclose()


async def _until_done_or_signal(workers: list[Coroutine[Any, Any, None]]) -> str:
    """Run every worker; on SIGINT/SIGTERM cancel them (finished results are already committed).

    A worker that fails cancels the others and its exception propagates once they have stopped.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(worker) for worker in workers]
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        pending: set[asyncio.Future[Any]] = set(tasks)
        while pending and not stop.is_set():
            done, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(stopper)
            failed = next((t for t in done if t is not stopper and t.exception() is not None), None)
            if failed is not None:
                await _cancel(tasks)
                raise failed.exception()  # type: ignore[misc]
        if stop.is_set():
            await _cancel(tasks)
            return "interrupted"
        return "completed"
    finally:
        stopper.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _cancel(tasks: list[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
