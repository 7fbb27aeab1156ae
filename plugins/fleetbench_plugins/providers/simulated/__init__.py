"""The `simulated` provider: an in-process model, deterministic from a seed, with configurable latency and faults.

What it says is played by a *player* (entry-point group `fleetbench.simulators`) chosen by the request's `protocol`:
each suite that wants to be exercised without a real API ships one next to itself (the `jsonl` and `workflow` suites
do). The provider imports no suite and never reads prompt text to learn its job.

Its replies depend only on the seed, the base model's profile and the conversation, never on the deployment or the
credential, so a unit gives the same result whichever lane runs it (the unit key does not contain the lane either).
Latency and injected faults are per deployment, so a slow or flaky deployment can be simulated next to healthy ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import random
from typing import Any

from stevedore import ExtensionManager

from fleetbench.errors import choices_text
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


@dataclasses.dataclass
class SimulatedDeploymentParams:
    """Per deployment: latency and fault injection (rates are probabilities per request)."""

    latency_ms: float = option(0.0, affects_result=False)
    jitter_ms: float = option(0.0, affects_result=False)
    transient_error_rate: float = option(0.0, affects_result=False)
    rate_limit_rate: float = option(0.0, affects_result=False)
    retry_after_s: float = option(0.05, affects_result=False)

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms", "retry_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("transient_error_rate", "rate_limit_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: must be within [0, 1], got {getattr(self, name)}")


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


class NoPlayerError(Exception):
    """No installed player speaks the request's protocol."""


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

    async def complete(self, lane: Lane, request: Request) -> Completion:
        deployment, model = self._params(lane)
        delay = deployment.latency_ms + self._faults.random() * deployment.jitter_ms
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)
        self._maybe_fail(deployment)
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
            params = SimulatedDeploymentParams(**lane.params), {"profile": "strong", **lane.model_params}
            self._lane_params[lane.lane_id] = params
        return params

    def _maybe_fail(self, deployment: SimulatedDeploymentParams) -> None:
        draw = self._faults.random()
        if draw < deployment.rate_limit_rate:
            raise SimulatedRateLimitError(deployment.retry_after_s)
        if draw < deployment.rate_limit_rate + deployment.transient_error_rate:
            raise SimulatedTransientError("503 Service Unavailable (injected)")

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
        if isinstance(exc, SimulatedTransientError):
            return ErrorClass(CallStatus.TRANSIENT, http_status=503, detail=str(exc))
        if isinstance(exc, TimeoutError):
            return ErrorClass(CallStatus.TIMEOUT, detail="request timed out")
        return ErrorClass(CallStatus.PERMANENT, detail=f"{type(exc).__name__}: {exc}")
