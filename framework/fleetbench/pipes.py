"""A command whose standard output's reader leaves early (`fleetbench run --help | head -2`, `fleetbench runs | true`).

Writing then raises `BrokenPipeError` (Python ignores SIGPIPE): it printed a traceback (Hydra's, inside a run's job),
and rich, on its own, exits 1. Every command instead stops writing quietly and exits as a program that SIGPIPE ends.
"""

from __future__ import annotations

import logging
import os
import sys

READER_GONE_EXIT = 141
"""128 + SIGPIPE (13): what a shell reports for a pipe's writer that SIGPIPE ended."""


_gone = False


def reader_gone() -> int:
    """Point standard output at /dev/null, so that what is left to flush at exit fails no more; the exit code."""
    global _gone
    if not _gone:
        _gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return READER_GONE_EXIT


def was_gone() -> bool:
    """Whether standard output's reader has left during this command."""
    return _gone


class PipeSafeStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A logging handler for standard output (Hydra's launch lines in a sweep) that, when the output's reader has
    left, stops writing there quietly: logging's own `handleError` printed a traceback on stderr for each line."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            reader_gone()
            return
        super().handleError(record)
