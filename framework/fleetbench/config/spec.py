"""Validate a composed configuration into a `RunSpec`, before anything runs or anything is written.

Every plugin is located and its options validated here; nothing is constructed that touches the outside world
(storage is a `PluginRef` until the runner opens it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from fleetbench import interfaces, registry
from fleetbench.config.catalog import as_dict, build_catalog, build_lanes, model_node, raw_params
from fleetbench.config.groups import check_section
from fleetbench.config.identity import Scopes, build_scopes, model_identity, suite_identity
from fleetbench.config.schema import MAX_INSTANCES, FleetbenchConf, ReportConf, RunConf, SchedulerConf
from fleetbench.errors import ConfigError, UnknownNameError, choices_text
from fleetbench.limits import SEED_MAX, SEED_MIN, checked_name, first_unstorable
from fleetbench.secrets import redact
from fleetbench.types import Catalog, Lane, ModelSpec

PROGRESS_MODES = ("auto", "rich", "plain", "off")
REPORT_FORMATS = ("table", "markdown", "csv", "json", "html")


@dataclasses.dataclass(frozen=True)
class NamingSpec:
    """The catalog, the naming policy over it, and the storage plugin: what every command needs."""

    catalog: Catalog
    naming: interfaces.NamingPolicy
    storage: registry.PluginRef[interfaces.Storage]
    report: ReportConf


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything a run needs, validated. Models are canonical base names; lanes are resolved.

    The suite and sharding strategy are constructed (they read only packaged or named data files); providers and
    storage stay unconstructed `PluginRef`s until the runner opens them.
    """

    common: NamingSpec
    run: RunConf
    scheduler: SchedulerConf
    models: tuple[ModelSpec, ...]
    lanes: Mapping[str, tuple[Lane, ...]]
    suite: interfaces.Suite
    sharding: interfaces.ShardingStrategy
    providers: Mapping[str, registry.PluginRef[interfaces.Provider]]
    redacted_config: Mapping[str, Any]
    scopes: Scopes
    """Per selected base model, the scope its units carry (part of every unit key)."""
    judge: ModelSpec | None = None
    """The judge model when the suite asks for one; its lanes are in `lanes` too."""
    experiment: str | None = None
    """The experiment preset selected (`experiment=phase5_3`), recorded with the run and its units."""


@dataclasses.dataclass(frozen=True)
class PlanSpec:
    """What a configuration plans, without anything needed to execute it (no lanes, no credentials): the selected
    models, the constructed suite and the scopes their units carry. `fleetbench report` reads exactly these units."""

    run: RunConf
    models: tuple[ModelSpec, ...]
    suite: interfaces.Suite
    scopes: Scopes
    experiment: str | None = None
    common: NamingSpec | None = None
    """The naming, storage and report settings the plan was resolved with (set by `resolve_plan`)."""


def resolve_plan(cfg: DictConfig) -> PlanSpec:
    """The plan of a configuration, validated as `resolve_run` validates it but without resolving deployments, so
    a report needs no API key: a scope never depends on credentials or lanes."""
    common = resolve_common(cfg)
    run = _typed(RunConf, cfg.run, "run")
    if not run.models:
        raise ConfigError("run.models: empty; name at least one model")
    models = _selected_models(common, run)
    suite_ref = _load("suites", cfg.suite, "suite")
    suite = suite_ref.create()
    _check_instances(suite, models, run.instances)
    judge = _judge(common, run, suite)
    providers: dict[str, registry.PluginRef[interfaces.Provider]] = {}
    identities: dict[str, dict[str, Any]] = {}
    for model in (*models, *([judge] if judge is not None and judge not in models else [])):
        if model.provider not in providers:
            providers[model.provider] = _provider(cfg, model.provider)
        provider = providers[model.provider]
        key = f"models.{model.handle}"
        params = registry.validate_options(
            provider.cls.ModelParams, raw_params(model_node(cfg.models, model), key), f"{key}.params",
            f"provider {provider.name!r}",
        )  # fmt: skip
        identities[model.name] = model_identity(model, provider.options, params)
    judge_identity = identities[judge.name] if judge is not None else None
    scopes = build_scopes(
        suite_identity(suite, suite_ref.options, judge_identity), {m.name: identities[m.name] for m in models}
    )
    return PlanSpec(run, models, suite, scopes, common=common)


def resolve_common(cfg: DictConfig) -> NamingSpec:
    """Catalog, naming policy, storage plugin and report settings (used by every command)."""
    _check_root(cfg)
    unstorable = first_unstorable(OmegaConf.to_container(cfg, resolve=False))  # unresolved: no secret is read
    if unstorable is not None:
        raise ConfigError(f"{unstorable[0]}: {unstorable[1]}")
    catalog = build_catalog(cfg.models)
    naming_ref = _load("naming", cfg.naming, "naming")
    naming = naming_ref.create(catalog=catalog)
    storage = _load("storage", cfg.storage, "storage")
    report = _typed(ReportConf, cfg.report, "report")
    if report.format not in REPORT_FORMATS:
        raise ConfigError(f"report.format: {report.format!r} is not valid; choices: {choices_text(REPORT_FORMATS)}")
    if not 0.5 <= report.confidence < 1.0:  # checked for every command, whether or not it draws an interval
        raise ConfigError(f"report.confidence: must be {accepted_range('report.confidence')}, got {report.confidence}")
    return NamingSpec(catalog, naming, storage, report)


def _check_root(cfg: DictConfig) -> None:
    """A top-level key the schema does not know (`+foo.bar=1`) is a typo: refused, never silently carried along."""
    known = [f.name for f in dataclasses.fields(FleetbenchConf)]
    for name in (str(key) for key in cfg):
        if name not in known and name != "hydra":
            raise ConfigError(f"{name}: no such key; valid keys: {choices_text(sorted(known))}")


def resolve_run(cfg: DictConfig) -> RunSpec:
    """The full validation of `fleetbench run`: names, plugins, options, lanes, limits and result identity."""
    common = resolve_common(cfg)
    run = _typed(RunConf, cfg.run, "run")
    scheduler = _typed(SchedulerConf, cfg.scheduler, "scheduler")
    _check_run(run, scheduler)
    models = _selected_models(common, run)
    # Constructed here: options that depend on data (a dataset's categories) are checked before anything runs.
    suite_ref = _load("suites", cfg.suite, "suite")
    suite = suite_ref.create()
    _check_instances(suite, models, run.instances)
    _check_suite_names(suite)
    judge = _judge(common, run, suite)
    providers: dict[str, registry.PluginRef[interfaces.Provider]] = {}
    lanes: dict[str, tuple[Lane, ...]] = {}
    identities: dict[str, dict[str, Any]] = {}
    for model in (*models, *([judge] if judge is not None and judge not in models else [])):
        if model.provider not in providers:
            providers[model.provider] = _provider(cfg, model.provider)
        provider = providers[model.provider]
        model_params, lanes[model.name] = _lanes(cfg.models, model, provider)
        identities[model.name] = model_identity(model, provider.options, model_params)
    judge_identity = identities[judge.name] if judge is not None else None
    scopes = build_scopes(
        suite_identity(suite, suite_ref.options, judge_identity), {m.name: identities[m.name] for m in models}
    )
    return RunSpec(
        common=common,
        run=run,
        scheduler=scheduler,
        models=models,
        lanes=lanes,
        suite=suite,
        sharding=_load("sharding", cfg.sharding, "sharding").create(),
        providers=providers,
        redacted_config=redact(OmegaConf.to_container(cfg, resolve=False)),
        scopes=scopes,
        judge=judge,
    )


def _load(kind: str, node: Any, key: str) -> registry.PluginRef[Any]:
    """A plugin section (as its config group composed it) validated into a reference to the plugin."""
    check_section(node, key)
    return registry.load(kind, node, key)


def _provider(cfg: DictConfig, name: str) -> registry.PluginRef[interfaces.Provider]:
    """A provider's section, or its defaults when the configuration selects none (`providers@providers.NAME`)."""
    node = cfg.providers.get(name)
    if isinstance(node, DictConfig):
        return _load("providers", node, f"providers.{name}")
    return registry.load("providers", {"plugin": name}, f"providers.{name}")


def _typed(cls: type[Any], node: DictConfig, key: str) -> Any:
    """A typed section as its dataclass; a key added with `+` that the schema does not know is refused."""
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = [str(name) for name in node if name not in fields]
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: no such key; valid keys under {key}: {choices_text(fields)}")
    try:
        # Resolved where it stands, so that `${run.label}` is read from the whole configuration, not the section.
        values = OmegaConf.to_container(node, resolve=True)
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), values))
    except InterpolationResolutionError as exc:  # `${...}` naming a missing key or an unset variable
        where = str(getattr(exc, "full_key", "") or "").replace("[", ".").replace("]", "")
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        name = where if where == key or where.startswith(f"{key}.") else f"{key}.{where}" if where else key
        raise ConfigError(f"{name}: {first}") from None


SCHEDULER_LIMITS: dict[str, tuple[float, float]] = {
    "request_timeout_s": (0.001, 86_400.0),
    "episode_timeout_s": (0.001, 7 * 86_400.0),
    "backoff_base_s": (0.0001, 3_600.0),
    "backoff_max_s": (0.0001, 86_400.0),
    "drain_timeout_s": (0.0, 86_400.0),
    "max_attempts": (1, 1_000),
    "max_rate_limited": (1, 100_000),
    "write_batch": (1, 100_000),
    "concurrency_decrease": (0.01, 1.0),
    "breaker_failures": (1, 1_000_000),
    "breaker_cooldown_s": (0.0001, 86_400.0),
    "breaker_cooldown_max_s": (0.0001, 86_400.0),
    "max_restarts": (0, 1_000),
    "ramp_step_s": (0.0, 60.0),
}
"""Accepted ranges of the scheduler's settings (anything outside is a typo, not a plan)."""
DEADLINE_MAX_S = 366 * 86_400.0


def _check_run(run: RunConf, scheduler: SchedulerConf) -> None:
    if not 1 <= run.instances <= MAX_INSTANCES:
        raise ConfigError(f"run.instances: must be {accepted_range('run.instances')}, got {run.instances}")
    if not SEED_MIN <= run.seed <= SEED_MAX:
        raise ConfigError(f"run.seed: must be {accepted_range('run.seed')}, got {run.seed}")
    if run.progress not in PROGRESS_MODES:
        raise ConfigError(f"run.progress: {run.progress!r} is not valid; choices: {choices_text(PROGRESS_MODES)}")
    if not run.models:
        raise ConfigError("run.models: empty; name at least one model")
    _check_claims(run)
    for name, (low, high) in SCHEDULER_LIMITS.items():
        value = getattr(scheduler, name)
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"scheduler.{name}: must be {accepted_range(f'scheduler.{name}')}, got {value}")
    for low_key, high_key in (("backoff_base_s", "backoff_max_s"), ("breaker_cooldown_s", "breaker_cooldown_max_s")):
        low_value, high_value = getattr(scheduler, low_key), getattr(scheduler, high_key)
        if high_value < low_value:
            raise ConfigError(
                f"scheduler.{high_key}: must be at least scheduler.{low_key} ({low_value:g}), got {high_value:g}"
            )
    deadline = scheduler.deadline_s
    if deadline is not None and not (math.isfinite(deadline) and 0 < deadline <= DEADLINE_MAX_S):
        raise ConfigError(f"scheduler.deadline_s: must be {accepted_range('scheduler.deadline_s')}, got {deadline}")


HEARTBEAT_RANGE_S = (0.05, 10.0)
"""`run.heartbeat_s` bounds: above 10 s `fleetbench runs` would take a live run for dead (see report.runs)."""
LEASE_MAX_S = 86_400.0
LEASE_MIN_S = 2.0
"""Shorter leases expire under live workers whose renewal is merely late (a busy machine, a slow commit), and their
units then run twice; results stay idempotent, but the calls are paid twice."""


def _check_claims(run: RunConf) -> None:
    if not 0 <= run.worker <= 1_000_000:
        raise ConfigError(f"run.worker: must be {accepted_range('run.worker')}, got {run.worker}")
    low, high = HEARTBEAT_RANGE_S
    if not (math.isfinite(run.heartbeat_s) and low <= run.heartbeat_s <= high):
        raise ConfigError(f"run.heartbeat_s: must be {accepted_range('run.heartbeat_s')}, got {run.heartbeat_s}")
    shortest = max(LEASE_MIN_S, 2 * run.heartbeat_s)
    if not (math.isfinite(run.lease_s) and shortest <= run.lease_s <= LEASE_MAX_S):
        raise ConfigError(
            f"run.lease_s: must be from {shortest:g} ({LEASE_MIN_S:g} s and at least twice run.heartbeat_s) to "
            f"{LEASE_MAX_S:g} seconds, got {run.lease_s}"
        )
    if not 1 <= run.claim_batch <= 1024:
        raise ConfigError(f"run.claim_batch: must be {accepted_range('run.claim_batch')}, got {run.claim_batch}")


def accepted_range(key: str) -> str | None:
    """What a numeric setting accepts, as its range error says it (`from 1 to 1,024 units`); None for other keys.
    Also told when a value is not a number at all (`run.instances=abc`), so that one line names the key, what it
    got and what it accepts."""
    low_beat, high_beat = HEARTBEAT_RANGE_S
    ranges = {
        "run.instances": f"from 1 to {MAX_INSTANCES:,} units per cell",
        "run.seed": f"a signed 64-bit integer ({SEED_MIN} to {SEED_MAX})",
        "run.worker": "an integer from 0 to 1000000",
        "run.heartbeat_s": f"from {low_beat:g} to {high_beat:g} seconds",
        "run.lease_s": f"from {LEASE_MIN_S:g} (and at least twice run.heartbeat_s) to {LEASE_MAX_S:g} seconds",
        "run.claim_batch": "from 1 to 1024 units",
        "scheduler.deadline_s": f"null or more than 0 and at most {DEADLINE_MAX_S:g} seconds",
        "report.confidence": "from 0.5 to below 1",
        **{f"scheduler.{name}": f"from {low:g} to {high:g}" for name, (low, high) in SCHEDULER_LIMITS.items()},
    }
    return ranges.get(key)


def _check_instances(suite: interfaces.Suite, models: tuple[ModelSpec, ...], instances: int) -> None:
    """Ask the suite about every cell now, so a plan it cannot honour fails before anything runs."""
    for model in models:
        for cell in suite.cells(model.name):
            suite.instances(cell, instances)


def _check_suite_names(suite: interfaces.Suite) -> None:
    """Factor and metric names a storage could not hold fail now, not when the first result is written."""
    try:
        for name in suite.factor_names():
            checked_name(name, "factor")
        for metric in suite.metrics():
            checked_name(metric.name, "metric")
    except ValueError as exc:
        raise ConfigError(f"suite: plugin {suite.name!r} declares {exc}") from None


def _selected_models(common: NamingSpec, run: RunConf) -> tuple[ModelSpec, ...]:
    selected: list[ModelSpec] = []
    for index, spelling in enumerate(run.models):
        model = _catalog_model(common, str(spelling), f"run.models[{index}]")
        if model not in selected:
            selected.append(model)
    return tuple(selected)


def _catalog_model(common: NamingSpec, spelling: str, key: str) -> ModelSpec:
    try:
        base = common.naming.base_name(spelling)
    except UnknownNameError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    try:
        return common.catalog.get(base)
    except KeyError:
        raise ConfigError(
            f"{key}: {spelling!r} resolves to {base!r}, which the catalog does not declare; "
            f"declared: {choices_text(common.catalog.names)}"
        ) from None


def _judge(common: NamingSpec, run: RunConf, suite: interfaces.Suite) -> ModelSpec | None:
    if not suite.needs_judge:
        if run.judge:  # unused here, but a misspelt judge is refused, never silently ignored
            _catalog_model(common, run.judge, "run.judge")
        return None
    if not run.judge:
        raise ConfigError(
            f"run.judge: suite {suite.name!r} asks for a judge model (e.g. suite.classifier=llm); "
            f"name one of: {choices_text(common.catalog.names)}"
        )
    return _catalog_model(common, run.judge, "run.judge")


def _lanes(models: DictConfig, model: ModelSpec, provider: registry.PluginRef[Any]) -> tuple[Any, tuple[Lane, ...]]:
    """The model's validated params (the provider's `ModelParams`) and its lanes."""
    node = model_node(models, model)
    key = f"models.{model.handle}"
    owner = f"provider {provider.name!r}"
    model_params = registry.validate_options(provider.cls.ModelParams, raw_params(node, key), f"{key}.params", owner)
    deployment_params = {
        spec.name: as_dict(
            registry.validate_options(
                provider.cls.DeploymentParams,
                raw_params(dep_node, f"{key}.deployments[{i}]"),
                f"{key}.deployments[{i}].params",
                owner,
            )
        )
        for i, (spec, dep_node) in enumerate(zip(model.deployments, node.deployments, strict=False))
    }
    return model_params, build_lanes(models, model, as_dict(model_params), deployment_params)
