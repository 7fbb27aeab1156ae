"""Wires the stages in order — plan, diff, shard, execute, persist — and owns cancellation and clean shutdown.

Many workers may run the same plan on the same database (`fleetbench.claims`): every unit is claimed before it runs,
a pass over the plan is followed by passes over the units of workers that died (their claims expired) until nothing of
the plan is held by anyone, and each lane's limits are split among the plan's live workers, re-counted every second.

Validation already constructed the suite and sharding strategy; the runner constructs the providers and opens the
storage, so nothing is written before the whole configuration has been checked.

Stopping: the first Ctrl-C / SIGTERM stops every worker from taking another unit and gives the units in flight up
to `scheduler.drain_timeout_s` to finish; a second signal abandons them at once. Either way every result already
finished is committed, counted, and the run is recorded as `interrupted` (exit 130). A signal during start-up or
planning ends the run the same way, before anything is executed. `scheduler.deadline_s` stops the run the same way
as the first signal when it passes; the run is recorded as `deadline`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench import __version__, interrupts
from fleetbench.claims import ClaimedUnits, Lease, ListedUnits, end_dead_claims, orphans, plan_digest
from fleetbench.config import RunSpec
from fleetbench.config.spec import PlanSpec
from fleetbench.errors import FleetbenchError, Interrupted, StorageError
from fleetbench.interfaces import Provider, Storage, UnitSource
from fleetbench.lane_report import LaneReport, problem_lines
from fleetbench.lanes import LaneState, Pulse
from fleetbench.plan import MissingUnits, ModelPlan, diff, model_plan
from fleetbench.progress import NullProgress, ProgressView
from fleetbench.schedule import Executor, JudgePool
from fleetbench.signals import Signals, deferred, note_only, sync_signals_interrupt
from fleetbench.stalls import StallWatch
from fleetbench.types import CallRecord, CallStatus, Outcome, RunRecord, Unit, UnitResult
from fleetbench.workers import ModelWork, lane_workers
from fleetbench.writer import ResultWriter

log = logging.getLogger(__name__)

Notify = Callable[[str], None]


@dataclass
class RunSummary:
    """What a run did. Counters are per deployment (lanes of one deployment are summed) and count committed results."""

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
    storage_cpu_s: float = 0.0
    """CPU time the run's storage thread spent on writes, claims and heartbeats (`ResultWriter.cpu_s`)."""
    restarts: int = 0
    """Episodes started again from their first turn on another (or the same) lane after losing theirs."""
    moved: int = 0
    """Units finished on a lane other than the one their static share assigned."""
    lanes: list[LaneReport] = field(default_factory=list)
    """How every lane of the run fared (see `problem_lines`)."""
    providers_ready_s: float = 0.0
    """Of `wall_s`, the time spent waiting for providers to start (litellm's import) before the first request."""
    held_elsewhere: int = 0
    """Units this run skipped because other workers of the plan held or had completed them."""

    def kept(self) -> str:
        """What a stopped run kept, for its last line: the units finished, and apart from them those that ended in
        infrastructure errors (stored, but not done: a resume runs them again)."""
        infra = self.outcomes[Outcome.INFRA_ERROR.value]
        text = f"{self.executed - infra} units finished and kept"
        return text + (f", {infra} not done (infrastructure errors: they run again)" if infra else "")

    def record(self, result: UnitResult, calls: Sequence[CallRecord]) -> None:
        """Count one committed result."""
        self.executed += 1
        self.outcomes[result.episode.outcome.value] += 1
        if result.episode.infra_status:
            self.infra[result.episode.infra_status] += 1
        self.units_by_deployment[result.deployment] += 1
        for call in calls:
            self.calls_by_deployment[call.deployment] += 1
        placement = (result.episode.transcript or {}).get("placement")
        if placement:
            self.restarts += placement["restarts"]
            self.moved += placement["home_lane"] not in (None, result.lane_id)

    @property
    def lane_problems(self) -> list[str]:
        """One line per deployment that had problems: cause, count, what to check."""
        return problem_lines(self.lanes)


def _silent(_: str) -> None:
    return None


def run(
    spec: RunSpec, progress: ProgressView | None = None, notify: Notify = _silent, signals_since: int | None = None
) -> RunSummary:
    """Execute exactly the units of the spec that storage does not hold yet. Raises `Interrupted` on Ctrl-C/SIGTERM;
    a run stopped by its deadline returns with status `deadline`.

    A stop signal received after `interrupts.count()` was `signals_since` stops the run even if a library swallowed
    its KeyboardInterrupt (the command line passes 0: any signal since the process started); by default only signals
    from now on count, so an embedding process (a notebook) can run again after an interrupted run."""
    deadline = None if spec.scheduler.deadline_s is None else time.monotonic() + spec.scheduler.deadline_s
    since = interrupts.count() if signals_since is None else signals_since
    with sync_signals_interrupt():
        providers = {name: ref.create() for name, ref in spec.providers.items()}
        storage = spec.common.storage.create(naming=spec.common.naming)
        try:
            return _run_with(spec, providers, storage, _Outlet(progress or NullProgress(), notify, deadline, since))
        finally:
            with deferred():
                storage.close()


@dataclass(frozen=True)
class _Outlet:
    """Where a run reports to (progress view, one-line notices) and when it must stop (monotonic deadline)."""

    progress: ProgressView
    notify: Notify
    deadline: float | None
    signals_since: int
    """The `interrupts.count()` from which a stop signal counts for this run."""


def _run_with(spec: RunSpec, providers: Mapping[str, Provider], storage: Storage, outlet: _Outlet) -> RunSummary:
    notify = outlet.notify
    run_id = uuid.uuid4().hex
    summary: RunSummary | None = None
    try:
        for notice in storage.migrate():
            notify(notice)
        model_plans = plans(spec)
        digest = plan_digest(model_plans)
        plan = diff(model_plans, storage, spec.run.worker)
        summary = RunSummary(run_id, planned=plan.planned, already_stored=plan.planned - plan.missing_count)
        summary.base_model_of.update({lane.deployment: lane.base_model for ls in spec.lanes.values() for lane in ls})
        if interrupts.received(outlet.signals_since):  # its KeyboardInterrupt was swallowed by a library
            raise KeyboardInterrupt
        storage.begin_run(_run_record(spec, run_id, plan.planned, digest))
        models = ", ".join(m.name for m in spec.models)
        log.info("run %s started: worker %d on %s:%d, suite %s, models %s", run_id, spec.run.worker,
                 socket.gethostname(), os.getpid(), spec.suite.name, models)  # fmt: skip
        log.info("plan %s: %d units planned, %d already stored, %d missing", digest[:12],
                 plan.planned, summary.already_stored, plan.missing_count)  # fmt: skip
    except KeyboardInterrupt:
        raise Interrupted("interrupted before any unit ran; nothing was executed") from None
    started = time.perf_counter()
    lease = Lease(storage, run_id, spec.run.lease_s, spec.run.claim_batch)
    failure: BaseException | None = None
    try:
        _run_loop(_execute(spec, providers, storage, plan.missing, summary, outlet, lease, digest))
    except KeyboardInterrupt:  # a signal outside the execution's own handlers (e.g. while it shuts down)
        summary.status = "interrupted"
    except BaseException as error:
        failure = error
        raise
    finally:
        with deferred():  # a signal now must not cost the run its record (see fleetbench.signals)
            summary.wall_s = time.perf_counter() - started
            summary.held_elsewhere = _left_to_others(summary, lease)
            try:
                storage.finish_run(run_id, summary.status, time.time(), summary.executed)
            except StorageError as unrecorded:
                if failure is None:
                    raise
                # The failure that stopped the run is the one to report (a locked database fails both; the error
                # named only the end's record); the run then shows as dead, its heartbeat silent.
                log.warning("the run's end could not be recorded either: %s", unrecorded)
            _log_end(summary, lease)
    if summary.status == "interrupted":
        raise RunInterrupted(
            f"interrupted: {summary.kept()} (run {run_id[:12]}); run again to resume",
            summary,
        )
    return summary


class RunInterrupted(Interrupted):
    """A run stopped by a signal after it started executing: `summary` says what it finished."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


def _left_to_others(summary: RunSummary, lease: Lease) -> int:
    """The units of the plan this run left to other workers. A completed run's plan is complete, so every unit it
    neither found stored at the start nor executed was run by another worker: counted so, since its unit stream
    passes over what others stored meanwhile without meeting their claims (the summary once fell 2 to 7 units short
    of the plan). A run that stopped early counts the units whose claims it met."""
    if summary.status == "completed":
        return max(lease.held_elsewhere, summary.planned - summary.already_stored - summary.executed)
    return lease.held_elsewhere


def _log_end(summary: RunSummary, lease: Lease) -> None:
    """The run's end in the run log: how it ended, what it did, and per lane the requests retried."""
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items())) or "none"
    log.info(
        "run %s ended %s after %.1fs: %d units executed (%s), %d newly stored; %d claimed, %d skipped as held or "
        "completed by other workers",
        summary.run_id, summary.status, summary.wall_s, summary.executed, outcomes, summary.newly_completed,
        lease.claimed, summary.held_elsewhere,
    )  # fmt: skip
    if summary.transactions:
        log.info("storage: %d write transactions, %.0f ms of CPU on the storage thread (writes, claims, heartbeats)",
                 summary.transactions, summary.storage_cpu_s * 1000)  # fmt: skip
    for report in summary.lanes:
        calls = sum(report.statuses.values())
        failed = {status.value: n for status, n in report.statuses.items() if status is not CallStatus.OK and n}
        if calls:
            log.info("lane %s: %d requests, not answered at once: %s; parked %d times; %d episodes lost there",
                     report.lane.lane_id, calls, failed or "none", report.parks, report.episodes_lost)  # fmt: skip
    if summary.restarts:
        log.info("episodes started again after losing their lane: %d", summary.restarts)


def plans(spec: RunSpec | PlanSpec) -> list[ModelPlan]:
    """Every selected model's plan (cells and their sizes under the run's scopes and seed); nothing is listed. A
    `PlanSpec` (no lanes, no credentials) is enough."""
    found = []
    for model in spec.models:
        cells = [(cell, spec.suite.instances(cell, spec.run.instances)) for cell in spec.suite.cells(model.name)]
        found.append(model_plan(model.name, cells, spec.scopes.by_model[model.name], spec.run.seed))
    return found


def _run_record(spec: RunSpec, run_id: str, planned: int, plan: str) -> RunRecord:
    return RunRecord(
        run_id,
        time.time(),
        spec.suite.name,
        tuple(model.name for model in spec.models),
        spec.redacted_config,
        __version__,
        socket.gethostname(),
        planned,
        os.getpid(),
        spec.scopes.descriptions,
        experiment=spec.experiment,
        worker=spec.run.worker,
        plan=plan,
    )


def _run_loop(main: Coroutine[Any, Any, None], grace_s: float = 2.0) -> None:
    """Run the execution on a fresh event loop; at the end, cancel whatever is left and give it `grace_s` to go.

    Unlike `asyncio.run`, shutdown never waits without bound for a task that ignores cancellation.
    """
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main)
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=grace_s))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _execute(
    spec: RunSpec,
    providers: Mapping[str, Provider],
    storage: Storage,
    missing: Mapping[str, MissingUnits],
    summary: RunSummary,
    outlet: _Outlet,
    lease: Lease,
    plan: str,
) -> None:
    lanes = {lane.lane_id: lane for model in spec.models if model.name in missing for lane in spec.lanes[model.name]}

    def committed(result: UnitResult, calls: Sequence[CallRecord]) -> None:
        summary.record(result, calls)
        lease.forget(result.unit.key)
        outlet.progress.unit_done(lanes[result.lane_id], result.episode.outcome)

    writer = ResultWriter(storage, spec.scheduler.write_batch, on_commit=committed)
    writer.start()
    signals = Signals.install(outlet.signals_since)
    pulse, stalls = Pulse(), StallWatch()
    watching = asyncio.ensure_future(stalls.watch())
    # One state per lane for the whole run, shared by its workers and by judge requests sent to it.
    states = {
        lane.lane_id: LaneState.of(lane, spec.scheduler, pulse, stalls) for ls in spec.lanes.values() for lane in ls
    }
    heartbeat = asyncio.ensure_future(
        _heartbeat(writer, storage, lease, spec.run.heartbeat_s, plan, list(states.values()))
    )
    crew = _Crew(spec, providers, summary.run_id, writer, signals.stopping, states, lease)
    ticking: asyncio.Future[None] | None = None
    stop = _Stop(signals, _Deadline(outlet.deadline, signals.stopping), pulse)
    try:
        # What finish_run records if a worker's exception propagates, or the sharding plugin's (in `crew.workers`).
        summary.status = "failed"
        ready = _ProvidersReady(providers, summary)
        # A run with nothing to do never waits for litellm; one stopped while it waits (a slow import) stops at once.
        if any(source.count for source in missing.values()) and not await ready.before(signals.stopping):
            summary.status = "deadline" if stop.deadline.reached else "interrupted"
            return
        workers = crew.workers(missing)
        per_model = {model: source.count for model, source in missing.items()}
        outlet.progress.start(list(lanes.values()), sum(per_model.values()), crew.shares, per_model)
        ticking = asyncio.ensure_future(_ticking(outlet.progress))
        while True:
            summary.status = await _supervise(workers, stop, spec.scheduler.drain_timeout_s, outlet.notify)
            if summary.status != "completed":
                break
            # This worker's pass is done; what other workers hold of the plan decides whether it is finished.
            sources = await _orphan_round(spec, storage, missing, lease, stop)
            if not sources:
                break
            await ready()
            workers = crew.workers(sources)
        if summary.status == "completed" and signals.stopping.is_set():
            summary.status = "deadline" if stop.deadline.reached else "interrupted"
    finally:
        stop.deadline.cancel()
        heartbeat.cancel()
        watching.cancel()
        if ticking is not None:
            ticking.cancel()
        outlet.progress.stop()
        await writer.close()
        summary.newly_completed, summary.transactions = writer.newly_completed, writer.transactions
        summary.storage_cpu_s = writer.cpu_s
        summary.lanes = [LaneReport.of(state) for state in states.values()]
        for provider in providers.values():
            await provider.aclose()
        # Last: a signal while results are committed must not interrupt the commit; from here until the run's end is
        # recorded, a signal is only noted (`deferred` in `_run_with` takes over).
        signals.remove(then=note_only)


class _ProvidersReady:
    """Awaits every provider's `ready` once, before the first request, so that no call's latency holds a provider's
    start-up (litellm imports for seconds); the wait is recorded in the summary."""

    def __init__(self, providers: Mapping[str, Provider], summary: RunSummary) -> None:
        self._providers = providers
        self._summary = summary
        self._done = False

    async def __call__(self) -> None:
        if self._done:
            return
        started = time.perf_counter()
        await asyncio.gather(*(provider.ready() for provider in self._providers.values()))
        self._summary.providers_ready_s = time.perf_counter() - started
        self._done = True

    async def before(self, stopping: asyncio.Event) -> bool:
        """Wait for the providers unless `stopping` is set first (Ctrl-C, the deadline); whether they are ready.
        Their errors (litellm that cannot be imported) propagate."""
        readying = asyncio.ensure_future(self())
        stopped = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({readying, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not readying.done():
            readying.cancel()
            return False
        readying.result()
        return True


WAITING_FOR_OTHERS = "waiting for %d units other workers hold (run when they finish, or taken over if a worker died)"


async def _orphan_round(
    spec: RunSpec, storage: Storage, missing: Mapping[str, MissingUnits], lease: Lease, stop: _Stop
) -> dict[str, UnitSource]:
    """Units of the plan whose claims expired with their worker, to run now; while other workers still hold live
    claims, wait for them (they either finish or die and expire). Empty when the plan is done or the run stops."""
    poll_s = max(0.2, min(2.0, spec.run.lease_s / 10))
    stopping = stop.signals.stopping
    ended_before: set[str] = set()
    told: int | None = None  # how many units the last "waiting for" line named
    while not stopping.is_set():
        found = {model: orphans(storage, source.plan, lease.run_id, time.time()) for model, source in missing.items()}
        expired = {model: ListedUnits(o.expired) for model, o in found.items() if o.expired}
        if expired:
            log.info("taking over %d units whose claims expired", sum(s.count for s in expired.values()))
            return dict(expired)
        live = sum(o.live for o in found.values())
        if not live:
            return {}
        # Two heartbeats of silence: a live run elsewhere under the same host name keeps beating (see liveness).
        quiet_s = 2 * spec.run.heartbeat_s
        ended = end_dead_claims(storage, lease.run_id, time.time(), socket.gethostname(), quiet_s, ended_before)
        for dead, count in ended.items():
            log.info("run %s died on this machine holding %d claims: ending them now", dead[:12], count)
        ended_before.update(ended)
        if ended:
            continue  # their units of this plan are orphans now: take them over without waiting
        # The first wait reaches the terminal (a warning): a worker may wait up to a lease for a dead one's units.
        # Later polls log only a changed count: every poll (5 a second with a short lease) flooded the log.
        if told is None:
            log.warning(WAITING_FOR_OTHERS, live)
        elif live != told:
            log.info(WAITING_FOR_OTHERS, live)
        told = live
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), poll_s)
    return {}


@dataclass(frozen=True)
class _Crew:
    """Builds the lane workers of one pass over some units (the plan, then orphans of dead workers)."""

    spec: RunSpec
    providers: Mapping[str, Provider]
    run_id: str
    writer: ResultWriter
    stopping: asyncio.Event
    states: Mapping[str, LaneState]
    lease: Lease
    shares: dict[str, int | None] = field(default_factory=dict)
    """Per deployment, the units its static share holds (None: its model's lanes share one queue)."""

    def workers(self, sources: Mapping[str, UnitSource]) -> list[Coroutine[Any, Any, None]]:
        spec, states = self.spec, self.states
        judge = None
        if spec.judge is not None:
            judge_states = [states[lane.lane_id] for lane in spec.lanes[spec.judge.name]]
            judge = JudgePool(self.providers[spec.judge.provider], judge_states, spec.judge.generation)
        workers = []
        for model in spec.models:
            if model.name not in sources:
                continue
            source = ClaimedUnits(sources[model.name], self.lease, claim_on=self.writer.thread)
            model_states = [states[lane.lane_id] for lane in spec.lanes[model.name]]
            pulse = model_states[0].breaker.pulse
            dispatch = spec.sharding.dispatch(source, spec.lanes[model.name])
            for lane in spec.lanes[model.name]:
                share, known = dispatch.planned(lane.lane_id), self.shares.get(lane.deployment, 0)
                self.shares[lane.deployment] = None if share is None or known is None else known + share
            work = ModelWork(dispatch, model_states, pulse, self.stopping, claims=source)
            provider = self.providers[model.provider]
            executor = Executor(
                spec.suite, model, provider, spec.scheduler, self.run_id, judge, work.lanes, self._still_ours
            )
            workers.extend(lane_workers(executor, work, self.writer.submit, self.stopping, source.count))
        return workers

    async def _still_ours(self, unit: Unit) -> bool:
        """Whether `unit`, about to send a request, is still this run's (see `Lease.still_held`): asked of the
        database, on the storage thread, only when its claim may have lapsed (a stopped worker's)."""
        return self.lease.still_held(unit) or bool(await self.writer.call(self.lease.recheck, unit))


class _Deadline:
    """Sets the stop flag when the run's deadline passes (as the first Ctrl-C would) and remembers that it did."""

    def __init__(self, at: float | None, stopping: asyncio.Event) -> None:
        self.reached = False
        self._stopping = stopping
        self._task = None if at is None else asyncio.ensure_future(self._wait(at))

    async def _wait(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        if not self._stopping.is_set():
            self.reached = True
            self._stopping.set()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass(frozen=True)
class _Stop:
    """What stops a run: the signals (first: drain, second: abandon), the deadline, and the pulse that wakes workers
    waiting on lanes so they see the stop flag."""

    signals: Signals
    deadline: _Deadline
    pulse: Pulse


SPLIT_EVERY_S = 1.0
"""How often a worker counts the plan's live workers to split its lanes' limits, when `run.heartbeat_s` is longer:
a worker that starts while another runs must not let both use a lane's whole limits for a full heartbeat interval
(5 s by default)."""


TICK_S = 1.0
"""How often the progress view refreshes what time changes (rate, ETA) when no unit finishes."""


async def _ticking(progress: ProgressView) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        progress.tick()


async def _heartbeat(
    writer: ResultWriter, storage: Storage, lease: Lease, every_s: float, plan: str, states: Sequence[LaneState]
) -> None:
    """Every `run.heartbeat_s`: record that the run is alive and renew its claims. Every `SPLIT_EVERY_S` (or each
    heartbeat, if more often): split each lane's limits with the other live workers of the plan that hold units
    (heartbeat at most three intervals old, at least one claim)."""
    split = (1, 0)  # live workers, this run's rank among them
    beat_due = time.monotonic() + every_s
    while True:
        try:
            live = await writer.call(storage.live_runs, plan, time.time() - 3 * every_s)
            # A run not yet holding a claim is not among them: it counts itself, last.
            now_split = (len(live), live.index(lease.run_id)) if lease.run_id in live else (len(live) + 1, len(live))
            if now_split != split:
                split = now_split
                for state in states:
                    state.share(*split)
                log.info(
                    "live workers holding units of this plan: %d (this run's rank %d); each lane keeps 1/%d of its "
                    "rpm and these of its request slots: %s",
                    *split,
                    split[0],
                    ", ".join(f"{s.lane.deployment} {s.slots.ceiling}/{s.lane.max_concurrency}" for s in states),
                )
        except FleetbenchError as exc:
            log.warning("live workers of the plan not counted: %s", exc)
        await asyncio.sleep(min(SPLIT_EVERY_S, max(0.0, beat_due - time.monotonic())))
        if time.monotonic() < beat_due:
            continue
        beat_due = time.monotonic() + every_s
        try:
            await writer.call(storage.heartbeat, lease.run_id, time.time())
            await writer.call(lease.renew)
        except FleetbenchError as exc:  # a missed heartbeat is not worth stopping the run for; the next may succeed
            log.warning("heartbeat of run %s not recorded: %s", lease.run_id, exc)


async def _supervise(workers: list[Coroutine[Any, Any, None]], stop: _Stop, drain_s: float, notify: Notify) -> str:
    """Run every worker to the end, or stop them on a signal or the deadline (see the module docstring). A worker
    that fails cancels the others and its exception propagates once they have stopped."""
    signals, deadline = stop.signals, stop.deadline
    tasks: set[asyncio.Future[None]] = {asyncio.ensure_future(worker) for worker in workers}
    try:
        failed = await _until(tasks, signals.stopping)
        if failed is None and not signals.stopping.is_set():
            return "completed"
        if failed is None:
            stop.pulse.fire()  # workers waiting on a lane or for failover see the stop flag at once
            why = "deadline reached (scheduler.deadline_s)" if deadline.reached else "stopping"
            notify(
                f"{why}: no new units; {sum(not t.done() for t in tasks)} in flight get up to {drain_s:g}s to "
                "finish (press Ctrl-C again to stop now)"
            )
            failed = await _drain(tasks, signals.abandon, drain_s)
        if failed is not None:
            raise failed
        return "deadline" if deadline.reached else "interrupted"
    finally:
        await _cancel(tasks)


async def _until(tasks: set[asyncio.Future[None]], event: asyncio.Event) -> BaseException | None:
    """Wait until every task is done, one fails (its exception is returned), or `event` is set."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
    try:
        pending: set[asyncio.Future[Any]] = set(tasks)
        while pending and not event.is_set():
            done, pending = await asyncio.wait(pending | {waiter}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(waiter)
            for task in done - {waiter}:
                if not task.cancelled() and task.exception() is not None:
                    return task.exception()
        return None
    finally:
        waiter.cancel()


async def _drain(tasks: set[asyncio.Future[None]], abandon: asyncio.Event, drain_s: float) -> BaseException | None:
    """Let units in flight finish for up to `drain_s` seconds, or until `abandon` is set."""
    try:
        async with asyncio.timeout(drain_s):
            return await _until(tasks, abandon)
    except TimeoutError:
        return None


async def _cancel(tasks: set[asyncio.Future[None]], grace_s: float = 5.0) -> None:
    """Cancel what is still running and wait (bounded) for it: finished results are already committed."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace_s)
