"""Command-line overrides made into what Hydra composes (`fleetbench.config.overrides.normalize`), decided from the
configuration's own schema: scalars for list options are wrapped, catalog `params` keys get `++` or are refused."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import DictConfig

from fleetbench.config import compose_config
from fleetbench.config.overrides import normalize
from fleetbench.errors import ConfigError


class CountingCompose:
    """The application's composition, counting its calls and what it was asked to compose."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, overrides: list[str]) -> DictConfig:
        self.calls.append(list(overrides))
        return compose_config(overrides)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("run.models=Sim-Weak", "run.models=[Sim-Weak]"),
        ("run.models=[Sim-Weak]", "run.models=[Sim-Weak]"),
        ("run.models=[A,B]", "run.models=[A,B]"),
        ("run.models=A,B", "run.models=[A],[B]"),
        ("run.models=[A],B", "run.models=[A],[B]"),
        ("run.models=[A,B],C", "run.models=[A,B],[C]"),
        ("run.models='a=b'", "run.models=['a=b']"),
        ("run.models='a=b=c'", "run.models=['a=b=c']"),
        ("suite.categories=arithmetic", "suite.categories=[arithmetic]"),
        ("run.instances=3", "run.instances=3"),
        ("run.seed=1,2", "run.seed=1,2"),
        ("models.sim_agent.params.qa_accuracy=0.5", "++models.sim_agent.params.qa_accuracy=0.5"),
        ("models.sim_agent.params.profile=weak", "models.sim_agent.params.profile=weak"),  # already in the catalog
        ("models.sim_agent.deployments.0.params.jitter_ms=3", "++models.sim_agent.deployments.0.params.jitter_ms=3"),
        # A provider that is not installed: validation names it later; the key is added for Hydra to compose.
        ("models.deepseek_v3_0324.params.cost_model=gpt-4o", "++models.deepseek_v3_0324.params.cost_model=gpt-4o"),
        # A handle that names no catalog entry: Hydra's own error names the key.
        ("models.nobody.params.profile=weak", "++models.nobody.params.profile=weak"),
    ],
)
def test_overrides_are_rewritten_from_the_schema(given: str, expected: str) -> None:
    compose = CountingCompose()
    assert normalize([given], compose) == [expected]
    assert compose.calls == [[]], "composed once, with the group selections only"


@pytest.mark.parametrize(
    "override",
    [
        "suite=workflow",
        "providers@providers.other=simulated",
        "+run.extra=1",
        "~run.label",
        "hydra.searchpath=[pkg://x]",
        "run.models=[unclosed",
        # Hydra's override grammar has no brackets in keys; Hydra refuses it, naming the override.
        "models.sim_agent.deployments[1].params.jitter_ms=3",
    ],
)
def test_selections_additions_deletions_and_unparsable_overrides_pass_unchanged(override: str) -> None:
    compose = CountingCompose()
    assert normalize([override], compose) == [override]
    assert compose.calls == []


def test_the_schema_comes_from_the_selected_configs_and_nothing_is_composed_twice() -> None:
    compose = CountingCompose()
    overrides = ["suite=workflow", "run.models=Sim-Weak", "suite.difficulties=hard", "run.instances=2"]
    rewritten = normalize(overrides, compose)
    assert rewritten == ["suite=workflow", "run.models=[Sim-Weak]", "suite.difficulties=[hard]", "run.instances=2"]
    assert compose.calls == [["suite=workflow"]]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "models.sim_agent.params.latency_ms=3",
            "models.sim_agent.params.latency_ms: not a param of provider 'simulated'; "
            "valid params: profile, qa_accuracy",
        ),
        (
            "models.sim_agent.deployments.2.params.qa_accuracy=0.5",
            "models.sim_agent.deployments[2].params.qa_accuracy: not a param of provider 'simulated'; valid params: "
            "auth_failure, auth_failure_keys, empty_rate, hang_rate, jitter_ms, latency_ms",
        ),
    ],
)
def test_a_params_key_the_provider_does_not_declare_is_refused_naming_the_valid_ones(
    override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        normalize([override], CountingCompose())
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("overrides", "as_given"),
    [
        (["run.instances=3", "storage.url=sqlite:///x.db"], True),
        (["run.models=Sim-Weak"], False),  # a scalar for a typed list fails to compose; normalizing wraps it
        (["suite=workflow", "suite.prompt_types=baseline", "run.instances=2"], False),
        (["suite=workflow", "suite.prompt_types=[baseline]", "run.instances=2"], True),
        (["models.sim_agent.params.qa_accuracy=0.5"], False),  # a param the catalog lacks: normalizing adds `++`
        (["models.sim_agent.params.profile=weak"], False),  # `params` is untyped: it might have held a list
        (["models.deepseek_v3_0324.deployments.1.max_concurrency=5"], True),
        (["report.by=[prompt_type]", "run.seed=7"], True),
        (["run.models=${run.label}", "run.label=Sim-Weak"], False),  # a typed list takes any interpolation
    ],
)
def test_composing_as_given_is_taken_only_where_normalizing_changes_nothing(
    overrides: list[str], as_given: bool
) -> None:
    """`compose_config` composes the overrides as given when it can (one composition instead of two), and then the
    configuration equals the composition of the normalized overrides."""
    from hydra import compose

    from fleetbench.config.compose import CONFIG_NAME, compose_as_given, hydra_context, normalize_overrides

    with hydra_context():
        normalized = normalize_overrides(overrides)
        expected = compose(config_name=CONFIG_NAME, overrides=normalized)
        given = compose_as_given(overrides)
    assert (given is not None) is as_given
    if given is not None:
        assert normalized == overrides
        assert given == expected
    assert compose_config(overrides) == expected


def test_a_scalar_on_an_untyped_node_is_normalized_not_taken_as_given() -> None:
    """A scalar that composes onto an untyped node is not taken as given, even where it composes: the node might
    have held a list. A typed scalar is."""
    from fleetbench.config.compose import compose_as_given, hydra_context

    with hydra_context():
        typed = compose_as_given(["run.instances=4"])
        untyped = compose_as_given(["++models.sim_agent.params.anything=[1]", "models.sim_agent.params.anything=2"])
    assert typed is not None and typed.run.instances == 4
    assert untyped is None


@pytest.mark.parametrize(
    ("overrides", "compositions"),
    [
        (["run.instances=4"], 1),  # typed: taken as given
        (["models.sim_agent.deployments.0.params.latency_ms=2"], 2),  # untyped, but normalizing changes nothing
        (["run.models=Sim-Weak"], 3),  # fails as typed (a scalar for a list); normalizing makes it [Sim-Weak]
    ],
)
def test_a_configuration_composes_no_more_often_than_its_overrides_need(
    overrides: list[str], compositions: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A composition costs about a quarter of a second; a catalog param on the command line used to cost six of
    them in `fleetbench run`. Whatever the path, the result is the composition of the normalized overrides."""
    from hydra import compose

    import fleetbench.config.compose as composing
    from fleetbench.config.compose import CONFIG_NAME, compose_normalized, hydra_context, normalize_overrides

    with hydra_context():
        expected_overrides = normalize_overrides(overrides)
        expected = compose(config_name=CONFIG_NAME, overrides=expected_overrides)
    made: list[list[str]] = []

    def counted(**kwargs: Any) -> Any:
        made.append(list(kwargs["overrides"]))
        return compose(**kwargs)

    monkeypatch.setattr(composing, "compose", counted)
    with hydra_context():
        cfg, normalized = compose_normalized(overrides)
    assert len(made) == compositions, made
    assert normalized == expected_overrides and cfg == expected


JOB_CONFIGURATION = """
import json, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
import fleetbench.cli as cli

compositions = []
original = ConfigLoaderImpl.load_configuration

def counted(self, *args, **kwargs):
    compositions.append(kwargs.get("overrides"))
    return original(self, *args, **kwargs)

ConfigLoaderImpl.load_configuration = counted
if sys.argv[1] == "hydra-composes":
    cli._KnownComposition.take = lambda *args, **kwargs: None

def job(cfg):
    hydra = OmegaConf.to_container(HydraConfig.get(), resolve=False)
    print(json.dumps({"compositions": len(compositions), "job": OmegaConf.to_container(cfg, resolve=False),
                      "hydra": hydra}, default=str))

cli._run_and_report = job
sys.exit(cli.main(["run", *sys.argv[2:]]))
"""


@pytest.mark.parametrize(
    "overrides",
    [
        ["run.models=[Sim-Weak]", "run.instances=2"],  # composes as typed
        ["run.models=Sim-Weak"],  # normalized first
        ["run.models=[Sim-Weak]", "hydra.mode=RUN", "hydra.job.name=other"],  # Hydra's app adds no override
    ],
)
def test_a_single_run_is_composed_once_into_what_hydra_would_compose(overrides: list[str], tmp_path: Any) -> None:
    """`fleetbench run` validates a single job from one composition, and Hydra's app runs that very composition
    instead of composing it twice more (a quarter of a second each): the job sees the configuration and Hydra
    settings Hydra's own composition gives it."""
    import json
    import subprocess
    import sys

    pinned = [*overrides, f"hydra.run.dir={tmp_path / 'out'}"]

    def job(how: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", JOB_CONFIGURATION, how, *pinned], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return found

    reused, composed = job("reused"), job("hydra-composes")
    assert reused["compositions"] < composed["compositions"]
    assert reused["job"] == composed["job"]
    assert reused["hydra"] == composed["hydra"]
