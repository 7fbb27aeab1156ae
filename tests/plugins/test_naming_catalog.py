"""The `catalog` naming policy over the shipped catalog: every spelling resolves to its canonical base model."""

from __future__ import annotations

import pytest

from fleetbench.config import compose_config, resolve_common
from fleetbench.config.catalog import build_catalog
from fleetbench.errors import ConfigError, UnknownNameError
from fleetbench.types import Catalog, DeploymentSpec, ModelSpec
from fleetbench_plugins.naming.catalog import CatalogNaming, CatalogNamingOptions

SHIPPED = build_catalog(compose_config([]).models)
POLICY = CatalogNaming(CatalogNamingOptions(), catalog=SHIPPED)


def _spellings() -> list[tuple[str, str]]:
    """(spelling, expected base) for every declared spelling and its case and suffix variants."""
    cases: list[tuple[str, str]] = []
    for model in SHIPPED.models:
        declared = {model.name, *model.aliases, *model.deployment_names}
        for spelling in declared:
            cases += [(spelling, model.name), (spelling.upper(), model.name), (spelling.lower(), model.name)]
        for suffix in ("-2", "-3", "-17"):
            cases.append((model.name + suffix, model.name))
            cases.append((model.name.lower() + suffix, model.name))
    return sorted(set(cases))


@pytest.mark.parametrize(("spelling", "base"), _spellings())
def test_every_shipped_spelling_resolves_to_its_canonical_base(spelling: str, base: str) -> None:
    assert POLICY.base_name(spelling) == base


def test_the_original_systems_names_resolve_in_canonical_case() -> None:
    assert POLICY.base_name("deepseek-v3-0324-2") == "DeepSeek-V3-0324"
    assert POLICY.base_name("DeepSeek-V3-0324-3") == "DeepSeek-V3-0324"
    assert POLICY.base_name("llama-3.3-70b-instruct-2") == "Llama-3.3-70B-Instruct"
    assert POLICY.base_name("Qwen2.5-72B-Instruct") == "qwen2.5-72b-instruct"
    assert POLICY.base_name("gpt5-mini") == "gpt-5-mini"


def test_qwen_sizes_are_never_merged() -> None:
    sizes = {POLICY.base_name(f"qwen2.5-{size}b-instruct") for size in (3, 7, 14, 32, 72)}
    assert len(sizes) == 5


def test_shipped_catalog_declares_the_models_the_original_ran() -> None:
    names = set(SHIPPED.names)
    assert {
        "DeepSeek-V3-0324",
        "DeepSeek-R1-0528",
        "Llama-3.3-70B-Instruct",
        "gpt-4o-mini",
        "gpt-5-mini",
        "o3-0416-global",
        "gemini-2.5-flash-06-17",
        "kimi-k2",
        "claude_sonnet4",
        "Sim-Agent",
    } <= names
    assert {f"qwen2.5-{s}b-instruct" for s in (3, 7, 14, 32, 72)} <= names
    for base in ("DeepSeek-V3-0324", "DeepSeek-R1-0528", "Llama-3.3-70B-Instruct", "Sim-Agent"):
        assert SHIPPED.get(base).deployment_names == (base, f"{base}-2", f"{base}-3")
    for size in (3, 7, 14, 32, 72):
        assert SHIPPED.get(f"qwen2.5-{size}b-instruct").deployments[0].credential_count == 3


def test_unknown_names_error_by_default_and_name_the_known_models() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown model 'mystery-model'.*DeepSeek-V3-0324"):
        POLICY.base_name("mystery-model")
    # A -N suffix only strips onto a known spelling, and only short deployment suffixes count.
    with pytest.raises(UnknownNameError):
        POLICY.base_name("mystery-model-2")
    with pytest.raises(UnknownNameError):
        POLICY.base_name("DeepSeek-V3-0325")


def test_passthrough_rule_keeps_unknown_names() -> None:
    policy = CatalogNaming(CatalogNamingOptions(unknown="passthrough"), catalog=SHIPPED)
    assert policy.base_name("mystery-model") == "mystery-model"


def _model(name: str, aliases: tuple[str, ...] = (), deployments: tuple[str, ...] = ()) -> ModelSpec:
    return ModelSpec(name, "simulated", tuple(DeploymentSpec(d) for d in deployments or (name,)), aliases)


def test_an_alias_claimed_by_two_models_is_rejected_naming_both() -> None:
    catalog = Catalog((_model("Alpha", aliases=("shared",)), _model("Beta", aliases=("SHARED",))))
    with pytest.raises(ConfigError, match=r"'SHARED'.*'Beta'.*'Alpha'"):
        CatalogNaming(CatalogNamingOptions(), catalog=catalog)


def test_a_deployment_named_like_another_base_model_is_rejected() -> None:
    catalog = Catalog((_model("Alpha"), _model("Beta", deployments=("Beta", "Alpha"))))
    with pytest.raises(ConfigError, match=r"'Alpha' \(deployment of 'Beta'\) is also the base name of 'Alpha'"):
        CatalogNaming(CatalogNamingOptions(), catalog=catalog)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        CatalogNamingOptions(unknown="guess")


def test_resolve_common_builds_the_policy_from_config() -> None:
    common = resolve_common(compose_config(["naming.unknown=passthrough"]))
    assert common.naming.base_name("whatever") == "whatever"
    assert ("Sim-Agent-2", "Sim-Agent", "deployment") in common.naming.resolutions()


def test_an_entry_without_deployments_is_called_under_its_own_name() -> None:
    catalog = build_catalog(compose_config(["models.deepseek_v3_0324.deployments=[]"]).models)
    (model,) = [m for m in catalog.models if m.handle == "deepseek_v3_0324"]
    assert model.deployment_names == ("DeepSeek-V3-0324",)
