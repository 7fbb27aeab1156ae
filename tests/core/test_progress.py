"""Live progress (`fleetbench.progress`): which view each `run.progress` mode picks, the plain lines (for logs) and the
rich display (for terminals), per deployment."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from fleetbench import progress as progress_module
from fleetbench.progress import NullProgress, PlainProgress, RichProgress, make_progress
from fleetbench.testing.lanes import make_lane
from fleetbench.types import Outcome

A1 = make_lane("Dep-A", base_model="Model", credential_id="key0")
A2 = make_lane("Dep-A", base_model="Model", credential_id="key1")  # a second key of the same deployment
B = make_lane("Dep-B", base_model="Model")


def _console(terminal: bool) -> Console:
    return Console(file=io.StringIO(), force_terminal=terminal, width=120, color_system=None)


@pytest.mark.parametrize(
    ("mode", "terminal", "view"),
    [
        ("off", True, NullProgress),
        ("off", False, NullProgress),
        ("rich", False, RichProgress),
        ("rich", True, RichProgress),
        ("plain", True, PlainProgress),
        ("plain", False, PlainProgress),
        ("auto", True, RichProgress),
        ("auto", False, PlainProgress),
    ],
)
def test_each_mode_picks_its_view(mode: str, terminal: bool, view: type) -> None:
    assert type(make_progress(mode, _console(terminal))) is view


LINE = re.compile(r"^\[ +\d+\.\ds\] (?P<rest>.*)$")


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = []
    for line in captured.err.splitlines():
        match = LINE.match(line)
        assert match, f"not a progress line: {line!r}"
        lines.append(match["rest"])
    return lines


def test_plain_lines_count_units_per_deployment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_module, "time", clock)
    progress = PlainProgress(interval_s=0.0)
    progress.start([A1, A2, B], total=4)
    for lane in (A1, B, A2):
        clock.now += 2.0
        progress.unit_done(lane, Outcome.SUCCESS)
    progress.stop()
    assert _lines(capsys) == [
        "1/4 units 0.5/s ETA 0:00:06 success=1 | Dep-A 1/~4 0.5/s ETA 0:00:06 success=1 | Dep-B 0/~0 0.0/s ETA ?",
        "2/4 units 0.5/s ETA 0:00:04 success=2 | Dep-A 1/~2 0.2/s ETA 0:00:04 success=1"
        " | Dep-B 1/~2 0.2/s ETA 0:00:04 success=1",
        "3/4 units 0.5/s ETA 0:00:02 success=3 | Dep-A 2/~3 0.3/s ETA 0:00:03 success=2"
        " | Dep-B 1/~1 0.2/s ETA 0:00:00 success=1",
    ], "stop prints no second line for a count already shown"


def test_static_shares_are_shown_as_planned_and_models_estimate_apart(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_module, "time", clock)
    other = make_lane("Other", base_model="Other-Model")
    progress = PlainProgress(interval_s=3600.0)
    progress.start([A1, B, other], total=12, planned={"Dep-A": 3, "Dep-B": 5, "Other": None}, per_model={
        "Model": 8, "Other-Model": 4})  # fmt: skip
    clock.now += 10.0
    progress.unit_done(A1, Outcome.FAILURE)
    progress.unit_done(other, Outcome.SUCCESS)
    progress.stop()
    assert _lines(capsys) == [
        "2/12 units 0.2/s ETA 0:00:50 failure=1 success=1 | Dep-A 1/3 0.1/s ETA 0:00:20 failure=1"
        " | Dep-B 0/5 0.0/s ETA ? | Other 1/~4 0.1/s ETA 0:00:30 success=1"
    ]


def test_plain_lines_wait_for_their_interval_and_stop_prints_the_last_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = PlainProgress(interval_s=3600.0)
    progress.start([A1, B], total=2)
    progress.unit_done(A1, Outcome.FAILURE)
    progress.unit_done(B, Outcome.INFRA_ERROR)
    assert _lines(capsys) == []
    progress.stop()
    [line] = _lines(capsys)
    assert re.fullmatch(
        r"2/2 units [\d.]+/s ETA [\d:?]+ failure=1 infra_error=1 \| Dep-A 1/~1 [\d.]+/s ETA [\d:?]+ failure=1"
        r" \| Dep-B 1/~1 [\d.]+/s ETA [\d:?]+ infra_error=1",
        line,
    ), line


def test_plain_lines_go_on_at_their_interval_while_no_unit_finishes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every lane parked or throttled: no unit ends for minutes, and the ticks still print the run's state, every
    deployment with it, its rate falling."""
    clock = Clock()
    monkeypatch.setattr(progress_module, "time", clock)
    progress = PlainProgress(interval_s=5.0)
    progress.start([A1, B], total=4, planned={"Dep-A": 2, "Dep-B": 2})
    clock.now += 2.0
    progress.unit_done(A1, Outcome.SUCCESS)
    for _ in range(12):
        clock.now += 1.0
        progress.tick()
    progress.stop()
    assert _lines(capsys) == [
        "1/4 units 0.2/s ETA 0:00:15 success=1 | Dep-A 1/2 0.2/s ETA 0:00:05 success=1 | Dep-B 0/2 0.0/s ETA ?",
        "1/4 units 0.1/s ETA 0:00:30 success=1 | Dep-A 1/2 0.1/s ETA 0:00:10 success=1 | Dep-B 0/2 0.0/s ETA ?",
    ], "a line at 5 s and at 10 s; stop prints no third one for a count already shown"


def test_plain_progress_prints_nothing_when_nothing_finished(capsys: pytest.CaptureFixture[str]) -> None:
    progress = PlainProgress(interval_s=0.0)
    progress.start([A1], total=5)
    progress.stop()
    assert _lines(capsys) == []


def test_the_null_view_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    progress = NullProgress()
    progress.start([A1], total=1)
    progress.unit_done(A1, Outcome.SUCCESS)
    progress.stop()
    assert capsys.readouterr() == ("", "")


def test_the_rich_view_shows_the_run_and_each_deployment_once_with_outcomes() -> None:
    console = _console(True)
    progress = RichProgress(console)
    progress.start([A1, A2, B], total=4)
    for lane, outcome in ((A1, Outcome.SUCCESS), (A2, Outcome.FAILURE), (B, Outcome.SUCCESS)):
        progress.unit_done(lane, outcome)
    progress.stop()
    assert isinstance(console.file, io.StringIO)
    output = console.file.getvalue()
    assert re.search(r"0:00:\d\d\n\x1b\[\?25h$", output), "the last frame stays on screen (not transient)"
    first = output.removeprefix("\x1b[?25l").split("\r")[0].splitlines()
    assert re.fullmatch(r"all units {20}\s+0/4 units 0\.0/s ETA \? +0:00:\d\d", first[0]), first[0]
    assert re.fullmatch(r"  Dep-A {22}━+ 0/\? 0\.0/s ETA \? +0:00:\d\d", first[1]), first[1]
    final = output.rsplit("\x1b[2K", 1)[1].removesuffix("\x1b[?25h").splitlines()
    assert len(final) == 3
    overall, dep_a, dep_b = final
    assert re.fullmatch(r"all units {20}━+╸? +3/4 units [\d.]+/s ETA [\d:]+ failure=1 success=2 +0:00:\d\d", overall), (
        overall
    )
    assert re.fullmatch(r"  Dep-A {22}━+╸? +2/~3 [\d.]+/s ETA [\d:]+ failure=1 success=1 +0:00:\d\d", dep_a), dep_a
    assert re.fullmatch(r"  Dep-B {22}━+╸? +1/~1 [\d.]+/s ETA [\d:]+ success=1 +0:00:\d\d", dep_b), dep_b


def test_make_progress_draws_on_the_console_it_is_given() -> None:
    console = _console(True)
    progress = make_progress("rich", console)
    progress.start([A1], total=1)
    progress.unit_done(A1, Outcome.SUCCESS)
    progress.stop()
    assert isinstance(console.file, io.StringIO)
    assert "all units" in console.file.getvalue()


class Clock:
    """A clock the test moves by hand (the plain view prints every `interval_s` of it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_plain_lines_come_every_five_seconds_by_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_module, "time", clock)
    progress = PlainProgress()
    progress.start([A1], total=9)
    for elapsed in (1.0, 4.9, 5.0, 9.9, 10.0):
        clock.now = 100.0 + elapsed
        progress.unit_done(A1, Outcome.SUCCESS)
    assert capsys.readouterr().err.splitlines() == [
        "[    5.0s] 3/9 units 0.6/s ETA 0:00:10 success=3 | Dep-A 3/~9 0.6/s ETA 0:00:10 success=3",
        "[   10.0s] 5/9 units 0.5/s ETA 0:00:08 success=5 | Dep-A 5/~9 0.5/s ETA 0:00:08 success=5",
    ]


def test_a_rich_tick_refreshes_rates_while_no_unit_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress_module, "time", clock)
    console = _console(True)
    progress = RichProgress(console)
    progress.start([A1, B], total=4, planned={"Dep-A": 2, "Dep-B": 2})
    clock.now += 2.0
    progress.unit_done(A1, Outcome.SUCCESS)
    clock.now += 18.0
    progress.tick()
    progress.stop()
    assert isinstance(console.file, io.StringIO)
    final = console.file.getvalue().rsplit("\x1b[2K", 1)[1].splitlines()
    assert "1/4 units 0.1/s ETA 0:01:00 success=1" in final[0], final[0]
    assert "0/2 0.0/s ETA ?" in final[2], final[2]
