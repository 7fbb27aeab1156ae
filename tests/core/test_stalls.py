"""A worker that stands still (stopped, starved) does not blame its lanes for the requests that failed meanwhile:
`fleetbench.stalls.StallWatch` measures the stall, `LaneChat` sends such a request again on its lane, and a whole
`fleetbench run` stopped with SIGSTOP past its requests' timeout finishes every unit without parking a lane."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import LaneLost
from fleetbench.lanes import LaneState, Mode
from fleetbench.schedule import LaneChat
from fleetbench.stalls import StallWatch
from fleetbench.testing.fakes import Fault, ScriptedProvider
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.requests import request_of
from fleetbench.types import CallStatus, Completion, Lane, Request
from tests.conftest import CLI, cli_env

T = TypeVar("T")
REQUEST = request_of([{"role": "user", "content": "alpha-0-0"}], protocol="tiny")
LANE = make_lane("Model-2", base_model="Model", provider="scripted")


async def _watched(body: Callable[[StallWatch], Awaitable[T]]) -> T:
    """`body` run while a watch ticks on the loop."""
    stalls = StallWatch()
    watching = asyncio.ensure_future(stalls.watch())
    await asyncio.sleep(0.15)
    try:
        return await body(stalls)
    finally:
        watching.cancel()


def test_the_watch_measures_a_held_loop_and_nothing_else() -> None:
    async def body(stalls: StallWatch) -> tuple[float, float, float]:
        started = time.monotonic()
        await asyncio.sleep(0.3)
        calm = time.monotonic()
        time.sleep(1.0)  # the loop held, as a stopped process's
        held = time.monotonic()
        await asyncio.sleep(0.3)
        return (
            stalls.stood_still(started, calm),
            stalls.stood_still(calm, held),
            stalls.stood_still(held + 0.05, held + 0.3),
        )

    before, during, after = asyncio.run(_watched(body))
    assert before == 0.0 and after == 0.0
    assert 0.8 <= during <= 1.0


def test_a_stall_the_watch_has_not_ticked_since_counts_already() -> None:
    """A continued process's timeouts may fire before the watch's next tick: the stall counts all the same."""

    async def body(stalls: StallWatch) -> float:
        started = time.monotonic()
        time.sleep(0.9)
        return stalls.stood_still(started, time.monotonic())

    assert asyncio.run(_watched(body)) >= 0.7


def test_a_watch_that_does_not_run_sees_no_stall() -> None:
    stalls = StallWatch()
    time.sleep(0.7)
    assert stalls.stood_still(time.monotonic() - 0.7, time.monotonic()) == 0.0


class _HeldOnce(ScriptedProvider):
    """Holds the event loop (a stand-in for a stopped process) during its first request, which then fails as the
    script says: a timeout past `request_timeout_s`, or the script's fault."""

    def __init__(self, hold_s: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._hold_s = hold_s

    async def complete(self, lane: Lane, request: Request) -> Completion:
        if self._hold_s:
            hold, self._hold_s = self._hold_s, 0.0
            time.sleep(hold)
            await asyncio.sleep(0.05)  # the request's timeout, past by now, fires here
        return await super().complete(lane, request)


async def _ask(provider: ScriptedProvider, conf: SchedulerConf, stalls: StallWatch) -> tuple[LaneChat, object]:
    chat = LaneChat(LaneState.of(LANE, conf, stalls=stalls), provider, conf, "k" * 32, "run-1")
    try:
        return chat, await chat(REQUEST)
    except LaneLost as lost:
        return chat, lost


@pytest.mark.parametrize(
    ("script", "timeout_s"),
    [([], 0.5), ([Fault(CallStatus.TRANSIENT, http_status=503)], 5.0), ([Fault(CallStatus.UNREACHABLE)], 5.0)],
)
def test_a_request_that_failed_while_the_worker_stood_still_is_sent_again_on_its_lane(
    script: list[Fault], timeout_s: float
) -> None:
    """Held for 1 s against a 0.5 s timeout (or failing as a server that closed the silent connection would): the
    second attempt on the same lane answers, the lane's breaker counts nothing, its tallies show the answer only."""
    conf = SchedulerConf(request_timeout_s=timeout_s, breaker_failures=1, backoff_base_s=5.0)
    provider = _HeldOnce(1.0, script=script)
    chat, answer = asyncio.run(_watched(lambda stalls: _ask(provider, conf, stalls)))
    assert isinstance(answer, Completion), answer
    first, second = chat.calls
    assert first.status is (script[0].status if script else CallStatus.TIMEOUT)
    assert first.error is not None and "this worker stood still" in first.error
    assert (second.status, second.attempt) == (CallStatus.OK, 2)
    state = chat.state
    assert state.breaker.mode is Mode.ACTIVE and state.breaker.consecutive == 0
    assert dict(state.statuses) == {CallStatus.OK: 1}


def test_a_request_that_timed_out_while_the_worker_ran_still_costs_the_lane() -> None:
    """The watch excuses only the stall: held during its first attempt, a request to an endpoint that hangs is sent
    again once, and that attempt's timeout gives the lane up as before."""
    conf = SchedulerConf(request_timeout_s=0.5)
    provider = _HeldOnce(0.7, latency_s=2.0)
    chat, answer = asyncio.run(_watched(lambda stalls: _ask(provider, conf, stalls)))
    assert isinstance(answer, LaneLost) and answer.status == "request_timeout"
    assert [call.status for call in chat.calls] == [CallStatus.TIMEOUT, CallStatus.TIMEOUT]
    excused, counted = (call.error or "" for call in chat.calls)
    assert "stood still" in excused and "stood still" not in counted
    assert dict(chat.state.statuses) == {CallStatus.TIMEOUT: 1}


class _HeldAlways(ScriptedProvider):
    """Holds the event loop during every request, which then times out: a worker that keeps standing still."""

    def __init__(self, hold_s: float) -> None:
        super().__init__(latency_s=5.0)
        self._hold_s = hold_s

    async def complete(self, lane: Lane, request: Request) -> Completion:
        time.sleep(self._hold_s)
        return await super().complete(lane, request)


def test_only_one_attempt_of_a_request_is_excused() -> None:
    """Stalls that keep recurring must not hide an endpoint that never answers: the second timeout counts."""
    conf = SchedulerConf(request_timeout_s=0.5)
    chat, answer = asyncio.run(_watched(lambda stalls: _ask(_HeldAlways(0.8), conf, stalls)))
    assert isinstance(answer, LaneLost) and answer.status == "request_timeout"
    excused, counted = (call.error or "" for call in chat.calls)
    assert "stood still" in excused and "stood still" not in counted
    assert dict(chat.state.statuses) == {CallStatus.TIMEOUT: 1}


def test_a_stall_short_beside_the_timeout_excuses_nothing() -> None:
    """Held 0.7 s of a 4 s timeout (less than a quarter): the endpoint had the rest of the time and never answered
    (an attacker's 0.8 s stops every 2 s kept a hung deployment from ever being parked)."""
    conf = SchedulerConf(request_timeout_s=4.0)
    chat, answer = asyncio.run(_watched(lambda stalls: _ask(_HeldOnce(0.7, latency_s=10.0), conf, stalls)))
    assert isinstance(answer, LaneLost) and answer.status == "request_timeout"
    assert [call.status for call in chat.calls] == [CallStatus.TIMEOUT]
    assert "stood still" not in (chat.calls[0].error or "")
    assert dict(chat.state.statuses) == {CallStatus.TIMEOUT: 1}


def test_a_run_stopped_past_its_requests_timeout_parks_no_lane_and_finishes_every_unit(tmp_path: Path) -> None:
    """Requests take 0.8 s and time out after 1.5 s; the run is stopped (SIGSTOP) for 3 s once its first unit is
    stored. Continued, it sends the requests that timed out again on their lanes: no lane parked (a resumed worker's
    lanes all went to their breakers' cool-down), no episode restarted elsewhere, every unit done once."""
    db = tmp_path / "stall.db"
    slow = [f"models.sim_agent.deployments.{i}.params.latency_ms=800" for i in range(3)]
    overrides = [f"storage.url=sqlite:///{db}", "run.instances=40", "suite.items=cycle", "run.progress=off", *slow]
    overrides += ["scheduler.request_timeout_s=1.5", "scheduler.breaker_failures=3"]
    worker = subprocess.Popen([*CLI, "run", *overrides], cwd=tmp_path, env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _count(db, "select count(*) from units") == 0:
            assert worker.poll() is None and time.monotonic() < deadline, "the run stored no unit"
            time.sleep(0.05)
        worker.send_signal(signal.SIGSTOP)
        time.sleep(3)
    finally:
        worker.send_signal(signal.SIGCONT)
    _, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err[-2000:]
    log = (tmp_path / "outputs").glob("**/fleetbench.log")
    logged = "\n".join(path.read_text() for path in log)
    assert "parked for" not in err + logged
    assert logged.count("parked 0 times; 0 episodes lost there") == 3, "each lane's summary: never parked"
    assert "this worker stood still" in logged
    assert _count(db, "select count(*) from units") == 200
    assert _count(db, "select count(distinct unit_key) from units where outcome != 'infra_error'") == 200
    sent_again = _count(db, "select count(*) from calls where error like '%this worker stood still%'")
    assert sent_again >= 3, "the stop caught requests in flight: the test would show nothing"
    lanes_per_unit = (
        "select count(*) from (select unit_key from calls group by unit_key having count(distinct lane_id) > 1)"
    )
    assert _count(db, lanes_per_unit) == 0, "an episode restarted on another lane"


def _count(db: Path, statement: str) -> int:
    if not db.exists():
        return 0
    connection = sqlite3.connect(db)
    try:
        return int(connection.execute(statement).fetchone()[0])
    except sqlite3.OperationalError:  # the run has not created its tables yet
        return 0
    finally:
        connection.close()
