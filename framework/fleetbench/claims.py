"""Claims with leases: a unit is claimed before it runs, so any number of workers on one plan and database split the
work instead of doubling it.

Every worker streams the same missing units in plan order; before a unit reaches a lane, the worker claims it in the
database (`Storage.claim`, a batch of `run.claim_batch` units per transaction) and skips what another live worker
holds or has completed. Claims carry an expiry (`run.lease_s`) that the run's heartbeat renews; writing a result
releases its claim, finishing a run ends the rest at once (they stay, expired, as orphans: an interrupted worker's
unstarted units are then run by the plan's other workers). A worker that dies keeps its claims only until they expire.

When a worker's own pass over the plan is done, `orphans` finds the units of its plan still claimed by other runs:
expired claims (their worker died) are taken over and run, live ones are waited for, so the plan completes as long
as one worker lives. A run that died on this machine (SIGKILL, a crash, the machine's OOM killer) is known dead as soon
as its process is gone and its heartbeat falls silent: `end_dead_claims` ends its claims then, so that rerunning a
killed run does not wait out the rest of their lease (`run.lease_s`, a minute by default).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from fleetbench.config.identity import digest
from fleetbench.interfaces import Storage, UnitSource
from fleetbench.liveness import ended_here
from fleetbench.plan import ModelPlan
from fleetbench.types import Unit

_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def lease_clock() -> float:
    """Seconds on a clock that keeps counting while the machine is suspended (Linux's `CLOCK_BOOTTIME`), as the wall
    clock that claims expire by does: `time.monotonic` stops during a suspend, so a machine that slept past its lease
    would find no gap and trust claims other workers had taken over. Elsewhere, `time.monotonic`."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


GAP_OF_LEASE = 0.75
"""Renewals of a run's claims this share of a lease apart or more are a gap: the heartbeat renews every
`run.heartbeat_s`, at most half a lease; the rest is margin for a slow transaction and clocks apart between hosts."""


@dataclass
class Lease:
    """This run's side of the claims: takes batches, and counts what it took and what others held.

    `take` and `keep` run on the run's storage thread while `hand_out` runs on the event loop: the counts and sets
    they share change under a lock."""

    storage: Storage
    run_id: str
    lease_s: float
    batch: int
    claimed: int = 0
    skipped: set[str] = field(default_factory=set)
    """Keys of the units skipped because another worker held or had completed them, and not taken over since."""
    handed_out: set[str] = field(default_factory=set)
    """Keys of every unit this run has handed to a lane (about 115 bytes each, key and set slot: 115 MB a million)."""
    waiting: dict[str, float] = field(default_factory=dict)
    """Units handed out and not yet started: when their claim was last confirmed (`lease_clock`). Only as many as
    the lanes' workers hold at once: `still_held` takes each out."""
    confirmed: dict[str, int] = field(default_factory=dict)
    """Units started and not yet committed: the renewal epoch in which their claim was last confirmed (see
    `still_held`; `forget` takes a unit out when its result is committed)."""
    epoch: int = 0
    """Counts the gaps in the renewal of this run's claims: renewals further apart than `GAP_OF_LEASE` of a lease
    (the process stood still), after which a claim confirmed before may have lapsed and gone to another worker."""
    _renewed_at: float = field(default_factory=lambda: lease_clock(), repr=False)
    _books: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, units: Sequence[Unit]) -> list[Unit]:
        """The units of `units` this run now holds, in order (a unit it has handed out already is not claimed again)."""
        with self._books:
            fresh = [unit for unit in units if unit.key not in self.handed_out]
        if not fresh:
            return []
        now = time.time()
        taken = self.storage.claim(self.run_id, fresh, now, now + self.lease_s)
        with self._books:
            self.claimed += len(taken)
            for unit in fresh:
                # A unit skipped while its claim lived and taken over once it expired (its worker died) was not left
                # to another worker: the run summary once said so of every unit a resumed run took back.
                (self.skipped.discard if unit.key in taken else self.skipped.add)(unit.key)
        return [unit for unit in fresh if unit.key in taken]

    def keep(self, units: Sequence[Unit]) -> list[Unit]:
        """The units of `units`, claimed by this run before, that it still holds (claimed again for a full lease);
        those another worker took over or completed meanwhile are left to it."""
        if not units:
            return []
        now = time.time()
        kept = self.storage.claim(self.run_id, units, now, now + self.lease_s)
        with self._books:
            self.skipped.update(unit.key for unit in units if unit.key not in kept)
        return [unit for unit in units if unit.key in kept]

    def recheck(self, unit: Unit) -> bool:
        """Ask the database whether `unit` is still this run's (claiming it again for a full lease, as `keep`): for a
        request `still_held` could not vouch for. A unit still held counts as confirmed in this renewal epoch."""
        with self._books:
            epoch = self.epoch  # read before the transaction: a gap found meanwhile makes the next request ask again
        if not self.keep([unit]):
            self.forget(unit.key)
            return False
        with self._books:
            self.confirmed[unit.key] = epoch
        return True

    @property
    def held_elsewhere(self) -> int:
        """Units this run left to other workers: held or completed by them when it met them, and never taken over."""
        return len(self.skipped)

    def hand_out(self, unit: Unit, claimed_at: float) -> bool:
        """Whether `unit` may go to a lane now: False when this run has handed it out before.

        A run may meet a unit again: a static share is a slice of the plan's missing units, and as other workers
        store units the slices of one run's lanes reach into each other. The storage gives a run its own claim back,
        and a batch claimed before the unit's result was written still holds it, so only the run itself can tell
        (one run ran a unit on three lanes; once its results were released from this set when written, 2 of 200
        units still ran twice). Claimed is not handed out: a slice's last batch claims units past the slice's end,
        which the next lane's slice must still run.
        """
        with self._books:
            if unit.key in self.handed_out:
                return False
            self.handed_out.add(unit.key)
            self.waiting[unit.key] = claimed_at
            return True

    def still_held(self, unit: Unit) -> bool:
        """Whether `unit`, about to send a request, is surely still this run's without asking the database (else ask
        with `keep`). Its first request: its claim was confirmed less than half a lease ago. A later one (the next
        turn, a retry, a restart elsewhere): its claim was confirmed in this renewal epoch, and the claims were renewed
        less than `GAP_OF_LEASE` of a lease ago.

        A worker stopped (SIGSTOP, a suspended machine) past its lease loses its claims to other workers, which run
        the units. Continued, it must not send requests for them: neither for units that waited in its lanes for a
        slot or a token (one such worker ran 24 units twice), nor for units whose requests were in flight and, timed
        out by the stop, would be sent again (another sent 10 to 30 requests for units already stored)."""
        now = lease_clock()
        with self._books:
            claimed_at = self.waiting.pop(unit.key, None)
            if claimed_at is not None:
                held = now - claimed_at < self.lease_s / 2
                if held:
                    self.confirmed[unit.key] = self.epoch
                return held
            renewed = now - self._renewed_at < GAP_OF_LEASE * self.lease_s
            return renewed and self.confirmed.get(unit.key) == self.epoch

    def forget(self, key: str) -> None:
        """The unit's result is committed (or it went to another worker): nothing to confirm any more."""
        with self._books:
            self.confirmed.pop(key, None)

    def renew(self) -> int:
        """Extend every claim of this run by a full lease; how many it holds. Renewals further apart than
        `GAP_OF_LEASE` of a lease start a new epoch: a claim confirmed before may have lapsed in between."""
        started = lease_clock()
        held = self.storage.renew_claims(self.run_id, time.time() + self.lease_s)
        with self._books:
            if started - self._renewed_at >= GAP_OF_LEASE * self.lease_s:
                self.epoch += 1
            self._renewed_at = started
        return held


class ClaimedUnits(UnitSource):
    """A source's units, each claimed before it is handed out; units others hold or completed are skipped.

    Claims run on `claim_on` (the run's storage thread), the next batch while this one is handed out: a claim is a
    write transaction, which may wait for another worker's commit, and done on the event loop it stopped every
    request of the run meanwhile (timing `Lease.take` in one worker found 3.4 s of a 19 s run there, 13 ms a claim)."""

    def __init__(self, source: UnitSource, lease: Lease, claim_on: Executor) -> None:
        self._source = source
        self._lease = lease
        self._claim_on = claim_on
        self._due: set[Future[tuple[list[Unit], float]]] = set()
        """Claims that a stream's next unit waits for: its batch is handed out, and the next one is being claimed."""

    @property
    def count(self) -> int:
        return self._source.count

    def stream(self, start: int = 0) -> Iterator[Unit]:
        batches = _batches(self._source.stream(start), self._lease.batch)
        claiming = self._claim(next(batches, None))
        while claiming is not None:
            held, claimed_at = claiming.result()
            self._due.discard(claiming)
            claiming = None
            for unit, left in self._handed_out(held, claimed_at):
                # The next batch is claimed once a quarter of this one is left, not sooner: claimed at once, two
                # batches per lane held the whole of a small plan, and a second worker found nothing to run.
                if claiming is None and left <= self._lease.batch // 4:
                    claiming = self._claim(next(batches, None)) or _NOTHING
                if not left and claiming is not None and claiming is not _NOTHING:
                    self._due.add(claiming)
                yield unit
            if claiming is None:
                claiming = self._claim(next(batches, None))
            elif claiming is _NOTHING:
                return

    def due(self) -> list[Future[tuple[list[Unit], float]]]:
        """The claims still running that a stream's next unit would wait for. `stream` is pulled on the event loop,
        so a worker awaits these first (`workers.ModelWork.units_ready`): waited for inside `stream`, a claim queued
        behind the storage thread's commits held every request of the run (`bench_serve.py --only loop`: a run of
        1,500 calls at 150 calls/s held the loop 51 to 71 times, over 200 ms in all; once, a few ms, now)."""
        return [claim for claim in self._due if not claim.done()]

    def _claim(self, batch: list[Unit] | None) -> Future[tuple[list[Unit], float]] | None:
        return None if batch is None else self._claim_on.submit(self._taken, batch)

    def _taken(self, batch: list[Unit]) -> tuple[list[Unit], float]:
        # The time before the claim, as its expiry counts from then: a claim that waited for the database lock must
        # not be taken for fresher than it is.
        asked = lease_clock()
        return self._lease.take(batch), asked

    def _handed_out(self, taken: list[Unit], claimed_at: float) -> Iterator[tuple[Unit, int]]:
        """Each unit of `taken` to hand out, with how many are left after it."""
        held = deque(taken)
        while held:
            if lease_clock() - claimed_at > self._lease.lease_s / 2:
                # The rest of the batch was claimed half a lease ago or more. A healthy heartbeat has renewed it, but a
                # process that stood still past its lease (SIGSTOP, a suspended machine, swapping) may find others
                # took it over and ran it meanwhile: ask again (on the storage thread too, between its commits, as
                # every claim), so that only what is still ours runs.
                asked = lease_clock()  # before the claim, as in `_taken`
                held = deque(self._claim_on.submit(self._lease.keep, list(held)).result())
                claimed_at = asked
                continue
            unit = held.popleft()
            # Marked as each is yielded, not when claimed: a lane's slice may stop in the middle of a claimed batch.
            if self._lease.hand_out(unit, claimed_at):
                yield unit, len(held)


_NOTHING: Future[tuple[list[Unit], float]] = Future()
_NOTHING.set_result(([], 0.0))
"""Marks a stream whose source is exhausted (its last batch is being handed out)."""


def _batches(units: Iterator[Unit], size: int) -> Iterator[list[Unit]]:
    """`units` in lists of `size` (the last may be shorter; none is empty)."""
    batch: list[Unit] = []
    for unit in units:
        batch.append(unit)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class ListedUnits(UnitSource):
    """A few units already listed (the orphans of dead workers)."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self._units = list(units)

    @property
    def count(self) -> int:
        return len(self._units)

    def stream(self, start: int = 0) -> Iterator[Unit]:
        return iter(self._units[start:])


@dataclass
class Orphans:
    """What other runs still hold of one model's plan: units whose claim expired, and how many are live elsewhere."""

    expired: list[Unit] = field(default_factory=list)
    live: int = 0


def orphans(storage: Storage, plan: ModelPlan, run_id: str, now: float) -> Orphans:
    """The units of `plan` other runs claimed and have not written (see the module docstring)."""
    cells = {cell.key: cell for cell in plan.cells}
    found = Orphans()
    for claim in storage.open_claims(plan.scope, plan.seed):
        cell = cells.get(claim.cell_key)
        if claim.run_id == run_id or cell is None or claim.index >= cell.instances:
            continue  # ours, or a unit of another plan that shares the scope (other cells, more instances)
        if claim.expires_at <= now:
            found.expired.append(cell.unit(claim.index))
        else:
            found.live += 1
    return found


def plan_digest(plans: Sequence[ModelPlan]) -> str:
    """What identifies a plan across workers: every model's scope, seed and cells with their sizes."""
    return digest(
        sorted(
            [plan.scope.suite, plan.scope.model, plan.seed, sorted([c.key, c.instances] for c in plan.cells)]
            for plan in plans
        )
    )


def end_dead_claims(
    storage: Storage, run_id: str, now: float, host: str, quiet_s: float, skip: Collection[str] = ()
) -> dict[str, int]:
    """End the claims of every other run that `liveness.ended_here` finds over (its process gone from this machine,
    silent for `quiet_s`): their expiry becomes `now`, so they are orphans to take over at once. Claims per run ended.
    `skip`: runs ended before (their claims on other plans stay theirs, expired, until a worker of that plan takes
    them over: ending them again would find claims every time)."""
    ended: dict[str, int] = {}
    for run in storage.runs():
        other = str(run["run_id"])
        if other != run_id and other not in skip and ended_here(run, now, host, quiet_s):
            count = storage.renew_claims(other, now)
            if count:
                ended[other] = count
    return ended
