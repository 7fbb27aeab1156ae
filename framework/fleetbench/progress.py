"""Live progress per deployment: a rich display on a terminal, periodic plain lines elsewhere, or nothing."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from fleetbench.types import Lane, Outcome


class ProgressView(Protocol):
    """What the runner reports to while units finish."""

    def start(self, lanes: Sequence[Lane], total: int) -> None: ...
    def unit_done(self, lane: Lane, outcome: Outcome) -> None: ...
    def stop(self) -> None: ...


class NullProgress:
    """Shows nothing (`run.progress=off`)."""

    def start(self, lanes: Sequence[Lane], total: int) -> None:
        return None

    def unit_done(self, lane: Lane, outcome: Outcome) -> None:
        return None

    def stop(self) -> None:
        return None


class RichProgress:
    """One bar for the whole run and one counter per deployment."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._overall: TaskID | None = None
        self._outcomes: Counter[str] = Counter()

    def start(self, lanes: Sequence[Lane], total: int) -> None:
        self._overall = self._progress.add_task("all units", total=total, detail="")
        for deployment in dict.fromkeys(lane.deployment for lane in lanes):
            # A deployment's share is not known in advance (dynamic sharding): count without a total.
            self._tasks[deployment] = self._progress.add_task(f"  {deployment}", total=None, detail="")
        self._progress.start()

    def unit_done(self, lane: Lane, outcome: Outcome) -> None:
        self._outcomes[outcome.value] += 1
        self._progress.advance(self._tasks[lane.deployment])
        if self._overall is not None:
            detail = " ".join(f"{k}={v}" for k, v in sorted(self._outcomes.items()))
            self._progress.update(self._overall, advance=1, detail=detail)

    def stop(self) -> None:
        self._progress.stop()


class PlainProgress:
    """A line every `interval_s` seconds: for logs and non-terminal output."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self._interval = interval_s
        self._done: Counter[str] = Counter()
        self._total = 0
        self._started = self._last = time.monotonic()

    def start(self, lanes: Sequence[Lane], total: int) -> None:
        self._total = total
        self._started = self._last = time.monotonic()

    def unit_done(self, lane: Lane, outcome: Outcome) -> None:
        self._done[lane.deployment] += 1
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._print(now)

    def stop(self) -> None:
        if self._done:
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        lanes = " | ".join(f"{name} {count}" for name, count in self._done.items())
        done = sum(self._done.values())
        print(f"[{now - self._started:7.1f}s] {done}/{self._total} units | {lanes}", file=sys.stderr, flush=True)


def make_progress(mode: str, console: Console) -> ProgressView:
    """`auto` picks rich on a terminal and plain lines otherwise."""
    if mode == "off":
        return NullProgress()
    if mode == "rich" or (mode == "auto" and console.is_terminal):
        return RichProgress(console)
    return PlainProgress()
