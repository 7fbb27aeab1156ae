"""Lanes and the requests sent through them: concurrency, token buckets, Retry-After, timeouts, retries.

Each lane runs `max_concurrency` workers that pull units from the base model's dispatch. Every LLM request of an
episode goes through the lane's `LaneChat`, which waits for the lane's token bucket (per request, not per task: the
original throttled per task and multi-turn bursts broke provider limits), applies the request timeout, and retries
what the provider classifies as transient or rate limited. A 429 pauses the whole lane for its Retry-After.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench.config.schema import SchedulerConf
from fleetbench.errors import InfraFailure
from fleetbench.interfaces import Dispatch, EpisodeContext, Provider, Suite
from fleetbench.types import (
    CallRecord,
    CallStatus,
    Completion,
    Episode,
    GenerationSettings,
    Lane,
    ModelSpec,
    Outcome,
    Request,
    Unit,
    UnitResult,
)

_jitter = random.Random()

PROGRAMMING_ERRORS = (ImportError, NameError, AttributeError, TypeError, AssertionError, SyntaxError)
"""Exceptions that mean a bug, never an API outcome: they propagate and stop the run loudly."""


class TokenBucket:
    """Requests per minute with a one-second burst; `None` means unlimited."""

    def __init__(self, rpm: float | None) -> None:
        self._rate = None if rpm is None else rpm / 60.0
        self._capacity = 1.0 if self._rate is None else max(1.0, self._rate)
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    async def acquire(self) -> None:
        """Wait until one request may be sent."""
        if self._rate is None:
            return
        while True:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._rate)


@dataclass
class LaneState:
    """A lane's limits for the whole run: requests in flight (slots), requests per minute (bucket), and the pause
    after a 429 (the whole lane waits for Retry-After). Every request to the lane goes through it, whoever sends it."""

    lane: Lane
    bucket: TokenBucket
    slots: asyncio.Semaphore
    paused_until: float = 0.0

    @classmethod
    def of(cls, lane: Lane) -> LaneState:
        return cls(lane, TokenBucket(lane.rpm), asyncio.Semaphore(lane.max_concurrency))

    async def ready(self) -> None:
        """Wait out a pause, then take a token."""
        while (wait := self.paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        await self.bucket.acquire()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


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
    _started: float = field(default=0.0, init=False, repr=False)
    _clock: float = field(default=0.0, init=False, repr=False)

    async def __call__(self, request: Request) -> Completion:
        request = dataclasses.replace(request, generation=self.generation)
        for attempt in range(1, self.conf.max_attempts + 1):
            try:
                completion = await self._send(request)
            except TimeoutError:
                # No retry on a request timeout (as the original): a hung endpoint would otherwise cost minutes each.
                self._record(attempt, CallStatus.TIMEOUT, error="request timed out")
                raise InfraFailure("request_timeout", f"no reply within {self.conf.request_timeout_s:g}s") from None
            except PROGRAMMING_ERRORS:
                raise  # a bug in a provider or our code must stop the run, not be recorded as an API failure
            except Exception as exc:  # the provider classifies; anything it calls permanent ends the unit
                await self._handle_failure(exc, attempt)
                continue
            if not completion.text.strip() and not completion.tool_calls:
                self._record(attempt, CallStatus.EMPTY, completion=completion, error="empty reply")
                if attempt == self.conf.max_attempts:
                    raise InfraFailure("empty_response", f"{attempt} empty replies")
                continue
            self._record(attempt, CallStatus.OK, completion=completion)
            return completion
        raise InfraFailure("retries_exhausted", f"{self.conf.max_attempts} attempts failed")

    async def _send(self, request: Request) -> Completion:
        """One request within the lane's limits. Its recorded latency and timeout cover the request only, not the
        wait for a slot or a token; a backoff after it happens outside the slot."""
        async with self.state.slots:
            await self.state.ready()
            self._started, self._clock = time.time(), time.perf_counter()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives as the
            # request completes, which let a cancelled worker keep taking units after Ctrl-C.
            async with asyncio.timeout(self.conf.request_timeout_s):
                return await self.provider.complete(self.state.lane, request)

    async def _handle_failure(self, exc: Exception, attempt: int) -> None:
        verdict = self.provider.classify(exc)
        self._record(attempt, verdict.status, http_status=verdict.http_status, error=verdict.detail)
        if verdict.status in (CallStatus.AUTH, CallStatus.PERMANENT):
            raise InfraFailure(verdict.status.value, verdict.detail) from exc
        if attempt == self.conf.max_attempts:
            status = "rate_limit_exhausted" if verdict.status is CallStatus.RATE_LIMITED else "retries_exhausted"
            raise InfraFailure(status, verdict.detail) from exc
        if verdict.status is CallStatus.RATE_LIMITED:
            self.state.pause(
                verdict.retry_after_s if verdict.retry_after_s is not None else backoff_s(self.conf, attempt)
            )
        else:
            await asyncio.sleep(backoff_s(self.conf, attempt))

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


class JudgePool:
    """Chats on the judge model's lanes, handed out round robin. Judge requests are recorded with the judged unit."""

    def __init__(self, provider: Provider, states: Sequence[LaneState], generation: GenerationSettings) -> None:
        self._provider = provider
        self._states = list(states)
        self._generation = generation
        self._turn = 0

    def bind(self, conf: SchedulerConf, unit_key: str, run_id: str, calls: list[CallRecord]) -> LaneChat:
        """A chat on the next judge lane; it shares that lane's slots and limiter with everything else sent there, and
        sends the judge model's own generation settings."""
        state = self._states[self._turn % len(self._states)]
        self._turn += 1
        return LaneChat(state, self._provider, conf, unit_key, run_id, calls, self._generation)


@dataclass(frozen=True)
class Executor:
    """Everything a worker needs to run units of one base model."""

    suite: Suite
    model: ModelSpec
    provider: Provider
    conf: SchedulerConf
    run_id: str
    judge: JudgePool | None = None


async def run_unit(executor: Executor, state: LaneState, unit: Unit) -> tuple[UnitResult, list[CallRecord]]:
    """Execute one unit on one lane under the episode timeout."""
    chat = LaneChat(
        state, executor.provider, executor.conf, unit.key, executor.run_id, generation=executor.model.generation
    )
    lane = state.lane
    judge = executor.judge.bind(executor.conf, unit.key, executor.run_id, chat.calls) if executor.judge else None
    context = EpisodeContext(model=executor.model, lane_id=lane.lane_id, deployment=lane.deployment, judge=judge)
    started, clock = time.time(), time.perf_counter()
    try:
        async with asyncio.timeout(executor.conf.episode_timeout_s):
            episode = await executor.suite.run_episode(unit, chat, context)
    except TimeoutError:
        episode = Episode(Outcome.INFRA_ERROR, infra_status="episode_timeout")
    except InfraFailure as exc:  # a suite that does not catch it still gets the unit recorded as not done
        episode = Episode(Outcome.INFRA_ERROR, infra_status=exc.status)
    result = UnitResult(
        unit, executor.run_id, lane.deployment, lane.lane_id, started, time.perf_counter() - clock, episode
    )
    return result, chat.calls


Sink = Callable[[UnitResult, list[CallRecord]], Awaitable[None]]


async def lane_worker(
    executor: Executor, state: LaneState, dispatch: Dispatch, sink: Sink, stopping: asyncio.Event
) -> None:
    """Pull units for this lane until the dispatch has none or the run is stopping; each result is durably written
    before the next pull. The stop flag is checked before every pull, so a worker never starts a unit after Ctrl-C
    even if a library swallowed its cancellation."""
    while not stopping.is_set() and (unit := dispatch.next_unit(state.lane.lane_id)) is not None:
        result, calls = await run_unit(executor, state, unit)
        await sink(result, calls)


def worker_counts(states: Sequence[LaneState], dispatch: Dispatch, units: int) -> list[int]:
    """Workers per lane: up to each lane's `max_concurrency` and its planned units, never more in total than there
    are units to run (handed out round robin, so every lane gets work before any lane gets a second worker)."""
    caps = []
    for state in states:
        planned = dispatch.planned(state.lane.lane_id)
        caps.append(min(state.lane.max_concurrency, units if planned is None else planned))
    counts = [0] * len(states)
    remaining = min(units, sum(caps))
    while remaining:
        for i, cap in enumerate(caps):
            if remaining and counts[i] < cap:
                counts[i] += 1
                remaining -= 1
    return counts


def lane_workers(
    executor: Executor,
    states: Sequence[LaneState],
    dispatch: Dispatch,
    sink: Sink,
    stopping: asyncio.Event,
    units: int,
) -> list[Coroutine[Any, Any, None]]:
    """Workers for one base model's lanes, sharing each lane's limiter (see `worker_counts`)."""
    workers: list[Coroutine[Any, Any, None]] = []
    for state, count in zip(states, worker_counts(states, dispatch, units), strict=True):
        workers.extend(lane_worker(executor, state, dispatch, sink, stopping) for _ in range(count))
    return workers
