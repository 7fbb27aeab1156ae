"""The console script's entry: tiny on purpose, so that Ctrl-C at any moment after Python itself has started ends
with one line and exit code 130 instead of a traceback, even while the CLI's dependencies (Hydra, rich) still import.

The stop-signal handlers are installed when this module is imported, before anything else of fleetbench: importing
it is what starting the `fleetbench` command does.
"""

from __future__ import annotations

import io
import os
import sys

STARTUP_INTERRUPTED = "interrupted: nothing was run\n"


def _interrupted_at_start() -> None:
    sys.stderr.write(STARTUP_INTERRUPTED)
    sys.stderr.flush()
    os._exit(130)


try:
    from fleetbench import interrupts
    from fleetbench.gcpause import collector_paused

    interrupts.install()
except KeyboardInterrupt:
    _interrupted_at_start()


def main() -> None:
    """`fleetbench ...`: import the CLI, run it, exit with its code."""
    # An output whose encoding lacks a character of the stored data (a model name, a task, a box of a table) shows it
    # escaped instead of ending the command with a UnicodeEncodeError; stderr does so already.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    # The CLI's imports (Hydra, OmegaConf, rich) build objects that live as long as the process: the cyclic collector
    # stays off while they load and never scans them afterwards (about a tenth of a reading command's time).
    try:
        # Stop signals are held while the CLI imports (taken the moment it has): an interrupt raised inside an import
        # can leave a module half-built, and what surfaced was not the interrupt but a RuntimeError (a dataclass
        # field's `__set_name__` wraps it) or an AttributeError in a later import, with a traceback and exit 1 (2 of
        # a new user's 250 Ctrl-Cs at about 0.12 s).
        interrupts.hold()
        try:
            with collector_paused():
                from fleetbench import pipes
                from fleetbench.cli import entry
        finally:
            interrupts.release()
    except KeyboardInterrupt:
        _interrupted_at_start()
    try:
        try:
            code = entry()
        except SystemExit as exc:  # a Hydra job ends this way
            code = _code(exc)
        except BrokenPipeError:  # standard output's reader left (`| head`)
            code = pipes.reader_gone()
        interrupts.ignore_from_now()  # the command is over and has said how: a late signal changes nothing
    except KeyboardInterrupt:  # another signal while the CLI was already on its way out: exit as interrupted
        if not interrupts.was_reported():
            sys.stderr.write(interrupts.LATE_INTERRUPTED + "\n")
        interrupts.exit_now(interrupts.INTERRUPTED_EXIT)
    if interrupts.received():
        interrupts.exit_now(code)
    if code == 0 and pipes.was_gone():  # a sweep's launch lines met a reader that left
        code = pipes.READER_GONE_EXIT
    sys.exit(code)


def _code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
