"""Validate a composed configuration into a `RunSpec`, before anything runs or anything is written.

Every plugin is located and its options validated here; nothing is constructed that touches the outside world
(storage is a `PluginRef` until the runner opens it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fleetbench import interfaces, registry
from fleetbench.config.catalog import as_dict, build_catalog, build_lanes, model_node, raw_params
from fleetbench.config.schema import ReportConf, RunConf, SchedulerConf
from fleetbench.errors import ConfigError, UnknownNameError, choices_text
from fleetbench.limits import SEED_MAX, SEED_MIN, checked_name
from fleetbench.secrets import redact
from fleetbench.types import Catalog, Lane, ModelSpec

PROGRESS_MODES = ("auto", "rich", "plain", "off")
REPORT_FORMATS = ("table", "markdown", "csv", "json")


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
    judge: ModelSpec | None = None
    """The judge model when the suite asks for one; its lanes are in `lanes` too."""


def resolve_common(cfg: DictConfig) -> NamingSpec:
    """Catalog, naming policy, storage plugin and report settings (used by every command)."""
    catalog = build_catalog(cfg.models)
    naming_ref = registry.load("naming", cfg.naming, "naming")
    naming = naming_ref.create(catalog=catalog)
    storage = registry.load("storage", cfg.storage, "storage")
    report = _typed(ReportConf, cfg.report)
    if report.format not in REPORT_FORMATS:
        raise ConfigError(f"report.format: {report.format!r} is not valid; choices: {choices_text(REPORT_FORMATS)}")
    return NamingSpec(catalog, naming, storage, report)


def resolve_run(cfg: DictConfig) -> RunSpec:
    """The full validation of `fleetbench run`: names, plugins, options, lanes and limits."""
    common = resolve_common(cfg)
    run = _typed(RunConf, cfg.run)
    scheduler = _typed(SchedulerConf, cfg.scheduler)
    _check_run(run, scheduler)
    models = _selected_models(common, run)
    # Constructed here: options that depend on data (a dataset's categories) are checked before anything runs.
    suite = registry.load("suites", cfg.suite, "suite").create()
    _check_suite_names(suite)
    judge = _judge(common, run, suite)
    providers: dict[str, registry.PluginRef[interfaces.Provider]] = {}
    lanes: dict[str, tuple[Lane, ...]] = {}
    for model in (*models, *([judge] if judge is not None and judge not in models else [])):
        if model.provider not in providers:
            node = cfg.providers.get(model.provider)
            section = registry.plain_dict(node) if isinstance(node, DictConfig) else {}
            section.setdefault("plugin", model.provider)
            providers[model.provider] = registry.load("providers", section, f"providers.{model.provider}")
        lanes[model.name] = _lanes(cfg.models, model, providers[model.provider])
    return RunSpec(
        common=common,
        run=run,
        scheduler=scheduler,
        models=models,
        lanes=lanes,
        suite=suite,
        sharding=registry.load("sharding", cfg.sharding, "sharding").create(),
        providers=providers,
        redacted_config=redact(OmegaConf.to_container(cfg, resolve=False)),
        judge=judge,
    )


def _typed(cls: type[Any], node: DictConfig) -> Any:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), node))


def _check_run(run: RunConf, scheduler: SchedulerConf) -> None:
    if run.instances < 1:
        raise ConfigError(f"run.instances: must be at least 1, got {run.instances}")
    if not SEED_MIN <= run.seed <= SEED_MAX:
        raise ConfigError(f"run.seed: must be a signed 64-bit integer ({SEED_MIN} to {SEED_MAX}), got {run.seed}")
    if run.progress not in PROGRESS_MODES:
        raise ConfigError(f"run.progress: {run.progress!r} is not valid; choices: {choices_text(PROGRESS_MODES)}")
    if not run.models:
        raise ConfigError("run.models: empty; name at least one model")
    for name in ("request_timeout_s", "episode_timeout_s", "backoff_base_s", "backoff_max_s"):
        if getattr(scheduler, name) <= 0:
            raise ConfigError(f"scheduler.{name}: must be positive, got {getattr(scheduler, name)}")
    if scheduler.max_attempts < 1 or scheduler.write_batch < 1:
        raise ConfigError("scheduler.max_attempts and scheduler.write_batch: must be at least 1")


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
        return None
    if not run.judge:
        raise ConfigError(
            f"run.judge: suite {suite.name!r} asks for a judge model (e.g. suite.classifier=llm); "
            f"name one of: {choices_text(common.catalog.names)}"
        )
    return _catalog_model(common, run.judge, "run.judge")


def _lanes(models: DictConfig, model: ModelSpec, provider: registry.PluginRef[Any]) -> tuple[Lane, ...]:
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
    return build_lanes(models, model, as_dict(model_params), deployment_params)
