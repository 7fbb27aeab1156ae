"""Live progress per deployment: a rich display on a terminal, periodic plain lines elsewhere, or nothing.

Both views show the same figures (`Tally`): for the run and for each deployment, units done / planned, the rate
(units per second since the start), the ETA at that rate, and the outcomes so far. A deployment with a static share
(`even`, `weighted`) knows its planned units; under a shared queue (`dynamic`) its share is estimated as its part of
what its model has done so far applied to what the model has left, shown as `~N` (`?` until the model finished one).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from fleetbench.types import Lane, Outcome


class ProgressView(Protocol):
    """What the runner reports to while units finish."""

    def start(
        self,
        lanes: Sequence[Lane],
        total: int,
        planned: Mapping[str, int | None] | None = None,
        per_model: Mapping[str, int] | None = None,
    ) -> None: ...
    def unit_done(self, lane: Lane, outcome: Outcome) -> None: ...
    def tick(self) -> None:
        """Called about once a second while the run goes: the view refreshes what time changes (rate, ETA), so a
        run whose lanes all wait (parked, throttled, retrying) still shows that it is alive."""
        ...

    def stop(self) -> None: ...


class NullProgress:
    """Shows nothing (`run.progress=off`)."""

    def start(
        self,
        lanes: Sequence[Lane],
        total: int,
        planned: Mapping[str, int | None] | None = None,
        per_model: Mapping[str, int] | None = None,
    ) -> None:
        return None

    def unit_done(self, lane: Lane, outcome: Outcome) -> None:
        return None

    def tick(self) -> None:
        return None

    def stop(self) -> None:
        return None


class Tally:
    """The counts behind both views (see the module docstring).

    `planned` maps a deployment to its static share, or None when it pulls from its model's shared queue;
    `per_model` gives each base model's units to run (by default every model shares `total`).
    """

    def __init__(
        self,
        lanes: Sequence[Lane],
        total: int,
        planned: Mapping[str, int | None] | None = None,
        per_model: Mapping[str, int] | None = None,
    ) -> None:
        self.total = total
        self.started = time.monotonic()
        self.model_of = {lane.deployment: lane.base_model for lane in lanes}
        self.deployments = list(self.model_of)
        self.planned = {d: (planned or {}).get(d) for d in self.deployments}
        self.per_model = dict(per_model or {m: total for m in self.model_of.values()})
        self.done: Counter[str] = Counter()
        self.outcomes: dict[str, Counter[str]] = {d: Counter() for d in self.deployments}

    def add(self, lane: Lane, outcome: Outcome) -> None:
        self.done[lane.deployment] += 1
        self.outcomes.setdefault(lane.deployment, Counter())[outcome.value] += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def overall(self) -> str:
        """`done/total units rate ETA outcomes` for the whole run."""
        done = sum(self.done.values())
        outcomes: Counter[str] = sum(self.outcomes.values(), Counter())
        return f"{done}/{self.total} units {self._pace(done, self.total)}{_outcomes(outcomes)}"

    def share(self, deployment: str) -> int | None:
        """The deployment's planned units: its static share, else the estimate (None before its model did one)."""
        planned = self.planned.get(deployment)
        if planned is not None:
            return planned
        model = self.model_of.get(deployment)
        model_done = sum(n for d, n in self.done.items() if self.model_of.get(d) == model)
        if not model_done:
            return None
        left = max(0, self.per_model.get(str(model), self.total) - model_done)
        done = self.done[deployment]
        return done + round(left * done / model_done)

    def deployment(self, deployment: str) -> str:
        """`done/planned rate ETA outcomes` for one deployment (planned may be an estimate `~N`, or `?`)."""
        done, share = self.done[deployment], self.share(deployment)
        shown = "?" if share is None else f"{'' if self.planned.get(deployment) is not None else '~'}{share}"
        return f"{done}/{shown} {self._pace(done, share)}{_outcomes(self.outcomes[deployment])}"

    def _pace(self, done: int, planned: int | None) -> str:
        elapsed = self.elapsed()
        rate = done / elapsed if elapsed > 0 else 0.0
        if planned is None or not rate:
            return f"{rate:.1f}/s ETA ?"
        return f"{rate:.1f}/s ETA {_duration(max(0, planned - done) / rate)}"


def _outcomes(counts: Counter[str]) -> str:
    return "".join(f" {k}={v}" for k, v in sorted(counts.items()))


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class RichProgress:
    """One bar for the whole run and one per deployment, each with done/planned, rate, ETA and outcomes."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._overall: TaskID | None = None
        self._tally: Tally | None = None

    def start(
        self,
        lanes: Sequence[Lane],
        total: int,
        planned: Mapping[str, int | None] | None = None,
        per_model: Mapping[str, int] | None = None,
    ) -> None:
        tally = self._tally = Tally(lanes, total, planned, per_model)
        self._overall = self._progress.add_task("all units", total=total, detail=tally.overall())
        for deployment in tally.deployments:
            share = tally.planned[deployment]
            self._tasks[deployment] = self._progress.add_task(
                f"  {deployment}", total=share, detail=tally.deployment(deployment)
            )
        self._progress.start()

    def unit_done(self, lane: Lane, outcome: Outcome) -> None:
        tally = self._tally
        if tally is None or self._overall is None:
            return
        tally.add(lane, outcome)
        self._refresh(tally, self._overall)

    def tick(self) -> None:
        if self._tally is not None and self._overall is not None:
            self._refresh(self._tally, self._overall)

    def _refresh(self, tally: Tally, overall: TaskID) -> None:
        self._progress.update(overall, completed=sum(tally.done.values()), detail=tally.overall())
        # Estimates of the other deployments of a shared queue move with every unit of their model.
        for deployment, task in self._tasks.items():
            self._progress.update(
                task,
                completed=tally.done[deployment],
                total=tally.share(deployment),
                detail=tally.deployment(deployment),
            )

    def stop(self) -> None:
        self._progress.stop()


class PlainProgress:
    """A line every `interval_s` seconds (at a unit's end or at a tick): for logs and non-terminal output."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self._interval = interval_s
        self._tally: Tally | None = None
        self._last = time.monotonic()
        self._shown = 0
        """Units done as of the last line printed: `stop` does not print the same count again."""

    def start(
        self,
        lanes: Sequence[Lane],
        total: int,
        planned: Mapping[str, int | None] | None = None,
        per_model: Mapping[str, int] | None = None,
    ) -> None:
        self._tally = Tally(lanes, total, planned, per_model)
        self._last = time.monotonic()

    def unit_done(self, lane: Lane, outcome: Outcome) -> None:
        if self._tally is None:
            return
        self._tally.add(lane, outcome)
        self.tick()

    def tick(self) -> None:
        """A line once `interval_s` has passed since the last, whether units finished meanwhile or not."""
        now = time.monotonic()
        if self._tally is not None and now - self._last >= self._interval:
            self._last = now
            self._print()

    def stop(self) -> None:
        if self._tally is not None and sum(self._tally.done.values()) != self._shown:
            self._print()

    def _print(self) -> None:
        tally = self._tally
        assert tally is not None
        self._shown = sum(tally.done.values())
        # Every deployment, those with nothing done too: a parked or refused lane is what a reader looks for.
        lanes = "".join(f" | {d} {tally.deployment(d)}" for d in tally.deployments)
        print(f"[{tally.elapsed():7.1f}s] {tally.overall()}{lanes}", file=sys.stderr, flush=True)


def make_progress(mode: str, console: Console) -> ProgressView:
    """`auto` picks rich on a terminal and plain lines otherwise."""
    if mode == "off":
        return NullProgress()
    if mode == "rich" or (mode == "auto" and console.is_terminal):
        return RichProgress(console)
    return PlainProgress()
