"""The requests of one episode on one lane, and the episode itself: timeouts, retries, restarts on lane loss.

Every LLM request of an episode goes through the lane's `LaneChat`, which enters the lane (`lanes.LaneState`: its
adaptive concurrency, Retry-After pause, token bucket — per request, not per task: the original throttled per task
and multi-turn bursts broke provider limits — and circuit breaker), applies the request timeout, and retries what the
provider classifies as transient, unreachable or rate limited. A 429 pauses the whole lane for its Retry-After and
does not use up one of the request's `max_attempts` (it has its own budget, `max_rate_limited`).

An episode keeps its lane for all its turns. When the lane cannot carry it on (parked or stopped meanwhile, a request
timed out, retries used up), `run_unit` starts the episode again from its first turn on a healthy lane of the same
base model, up to `max_restarts` times, and records which lanes it used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import ClaimGone, InfraFailure, LaneLost
from fleetbench.interfaces import EpisodeContext, Provider, Suite
from fleetbench.lanes import BREAKER_STATUSES, STOP_STATUSES, LaneState, Mode, Pulse
from fleetbench.limits import TOKENS_MAX
from fleetbench.stalls import TIMEOUT_SHARE
from fleetbench.types import (
    CallRecord,
    CallStatus,
    Completion,
    Episode,
    ErrorClass,
    GenerationSettings,
    ModelSpec,
    Outcome,
    Request,
    Unit,
    UnitResult,
)

_jitter = random.Random()

PROGRAMMING_ERRORS = (ImportError, NameError, AttributeError, TypeError, AssertionError, SyntaxError)
"""Exceptions that mean a bug, never an API outcome: they propagate and stop the run loudly."""

REQUEST_FAULTS = frozenset({CallStatus.PERMANENT, CallStatus.CONTEXT_LENGTH})
"""Failures of the request itself: no other attempt or lane would answer it differently."""


@dataclass(frozen=True)
class _StoodStill:
    """A failed request that the worker's own standing still explains (see `fleetbench.stalls`): it is sent again on
    its lane, and neither its breaker nor its tallies count it."""

    verdict: ErrorClass


def backoff_s(conf: SchedulerConf, attempt: int) -> float:
    """Exponential backoff with ±50% jitter, capped."""
    return float(min(conf.backoff_max_s, conf.backoff_base_s * 2 ** (attempt - 1)) * _jitter.uniform(0.5, 1.5))


@dataclass
class LaneChat:
    """The `Chat` a suite gets for one unit on one lane. Records every request in `calls`."""

    state: LaneState
    provider: Provider
    conf: SchedulerConf
    unit_key: str
    run_id: str
    calls: list[CallRecord] = field(default_factory=list)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    """The lane's model's generation settings, added to every request (suites never set them)."""
    lost: LaneLost | None = None
    """Set when this chat gave up because its lane could not carry the episode on (see `run_unit`)."""
    still_ours: Callable[[], Awaitable[bool]] | None = None
    """Asked before every request, once it has entered the lane: is the unit still this run's? (See `Executor`.)"""
    gone: bool = False
    """Set when `still_ours` said no: every request of the episode then fails at once, without reaching the API."""
    room_elsewhere: Callable[[], bool] | None = None
    """Whether another lane of the model could take the episode now (None: it may not move). Asked after a 429 while
    nothing of the episode has been answered here (see `_recover`)."""
    _answered: bool = field(default=False, init=False, repr=False)
    _started: float = field(default=0.0, init=False, repr=False)
    _clock: float = field(default=0.0, init=False, repr=False)

    async def __call__(self, request: Request) -> Completion:
        if self.gone:  # a suite that caught the first ClaimGone and asks again
            raise ClaimGone()
        request = dataclasses.replace(request, generation=self.generation)
        try:
            return await self._complete(request)
        except LaneLost as lost:
            self.lost = lost
            raise

    async def _complete(self, request: Request) -> Completion:
        failed = limited = attempt = 0
        excused = False
        while True:
            attempt += 1
            # One attempt of a request may be excused: stalls that keep recurring must not hide a failing endpoint.
            outcome = await self._attempt(request, attempt, may_excuse=not excused)
            if isinstance(outcome, Completion):
                self._answered = True
                return outcome
            if isinstance(outcome, _StoodStill):
                excused = True
                # Counted as an attempt all the same: a worker starved of CPU for good must not retry for ever.
                failed += 1
                if failed >= self.conf.max_attempts:
                    raise LaneLost("retries_exhausted", outcome.verdict.detail)
                continue
            if outcome.status is CallStatus.RATE_LIMITED:
                limited += 1
            else:
                failed += 1
            await self._recover(outcome, failed, limited)

    async def _attempt(
        self, request: Request, attempt: int, may_excuse: bool = True
    ) -> Completion | ErrorClass | _StoodStill:
        """One request within the lane's limits: the completion, or the verdict on its failure. Its recorded latency
        and timeout cover the request only, not the wait to enter the lane; a backoff after it happens outside."""
        ticket = await self.state.enter()
        status: CallStatus | None = None  # stays None when cancelled or on a bug: no answer to account for
        http_status: int | None = None
        completion: Completion | None = None
        try:
            # Asked here, not when the unit was pulled: the wait to enter the lane is where a worker may stand still.
            if self.still_ours is not None and not await self.still_ours():
                self.gone = True
                raise ClaimGone()
            self._started, self._clock, sent_at = time.time(), time.perf_counter(), time.monotonic()
            try:
                completion = await self._send(request)
            except TimeoutError:
                verdict = ErrorClass(CallStatus.TIMEOUT, detail=f"no reply within {self.conf.request_timeout_s:g}s")
            except PROGRAMMING_ERRORS:
                raise  # a bug in a provider or our code must stop the run, not be recorded as an API failure
            except Exception as exc:  # the provider classifies every API failure
                verdict = self.provider.classify(exc)
            else:
                absurd = _absurd_usage(completion)
                if absurd is not None:
                    completion, verdict = None, ErrorClass(CallStatus.TRANSIENT, detail=absurd)
                elif completion.text.strip() or completion.tool_calls:
                    status = CallStatus.OK
                    self._record(attempt, status, completion=completion)
                    return completion
                else:
                    verdict = ErrorClass(CallStatus.EMPTY, detail="empty reply")
            stood_still = self._stood_still(verdict, sent_at) if may_excuse else 0.0
            if stood_still:
                detail = f"{verdict.detail}; this worker stood still {stood_still:.1f}s meanwhile (stopped or starved)"
                self._record(attempt, verdict.status, http_status=verdict.http_status, error=detail)
                return _StoodStill(verdict)  # `status` stays None: the lane is not accounted for it
            status, http_status = verdict.status, verdict.http_status
            self._record(attempt, status, completion=completion, http_status=http_status, error=verdict.detail)
            return verdict
        finally:
            self.state.leave(ticket, status, http_status)

    def _stood_still(self, verdict: ErrorClass, sent_at: float) -> float:
        """Seconds the worker stood still while the failed request was out, when that explains the failure: a
        timeout the request would not have reached otherwise, the worker having stood still for at least
        `TIMEOUT_SHARE` of the timeout, or a transport failure (a server closes a connection left silent); else 0."""
        if verdict.status not in BREAKER_STATUSES:
            return 0.0
        now = time.monotonic()
        stood_still = self.state.stalls.stood_still(sent_at, now)
        if verdict.status is CallStatus.TIMEOUT:
            timeout_s = self.conf.request_timeout_s
            if now - sent_at - stood_still >= timeout_s or stood_still < TIMEOUT_SHARE * timeout_s:
                return 0.0  # it ran out of time while the worker was running, or had most of its time all the same
        return stood_still

    async def _send(self, request: Request) -> Completion:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives as the
        # request completes, which let a cancelled worker keep taking units after Ctrl-C.
        async with asyncio.timeout(self.conf.request_timeout_s):
            return await self.provider.complete(self.state.lane, request)

    async def _recover(self, verdict: ErrorClass, failed: int, limited: int) -> None:
        """After a failed attempt: raise when this request cannot succeed here, else wait for the next attempt."""
        status, detail = verdict.status, verdict.detail
        if status in REQUEST_FAULTS:
            raise InfraFailure(status.value, detail)
        if status in STOP_STATUSES:
            raise LaneLost(status.value, detail)
        if status is CallStatus.TIMEOUT:
            # No retry on this lane (as the original): a hung endpoint would cost the full timeout each time.
            raise LaneLost("request_timeout", detail)
        if self.state.breaker.mode is not Mode.ACTIVE:
            raise LaneLost(self.state.breaker.lost_status(), detail)
        if status is CallStatus.RATE_LIMITED:
            if limited >= self.conf.max_rate_limited:
                raise LaneLost("rate_limit_exhausted", detail)
            wait = verdict.retry_after_s if verdict.retry_after_s is not None else backoff_s(self.conf, limited)
            self.state.pause(wait)
            if not self._answered and self.room_elsewhere is not None and self.room_elsewhere():
                # Nothing of the episode happened here: it starts on a lane with room at once, rather than wait out
                # this lane's pause and its lowered limit (units a throttled lane took before its first 429 went
                # through up to `max_rate_limited` 429s each, one at a time, while the other lanes sat idle).
                raise LaneLost("rate_limited", detail)
        elif failed >= self.conf.max_attempts:
            if status is CallStatus.EMPTY:
                raise InfraFailure("empty_response", f"{failed} empty replies")
            raise LaneLost("retries_exhausted", detail)
        elif status is not CallStatus.EMPTY:  # an empty reply is asked again at once, as before
            await asyncio.sleep(backoff_s(self.conf, failed))

    def _record(
        self,
        attempt: int,
        status: CallStatus,
        *,
        completion: Completion | None = None,
        http_status: int | None = None,
        error: str | None = None,
    ) -> None:
        lane = self.state.lane
        self.calls.append(
            CallRecord(
                unit_key=self.unit_key,
                run_id=self.run_id,
                lane_id=lane.lane_id,
                deployment=lane.deployment,
                credential_id=lane.credential_id,
                attempt=attempt,
                started_at=self._started,
                latency_s=time.perf_counter() - self._clock,
                status=status,
                prompt_tokens=completion.prompt_tokens if completion else 0,
                completion_tokens=completion.completion_tokens if completion else 0,
                http_status=http_status,
                error=error,
                cost_usd=completion.cost_usd if completion else None,
            )
        )


def _absurd_usage(completion: Completion) -> str | None:
    """What is wrong with a reply's token counts, if anything: a count below 0 or above `TOKENS_MAX` is no real
    request's, and cannot be stored (an attacker's gateway claiming 5e9 tokens failed every write of the run on
    PostgreSQL, and 1e20 on SQLite with a traceback). Such a reply is malformed: the request is tried again."""
    for name in ("prompt_tokens", "completion_tokens"):
        count = getattr(completion, name)
        if not 0 <= count <= TOKENS_MAX:
            return f"malformed reply: its usage claims {count} {name.replace('_', ' ')} (0 to {TOKENS_MAX:,} possible)"
    return None


class JudgePool:
    """Chats on the judge model's lanes, handed out round robin over the lanes that are active (any lane when none
    is). Judge requests are recorded with the judged unit."""

    def __init__(self, provider: Provider, states: Sequence[LaneState], generation: GenerationSettings) -> None:
        self._provider = provider
        self._states = list(states)
        self._generation = generation
        self._turn = 0

    def bind(self, conf: SchedulerConf, unit_key: str, run_id: str, calls: list[CallRecord]) -> LaneChat:
        """A chat on the next judge lane; it shares that lane's slots and limiter with everything else sent there, and
        sends the judge model's own generation settings."""
        active = [state for state in self._states if state.breaker.mode is Mode.ACTIVE] or self._states
        state = active[self._turn % len(active)]
        self._turn += 1
        return LaneChat(state, self._provider, conf, unit_key, run_id, calls, self._generation)


@dataclass
class ModelLanes:
    """One base model's lanes as seen by an episode that lost its lane: where may it start again?"""

    states: Sequence[LaneState]
    pulse: Pulse
    stopping: asyncio.Event
    movable: bool = True
    """Whether a unit may run on a lane other than the one its static share assigned (`Dispatch.failover`)."""

    def allowed(self, home: str | None) -> list[LaneState]:
        """The lanes a unit whose static lane is `home` (None: a shared queue) may run on."""
        return [s for s in self.states if self.movable or home is None or s.lane.lane_id == home]

    def room_elsewhere(self, here: LaneState, home: str | None) -> bool:
        """Whether another active lane the unit may run on has a free request slot now."""
        return any(s is not here and s.breaker.mode is Mode.ACTIVE and s.free_slots > 0 for s in self.allowed(home))

    async def replacement(self, lost: LaneState, home: str | None) -> LaneState | None:
        """The lane to start the episode again on: another active lane (the one with the most free slots), else the
        same lane if it is still active (a timeout), else the first lane due for its probe, else — when lanes are
        parked — wait for one. None when every allowed lane is stopped or the run is stopping."""
        allowed = self.allowed(home)
        while not self.stopping.is_set():
            active = [s for s in allowed if s.breaker.mode is Mode.ACTIVE]
            others = [s for s in active if s is not lost]
            if others or active:
                return max(others, key=lambda s: s.free_slots) if others else active[0]
            due = [s for s in allowed if s.breaker.mode is Mode.PARKED and s.breaker.takes_units]
            if due:
                return due[0]
            alive = [s for s in allowed if s.breaker.mode is not Mode.STOPPED]
            if not alive:
                return None
            await self.pulse.wait(min(s.breaker.cooldown_left() for s in alive) or None)
        return None


@dataclass(frozen=True)
class Executor:
    """Everything a worker needs to run units of one base model."""

    suite: Suite
    model: ModelSpec
    provider: Provider
    conf: SchedulerConf
    run_id: str
    judge: JudgePool | None = None
    lanes: ModelLanes | None = None
    """The model's lanes, for restarting an episode whose lane was lost (None: no restarts)."""
    still_ours: Callable[[Unit], Awaitable[bool]] | None = None
    """Whether a unit about to send a request is still this run's to run (None: always). Under claims
    (`fleetbench.claims`) a worker may stand still (stopped, suspended) long enough for a unit's claim to lapse and
    go to another worker, while the unit waited for its lane or had a request in flight."""


async def run_unit(
    executor: Executor, state: LaneState, unit: Unit, home: str | None = None
) -> tuple[UnitResult, list[CallRecord]]:
    """Execute one unit, starting on `state`'s lane; `home` is the lane its static share assigned (None: a shared
    queue). When the lane is lost mid-episode the episode starts again on a replacement lane (see `ModelLanes`), at
    most `max_restarts` times; every request of every try is kept in the calls."""
    calls: list[CallRecord] = []
    used = [state.lane.lane_id]
    started, clock = time.time(), time.perf_counter()
    while True:
        movable = executor.lanes is not None and len(used) <= executor.conf.max_restarts
        episode, lost = await _episode(executor, state, unit, calls, home, movable)
        if lost is None:
            break
        state.episodes_lost += 1
        replacement = None
        if executor.lanes is not None and len(used) <= executor.conf.max_restarts:
            replacement = await executor.lanes.replacement(state, home)
        if replacement is None:
            state.episodes_given_up += 1
            break
        state = replacement
        used.append(state.lane.lane_id)
    lane = state.lane
    result = UnitResult(
        unit,
        executor.run_id,
        lane.deployment,
        lane.lane_id,
        started,
        time.perf_counter() - clock,
        _with_placement(episode, home, used),
    )
    return result, calls


async def _episode(
    executor: Executor,
    state: LaneState,
    unit: Unit,
    calls: list[CallRecord],
    home: str | None = None,
    movable: bool = False,
) -> tuple[Episode, LaneLost | None]:
    """One try of the episode on one lane, under the episode timeout; the loss that ended it, if any. Raises
    `ClaimGone` when the unit turned out to be another worker's before its first request (however the suite
    handled the chat's exception). `home`: the unit's static lane (None: a shared queue); `movable`: whether the
    episode may start again on another lane (a restart is left) when this one throttles it before any answer."""
    conf, lane = executor.conf, state.lane
    chat = LaneChat(state, executor.provider, conf, unit.key, executor.run_id, calls, executor.model.generation)
    if executor.still_ours is not None:
        chat.still_ours = functools.partial(executor.still_ours, unit)
    if executor.lanes is not None and movable:
        chat.room_elsewhere = functools.partial(executor.lanes.room_elsewhere, state, home)
    judge = executor.judge.bind(conf, unit.key, executor.run_id, calls) if executor.judge else None
    context = EpisodeContext(model=executor.model, lane_id=lane.lane_id, deployment=lane.deployment, judge=judge)
    try:
        async with asyncio.timeout(conf.episode_timeout_s):
            episode = await executor.suite.run_episode(unit, chat, context)
    except TimeoutError:
        episode = Episode(Outcome.INFRA_ERROR, infra_status="episode_timeout")
    except InfraFailure as exc:  # a suite that does not catch it still gets the unit recorded as not done
        episode = Episode(Outcome.INFRA_ERROR, infra_status=exc.status)
    if chat.gone:
        raise ClaimGone()
    return episode, chat.lost if episode.outcome is Outcome.INFRA_ERROR else None


def _with_placement(episode: Episode, home: str | None, used: list[str]) -> Episode:
    """The episode with a `placement` entry in its transcript when it ran anywhere but its own lane in one go:
    the lanes it used in order, how often it started again, and its static lane (None under a shared queue)."""
    if len(used) == 1 and home in (None, used[0]):
        return episode
    placement = {"lanes": used, "restarts": len(used) - 1, "home_lane": home}
    return dataclasses.replace(episode, transcript={**(episode.transcript or {}), "placement": placement})
