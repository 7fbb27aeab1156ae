"""Frozen value types shared by every stage. Stages exchange only these (and the plugin contracts)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
"""One chat message in the OpenAI wire shape: {"role": ..., "content": ..., ...} (what `ChatMessage.wire` gives)."""

FactorValue = str | int | float | bool


class Outcome(enum.StrEnum):
    """How one unit ended. `INFRA_ERROR` is never a model failure: the unit counts as not done."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILURE = "failure"
    INFRA_ERROR = "infra_error"


class CallStatus(enum.StrEnum):
    """How one LLM request ended, as classified by the provider and the scheduler.

    `AUTH` (a refused key) and `NOT_FOUND` (a wrong deployment name or endpoint) are properties of the lane, not of
    the request: retrying them elsewhere on the same lane cannot help. `UNREACHABLE` (connection refused, name not
    resolved, connect timeout) is the lane's endpoint failing before any HTTP answer; like `TRANSIENT` it counts
    toward the lane's circuit breaker. `CONTEXT_LENGTH` is the request's own fault.
    """

    OK = "ok"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    UNREACHABLE = "unreachable"
    PERMANENT = "permanent"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    CONTEXT_LENGTH = "context_length"
    EMPTY = "empty"


@dataclass(frozen=True)
class DeploymentSpec:
    """One API endpoint of a base model, named exactly as the provider knows it (case kept)."""

    name: str
    credential_count: int = 1
    max_concurrency: int = 8
    rpm: float | None = None
    weight: float | None = None


@dataclass(frozen=True)
class GenerationSettings:
    """A model's generation settings, sent with every request to it. They change results, so they are part of the
    unit key; `None` means "the API's default" (nothing is sent)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A base model of the catalog: the canonical name results are counted under, and its deployments."""

    name: str
    provider: str
    deployments: tuple[DeploymentSpec, ...]
    aliases: tuple[str, ...] = ()
    route: str | None = None
    tool_calling: str = "text"
    handle: str = ""
    generation: GenerationSettings = field(default_factory=GenerationSettings)

    @property
    def deployment_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.deployments)


@dataclass(frozen=True)
class Catalog:
    """Every base model the configuration declares (selected for this run or not)."""

    models: tuple[ModelSpec, ...]

    def get(self, name: str) -> ModelSpec:
        """The model with this exact canonical name (use the naming policy to resolve other spellings)."""
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)


@dataclass(frozen=True)
class LaneSource:
    """Where a lane is declared in the configuration, for messages that tell the user what to check.

    It holds catalog keys and the names of the environment variables the configuration refers to, never a value:
    a literal key written in the configuration leaves `credential_env` empty.
    """

    deployment_key: str
    """The deployment's catalog key, e.g. `models.deepseek_v3_0324.deployments[1]`."""
    credential_key: str | None = None
    """The API key's catalog key, e.g. `models.deepseek_v3_0324.deployments[1].api_keys[0]` (None: no key)."""
    credential_env: tuple[str, ...] = ()
    """Environment variables the API key's configured text refers to (`${oc.env:AZURE_AI_API_KEY}`)."""
    endpoint_env: tuple[str, ...] = ()
    """Environment variables the endpoint's configured text refers to."""


@dataclass(frozen=True)
class Lane:
    """One (deployment, credential) pair with its own limits. The provider calls `deployment` verbatim."""

    lane_id: str
    base_model: str
    deployment: str
    provider: str
    credential_id: str
    max_concurrency: int
    rpm: float | None = None
    weight: float | None = None
    """The deployment's declared `weight` (None: undeclared); the `weighted` sharding strategy interprets it."""
    route: str | None = None
    endpoint: str | None = None
    api_version: str | None = None
    api_key: str | None = field(default=None, repr=False, compare=False)
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    model_params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    source: LaneSource | None = field(default=None, compare=False)
    """Where the lane is declared (catalog keys, environment variable names), for the end-of-run lane summary."""


@dataclass(frozen=True)
class Cell:
    """One point of the experiment grid for one base model."""

    suite: str
    base_model: str
    factors: tuple[tuple[str, FactorValue], ...]

    def factor(self, name: str) -> FactorValue:
        for key, value in self.factors:
            if key == name:
                return value
        raise KeyError(name)

    def as_dict(self) -> dict[str, FactorValue]:
        return dict(self.factors)


@dataclass(frozen=True, slots=True)
class UnitScope:
    """What makes two units comparable: digests of the suite's and of the model's result-relevant settings.

    `suite` covers the suite's name, version, data digests and result-relevant options (and the judge model when the
    suite uses one); `model` covers the base model's name, provider, tool-calling mode, generation settings and the
    provider's result-relevant options. Units differing in either never answer the same question.
    """

    suite: str
    model: str


@dataclass(frozen=True, slots=True)
class Unit:
    """One test: (cell, instance index, seed) under a scope, identified by its content-addressed key."""

    key: str
    cell: Cell
    index: int
    seed: int
    scope: UnitScope
    cell_key: str
    """A digest of the cell's factors: with the scope and seed it locates the unit's cell in storage."""


@dataclass(frozen=True)
class ToolCall:
    """A native (function-calling) tool call returned by the model."""

    name: str
    arguments: str = "{}"
    call_id: str = ""

    def wire(self) -> dict[str, Any]:
        """The OpenAI wire shape of the call inside an assistant message."""
        return {"id": self.call_id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class Role(enum.StrEnum):
    """Who speaks a chat message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation, typed: its role, its text, and (assistant) the tool calls it made or (tool)
    the call it answers."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def wire(self) -> Message:
        """The OpenAI wire shape (what providers send and transcripts store)."""
        message: Message = {"role": self.role.value, "content": self.content}
        if self.tool_calls:
            message["content"] = self.content or None
            message["tool_calls"] = [call.wire() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call (native tool calling); `parameters` is its JSON Schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def wire(self) -> dict[str, Any]:
        """The OpenAI wire shape of the tool."""
        function = {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}
        return {"type": "function", "function": function}


class Purpose(enum.StrEnum):
    """Why a request is sent: to answer a unit's question, or to judge a unit's result."""

    ANSWER = "answer"
    JUDGE = "judge"


@dataclass(frozen=True)
class Request:
    """One LLM request, typed. Suites fill in the conversation, the tools offered and the protocol it belongs to; the
    scheduler adds the model's generation settings. Providers send exactly this; none reads the prompt to learn its
    job (the simulated provider picks its behaviour from `protocol` and `purpose`)."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    """`auto`, `none`, `required`, or one function's name; None leaves the API's default."""
    purpose: Purpose = Purpose.ANSWER
    protocol: str = ""
    """The protocol the conversation follows (the suite's name, e.g. `jsonl`, `workflow`)."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)


@dataclass(frozen=True)
class Completion:
    """One model reply."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    reasoning: str | None = None
    cost_usd: float | None = None
    """What the call cost in USD, when the provider knows a price for the model (None: unknown)."""


@dataclass(frozen=True)
class ErrorClass:
    """A provider's verdict on an exception; the scheduler decides what to do with it."""

    status: CallStatus
    retry_after_s: float | None = None
    http_status: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class CallRecord:
    """One LLM request inside an episode."""

    unit_key: str
    run_id: str
    lane_id: str
    deployment: str
    credential_id: str
    attempt: int
    started_at: float
    latency_s: float
    status: CallStatus
    prompt_tokens: int = 0
    completion_tokens: int = 0
    http_status: int | None = None
    error: str | None = None
    cost_usd: float | None = None
    """What the request cost in USD (None: no price known, or the request failed)."""


@dataclass(frozen=True)
class Episode:
    """What a suite reports for one executed unit (the scheduler adds lane, timing and identity)."""

    outcome: Outcome
    metrics: Mapping[str, float] = field(default_factory=dict)
    task_id: str | None = None
    turns: int = 0
    error_category: str | None = None
    infra_status: str | None = None
    transcript: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class UnitResult:
    """One stored row of `units`: a unit's identity, where it ran, and its episode."""

    unit: Unit
    run_id: str
    deployment: str
    lane_id: str
    started_at: float
    duration_s: float
    episode: Episode

    @property
    def key(self) -> str:
        return self.unit.key


@dataclass(frozen=True)
class MetricSpec:
    """A per-unit metric a suite reports, and how reports aggregate it (`mean` or `sum`)."""

    name: str
    description: str
    aggregate: str = "mean"


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`. `config` is the composed configuration with secrets redacted."""

    run_id: str
    started_at: float
    suite: str
    models: tuple[str, ...]
    config: Mapping[str, Any]
    version: str
    host: str
    planned_units: int = 0
    pid: int = 0
    scopes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Every scope digest the run's units carry, with the settings it stands for (stored for reports)."""
    worker: int = 0
    """`run.worker`: names the worker among those sharing a plan (logs, `fleetbench status`); never in a unit key."""
    plan: str = ""
    """Digest of the plan (scopes, seed, instances): runs with the same digest share the plan's units and lanes."""
    experiment: str | None = None
    """The experiment preset the run was composed with (`experiment=phase5_3`), recorded with the run and its units."""


@dataclass(frozen=True)
class ClaimInfo:
    """A unit some run has claimed and not yet written (see `Storage.claim`)."""

    unit_key: str
    run_id: str
    expires_at: float
    cell_key: str
    index: int


@dataclass(frozen=True)
class ReportFilter:
    """Which stored units a report or a resume look-up covers. Model names are canonical (resolved)."""

    suite: str | None = None
    base_models: tuple[str, ...] = ()
    run_id: str | None = None
    factors: Mapping[str, tuple[FactorValue, ...]] = field(default_factory=dict)
    run_label: str | None = None
    """Only units executed by runs whose `run.label` is exactly this (as written in the stored configuration)."""
    plans: tuple[PlanScope, ...] | None = None
    """When set, only units some plan of this tuple contains (see `PlanScope`); `None` covers every scope."""


@dataclass(frozen=True)
class PlanScope:
    """The units of one base model that one composed configuration plans: its suite and model scope, its seed, and
    per planned cell key how many instances (`instance_index` below it)."""

    suite_scope: str
    model_scope: str
    seed: int
    cells: Mapping[str, int]

    def contains(
        self, suite_scope: str | None, model_scope: str | None, seed: int, cell_key: str | None, index: int
    ) -> bool:
        """Whether a stored unit with these identity columns is one of the plan's units."""
        planned = self.cells.get(cell_key or "")
        return (
            planned is not None
            and index < planned
            and (suite_scope, model_scope, seed) == (self.suite_scope, self.model_scope, self.seed)
        )
