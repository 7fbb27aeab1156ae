"""The `catalog` naming policy's rules at their edges: how each spelling resolves (`fleetbench names` shows it),
white space around a spelling, the `-N` deployment suffix (`-1`, two digits, three digits, `_2`, a real model named
like `X-128`), and the `suffix_pattern` option. Property tests check the rules over generated catalogs."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fleetbench import registry
from fleetbench.errors import ConfigError, UnknownNameError
from fleetbench.types import Catalog, DeploymentSpec, ModelSpec
from fleetbench_plugins.naming.catalog import CatalogNaming, CatalogNamingOptions


def _model(name: str, *, aliases: tuple[str, ...] = (), deployments: tuple[str, ...] = ()) -> ModelSpec:
    return ModelSpec(name, "simulated", tuple(DeploymentSpec(d) for d in deployments or (name,)), aliases)


CATALOG = Catalog(
    (
        _model("Llama", aliases=("llama-chat",), deployments=("Llama", "Llama-eu")),
        _model("Llama-128", deployments=("Llama-128", "Llama-128-2")),
        _model("Qwen-2"),
    )
)


def _policy(catalog: Catalog = CATALOG, **options: str) -> CatalogNaming:
    return CatalogNaming(CatalogNamingOptions(**options), catalog=catalog)


POLICY = _policy()

RESOLUTIONS = [
    ("Llama", "Llama", "base name"),
    ("llama-chat", "Llama", "alias"),
    ("Llama-eu", "Llama", "deployment"),
    ("LLAMA", "Llama", "case variant of base name"),
    ("Llama-Chat", "Llama", "case variant of alias"),
    ("llama-EU", "Llama", "case variant of deployment"),
    ("Llama-2", "Llama", "suffix -2 of base name"),
    ("llama-chat-7", "Llama", "suffix -7 of alias"),
    ("LLAMA-EU-12", "Llama", "suffix -12 of deployment"),
    ("Llama-1", "Llama", "suffix -1 of base name"),
    ("Llama-99", "Llama", "suffix -99 of base name"),
    ("Llama-128", "Llama-128", "base name"),  # a real model named like a suffix is never taken for one
    ("llama-128", "Llama-128", "case variant of base name"),
    ("Llama-128-2", "Llama-128", "deployment"),
    ("Llama-128-3", "Llama-128", "suffix -3 of base name"),
    ("Llama-128-2-4", "Llama-128", "suffix -4 of deployment"),
    ("Qwen-2", "Qwen-2", "base name"),
    ("Qwen-2-2", "Qwen-2", "suffix -2 of base name"),
    ("Qwen", None, None),  # the stem of a base name that happens to end in -2 names nothing
]


@pytest.mark.parametrize(("spelling", "base", "how"), RESOLUTIONS, ids=[r[0] for r in RESOLUTIONS])
def test_each_spelling_resolves_with_its_label(spelling: str, base: str | None, how: str | None) -> None:
    assert POLICY.how(spelling) == how
    if base is None:
        with pytest.raises(UnknownNameError, match=rf"unknown model '{spelling}'; known base models: Llama, "):
            POLICY.base_name(spelling)
    else:
        assert POLICY.base_name(spelling) == base


@pytest.mark.parametrize("spelling", ["Llama-128-", "Llama-100", "Llama-007", "Llama_2", "Llama 2", "Llama-2b", "-2"])
def test_only_a_dash_and_one_or_two_digits_count_as_a_deployment_suffix(spelling: str) -> None:
    assert POLICY.how(spelling) is None
    with pytest.raises(UnknownNameError):
        POLICY.base_name(spelling)


@pytest.mark.parametrize("padding", [" ", "  ", "\t", "\n", " \t "])
def test_white_space_around_a_spelling_is_ignored(padding: str) -> None:
    for spelling, base, how in RESOLUTIONS:
        padded = f"{padding}{spelling}{padding}"
        assert POLICY.how(padded) == how
        if base is not None:
            assert POLICY.base_name(padded) == base
    passthrough = _policy(unknown="passthrough")
    assert passthrough.base_name(f"{padding}mystery-model{padding}") == "mystery-model"
    assert passthrough.base_name(f"{padding}llama-2{padding}") == "Llama"


def test_white_space_inside_a_spelling_is_kept() -> None:
    with pytest.raises(UnknownNameError, match="'Lla ma'"):
        POLICY.base_name("Lla ma")


def test_resolutions_list_every_declared_spelling_once_with_its_label() -> None:
    assert sorted(POLICY.resolutions()) == sorted(
        [
            ("Llama", "Llama", "base name"),
            ("Llama-eu", "Llama", "deployment"),
            ("llama-chat", "Llama", "alias"),
            ("Llama-128", "Llama-128", "base name"),
            ("Llama-128-2", "Llama-128", "deployment"),
            ("Qwen-2", "Qwen-2", "base name"),
        ]
    )


def test_an_alias_repeating_its_own_base_name_in_another_case_is_not_a_conflict() -> None:
    policy = _policy(Catalog((_model("Alpha", aliases=("ALPHA", "Alpha")),)))
    assert policy.base_name("alpha") == "Alpha"
    assert policy.how("Alpha") == "base name"
    assert policy.how("ALPHA") == "alias"


def test_a_custom_suffix_pattern_replaces_the_default() -> None:
    policy = _policy(suffix_pattern=r"_(\d+)$")
    assert policy.base_name("Llama_2") == "Llama"
    assert policy.how("Llama_128") == "suffix _128 of base name"
    assert policy.how("Llama-2") is None


@pytest.mark.parametrize("pattern", ["(", "-(\\d{1,2}$", "[", "*"])
def test_an_invalid_suffix_pattern_is_refused_naming_the_option(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"^suffix_pattern: not a regular expression \("):
        CatalogNamingOptions(suffix_pattern=pattern)
    with pytest.raises(ConfigError, match=r"^naming\.suffix_pattern: not a regular expression .*\(in naming plugin"):
        registry.load("naming", {"plugin": "catalog", "suffix_pattern": pattern}, "naming")


def test_a_spelling_claimed_by_two_models_is_refused_naming_both_claims() -> None:
    catalog = Catalog((_model("Alpha", aliases=("shared",)), _model("Beta", deployments=("Beta", "SHARED"))))
    with pytest.raises(ConfigError) as raised:
        _policy(catalog)
    assert str(raised.value) == (
        "models: 'SHARED' (deployment of 'Beta') is also the alias of 'Alpha'; "
        "one spelling may name only one base model"
    )


def test_an_unknown_rule_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"^unknown: 'guess' is not valid; choices: error, passthrough$"):
        CatalogNamingOptions(unknown="guess")


# --- properties over generated catalogs ---------------------------------------------------------------------------

NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9.]{0,8}(-[A-Za-z0-9.]{1,4})?[A-Za-z]", fullmatch=True)


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    """Models with distinct names (ignoring case), each with up to two aliases and one to three deployments."""
    names = draw(st.lists(NAME, min_size=1, max_size=4, unique_by=str.casefold))
    taken = {name.casefold() for name in names}
    models = []
    for name in names:
        free = NAME.filter(lambda spelling, taken=frozenset(taken): spelling.casefold() not in taken)
        extra = draw(st.lists(free, max_size=2, unique_by=str.casefold))
        taken |= {spelling.casefold() for spelling in extra}
        deployments = (name, *(f"{name}-{i}" for i in range(2, 2 + draw(st.integers(0, 2)))))
        models.append(_model(name, aliases=tuple(extra), deployments=deployments))
    return Catalog(tuple(models))


def _declared(catalog: Catalog) -> dict[str, str]:
    return {
        spelling.casefold(): model.name
        for model in catalog.models
        for spelling in (model.name, *model.aliases, *model.deployment_names)
    }


@settings(deadline=None)
@given(catalog=catalogs(), data=st.data())
def test_every_declared_spelling_resolves_in_any_case_and_padding(catalog: Catalog, data: st.DataObject) -> None:
    policy = _policy(catalog)
    for model in catalog.models:
        for spelling in (model.name, *model.aliases, *model.deployment_names):
            variant = data.draw(st.sampled_from([spelling, spelling.upper(), spelling.lower(), spelling.swapcase()]))
            padding = data.draw(st.sampled_from(["", " ", "\t", "  \n"]))
            assert policy.base_name(padding + variant + padding) == model.name
            assert policy.how(padding + variant + padding) is not None


@settings(deadline=None)
@given(catalog=catalogs(), number=st.integers(min_value=0, max_value=999), separator=st.sampled_from(["-", "_", "."]))
def test_a_suffix_resolves_only_as_a_dash_and_one_or_two_digits(catalog: Catalog, number: int, separator: str) -> None:
    policy = _policy(catalog)
    declared = _declared(catalog)
    model = catalog.models[0]
    spelling = f"{model.name}{separator}{number}"
    assume(spelling.casefold() not in declared)
    if separator == "-" and number < 100:
        assert policy.base_name(spelling) == model.name
        assert policy.how(spelling) == f"suffix -{number} of base name"
    else:
        assert policy.how(spelling) is None
        with pytest.raises(UnknownNameError):
            policy.base_name(spelling)


@settings(deadline=None)
@given(catalog=catalogs(), spelling=NAME)
def test_an_undeclared_spelling_is_unknown_or_passed_through_unchanged(catalog: Catalog, spelling: str) -> None:
    assume(spelling.casefold() not in _declared(catalog))
    with pytest.raises(UnknownNameError):
        _policy(catalog).base_name(spelling)
    assert _policy(catalog, unknown="passthrough").base_name(f" {spelling} ") == spelling
