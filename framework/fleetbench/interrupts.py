"""Whether this process was asked to stop (Ctrl-C / SIGTERM), and how it exits when it was.

Small and import-free on purpose: the console script installs `record_and_interrupt` before importing anything
heavy. Two CPython and library behaviours make the flag necessary:
- a KeyboardInterrupt raised inside `exec`'d code (dataclass creation does that) makes the interpreter kill itself
  with SIGINT at exit, whatever the program caught: `exit_now` leaves with our exit code instead;
- a KeyboardInterrupt inside configuration composition can surface as an unrelated configuration error: the CLI asks
  `received()` before blaming the configuration.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

INTERRUPTED_EXIT = 130
LATE_INTERRUPTED = "interrupted: every finished unit is kept; run again to resume"
_count = 0
_reported = False


def note() -> None:
    """Record that a stop signal arrived (the event loop's handlers call this too)."""
    global _count
    _count += 1


def received(since: int = 0) -> bool:
    """True once a stop signal arrived in this process (after `count()` was `since`)."""
    return _count > since


def count() -> int:
    """How many stop signals this process has received: a run embedded in a longer-lived process (a notebook, a
    test session) takes this as its baseline, so a signal an earlier run handled does not stop the next one."""
    return _count


def reported() -> None:
    """Record that the interruption's one line has been printed (a later signal must not print another)."""
    global _reported
    _reported = True


def was_reported() -> bool:
    """True once the interruption's one line has been printed."""
    return _reported


def record_and_interrupt(signum: int, frame: FrameType | None) -> None:
    """A handler for SIGINT and SIGTERM outside the run's event loop: record, then raise KeyboardInterrupt."""
    note()
    raise KeyboardInterrupt


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def hold() -> None:
    """Hold stop signals (this thread's signal mask) until `release`: for Hydra's and OmegaConf's compositions, where
    a KeyboardInterrupt raised midway can leave a half-built node behind and surface as a bogus configuration error
    instead. A signal that arrives meanwhile is taken when the composition ends (well under a second)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release() -> None:
    """Take any held stop signal now (its handler runs at once) and stop holding them."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def ignore_from_now() -> None:
    """Ignore stop signals for the rest of the process: the command is over and has said so. (An ignored signal stays
    ignored through interpreter shutdown; a Python handler would be reset to the default, which kills the process
    with the signal: exit 130 for a command that had finished.)"""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _quiet_about_interrupted_callbacks(unraisable: sys.UnraisableHookArgs) -> None:
    """A stop signal landing in a garbage-collection callback (SQLAlchemy's weak references have them) cannot
    propagate, and Python would print it as an ignored exception with a traceback. The signal is already recorded
    (`note`), which is what the CLI acts on: print nothing for it."""
    if unraisable.exc_type is KeyboardInterrupt and received():
        return
    sys.__unraisablehook__(unraisable)


_ignored_at_start: frozenset[int] = frozenset()


def stop_signals() -> tuple[int, ...]:
    """The stop signals this process answers: SIGINT and SIGTERM, but not one it was started with ignored. A shell
    starts a background job (`cmd &` in a script) and `nohup` starts its command with SIGINT ignored, so that a
    Ctrl-C meant for the foreground does not reach them; answering it anyway would stop such a run."""
    return tuple(sig for sig in STOP_SIGNALS if sig not in _ignored_at_start)


def install() -> None:
    """Handle the stop signals (`stop_signals`) with `record_and_interrupt`, and keep a signal that lands in a
    garbage-collection callback from printing a traceback (the console script does this first thing)."""
    global _ignored_at_start
    _ignored_at_start = frozenset(sig for sig in STOP_SIGNALS if signal.getsignal(sig) is signal.SIG_IGN)
    for sig in stop_signals():
        signal.signal(sig, record_and_interrupt)
    sys.unraisablehook = _quiet_about_interrupted_callbacks


def exit_now(code: int) -> None:
    """Flush output and logs, then exit with `code` without running interpreter shutdown (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(code)
