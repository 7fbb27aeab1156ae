"""Structured configs, registered in Hydra's ConfigStore; the YAML in `conf/` sets values, never declares keys.

Typed sections (run, scheduler, report, the model catalog) reject unknown keys when composed. Plugin sections
(`storage`, `suite`, `sharding`, `naming`, `providers.<name>`) are typed by the plugin their config group selects:
`config/groups.py` registers every installed plugin's options dataclass as that group's schema.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from fleetbench.config.outputs import DriftConf, ExportConf
from fleetbench.interfaces import option

SCHEMA_NAME = "fleetbench_schema"

MAX_INSTANCES = 10_000_000
"""`run.instances` above this is refused: a plan that size would take years on any API."""
MAX_CONCURRENCY = 10_000
"""Requests in flight per deployment (each is a coroutine; far beyond any real API's limit)."""


@dataclass
class DeploymentConf:
    """One deployment of a base model. `api_keys` holds `${oc.env:...}` references: one lane per key.

    Nothing about a deployment changes results (any lane may run any unit), so none of it enters a unit key.
    """

    name: str = option(MISSING, affects_result=False)
    endpoint: str | None = option(None, affects_result=False)
    api_version: str | None = option(None, affects_result=False)
    api_keys: list[str] = option(affects_result=False, default_factory=list)
    max_concurrency: int = option(8, affects_result=False)
    rpm: float | None = option(None, affects_result=False)
    weight: float | None = option(None, affects_result=False)
    params: dict[str, Any] = option(
        affects_result=False, default_factory=dict, help="the provider's DeploymentParams (never result-relevant)"
    )


@dataclass
class GenerationConf:
    """Generation settings sent with every request to the model; null leaves the API's default. All change results."""

    temperature: float | None = option(None, affects_result=True)
    top_p: float | None = option(None, affects_result=True)
    max_tokens: int | None = option(None, affects_result=True)
    seed: int | None = option(None, affects_result=True)
    stop: list[str] = option(affects_result=True, default_factory=list)
    reasoning_effort: str | None = option(None, affects_result=True)


@dataclass
class ModelConf:
    """A base model: its canonical name, provider route, deployments and aliases."""

    name: str = option(MISSING, affects_result=True)
    provider: str = option("litellm", affects_result=True)
    route: str | None = option(None, affects_result=False, help="how the provider reaches the model, not which one")
    aliases: list[str] = option(affects_result=False, default_factory=list)
    tool_calling: str = option("text", affects_result=True)
    deployments: list[DeploymentConf] = option(affects_result=False, default_factory=list)
    params: dict[str, Any] = option(
        affects_result=False, default_factory=dict, help="the provider's ModelParams, classified by their own fields"
    )
    generation: GenerationConf = option(affects_result=True, default_factory=GenerationConf)


@dataclass
class RunConf:
    """What to run: which models (any spelling), how many units per cell, the experiment seed."""

    models: list[str] = field(default_factory=lambda: ["Sim-Agent"])
    instances: int = 20
    seed: int = 0
    label: str = ""
    """A free name for the run (never part of a unit key), stored with its configuration; `report.label` selects it."""
    progress: str = "auto"
    judge: str | None = None
    """The model that judges episodes when the suite asks for one (e.g. `suite.classifier=llm`); any spelling."""
    worker: int = 0
    """Names this worker among the processes sharing one plan (`-m run.worker=range(8)`): shown in logs, `fleetbench
    runs` and `fleetbench status`; never part of a unit key, so every worker claims from the same plan."""
    lease_s: float = 60.0
    """How long a claim on a unit lasts without renewal: a worker that dies (SIGKILL, lost machine) leaves its units
    to the others after at most this long."""
    heartbeat_s: float = 5.0
    """How often a running worker records that it is alive and renews its claims (at most half of `lease_s`)."""
    claim_batch: int = 16
    """Units claimed per transaction: larger batches cost fewer transactions, smaller ones split a plan's tail more
    evenly among workers."""


RAMP_STEP_S = 0.02


@dataclass
class SchedulerConf:
    """Timeouts, retries, lane health and write batching. Times are seconds."""

    request_timeout_s: float = 150.0
    episode_timeout_s: float = 900.0
    max_attempts: int = 5
    """Attempts of one request that fail (transient, unreachable, empty reply); 429 answers are counted apart."""
    max_rate_limited: int = 30
    """429 answers one request may get (each waited out for its Retry-After) before it counts as failed."""
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    write_batch: int = 512
    drain_timeout_s: float = 30.0
    """After the first Ctrl-C / SIGTERM (or the deadline), how long units in flight may finish before they are
    abandoned (a second signal abandons them at once)."""
    deadline_s: float | None = None
    """Stop taking units this many seconds after the run started and drain as on the first Ctrl-C (None: no
    deadline). The run ends with status `deadline` and exit code 124 (as `timeout(1)`)."""
    concurrency_decrease: float = 0.5
    """On a 429 a lane's effective concurrency is multiplied by this (never below 1); it grows back by one after
    each run of successes as long as the current limit, up to the deployment's `max_concurrency`."""
    breaker_failures: int = 5
    """Consecutive transient failures, refused connections or request timeouts that park a lane."""
    breaker_cooldown_s: float = 30.0
    """How long a parked lane waits before one probe request; doubled after each failed probe."""
    breaker_cooldown_max_s: float = 300.0
    max_restarts: int = 3
    """How often one episode may start again from its first turn after losing its lane (parked, stopped, a request
    timeout, retries exhausted); a restart goes to another healthy lane of the model when there is one."""
    ramp_step_s: float = RAMP_STEP_S
    """At the start of a run a lane's request slots open one after another, this many seconds apart, instead of all
    at once (0: at once), so that its first requests, and so their replies, are spread out (see `LaneState.ramp`):
    a lane of 25 slots is fully open after half a second."""


@dataclass
class ReportConf:
    """What `fleetbench report` shows."""

    models: list[str] = field(default_factory=list)
    by: list[str] = field(default_factory=list)
    run_id: str | None = None
    label: str | None = None
    """Only units executed by runs with this `run.label`."""
    format: str = "table"
    output: str | None = None
    scope: str = "config"
    """`config`: exactly the units the composed configuration plans; `all`: every stored unit of the suite, rows
    split by suite scope, model scope and seed."""
    tables: list[str] = field(default_factory=list)
    """Research tables to print instead of the overview: 5.1 ... 5.5 or their names (`fleetbench.report.research`)."""
    exclude_timeouts: bool = True
    """Research tables: leave units whose episode ended in an infrastructure timeout out of the effective count (and
    show how many); false counts them as failures, as the original did without its option."""
    confidence: float = 0.95
    """Confidence level of the Wilson intervals the research tables show on every rate."""


@dataclass
class StatusConf:
    """What `fleetbench status` shows."""

    window_s: float = 300.0
    """Lane health covers the calls started in the last this many seconds."""
    watch: bool = False
    """Redraw every `every_s` seconds until Ctrl-C."""
    every_s: float = 2.0


@dataclass
class FleetbenchConf:
    """The whole composed configuration."""

    run: RunConf = field(default_factory=RunConf)
    scheduler: SchedulerConf = field(default_factory=SchedulerConf)
    report: ReportConf = field(default_factory=ReportConf)
    # `fleetbench drift` and `fleetbench export` (config/outputs.py).
    drift: DriftConf = field(default_factory=DriftConf)
    export: ExportConf = field(default_factory=ExportConf)
    status: StatusConf = field(default_factory=StatusConf)
    models: dict[str, ModelConf] = field(default_factory=dict)
    # Plugin sections: each is typed by the schema of the plugin its config group selected (see config/groups.py).
    providers: dict[str, Any] = field(default_factory=dict)
    storage: Any = MISSING
    suite: Any = MISSING
    sharding: Any = MISSING
    naming: Any = MISSING


def register() -> None:
    """Store the root schema and every installed plugin's config group (`conf/config.yaml` selects them)."""
    from fleetbench.config.groups import register_plugin_groups

    ConfigStore.instance().store(name=SCHEMA_NAME, node=FleetbenchConf)
    register_plugin_groups()
    # `conf/hydra/launcher/ray.yaml` takes the place of hydra-ray-launcher's own `ray` config on purpose (it is
    # complete by itself; Hydra still checks it against the plugin's schema of the same name and says so every time).
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")
