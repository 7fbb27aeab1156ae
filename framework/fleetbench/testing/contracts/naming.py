"""The naming kit: what every `NamingPolicy` must do, as tests an author inherits.

A naming policy is constructed with the catalog, so the fixture is a factory. Subclass `NamingContract` (as
`TestMyNaming`) and define `make_naming`::

    class TestPrefixNaming(NamingContract):
        @pytest.fixture
        def make_naming(self) -> Callable[[Catalog], NamingPolicy]:
            return lambda catalog: PrefixNaming(PrefixOptions(), catalog=catalog)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fleetbench.contracts import contract_problem
from fleetbench.errors import ConfigError, UnknownNameError
from fleetbench.interfaces import NamingPolicy
from fleetbench.types import Catalog, DeploymentSpec, ModelSpec

MakeNaming = Callable[[Catalog], NamingPolicy]

KIT_CATALOG = Catalog(
    (
        ModelSpec(
            "DeepSeek-V3-0324",
            "scripted",
            (DeploymentSpec("DeepSeek-V3-0324"), DeploymentSpec("DeepSeek-V3-0324-2"), DeploymentSpec("dsv3-east")),
            aliases=("deepseek-v3",),
        ),
        ModelSpec("Llama-3.3-70B-Instruct", "scripted", (DeploymentSpec("llama-prod"),), aliases=("llama-3.3",)),
    )
)
"""Two base models: one with three deployments (two named after it) and an alias, one with an alias."""

CONFLICTS: dict[str, Catalog] = {
    "an alias of one model is another model's name": Catalog(
        (
            ModelSpec("Model-A", "scripted", (DeploymentSpec("Model-A"),), aliases=("Model-B",)),
            ModelSpec("Model-B", "scripted", (DeploymentSpec("Model-B"),)),
        )
    ),
    "a deployment of one model is named like another model": Catalog(
        (
            ModelSpec("Model-A", "scripted", (DeploymentSpec("Model-A"), DeploymentSpec("Model-B"))),
            ModelSpec("Model-B", "scripted", (DeploymentSpec("Model-B-east"),)),
        )
    ),
    "two models share an alias": Catalog(
        (
            ModelSpec("Model-A", "scripted", (DeploymentSpec("Model-A"),), aliases=("shared",)),
            ModelSpec("Model-B", "scripted", (DeploymentSpec("Model-B"),), aliases=("shared",)),
        )
    ),
}
"""Catalogs in which one spelling names two base models: every policy must refuse them."""


def declared_spellings(catalog: Catalog) -> dict[str, str]:
    """Every spelling the catalog declares (base names, deployments, aliases) → its base model."""
    spellings: dict[str, str] = {}
    for model in catalog.models:
        for spelling in (model.name, *model.deployment_names, *model.aliases):
            spellings[spelling] = model.name
    return spellings


class NamingContract:
    """Inherited tests proving a policy resolves its catalog's spellings and refuses ambiguous catalogs."""

    @pytest.fixture
    def make_naming(self) -> MakeNaming:
        """Build the policy under test for a catalog. Override this."""
        raise NotImplementedError("define the `make_naming` fixture in your NamingContract subclass")

    def test_passes_the_load_time_contract_check(self, make_naming: MakeNaming) -> None:
        assert contract_problem(NamingPolicy, type(make_naming(KIT_CATALOG))) is None

    def test_every_declared_spelling_resolves_to_its_base_model(self, make_naming: MakeNaming) -> None:
        naming = make_naming(KIT_CATALOG)
        for spelling, base in declared_spellings(KIT_CATALOG).items():
            assert naming.base_name(spelling) == base, spelling
            assert naming.how(spelling), f"{spelling!r} resolves but `how` says it does not"

    def test_resolutions_list_every_declared_spelling(self, make_naming: MakeNaming) -> None:
        listed = {spelling: base for spelling, base, how in make_naming(KIT_CATALOG).resolutions()}
        for spelling, base in declared_spellings(KIT_CATALOG).items():
            assert listed.get(spelling) == base, spelling

    def test_the_catalog_it_was_built_from_is_kept(self, make_naming: MakeNaming) -> None:
        assert make_naming(KIT_CATALOG).catalog == KIT_CATALOG

    def test_an_unknown_spelling_is_refused_or_passed_through(self, make_naming: MakeNaming) -> None:
        naming = make_naming(KIT_CATALOG)
        for spelling in ("Mistral-Large-2411", "DeepSeek-V3-0325"):
            assert naming.how(spelling) is None
            try:
                resolved = naming.base_name(spelling)
            except UnknownNameError as exc:
                assert spelling in str(exc)
            else:
                assert resolved == spelling, "an unknown spelling may only pass through unchanged"

    @pytest.mark.parametrize("conflict", sorted(CONFLICTS))
    def test_a_spelling_claimed_by_two_base_models_is_refused(self, make_naming: MakeNaming, conflict: str) -> None:
        with pytest.raises(ConfigError) as refused:
            make_naming(CONFLICTS[conflict])
        assert "Model-A" in str(refused.value) and "Model-B" in str(refused.value)
