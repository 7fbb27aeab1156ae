"""Ctrl-C and SIGTERM during a run: one place decides what a signal means at each moment.

- While the run executes (on its event loop), the first signal sets `stopping` (no worker takes another unit; units
  in flight may finish) and a second sets `abandon` (units in flight are cancelled at once).
- Before that (start-up, planning), both signals raise `KeyboardInterrupt` in the main thread, which the runner
  turns into an `interrupted` run and the CLI into one line and exit code 130. SIGTERM is included so that a cluster
  scheduler stopping a worker gets the same clean end as a Ctrl-C.
- Once execution has ended, recording how the run ended and closing storage is not interruptible (`deferred`): a
  signal there is only noted, so the `runs` row and the "N units finished and kept" line are always written.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fleetbench import interrupts


@contextlib.contextmanager
def sync_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM record the stop and raise KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, interrupts.record_and_interrupt) for sig in interrupts.stop_signals()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are noted (`interrupts.received()`) but interrupt nothing (main thread
    only): for the few statements that must finish once started, such as recording the end of a run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, note_only) for sig in interrupts.stop_signals()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def quiet_signals() -> None:
    """From now on SIGINT and SIGTERM are only noted (main thread only): for a process on its way out."""
    if threading.current_thread() is threading.main_thread():
        for sig in interrupts.stop_signals():
            signal.signal(sig, note_only)


def note_only(signum: int, frame: object) -> None:
    """A signal handler that records the stop and interrupts nothing."""
    interrupts.note()


@dataclass
class Signals:
    """Signal handlers on the running event loop; remove them with `remove()`."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    abandon: asyncio.Event = field(default_factory=asyncio.Event)
    _previous: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def install(cls, since: int = 0) -> Signals:
        """Handle both signals on the running loop (only the main thread receives signals; elsewhere none are set).
        A signal received after `interrupts.count()` was `since` counts as already given."""
        signals = cls()
        if threading.current_thread() is not threading.main_thread():
            return signals
        loop = asyncio.get_running_loop()
        for sig in interrupts.stop_signals():
            signals._previous[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, signals._received)
        if interrupts.received(since):
            # A signal already arrived but its KeyboardInterrupt was swallowed (Python ignores exceptions raised in
            # some callbacks, e.g. an import lock's weakref callback): honour it now, as the first Ctrl-C.
            signals._received()
        return signals

    def _received(self) -> None:
        interrupts.note()
        if self.stopping.is_set():
            self.abandon.set()
        self.stopping.set()

    def remove(self, then: Any = None) -> None:
        """Restore the handlers that were in place before `install`, or install `then` instead (a handler such as
        `note_only`, so that nothing between the end of execution and recording it can be interrupted)."""
        loop = asyncio.get_running_loop()
        for sig, previous in self._previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous if then is None else then)
