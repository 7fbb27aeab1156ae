"""Small, complete plugins for tests: a provider that answers from a script, a tiny suite, an exact naming policy and
a shared-queue sharding strategy.

They are real implementations of the contracts, not mocks: each passes its contract kit in fleetbench's own tests,
so core tests (planning, scheduling, the runner) can exercise real plugin behaviour without depending on a plugin
package. Use them when a test is about the core; test a plugin against its own kit.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from fleetbench.errors import ConfigError, InfraFailure, UnknownNameError, choices_text
from fleetbench.interfaces import (
    Chat,
    Dispatch,
    EpisodeContext,
    NamingPolicy,
    NoOptions,
    Provider,
    ShardingStrategy,
    Suite,
    UnitSource,
    option,
)
from fleetbench.types import (
    CallStatus,
    Catalog,
    Cell,
    ChatMessage,
    Completion,
    Episode,
    ErrorClass,
    Lane,
    MetricSpec,
    Outcome,
    Request,
    Role,
    Unit,
)


@dataclasses.dataclass(frozen=True)
class Fault:
    """A scripted failure: the provider raises `ScriptedFailure` carrying it, and classifies it as this verdict."""

    status: CallStatus
    retry_after_s: float | None = None
    http_status: int | None = None


class ScriptedFailure(Exception):
    """The exception a `ScriptedProvider` raises for a `Fault` step (as an API client raises for an HTTP error)."""

    def __init__(self, fault: Fault) -> None:
        status = f"{fault.http_status} " if fault.http_status is not None else ""
        super().__init__(f"{status}{fault.status.value} (scripted)")
        self.fault = fault


Step = str | Completion | Fault | BaseException
"""One scripted reply: a text, a whole completion, a fault to classify, or an exception to raise as it is."""


def echo(request: Request) -> str:
    """The text of the last user message: the default answer of a `ScriptedProvider` once its script runs out."""
    return next((m.content for m in reversed(request.messages) if m.role is Role.USER), "")


class ScriptedProvider(Provider):
    """Answers each request with the next step of its script, then with `answer(request)` (echo by default).

    `failing` maps deployment names to a step that every request to that deployment gets (a deployment that is down,
    throttled or refuses the key), whatever the script says. It records every request it receives (`requests`, with
    the lane) and the most requests it had in flight at once (`peak_in_flight`); `latency_s` delays every reply, so
    timeouts and concurrency limits can be exercised.
    """

    def __init__(
        self,
        options: Any = None,
        *,
        script: Iterable[Step] = (),
        answer: Callable[[Request], str] = echo,
        latency_s: float = 0.0,
        failing: Mapping[str, Step] | None = None,
    ) -> None:
        super().__init__(NoOptions() if options is None else options)
        self._script: deque[Step] = deque(script)
        self._answer = answer
        self.latency_s = latency_s
        self._failing = dict(failing or {})
        self.requests: list[tuple[Lane, Request]] = []
        self.in_flight = 0
        self.peak_in_flight = 0

    async def complete(self, lane: Lane, request: Request) -> Completion:
        self.requests.append((lane, request))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
            step = self._next_step(lane, request)
        finally:
            self.in_flight -= 1
        return _played(step, request)

    def _next_step(self, lane: Lane, request: Request) -> Step:
        if lane.deployment in self._failing:
            return self._failing[lane.deployment]
        return self._script.popleft() if self._script else self._answer(request)

    def classify(self, exc: BaseException) -> ErrorClass:
        if isinstance(exc, ScriptedFailure):
            fault = exc.fault
            return ErrorClass(fault.status, fault.retry_after_s, fault.http_status, detail=str(exc))
        if isinstance(exc, TimeoutError):
            return ErrorClass(CallStatus.TIMEOUT, detail="request timed out")
        return ErrorClass(CallStatus.PERMANENT, detail=f"{type(exc).__name__}: {exc}")


def _played(step: Step, request: Request) -> Completion:
    if isinstance(step, Fault):
        raise ScriptedFailure(step)
    if isinstance(step, BaseException):
        raise step
    if isinstance(step, Completion):
        return step
    words = sum(len(m.content.split()) for m in request.messages)
    return Completion(step, prompt_tokens=words, completion_tokens=len(step.split()), finish_reason="stop")


@dataclasses.dataclass
class TinyOptions:
    """`words`: the cells (one per word); `case_sensitive`: whether `Alpha` answers `alpha`."""

    words: list[str] = option(affects_result=False, default_factory=lambda: ["alpha", "bravo"], help="selects cells")
    case_sensitive: bool = option(True, affects_result=True)

    def __post_init__(self) -> None:
        if not self.words:
            raise ValueError("words: give at least one word")


class TinySuite(Suite):
    """Asks the model to repeat a token (`<word>-<seed>-<index>`) and scores the reply exactly.

    One cell per word, one request per unit, protocol `tiny`. A `ScriptedProvider` answers it correctly by default
    (it echoes the last user message); script other replies to make units fail.
    """

    name = "tiny"
    version = "1"
    Options = TinyOptions
    options: TinyOptions

    def cells(self, base_model: str) -> Iterator[Cell]:
        for word in self.options.words:
            yield Cell(self.name, base_model, (("word", word),))

    def factor_names(self) -> Sequence[str]:
        return ("word",)

    def metrics(self) -> Sequence[MetricSpec]:
        return (MetricSpec("correct", "1 if the reply repeated the token", "mean"),)

    @staticmethod
    def token(unit: Unit) -> str:
        """What unit `unit` asks the model to repeat."""
        return f"{unit.cell.factor('word')}-{unit.seed}-{unit.index}"

    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        token = self.token(unit)
        messages = (ChatMessage(Role.SYSTEM, "Repeat the user's message exactly."), ChatMessage(Role.USER, token))
        transcript: dict[str, Any] = {"token": token}
        try:
            completion = await chat(Request(messages, protocol=self.name))
        except InfraFailure as exc:
            transcript["infra"] = str(exc)
            return Episode(Outcome.INFRA_ERROR, task_id=token, infra_status=exc.status, transcript=transcript)
        answer = completion.text.strip()
        correct = answer == token if self.options.case_sensitive else answer.casefold() == token.casefold()
        transcript.update(answer=completion.text, correct=correct)
        outcome = Outcome.SUCCESS if correct else Outcome.FAILURE
        return Episode(outcome, {"correct": float(correct)}, task_id=token, turns=1, transcript=transcript)


class ExactNaming(NamingPolicy):
    """Resolves exactly the catalog's spellings (base names, deployment names, aliases); nothing else.

    Constructed as `ExactNaming(NoOptions(), catalog=...)`; a spelling claimed by two base models is a `ConfigError`.
    """

    def __init__(self, options: Any, *, catalog: Catalog) -> None:
        super().__init__(options)
        self._catalog = catalog
        self._spellings: dict[str, tuple[str, str]] = {}
        for model in catalog.models:
            self._claim(model.name, model.name, "base name")
        for model in catalog.models:
            for deployment in model.deployment_names:
                self._claim(deployment, model.name, "deployment")
            for alias in model.aliases:
                self._claim(alias, model.name, "alias")

    def _claim(self, spelling: str, base: str, how: str) -> None:
        claimed = self._spellings.setdefault(spelling, (base, how))
        if claimed[0] != base:
            raise ConfigError(
                f"models: {spelling!r} ({how} of {base!r}) is also the {claimed[1]} of {claimed[0]!r}; "
                "one spelling may name only one base model"
            )

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def base_name(self, spelling: str) -> str:
        if spelling not in self._spellings:
            raise UnknownNameError(
                f"unknown model {spelling!r}; known base models: {choices_text(self._catalog.names)}"
            )
        return self._spellings[spelling][0]

    def how(self, spelling: str) -> str | None:
        found = self._spellings.get(spelling)
        return None if found is None else found[1]

    def resolutions(self) -> Sequence[tuple[str, str, str]]:
        return [(spelling, base, how) for spelling, (base, how) in self._spellings.items()]


class _Queue(Dispatch):
    def __init__(self, source: UnitSource, lanes: Sequence[Lane]) -> None:
        self._units = source.stream()
        self._lanes = {lane.lane_id for lane in lanes}

    def next_unit(self, lane_id: str) -> Unit | None:
        return next(self._units, None) if lane_id in self._lanes else None

    def planned(self, lane_id: str) -> int | None:
        return None if lane_id in self._lanes else 0


class QueueSharding(ShardingStrategy):
    """One shared queue per base model: whichever of its lanes asks gets the next unit. Constructed as
    `QueueSharding(NoOptions())`."""

    def dispatch(self, source: UnitSource, lanes: Sequence[Lane]) -> Dispatch:
        return _Queue(source, lanes)
