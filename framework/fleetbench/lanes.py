"""A lane's state for the whole run: its limits, its health, and what went wrong on it.

Every request to a lane, whoever sends it (a worker's episode or a judge), enters through `LaneState.enter`: a slot
under the lane's current (adaptive) concurrency limit, the Retry-After pause, a token from its bucket, and admission
by its circuit breaker. `LaneState.leave` reports how the request ended, which drives both:

- **adaptive concurrency** (`concurrency.AdaptiveSlots`): a 429 lowers the limit multiplicatively, successes raise it
  back one at a time up to the deployment's `max_concurrency`;
- **the circuit breaker** (`Breaker`): `breaker_failures` consecutive transient failures, refused connections or
  request timeouts *park* the lane; after a cool-down one request is let through as a probe: an answer makes the lane
  active again, a failure parks it for twice as long. An auth failure or a not-found (wrong deployment name)
  *stops* the lane for the rest of the run at once: no probe, since retrying cannot fix a key or a name.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from fleetbench.concurrency import AdaptiveSlots
from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import LaneLost
from fleetbench.stalls import StallWatch
from fleetbench.types import CallStatus, Lane

log = logging.getLogger(__name__)

BREAKER_STATUSES = frozenset({CallStatus.TRANSIENT, CallStatus.UNREACHABLE, CallStatus.TIMEOUT})
"""Failures that say the lane (not the request) is in trouble; enough of them in a row park it."""
STOP_STATUSES = frozenset({CallStatus.AUTH, CallStatus.NOT_FOUND})
"""Failures no retry can fix (a refused key, a wrong deployment name): the first one stops the lane."""


class Mode(enum.StrEnum):
    """Where a lane's breaker stands."""

    ACTIVE = "active"
    PARKED = "parked"
    PROBING = "probing"
    STOPPED = "stopped"


class Pulse:
    """Wakes whoever waits for "something changed" (a lane parked, resumed or stopped; a share of units ran out).

    Waiters re-check their own condition; an event is only created when someone waits, so firing costs nothing on
    the hot path.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout: float | None = None) -> None:
        """Until the next `fire`, or `timeout` seconds."""
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        if timeout is None:
            await event.wait()
            return
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await event.wait()
        except TimeoutError:
            return


class TokenBucket:
    """Requests per minute with a one-second burst; `None` means unlimited."""

    def __init__(self, rpm: float | None) -> None:
        self._full = None if rpm is None else rpm / 60.0
        self._rate = self._full
        self._capacity = 1.0 if self._rate is None else max(1.0, self._rate)
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    def share(self, workers: int) -> None:
        """Keep 1/`workers` of the lane's rate: the run's share when that many workers of its plan are live."""
        if self._full is None:
            return
        self._rate = self._full / max(1, workers)
        self._capacity = max(1.0, self._rate)
        self._tokens = min(self._tokens, self._capacity)

    async def acquire(self) -> None:
        """Wait until one request may be sent."""
        if self._rate is None:
            return
        while True:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._rate)


@dataclass
class Breaker:
    """A lane's circuit breaker (see the module docstring). Every transition fires the run's pulse."""

    threshold: int
    cooldown_s: float
    cooldown_max_s: float
    pulse: Pulse
    mode: Mode = Mode.ACTIVE
    consecutive: int = 0
    parked_until: float = 0.0
    parks: int = 0
    probes_failed: int = 0
    stop_cause: CallStatus | None = None
    name: str = ""
    """The lane's id, for the run log."""
    _next_cooldown: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._next_cooldown = self.cooldown_s

    def check(self) -> None:
        """Raise `LaneLost` when the lane takes no request now (stopped, or parked with its cool-down running)."""
        if self.mode is Mode.STOPPED:
            raise LaneLost(self.lost_status(), "the lane was stopped")
        if self.mode is Mode.PARKED and time.monotonic() < self.parked_until:
            raise LaneLost("lane_parked", "the lane is parked after repeated failures")

    async def admit(self) -> bool:
        """Let one request through; True when it is the lane's probe. While another request probes, wait for it."""
        while True:
            if self.mode is Mode.ACTIVE:
                return False
            self.check()
            if self.mode is Mode.PARKED:
                self.mode = Mode.PROBING
                return True
            await self.pulse.wait()

    def cooldown_left(self) -> float:
        """Seconds until a parked lane may be probed (0 when it may be now or is not parked)."""
        return max(0.0, self.parked_until - time.monotonic()) if self.mode is Mode.PARKED else 0.0

    @property
    def takes_units(self) -> bool:
        """Whether the lane's workers may start a unit now: active, or parked with its cool-down over (the unit's
        first request will be the probe)."""
        return self.mode is Mode.ACTIVE or (self.mode is Mode.PARKED and time.monotonic() >= self.parked_until)

    def lost_status(self) -> str:
        """The infra status of an episode this lane could not carry."""
        return self.stop_cause.value if self.stop_cause is not None else "lane_parked"

    def record(self, status: CallStatus, probe: bool) -> None:
        """Account for one answered (or failed) request."""
        if status in STOP_STATUSES:
            self.stop(status)
        elif status in BREAKER_STATUSES:
            self.consecutive += 1
            if probe:
                self.probes_failed += 1
                self._park(status)
            elif self.mode is Mode.ACTIVE and self.consecutive >= self.threshold:
                self.parks += 1
                self._park(status)
        else:  # the API answered (even a 429 or an empty reply): the lane works
            self.consecutive = 0
            if probe:
                self.mode = Mode.ACTIVE
                self._next_cooldown = self.cooldown_s
                # Warnings reach the terminal too: a user who saw the lane parked learns that it works again.
                log.warning("lane %s resumed: its probe was answered", self.name)
                self.pulse.fire()

    def abandon_probe(self) -> None:
        """The probe was cancelled before an answer: let the next request probe at once."""
        if self.mode is Mode.PROBING:
            self.mode, self.parked_until = Mode.PARKED, time.monotonic()
            self.pulse.fire()

    def stop(self, cause: CallStatus) -> None:
        if self.mode is not Mode.STOPPED:
            self.mode, self.stop_cause = Mode.STOPPED, cause
            log.warning("lane %s stopped for the rest of the run: %s", self.name, cause.value)
            self.pulse.fire()

    def _park(self, status: CallStatus) -> None:
        self.mode = Mode.PARKED
        self.parked_until = time.monotonic() + self._next_cooldown
        # A warning, so the terminal shows it: a lane that keeps failing (a refused connection) would otherwise
        # leave a run silent for as long as it waits for the lane's next probe.
        log.warning(
            "lane %s parked for %.1fs after %d failures in a row (last: %s); its units wait for its probe or go to "
            "lanes that work",
            self.name, self._next_cooldown, self.consecutive, status.value,
        )  # fmt: skip
        self._next_cooldown = min(self._next_cooldown * 2, self.cooldown_max_s)
        self.pulse.fire()


@dataclass(frozen=True)
class Ticket:
    """One admitted request: the concurrency epoch it was sent in, and whether it is the lane's probe."""

    epoch: int
    probe: bool


@dataclass
class LaneState:
    """A lane's limits, health and tallies for the whole run; every request to the lane goes through it."""

    lane: Lane
    bucket: TokenBucket
    slots: AdaptiveSlots
    breaker: Breaker
    paused_until: float = 0.0
    statuses: Counter[CallStatus] = field(default_factory=Counter)
    http_statuses: dict[CallStatus, Counter[int | None]] = field(default_factory=dict)
    """Per failure status, how many calls ended with each HTTP status (None: no status line was received)."""
    episodes_lost: int = 0
    """Episodes that had to start again elsewhere (or were given up) because this lane could not carry them."""
    episodes_given_up: int = 0
    """Of those, the episodes left not done: no lane to start again on, or `scheduler.max_restarts` used up."""
    units_taken_over: int = 0
    """Units of another lane's static share run here because that lane was down (`sharding.failover`)."""
    units_not_run: int = 0
    """Units left as not done without a request because this lane stopped and no other lane could take them."""
    stalls: StallWatch = field(default_factory=StallWatch)
    """The run's watch on its own event loop (one for all lanes): a request that failed while the worker stood still
    is not counted against the lane."""

    @classmethod
    def of(
        cls, lane: Lane, conf: SchedulerConf | None = None, pulse: Pulse | None = None, stalls: StallWatch | None = None
    ) -> LaneState:
        conf = conf or SchedulerConf()
        breaker = Breaker(
            conf.breaker_failures,
            conf.breaker_cooldown_s,
            conf.breaker_cooldown_max_s,
            pulse or Pulse(),
            name=lane.lane_id,
        )
        slots = AdaptiveSlots(lane.max_concurrency, conf.concurrency_decrease, conf.ramp_step_s)
        return cls(lane, TokenBucket(lane.rpm), slots, breaker, stalls=stalls or StallWatch())

    def share(self, workers: int, rank: int = 0) -> None:
        """Split this lane's limits with the other live workers of the plan: 1/`workers` of its rpm, and of its
        `max_concurrency` the whole part plus, for the first `max_concurrency % workers` ranks, one slot of the
        remainder, so the workers' slots add up to the lane's (25 over 3 workers: 9, 8, 8). At least one request in
        flight each."""
        workers = max(1, workers)
        self.bucket.share(workers)
        whole, remainder = divmod(self.lane.max_concurrency, workers)
        self.slots.set_ceiling(whole + (1 if rank < remainder else 0))

    async def enter(self) -> Ticket:
        """Admit one request: fail fast on a parked or stopped lane, then a slot, the pause, a token, the breaker.
        Raises `LaneLost` when the lane cannot take it."""
        breaker = self.breaker
        if breaker.mode is not Mode.ACTIVE:
            breaker.check()
        await self.slots.acquire()
        try:
            await self.ready()
            probe = False if breaker.mode is Mode.ACTIVE else await breaker.admit()  # hot path: no coroutine
        except BaseException:
            self.slots.release()
            raise
        return Ticket(self.slots.epoch, probe)

    def leave(self, ticket: Ticket, status: CallStatus | None, http_status: int | None = None) -> None:
        """Release the request's slot and account for how it ended (`None`: cancelled before an answer)."""
        self.slots.release()
        if status is None:
            if ticket.probe:
                self.breaker.abandon_probe()
            return
        self.statuses[status] += 1
        if status is CallStatus.OK:
            self.slots.succeeded()
        else:
            self.http_statuses.setdefault(status, Counter())[http_status] += 1
            if status is CallStatus.RATE_LIMITED:
                self.slots.rate_limited(ticket.epoch)
        self.breaker.record(status, ticket.probe)

    async def ready(self) -> None:
        """Wait out a pause, then take a token."""
        while (wait := self.paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        await self.bucket.acquire()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    @property
    def free_slots(self) -> int:
        return min(self.slots.limit, self.slots.opened) - self.slots.in_use
