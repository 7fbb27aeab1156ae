"""Whether this process stood still: stopped (SIGSTOP, Ctrl-Z, a debugger) or starved of CPU.

A request's timeout runs on the event loop's clock, which keeps counting while the process stands still: a worker
stopped for longer than `scheduler.request_timeout_s` finds every request it had in flight timed out when it is
continued, though the API may have answered long before. Counted as the lanes' failures, those timeouts parked
healthy lanes for their breakers' cool-down and restarted episodes on other lanes.

`StallWatch` ticks on the event loop; a tick that comes later than due by more than `STALL_S` marks the time in
between as a stall. `schedule.LaneChat` asks how long the process stood still while a failed request was out: a
timeout that the request would not have reached without the stall (which took at least `TIMEOUT_SHARE` of it), and
a transport failure of a request that spans one (a server closes a connection left silent), are the worker's doing,
not the lane's, once per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

log = logging.getLogger(__name__)

TICK_S = 0.1
"""How often the watch looks at the clock."""
STALL_S = 0.5
"""A tick later than due by more than this means the loop did not run meanwhile (a busy loop's callbacks take
milliseconds; a loop held this long is a stopped or starved process)."""
WARN_AFTER_S = 2.0
"""Stalls this long are warnings (the terminal shows them); shorter ones are noted in the run log only (a busy
machine stalls for half a second now and then: a README follower saw four such warnings in one run)."""
TIMEOUT_SHARE = 0.25
"""A timed-out request is the stall's doing only when the worker stood still for at least this share of the request's
timeout: a moment's stall within a long wait (a collection, a busy machine) does not excuse an endpoint that never
answers, which must still cost its lane (an attacker's 0.8 s stops every 2 s kept a hung deployment from ever being
parked). And only one attempt of a request is ever excused (`schedule.LaneChat`)."""
KEPT = 64
"""Stalls remembered (the oldest are forgotten: a request spans only the last few)."""


class StallWatch:
    """The stalls of this run's event loop (see the module docstring). Every time is `time.monotonic()`, the clock
    asyncio's timers and timeouts use."""

    def __init__(self, tick_s: float = TICK_S, stall_s: float = STALL_S) -> None:
        self._tick_s, self._stall_s = tick_s, stall_s
        self._stalls: deque[tuple[float, float]] = deque(maxlen=KEPT)
        self._last_tick: float | None = None  # None: not watching, so nothing is known to have stood still

    async def watch(self) -> None:
        """Tick until cancelled, recording each stall (and logging it: a stopped worker's log says why its requests
        in flight were sent again)."""
        self._last_tick = time.monotonic()
        try:
            while True:
                await asyncio.sleep(self._tick_s)
                now = time.monotonic()
                due = self._last_tick + self._tick_s
                if now - due > self._stall_s:
                    self._stalls.append((due, now))
                    # Long stalls reach the terminal; a busy machine's short ones only the run log.
                    log.log(
                        logging.WARNING if now - due >= WARN_AFTER_S else logging.INFO,
                        "this worker stood still for %.1fs (stopped, suspended or starved of CPU): requests it had in "
                        "flight that failed meanwhile are sent again on their lanes, not counted against them",
                        now - due,
                    )
                self._last_tick = now
        finally:
            self._last_tick = None

    def stood_still(self, since: float, until: float) -> float:
        """Seconds of `since`..`until` the process stood still: the recorded stalls, and one not recorded yet (the
        loop has not reached the watch's tick since it went on: the continued process's timeouts may fire first)."""
        if self._last_tick is None:
            return 0.0
        spans = list(self._stalls)
        pending = until - (self._last_tick + self._tick_s)
        if pending > self._stall_s:
            spans.append((self._last_tick + self._tick_s, until))
        return sum(max(0.0, min(end, until) - max(start, since)) for start, end in spans)
