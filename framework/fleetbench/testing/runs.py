"""A complete `RunSpec` built from the fakes, for core tests of the runner: no configuration, no plugin package.

    spec = fake_run_spec(RecordingStorage, instances=3)
    summary = fleetbench.runner.run(spec)

The storage is given as a class because the runner opens it (`cls(options, naming=...)`) and closes it; a test that
wants to look inside keeps the instances its class constructed.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetbench.config.identity import build_scopes, model_identity, suite_identity
from fleetbench.config.schema import ReportConf, RunConf, SchedulerConf
from fleetbench.config.spec import NamingSpec, RunSpec
from fleetbench.interfaces import NoOptions, Provider, Storage, Suite
from fleetbench.registry import PluginRef
from fleetbench.testing.fakes import ExactNaming, QueueSharding, ScriptedProvider, TinyOptions, TinySuite
from fleetbench.testing.lanes import make_lane
from fleetbench.types import Catalog, DeploymentSpec, ModelSpec


def fake_models(names: Sequence[str], deployments: int = 2) -> tuple[ModelSpec, ...]:
    """Base models of the `scripted` provider, each with `deployments` deployments (`X`, `X-2`, ...)."""
    return tuple(
        ModelSpec(name, "scripted", tuple(DeploymentSpec(_deployment(name, i)) for i in range(deployments)))
        for name in names
    )


def _deployment(model: str, index: int) -> str:
    return model if index == 0 else f"{model}-{index + 1}"


def fake_run_spec(
    storage: type[Storage],
    *,
    suite: Suite | None = None,
    provider: type[Provider] = ScriptedProvider,
    models: Sequence[str] = ("Fake-Model",),
    deployments: int = 2,
    instances: int = 3,
    seed: int = 0,
    scheduler: SchedulerConf | None = None,
) -> RunSpec:
    """A run of `suite` (a `TinySuite` by default) over `models` on the `provider` class (answering correctly by
    default), storing into a new `storage` instance, dispatched from one shared queue per model."""
    suite = suite or TinySuite(TinyOptions())
    specs = fake_models(models, deployments)
    catalog = Catalog(specs)
    naming = ExactNaming(NoOptions(), catalog=catalog)
    identities = {model.name: model_identity(model, NoOptions(), NoOptions()) for model in specs}
    lanes = {
        model.name: tuple(make_lane(name, base_model=model.name, max_concurrency=2) for name in model.deployment_names)
        for model in specs
    }
    return RunSpec(
        common=NamingSpec(catalog, naming, PluginRef("storage", "fake", storage, NoOptions(), "storage"), ReportConf()),
        run=RunConf(models=list(models), instances=instances, seed=seed, progress="off"),
        scheduler=scheduler or SchedulerConf(),
        models=specs,
        lanes=lanes,
        suite=suite,
        sharding=QueueSharding(NoOptions()),
        providers={"scripted": PluginRef("providers", "scripted", provider, NoOptions(), "providers.scripted")},
        redacted_config={},
        scopes=build_scopes(suite_identity(suite, suite.options, None), identities),
    )
