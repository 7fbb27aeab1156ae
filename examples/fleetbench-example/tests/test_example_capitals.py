"""The capitals suite and its simulated player pass their kits, and score answers as documented."""

from __future__ import annotations

import pytest

from fleetbench.errors import ConfigError
from fleetbench.interfaces import NoOptions, SimulatedPlayer, Suite
from fleetbench.testing.contracts import PlayerContract, SuiteContract
from fleetbench.testing.units import plan_units
from fleetbench_example.capitals import CapitalsOptions, CapitalsSuite
from fleetbench_example.capitals.data import countries
from fleetbench_example.capitals.simulated import CapitalsPlayer


class TestCapitalsSuite(SuiteContract):
    @pytest.fixture
    def suite(self) -> Suite:
        return CapitalsSuite(CapitalsOptions())

    @pytest.fixture
    def replies(self) -> tuple[str, ...]:
        return ("Paris",)


class TestCapitalsSuiteQuizWithoutAliases(SuiteContract):
    @pytest.fixture
    def suite(self) -> Suite:
        return CapitalsSuite(CapitalsOptions(regions=["asia", "europe"], prompt_style="quiz", accept_aliases=False))


class TestCapitalsPlayer(PlayerContract):
    @pytest.fixture
    def player(self) -> SimulatedPlayer:
        return CapitalsPlayer(NoOptions())

    @pytest.fixture
    def suite(self) -> Suite:
        return CapitalsSuite(CapitalsOptions())


KYIV = next(c for c in countries() if c.country == "Ukraine")


@pytest.mark.parametrize(
    ("answer", "with_aliases", "without"),
    [
        ("Kyiv", True, True),
        ("kyiv.", True, True),
        ("The capital of Ukraine is Kyiv.", True, True),
        ("Kiev", True, False),
        ("Lviv", False, False),
    ],
)
def test_answers_are_compared_loosely_and_aliases_only_when_accepted(
    answer: str, with_aliases: bool, without: bool
) -> None:
    assert CapitalsSuite(CapitalsOptions()).is_correct(answer, KYIV) is with_aliases
    assert CapitalsSuite(CapitalsOptions(accept_aliases=False)).is_correct(answer, KYIV) is without


def test_accents_do_not_matter() -> None:
    brazil = next(c for c in countries() if c.country == "Brazil")
    assert CapitalsSuite(CapitalsOptions(accept_aliases=False)).is_correct("Brasilia", brazil)


def test_a_region_is_never_asked_more_countries_than_it_holds() -> None:
    suite = CapitalsSuite(CapitalsOptions(regions=["oceania"]))
    units = plan_units(suite, suite.options, "Kit-Model", 5)
    assert sorted(suite.country_for(u).country for u in units) == sorted(
        c.country for c in countries() if c.region == "oceania"
    )
    with pytest.raises(ConfigError, match=r"run.instances: 6 units per cell, but region 'oceania' .* holds 5"):
        plan_units(suite, suite.options, "Kit-Model", 6)


def test_options_that_change_the_question_change_the_unit_keys_and_regions_do_not() -> None:
    def keys(**options: object) -> set[str]:
        suite = CapitalsSuite(CapitalsOptions(**options))  # type: ignore[arg-type]
        return {u.key for u in plan_units(suite, suite.options, "Kit-Model", 2) if u.cell.factor("region") == "asia"}

    assert keys() == keys(regions=["asia"])
    assert keys().isdisjoint(keys(prompt_style="quiz"))
    assert keys().isdisjoint(keys(accept_aliases=False))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt_style": "riddle"}, "prompt_style: 'riddle' is not valid; choices: direct, quiz"),
        ({"regions": ["antarctica"]}, "regions: 'antarctica' is not a region; choices: africa, americas, asia"),
    ],
)
def test_bad_options_name_the_field_and_the_choices(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CapitalsOptions(**options)  # type: ignore[arg-type]
