"""The `simulated` provider: an in-process model, deterministic from a seed, with configurable latency and faults.

What it says is played by a *player* (entry-point group `fleetbench.simulators`) chosen by the request's `protocol`:
each suite that wants to be exercised without a real API ships one next to itself (the `jsonl` and `workflow` suites
do). The provider imports no suite and never reads prompt text to learn its job.

Its replies depend only on the seed, the base model's profile and the conversation, never on the deployment or the
credential, so a unit gives the same result whichever lane runs it (the unit key does not contain the lane either).
The one exception is a test fixture: a deployment's `params.profile` makes that deployment answer as another profile,
a deployment serving the wrong model, which `fleetbench drift` must detect.
Latency and injected faults are per deployment, so a slow or flaky deployment can be simulated next to healthy ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import random
from collections import Counter
from typing import Any

from stevedore import ExtensionManager

from fleetbench.errors import UserError, choices_text
from fleetbench.interfaces import Provider, SimulatedPlayer, option
from fleetbench.types import CallStatus, ChatMessage, Completion, ErrorClass, Lane, Request

PLAYERS_GROUP = "fleetbench.simulators"


@functools.cache
def players() -> dict[str, SimulatedPlayer]:
    """Every installed player, by protocol (loaded once; a broken one is skipped here and named by
    `fleetbench plugins`)."""
    manager: ExtensionManager[Any] = ExtensionManager(PLAYERS_GROUP, invoke_on_load=False)
    found: dict[str, SimulatedPlayer] = {}
    for extension in manager:
        player_cls = extension.plugin
        if isinstance(player_cls, type) and issubclass(player_cls, SimulatedPlayer):
            found[extension.name] = player_cls(player_cls.Options())
    return found


def known_profiles() -> list[str]:
    """Profiles some installed player knows."""
    return sorted({profile for player in players().values() for profile in player.profiles})


@dataclasses.dataclass
class SimulatedOptions:
    """`seed` changes every simulated answer (but not which lane runs what)."""

    seed: int = option(0, affects_result=True, help="changes every simulated answer (not which lane runs what)")


@dataclasses.dataclass
class SimulatedModelParams:
    """Per base model: the competence profile, and optionally its `jsonl` accuracy."""

    profile: str = option("strong", affects_result=True, help="competence profile (players define its behaviour)")
    qa_accuracy: float | None = option(None, affects_result=True, help="jsonl accuracy; null = the profile's")

    def __post_init__(self) -> None:
        if self.profile not in known_profiles():
            raise ValueError(f"profile: {self.profile!r} is not a profile; choices: {choices_text(known_profiles())}")
        if self.qa_accuracy is not None and not 0 <= self.qa_accuracy <= 1:
            raise ValueError(f"qa_accuracy: must be within [0, 1], got {self.qa_accuracy}")


RATE_FIELDS = ("rate_limit_rate", "transient_error_rate", "hang_rate", "empty_rate")
OUTAGES = ("unreachable", "transient", "rate_limited", "auth", "not_found", "hang")
"""What every request of an outage gets: a refused connection, 503, 429, 401, 404, or no answer at all."""


@dataclasses.dataclass
class SimulatedDeploymentParams:
    """Per deployment: latency and fault injection. Rates are probabilities per request (drawn once per request, in
    the order rate limit, transient, hang, empty; together at most 1); the other faults hit every request."""

    latency_ms: float = option(0.0, affects_result=False)
    jitter_ms: float = option(0.0, affects_result=False)
    transient_error_rate: float = option(0.0, affects_result=False, help="503 Service Unavailable")
    rate_limit_rate: float = option(0.0, affects_result=False, help="429 with Retry-After: retry_after_s")
    retry_after_s: float = option(0.05, affects_result=False)
    hang_rate: float = option(0.0, affects_result=False, help="no answer at all: the request timeout ends it")
    empty_rate: float = option(0.0, affects_result=False, help="an answer with empty content")
    max_in_flight: int | None = option(
        None, affects_result=False, help="requests in flight beyond this are answered 429 (a deployment's capacity)"
    )
    refuse_connections: bool = option(False, affects_result=False, help="every connection is refused")
    auth_failure: bool = option(False, affects_result=False, help="401 for every request, whatever the key")
    auth_failure_keys: list[str] = option(
        affects_result=False, default_factory=list, help="401 for the lanes with these credential ids (key0, key1, ...)"
    )
    not_found: bool = option(False, affects_result=False, help="404: no deployment of that name")
    outage: str = option("unreachable", affects_result=False, help=f"what an outage does: {', '.join(OUTAGES)}")
    outage_after: int | None = option(
        None, affects_result=False, help="an outage begins after this many requests to the deployment (null: none)"
    )
    outage_requests: int | None = option(
        None, affects_result=False, help="how many requests the outage lasts (null: to the end of the run)"
    )
    # A test fixture for the drift audit (`fleetbench drift`), not a model setting: it makes one deployment serve a
    # different model, which is exactly the fault the audit exists to find. It must stay out of unit keys (a unit's
    # key never depends on the lane that ran it), so results stored under an overridden deployment are the drifted
    # results the audit is meant to see.
    profile: str | None = option(
        None, affects_result=False, help="test fixture: this deployment answers with another profile (drift audit)"
    )

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms", "retry_after_s", "outage_after", "outage_requests"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.outage not in OUTAGES:
            raise ValueError(f"outage: {self.outage!r} is not valid; choices: {choices_text(OUTAGES)}")
        for name in RATE_FIELDS:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: must be within [0, 1], got {getattr(self, name)}")
        given = {name: getattr(self, name) for name in RATE_FIELDS if getattr(self, name)}
        if sum(given.values()) > 1:
            # Named by the rates set, not by a fixed field: the one-line error must point at what the user wrote.
            terms = " + ".join(f"{name} {value:g}" for name, value in given.items())
            raise ValueError(f"{next(iter(given))}: the fault rates add up to more than 1 ({terms})")
        if self.profile is not None and self.profile not in known_profiles():
            raise ValueError(f"profile: {self.profile!r} is not a profile; choices: {choices_text(known_profiles())}")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be at least 1 or null, got {self.max_in_flight}")

    def in_outage(self, ordinal: int) -> bool:
        """Whether the deployment's `ordinal`-th request (from 1) falls in its outage."""
        if self.outage_after is None or ordinal <= self.outage_after:
            return False
        return self.outage_requests is None or ordinal <= self.outage_after + self.outage_requests


def _message_text(message: ChatMessage) -> str:
    calls = ",".join(f"{c.name}({c.arguments})" for c in message.tool_calls)
    return f"{message.role.value}\x1e{message.content}\x1e{calls}\x1e{message.tool_call_id or ''}"


@functools.lru_cache(maxsize=4096)
def _opening_digest(*texts: str) -> bytes:
    """Digest of a conversation's first messages (system + task prompt), computed once per episode, not per turn."""
    return hashlib.blake2b("\x1d".join(texts).encode(), digest_size=16).digest()


class SimulatedTransientError(Exception):
    """An injected transient failure (like an HTTP 503)."""


class SimulatedRateLimitError(Exception):
    """An injected HTTP 429 carrying a Retry-After."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"429 Too Many Requests (Retry-After: {retry_after_s}s)")
        self.retry_after_s = retry_after_s


class SimulatedAuthError(Exception):
    """An injected HTTP 401: the lane's key is refused."""


class SimulatedNotFoundError(Exception):
    """An injected HTTP 404: no deployment of that name."""


class SimulatedConnectionRefused(ConnectionRefusedError):
    """An injected refused connection: nothing answers at the deployment's endpoint."""


class NoPlayerError(UserError):
    """No installed player speaks the request's protocol (a name the caller chose: `fleetbench serve` answers 400)."""


class SimulatedProvider(Provider):
    """A deterministic stand-in for an LLM API."""

    Options = SimulatedOptions
    ModelParams = SimulatedModelParams
    DeploymentParams = SimulatedDeploymentParams

    def __init__(self, options: SimulatedOptions) -> None:
        super().__init__(options)
        # Faults come from a stream, not from the conversation: a retry of the same request must be able to succeed.
        self._faults = random.Random(options.seed)
        self._lane_params: dict[str, tuple[SimulatedDeploymentParams, dict[str, Any]]] = {}
        self._in_flight: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()

    async def complete(self, lane: Lane, request: Request) -> Completion:
        deployment, model = self._params(lane)
        self._refuse_or_reject(lane, deployment)
        self._in_flight[lane.deployment] += 1
        self._requests[lane.deployment] += 1
        ordinal = self._requests[lane.deployment]
        try:
            if deployment.in_outage(ordinal):
                await self._outage(lane, deployment)
            delay = deployment.latency_ms + self._faults.random() * deployment.jitter_ms
            if delay > 0:
                await asyncio.sleep(delay / 1000.0)
            if await self._maybe_fail(lane.deployment, deployment):
                return Completion("")
        finally:
            self._in_flight[lane.deployment] -= 1
        player = players().get(request.protocol)
        if player is None:
            raise NoPlayerError(
                f"no simulated player for protocol {request.protocol!r} (installed: {choices_text(players())}); "
                f"a suite registers one under {PLAYERS_GROUP}"
            )
        rng = random.Random(self._conversation_seed(lane.base_model, request))
        return player.respond(request, str(model["profile"]), model, rng)

    def _params(self, lane: Lane) -> tuple[SimulatedDeploymentParams, dict[str, Any]]:
        """A lane's deployment params as their dataclass and its model params, once per lane (already validated)."""
        params = self._lane_params.get(lane.lane_id)
        if params is None:
            deployment = SimulatedDeploymentParams(**lane.params)
            model = {"profile": "strong", **lane.model_params}
            if deployment.profile is not None:  # the drift fixture: this deployment serves another model
                model["profile"] = deployment.profile
            params = deployment, model
            self._lane_params[lane.lane_id] = params
        return params

    @staticmethod
    def _refuse_or_reject(lane: Lane, deployment: SimulatedDeploymentParams) -> None:
        """Faults that hit before any latency: no connection, a refused key, an unknown deployment name."""
        if deployment.refuse_connections:
            raise SimulatedConnectionRefused(f"connection refused by the endpoint of {lane.deployment!r} (injected)")
        if deployment.auth_failure or lane.credential_id in deployment.auth_failure_keys:
            raise SimulatedAuthError(f"401 Unauthorized: invalid API key {lane.credential_id} (injected)")
        if deployment.not_found:
            raise SimulatedNotFoundError(f"404 DeploymentNotFound: {lane.deployment!r} does not exist (injected)")

    @staticmethod
    async def _outage(lane: Lane, deployment: SimulatedDeploymentParams) -> None:
        """Fail (or hang) the way the deployment's outage says."""
        kind = deployment.outage
        if kind == "hang":
            await asyncio.Event().wait()  # never set: only the scheduler's request timeout ends this request
        if kind == "rate_limited":
            raise SimulatedRateLimitError(deployment.retry_after_s)
        if kind == "transient":
            raise SimulatedTransientError("503 Service Unavailable (injected outage)")
        if kind == "auth":
            raise SimulatedAuthError(f"401 Unauthorized: invalid API key {lane.credential_id} (injected outage)")
        if kind == "not_found":
            raise SimulatedNotFoundError(f"404 DeploymentNotFound: {lane.deployment!r} (injected outage)")
        raise SimulatedConnectionRefused(f"connection refused by the endpoint of {lane.deployment!r} (injected outage)")

    async def _maybe_fail(self, name: str, deployment: SimulatedDeploymentParams) -> bool:
        """Raise an injected fault, hang, or say the reply is to be empty (True); False for a normal answer."""
        if deployment.max_in_flight is not None and self._in_flight[name] > deployment.max_in_flight:
            raise SimulatedRateLimitError(deployment.retry_after_s)
        draw = self._faults.random()
        threshold = deployment.rate_limit_rate
        if draw < threshold:
            raise SimulatedRateLimitError(deployment.retry_after_s)
        threshold += deployment.transient_error_rate
        if draw < threshold:
            raise SimulatedTransientError("503 Service Unavailable (injected)")
        threshold += deployment.hang_rate
        if draw < threshold:
            await asyncio.Event().wait()  # never set: only the scheduler's request timeout ends this request
        return draw < threshold + deployment.empty_rate

    def _conversation_seed(self, base_model: str, request: Request) -> int:
        """A seed fixed by the conversation: its opening (the task), its length and its last message.

        Hashing only these keeps each call O(1) in the conversation length (hashing the whole history made long
        episodes quadratic) while two different points of any conversation still get different seeds.
        """
        messages = request.messages
        hasher = hashlib.blake2b(digest_size=8)
        header = f"{self.options.seed}\x1f{base_model}\x1f{len(messages)}\x1f{bool(request.tools)}\x1f"
        hasher.update(header.encode())
        if messages:
            hasher.update(_opening_digest(*(_message_text(m) for m in messages[:2])))
            hasher.update(_message_text(messages[-1]).encode())
        return int.from_bytes(hasher.digest(), "big")

    def classify(self, exc: BaseException) -> ErrorClass:
        if isinstance(exc, SimulatedRateLimitError):
            return ErrorClass(
                CallStatus.RATE_LIMITED, retry_after_s=exc.retry_after_s, http_status=429, detail=str(exc)
            )
        for kind, status, http_status in CLASSES:
            if isinstance(exc, kind):
                return ErrorClass(status, http_status=http_status, detail=str(exc))
        return ErrorClass(CallStatus.PERMANENT, detail=f"{type(exc).__name__}: {exc}")


CLASSES: tuple[tuple[type[BaseException], CallStatus, int | None], ...] = (
    (SimulatedTransientError, CallStatus.TRANSIENT, 503),
    (SimulatedAuthError, CallStatus.AUTH, 401),
    (SimulatedNotFoundError, CallStatus.NOT_FOUND, 404),
    (ConnectionRefusedError, CallStatus.UNREACHABLE, None),
    (TimeoutError, CallStatus.TIMEOUT, None),
)
"""Injected exceptions and how they are classified (the rate limit carries its Retry-After and is handled apart)."""
