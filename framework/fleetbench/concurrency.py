"""A lane's requests in flight, with a limit that adapts to 429s: multiplicative decrease, additive recovery.

asyncio's `Semaphore` cannot change its size. anyio's `CapacityLimiter` can, but it yields to the event loop on every
acquisition (a checkpoint) and wants a distinct borrower per holder; this small class keeps the uncontended path to
one comparison, so the scheduler's hot path costs what the plain semaphore did.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

RAMP_DONE = 1 << 62
"""`AdaptiveSlots.opened` once every slot is open: more than any ceiling."""


class AdaptiveSlots:
    """At most `limit` holders at once; `limit` moves between 1 and `ceiling` (the deployment's `max_concurrency`).

    `rate_limited(epoch)` multiplies the limit by `decrease` (rounding down, never below 1). One decrease per burst:
    each decrease starts a new epoch, and a 429 on a request sent in an earlier epoch was caused by the old limit, so
    it does not lower the limit again. `succeeded()` raises the limit by one after each run of successes as long as
    the current limit (TCP's congestion avoidance), so recovery from 1 to 8 takes 1 + 2 + ... + 7 successes.
    Lowering the limit never cancels holders: newcomers wait until fewer than `limit` are held.

    With a `ramp_step_s` (`scheduler.ramp_step_s`), the slots open one after another from the first acquisition:
    one at first, one more every `ramp_step_s` until the ceiling, the open ones working meanwhile. Sent all at once,
    a lane's requests come back all at once from an API whose latency varies little; their replies are then handled
    one after the other on the run's one event loop (litellm takes milliseconds of CPU per call) and the next
    requests go out together again: the calls stay in waves for the whole run, each round lasting the latency plus
    the time to handle a whole wave. Spread once, they stay spread. It also spares a rate limiter the opening burst.
    """

    def __init__(self, ceiling: int, decrease: float = 0.5, ramp_step_s: float = 0.0) -> None:
        self.ceiling = self.limit = self.lowest = ceiling
        self.decrease = decrease
        self.in_use = 0
        self.epoch = 0
        self.decreases = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ramp_step_s = ramp_step_s
        self.opened = 1 if ramp_step_s > 0 and ceiling > 1 else RAMP_DONE
        """Slots open so far; `RAMP_DONE` once the ramp is over (or without one)."""
        self._ramp_started = False
        self.gate = UnitGate(self)
        """The units a lane runs at once under a shared queue, kept to this limit (see `UnitGate`)."""

    async def acquire(self) -> None:
        """Take a slot, waiting while `limit` are held (first come, first served)."""
        if not self._ramp_started and self.opened != RAMP_DONE:
            self._ramp_started = True  # the first acquisition starts the ramp
            self._open_later()
        if self.in_use < self.limit and self.in_use < self.opened and not self._waiters:
            self.in_use += 1
            return
        await _wait_in_line(self._waiters, self.release)

    def release(self) -> None:
        """Give a slot back and hand it to the next waiter if the limit allows."""
        self.in_use -= 1
        self._wake()

    def set_ceiling(self, ceiling: int) -> None:
        """Move the ceiling (a worker's share of the deployment's `max_concurrency`); a limit not lowered by 429s
        follows it, a lowered one stays below it. Holders are never cancelled."""
        ceiling = max(1, ceiling)
        following = self.limit == self.ceiling
        self.ceiling = ceiling
        self.limit = ceiling if following else min(self.limit, ceiling)
        self._wake()

    def rate_limited(self, epoch: int) -> None:
        """A request sent in `epoch` was answered 429: lower the limit once per epoch."""
        if epoch != self.epoch:
            return
        self.limit = max(1, int(self.limit * self.decrease))
        self.lowest = min(self.lowest, self.limit)
        self.epoch += 1
        self.decreases += 1
        self._successes = 0

    def succeeded(self) -> None:
        """A request succeeded: after as many successes since the last change as the current limit, allow one more
        in flight."""
        if self.limit >= self.ceiling:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self.limit += 1
            self._wake()

    def _open_later(self) -> None:
        asyncio.get_running_loop().call_later(self._ramp_step_s, self._open_one)

    def _open_one(self) -> None:
        self.opened += 1
        if self.opened >= self.ceiling:
            self.opened = RAMP_DONE  # a ceiling raised later (a worker's share grown) needs no ramp
        else:
            self._open_later()
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.limit and self.in_use < self.opened:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_use += 1
                waiter.set_result(None)
        self.gate.wake()  # the limit may have risen


class UnitGate:
    """The units a lane's workers hold at once, kept to its slots' current limit (under a shared queue).

    A lane's workers pulled a unit each and then waited for a request slot: a lane whose 429s had lowered its limit
    to 1 held a unit per worker (50 of them) waiting for that slot, pulled again as each finished, and at the end of
    the run those units ran one at a time while the other lanes sat idle with nothing left to pull. A worker now
    takes a place here before it pulls, so a throttled lane leaves the queue to lanes with room. Same discipline as the
    slots: first come, first served; a lowered limit never takes a unit from its holder.
    """

    def __init__(self, slots: AdaptiveSlots) -> None:
        self._slots = slots
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def enter(self) -> None:
        """Take a place, waiting while the lane holds as many units as its limit."""
        if self.held < self._slots.limit and not self._waiters:
            self.held += 1
            return
        await _wait_in_line(self._waiters, self.leave)

    def leave(self) -> None:
        """Give a place back (the unit finished) and hand it to the next waiter if the limit allows."""
        self.held -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free places to waiters, first come first served (also called when the limit rises)."""
        while self._waiters and self.held < self._slots.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.held += 1
                waiter.set_result(None)


async def _wait_in_line(waiters: deque[asyncio.Future[None]], give_back: Callable[[], None]) -> None:
    """Wait at the end of `waiters` until a waker hands this waiter its place (taking it on the waiter's behalf).
    A place handed over just as the wait is cancelled is given back with `give_back`."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    except asyncio.CancelledError:
        if waiter.done() and not waiter.cancelled():
            give_back()
        elif waiter in waiters:  # a waker may have dropped it already, seeing it cancelled
            waiters.remove(waiter)
        raise
