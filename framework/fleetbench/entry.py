"""The console script's entry: tiny on purpose, so that Ctrl-C while the CLI's dependencies are still importing
(Hydra, rich) ends with one line and exit code 130 instead of a traceback."""

from __future__ import annotations

import sys

from fleetbench import interrupts


def main() -> None:
    """`fleetbench ...`: handle stop signals, import the CLI, run it, exit with its code."""
    interrupts.install()
    try:
        from fleetbench.cli import entry
    except KeyboardInterrupt:
        print("interrupted: nothing was run", file=sys.stderr, flush=True)
        interrupts.exit_now(interrupts.INTERRUPTED_EXIT)
    try:
        code = entry()
    except SystemExit as exc:  # a Hydra job ends this way
        code = _code(exc)
    if interrupts.received():
        interrupts.exit_now(code)
    sys.exit(code)


def _code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
