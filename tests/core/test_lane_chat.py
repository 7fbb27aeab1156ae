"""The scheduler's pure parts, value by value: backoff bounds, what a failed request records and raises, empty
replies, lane pauses, the judge's lanes, and one worker's loop (timing-heavy behaviour is in test_schedule.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import ClassVar

import pytest

from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import ClaimGone, InfraFailure
from fleetbench.interfaces import Chat, Dispatch, EpisodeContext
from fleetbench.lanes import LaneState, Mode, Pulse, TokenBucket
from fleetbench.schedule import Executor, JudgePool, LaneChat, ModelLanes, backoff_s, run_unit
from fleetbench.testing.fakes import Fault, ScriptedProvider, TinyOptions, TinySuite
from fleetbench.testing.lanes import make_lane
from fleetbench.testing.requests import request_of
from fleetbench.testing.units import make_unit
from fleetbench.types import (
    CallRecord,
    CallStatus,
    Cell,
    Completion,
    DeploymentSpec,
    Episode,
    GenerationSettings,
    ModelSpec,
    Outcome,
    ToolCall,
    Unit,
    UnitResult,
)
from fleetbench.workers import ModelWork, lane_worker

REQUEST = request_of([{"role": "user", "content": "alpha-0-0"}], protocol="tiny")
LANE = make_lane("Model-2", base_model="Model", provider="scripted")
FAST = SchedulerConf(backoff_base_s=0.001, backoff_max_s=0.004)
CELL = Cell("tiny", "Model", (("word", "alpha"),))


def _chat(provider: ScriptedProvider, conf: SchedulerConf = FAST, **kwargs: object) -> LaneChat:
    return LaneChat(LaneState.of(LANE), provider, conf, "k" * 32, "run-1", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 6, 9])
def test_backoff_doubles_per_attempt_up_to_its_cap_with_half_jitter_either_way(attempt: int) -> None:
    conf = SchedulerConf(backoff_base_s=1.0, backoff_max_s=20.0)
    nominal = min(20.0, 2.0 ** (attempt - 1))
    draws = [backoff_s(conf, attempt) for _ in range(400)]
    assert all(0.5 * nominal <= d <= 1.5 * nominal for d in draws)
    assert min(draws) < 0.6 * nominal and max(draws) > 1.4 * nominal, "the jitter spans ±50%"


def test_a_transient_failure_records_the_providers_verdict_and_detail() -> None:
    chat = _chat(ScriptedProvider(script=[Fault(CallStatus.TRANSIENT, http_status=503), "ok"]))
    assert asyncio.run(chat(REQUEST)).text == "ok"
    failed, ok = chat.calls
    assert (failed.status, failed.http_status, failed.error, failed.attempt) == (
        CallStatus.TRANSIENT,
        503,
        "503 transient (scripted)",
        1,
    )
    assert (ok.status, ok.error, ok.attempt, ok.unit_key, ok.run_id) == (CallStatus.OK, None, 2, "k" * 32, "run-1")
    assert (ok.lane_id, ok.deployment, ok.credential_id) == (LANE.lane_id, "Model-2", "key0")


@pytest.mark.parametrize(
    ("fault", "status"),
    [(Fault(CallStatus.AUTH, http_status=401), "auth"), (Fault(CallStatus.PERMANENT, http_status=400), "permanent")],
)
def test_auth_and_permanent_failures_end_the_unit_at_once_with_the_detail(fault: Fault, status: str) -> None:
    chat = _chat(ScriptedProvider(script=[fault, "never asked"]), SchedulerConf(max_attempts=5))
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(REQUEST))
    assert (failure.value.status, failure.value.detail) == (status, f"{fault.http_status} {status} (scripted)")
    assert len(chat.calls) == 1


def test_transient_failures_exhaust_into_retries_exhausted_with_the_last_detail() -> None:
    faults = [Fault(CallStatus.TRANSIENT, http_status=502), Fault(CallStatus.TRANSIENT, http_status=503)]
    chat = _chat(ScriptedProvider(script=faults), SchedulerConf(max_attempts=2, backoff_base_s=0.001))
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(REQUEST))
    assert (failure.value.status, failure.value.detail) == ("retries_exhausted", "503 transient (scripted)")
    assert [c.http_status for c in chat.calls] == [502, 503]


def test_a_timed_out_request_is_not_retried_on_the_same_lane() -> None:
    faults = [Fault(CallStatus.TIMEOUT, http_status=504), "never asked"]
    chat = _chat(ScriptedProvider(script=faults), SchedulerConf(max_attempts=5, backoff_base_s=0.001))
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(REQUEST))
    assert (failure.value.status, failure.value.detail) == ("request_timeout", "504 timeout (scripted)")
    assert [c.status for c in chat.calls] == [CallStatus.TIMEOUT]


def test_a_rate_limit_without_retry_after_pauses_the_lane_for_a_backoff() -> None:
    conf = SchedulerConf(max_attempts=2, backoff_base_s=0.02, backoff_max_s=0.02)
    chat = _chat(ScriptedProvider(script=[Fault(CallStatus.RATE_LIMITED, http_status=429), "ok"]), conf)
    before = time.monotonic()
    assert asyncio.run(chat(REQUEST)).text == "ok"
    pause = chat.state.paused_until - before
    assert 0.01 - 1e-3 <= pause <= 0.03 + 0.5, pause


def test_empty_replies_are_retried_then_end_the_unit() -> None:
    chat = _chat(ScriptedProvider(script=["", "  \n", "ok"]), SchedulerConf(max_attempts=3, backoff_base_s=0.001))
    assert asyncio.run(chat(REQUEST)).text == "ok"
    assert [(c.status, c.error) for c in chat.calls] == [
        (CallStatus.EMPTY, "empty reply"),
        (CallStatus.EMPTY, "empty reply"),
        (CallStatus.OK, None),
    ]
    empty = _chat(ScriptedProvider(script=["", ""]), SchedulerConf(max_attempts=2))
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(empty(REQUEST))
    assert (failure.value.status, failure.value.detail) == ("empty_response", "2 empty replies")


def test_a_reply_with_only_tool_calls_is_not_empty_and_its_tokens_are_recorded() -> None:
    reply = Completion("", tool_calls=(ToolCall("search", "{}", "c1"),), prompt_tokens=7, completion_tokens=3)
    chat = _chat(ScriptedProvider(script=[reply]))
    assert asyncio.run(chat(REQUEST)) is reply
    (call,) = chat.calls
    assert (call.status, call.prompt_tokens, call.completion_tokens) == (CallStatus.OK, 7, 3)


def test_every_request_carries_the_models_generation_settings() -> None:
    provider = ScriptedProvider()
    settings = GenerationSettings(temperature=0.2, max_tokens=64, stop=("\n",))
    asyncio.run(_chat(provider, generation=settings)(REQUEST))
    ((lane, sent),) = provider.requests
    assert lane == LANE
    assert sent.generation == settings and sent.messages == REQUEST.messages


def test_a_lane_keeps_the_later_of_two_pauses_and_ready_waits_it_out() -> None:
    state = LaneState.of(LANE)
    state.pause(0.05)
    later = state.paused_until
    state.pause(0.001)
    assert state.paused_until == later

    async def wait() -> float:
        start = time.monotonic()
        await state.ready()
        return time.monotonic() - start

    assert asyncio.run(wait()) >= 0.04


def test_an_unlimited_bucket_never_waits_and_a_limited_one_has_a_one_second_burst() -> None:
    async def stamps(bucket: TokenBucket, count: int) -> float:
        start = time.monotonic()
        for _ in range(count):
            await bucket.acquire()
        return time.monotonic() - start

    assert asyncio.run(stamps(TokenBucket(None), 10_000)) < 1.0
    assert asyncio.run(stamps(TokenBucket(600), 10)) < 0.05  # 10 per second: the burst holds 10
    assert asyncio.run(stamps(TokenBucket(600), 12)) >= 0.15  # two more wait for refills (0.1 s each)


def test_the_judge_pool_hands_out_its_lanes_round_robin_with_the_judges_settings() -> None:
    states = [LaneState.of(make_lane(f"Judge-{i}", base_model="Judge")) for i in (1, 2, 3)]
    generation = GenerationSettings(temperature=0.0)
    pool = JudgePool(ScriptedProvider(), states, generation)
    calls: list[CallRecord] = []
    chats = [pool.bind(FAST, f"{i:032x}", "run-1", calls) for i in range(4)]
    assert [chat.state for chat in chats] == [states[0], states[1], states[2], states[0]]
    assert all(chat.generation == generation and chat.calls is calls for chat in chats)
    assert [chat.unit_key for chat in chats] == [f"{i:032x}" for i in range(4)]
    asyncio.run(chats[1](REQUEST))
    assert [(c.deployment, c.unit_key, c.run_id) for c in calls] == [("Judge-2", f"{1:032x}", "run-1")]


class _Judged(TinySuite):
    """Asks the judge once per unit, then raises what the suite is told to (or scores as usual)."""

    contexts: ClassVar[list[EpisodeContext]] = []

    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        assert context.judge is not None
        await context.judge(REQUEST)
        _Judged.contexts.append(context)
        if unit.index == 1:
            raise InfraFailure("judge_down", "no verdict")
        return await super().run_episode(unit, chat, context)


def test_run_unit_records_the_units_and_the_judges_calls_and_an_uncaught_infra_failure_as_not_done() -> None:
    model = ModelSpec("Model", "scripted", (DeploymentSpec("Model-2"),), generation=GenerationSettings(seed=3))
    judge = JudgePool(ScriptedProvider(), [LaneState.of(make_lane("Judge", base_model="Judge"))], GenerationSettings())
    answering = ScriptedProvider()
    executor = Executor(_Judged(TinyOptions()), model, answering, FAST, "run-1", judge)
    before = time.time()
    ok, ok_calls = asyncio.run(run_unit(executor, LaneState.of(LANE), make_unit("a" * 32, CELL, 0)))
    assert ok.episode.outcome is Outcome.SUCCESS
    assert (ok.deployment, ok.lane_id, ok.run_id, ok.unit.key) == ("Model-2", LANE.lane_id, "run-1", "a" * 32)
    assert 0 <= ok.duration_s < 5 and before <= ok.started_at <= time.time()
    assert sorted((c.deployment, c.unit_key, c.run_id) for c in ok_calls) == [
        ("Judge", "a" * 32, "run-1"),
        ("Model-2", "a" * 32, "run-1"),
    ]
    assert [request.generation for _, request in answering.requests] == [GenerationSettings(seed=3)]
    context = _Judged.contexts[-1]
    assert (context.model, context.lane_id, context.deployment) == (model, LANE.lane_id, "Model-2")
    failed, failed_calls = asyncio.run(run_unit(executor, LaneState.of(LANE), make_unit("b" * 32, CELL, 1)))
    assert (failed.episode.outcome, failed.episode.infra_status) == (Outcome.INFRA_ERROR, "judge_down")
    assert [c.deployment for c in failed_calls] == ["Judge"]


class _Listed(Dispatch):
    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = list(units)
        self.asked: list[str] = []

    def next_unit(self, lane_id: str) -> Unit | None:
        self.asked.append(lane_id)
        return self.units.pop(0) if self.units else None

    def planned(self, lane_id: str) -> int | None:
        return None


def test_a_worker_runs_units_until_the_dispatch_has_none_and_hands_each_result_over_first() -> None:
    executor = Executor(TinySuite(TinyOptions()), ModelSpec("Model", "scripted", ()), ScriptedProvider(), FAST, "r")
    dispatch = _Listed([make_unit(f"{i:032x}", CELL, i) for i in range(3)])
    handed: list[tuple[int, int]] = []

    async def sink(result: UnitResult, calls: list[CallRecord]) -> None:
        handed.append((result.unit.index, len(dispatch.asked)))

    async def scenario() -> None:
        state, stopping = LaneState.of(LANE), asyncio.Event()
        await lane_worker(executor, ModelWork(dispatch, [state], Pulse(), stopping), state, sink, stopping)

    asyncio.run(scenario())
    assert handed == [(0, 1), (1, 2), (2, 3)], "each result is handed over before the next unit is pulled"
    assert dispatch.asked == [LANE.lane_id] * 4


def test_a_stopping_worker_takes_no_unit() -> None:
    executor = Executor(TinySuite(TinyOptions()), ModelSpec("Model", "scripted", ()), ScriptedProvider(), FAST, "r")
    dispatch = _Listed([make_unit("a" * 32, CELL)])

    async def scenario() -> None:
        stopping = asyncio.Event()
        stopping.set()
        state = LaneState.of(LANE)
        await lane_worker(executor, ModelWork(dispatch, [state], Pulse(), stopping), state, _never, stopping)

    async def _never(result: UnitResult, calls: list[CallRecord]) -> None:
        raise AssertionError("no unit may run")

    asyncio.run(scenario())
    assert dispatch.asked == [] and len(dispatch.units) == 1


class _Stubborn(TinySuite):
    """A suite that catches every failure of its chat and asks again, as a careless third-party suite might."""

    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        for _ in range(3):
            try:
                await chat(REQUEST)
            except InfraFailure:
                continue
        return Episode(Outcome.SUCCESS)


@pytest.mark.parametrize("suite", [TinySuite(TinyOptions()), _Stubborn(TinyOptions())], ids=["tiny", "stubborn"])
def test_a_unit_no_longer_the_runs_own_sends_no_request_and_hands_nothing_over(suite: TinySuite) -> None:
    """Asked when its request has entered the lane, `still_ours` says unit 1 went to another worker: that
    unit reaches neither the API nor the sink, however its suite treats the failure, and its slot is given back."""
    provider, asked = ScriptedProvider(), []

    async def still_ours(unit: Unit) -> bool:
        asked.append(unit.index)
        return unit.index != 1

    model = ModelSpec("Model", "scripted", ())
    executor = Executor(suite, model, provider, FAST, "r", still_ours=still_ours)
    dispatch = _Listed([make_unit(f"{i:032x}", CELL, i) for i in range(3)])
    handed: list[int] = []
    state = LaneState.of(LANE)

    async def sink(result: UnitResult, calls: list[CallRecord]) -> None:
        handed.append(result.unit.index)

    async def scenario() -> None:
        stopping = asyncio.Event()
        await lane_worker(executor, ModelWork(dispatch, [state], Pulse(), stopping), state, sink, stopping)

    asyncio.run(scenario())
    per_unit = 3 if isinstance(suite, _Stubborn) else 1
    # Asked before every request (a stopped worker's request timed out in flight must not be sent again either);
    # unit 1 only once: its episode fails at once from then on, without asking or sending.
    assert asked == [0] * per_unit + [1] + [2] * per_unit
    assert handed == [0, 2]
    assert len(provider.requests) == 2 * per_unit, "unit 1 sent nothing, even asked three times"
    assert state.slots.in_use == 0, "every slot given back"


def test_a_unit_whose_lane_was_lost_before_it_sent_anything_asks_again_on_its_next_lane() -> None:
    """The unit waited to enter a lane that is parked meanwhile (`enter` raises before `still_ours` is asked): the
    episode starts again on another lane, and there, before its first request, it asks. An attacker found it ran a
    unit another worker had finished: only the first try used to ask."""
    provider, asked = ScriptedProvider(), []

    async def still_ours(unit: Unit) -> bool:
        asked.append(unit.index)
        return False

    parked, other = LaneState.of(LANE), LaneState.of(make_lane("Model-3", base_model="Model", provider="scripted"))
    parked.breaker.mode, parked.breaker.parked_until = Mode.PARKED, time.monotonic() + 60

    async def scenario() -> None:
        lanes = ModelLanes([parked, other], Pulse(), asyncio.Event())
        model = ModelSpec("Model", "scripted", ())
        executor = Executor(TinySuite(TinyOptions()), model, provider, FAST, "r", lanes=lanes, still_ours=still_ours)
        with pytest.raises(ClaimGone):
            await run_unit(executor, parked, make_unit("a" * 32, CELL))

    asyncio.run(scenario())
    assert asked == [0], "asked on the second lane, the first request's"
    assert provider.requests == []


# --- limits on a hand-moved clock ---------------------------------------------------------------------------------


class HandClock:
    """Stands in for the `time` module and `asyncio.sleep` inside `fleetbench.lanes`: time moves only when the
    scheduler sleeps, by exactly what it asked for, so waits can be checked to the last digit."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 9))
        if len(self.sleeps) > 50:
            raise AssertionError(f"the scheduler keeps sleeping: {self.sleeps[:5]}...")
        self.now += seconds


class _AsyncioWithClock:
    def __init__(self, clock: HandClock) -> None:
        self.sleep = clock.sleep

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> HandClock:
    from fleetbench import lanes

    hand = HandClock()
    monkeypatch.setattr(lanes, "time", hand)
    monkeypatch.setattr(lanes, "asyncio", _AsyncioWithClock(hand))
    return hand


def _acquire(bucket: TokenBucket, count: int) -> None:
    async def take() -> None:
        for _ in range(count):
            await bucket.acquire()

    asyncio.run(take())


def test_a_bucket_holds_one_seconds_worth_of_requests_then_waits_exactly_for_each_token(clock: HandClock) -> None:
    _acquire(TokenBucket(600), 10)  # 10 per second: the burst
    assert clock.sleeps == []
    _acquire(TokenBucket(600), 12)
    assert clock.sleeps == [0.1, 0.1]


def test_a_bucket_waits_only_for_the_part_of_a_token_still_missing(clock: HandClock) -> None:
    bucket = TokenBucket(600)
    _acquire(bucket, 10)
    clock.now += 0.05  # half a token has come back
    _acquire(bucket, 1)
    assert clock.sleeps == [0.05]


def test_a_slow_bucket_still_allows_one_request_at_once(clock: HandClock) -> None:
    _acquire(TokenBucket(30), 2)  # one every two seconds; a burst of at least one
    assert clock.sleeps == [2.0]


def test_a_lane_state_limits_by_its_lanes_rpm(clock: HandClock) -> None:
    state = LaneState.of(make_lane("Model-2", rpm=60.0, max_concurrency=3))

    async def ready_twice() -> None:
        await state.ready()
        await state.ready()

    asyncio.run(ready_twice())
    assert clock.sleeps == [1.0]


def test_ready_waits_out_a_pause_exactly_once(clock: HandClock) -> None:
    state = LaneState.of(LANE)
    state.pause(2.5)
    asyncio.run(state.ready())
    assert clock.sleeps == [2.5]


def test_one_attempt_allowed_sends_once_and_gives_the_lane_up_with_the_detail() -> None:
    provider = ScriptedProvider(script=[Fault(CallStatus.TRANSIENT, http_status=503), "never asked"])
    chat = _chat(provider, SchedulerConf(max_attempts=1))
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(REQUEST))
    assert (failure.value.status, failure.value.detail) == ("retries_exhausted", "503 transient (scripted)")
    assert len(provider.requests) == 1 and [c.attempt for c in chat.calls] == [1]
    assert chat.lost is failure.value, "the chat remembers the loss so the episode can start again elsewhere"


def test_a_request_timeout_records_the_attempt_and_names_the_limit() -> None:
    chat = _chat(ScriptedProvider(latency_s=1.0), SchedulerConf(request_timeout_s=0.02, max_attempts=3))
    with pytest.raises(InfraFailure) as failure:
        asyncio.run(chat(REQUEST))
    assert (failure.value.status, failure.value.detail) == ("request_timeout", "no reply within 0.02s")
    assert [(c.attempt, c.status, c.error, c.prompt_tokens) for c in chat.calls] == [
        (1, CallStatus.TIMEOUT, "no reply within 0.02s", 0)
    ]


def test_calls_record_when_they_started_how_long_they_took_and_the_tokens_of_empty_replies() -> None:
    empty = Completion("", prompt_tokens=5, completion_tokens=1)
    chat = _chat(ScriptedProvider(script=[empty, Fault(CallStatus.TRANSIENT), "ok"], latency_s=0.01))
    before = time.time()
    asyncio.run(chat(REQUEST))
    after = time.time()
    assert [(c.attempt, c.status, c.prompt_tokens, c.completion_tokens) for c in chat.calls] == [
        (1, CallStatus.EMPTY, 5, 1),
        (2, CallStatus.TRANSIENT, 0, 0),
        (3, CallStatus.OK, 1, 1),
    ]
    assert all(before <= c.started_at <= after for c in chat.calls)
    assert all(0.005 <= c.latency_s < after - before for c in chat.calls)
    assert chat.calls[0].started_at < chat.calls[1].started_at < chat.calls[2].started_at
