"""Option validation (`registry.validate_options`) and Hydra error translation (`config.compose.translate`), in
process: every failure is one line naming the key and, where there are any, the valid choices."""

from __future__ import annotations

import dataclasses

import pytest
from hydra.errors import HydraException
from omegaconf.errors import ValidationError

from fleetbench import registry
from fleetbench.config import compose_config, translate
from fleetbench.errors import ConfigError
from fleetbench.interfaces import option
from fleetbench.testing.fakes import TinyOptions

OWNER = "suite plugin 'tiny'"


def test_valid_values_build_the_options_dataclass() -> None:
    options = registry.validate_options(TinyOptions, {"words": ["x", "y"], "case_sensitive": False}, "suite", OWNER)
    assert options == TinyOptions(words=["x", "y"], case_sensitive=False)
    assert registry.validate_options(TinyOptions, {}, "suite", OWNER) == TinyOptions()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"wordz": ["a"]}, "suite.wordz: not an option of suite plugin 'tiny'; valid options: case_sensitive, words"),
        (
            {"case_sensitive": "maybe"},
            "suite.case_sensitive: Value 'maybe' is not a valid bool (type str) (in suite plugin 'tiny')",
        ),
        ({"words": []}, "suite.words: give at least one word (in suite plugin 'tiny')"),
        (
            {"words": 3},
            "suite.words: Invalid value assigned: AnyNode is not a ListConfig, list or tuple. (in suite plugin 'tiny')",
        ),
    ],
)
def test_bad_values_fail_naming_the_full_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        registry.validate_options(TinyOptions, values, "suite", OWNER)
    assert str(raised.value) == message


@dataclasses.dataclass
class _Checked:
    level: int = option(1, affects_result=True)

    def __post_init__(self) -> None:
        if self.level == 2:
            raise ValueError("the level and the moon disagree")
        if self.level == 3:
            raise ValueError("moon: not a field")


@pytest.mark.parametrize(
    ("level", "message"),
    [
        (2, "plug: the level and the moon disagree (in owner)"),
        (3, "plug: moon: not a field (in owner)"),
    ],
)
def test_a_post_init_refusal_names_the_field_when_its_message_starts_with_one(level: int, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        registry.validate_options(_Checked, {"level": level}, "plug", "owner")
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["storage=mongo"], "storage: no config 'mongo'; valid choices: postgres, sql, sqlite"),
        (
            ["run.instancs=3"],
            "run.instancs: no such key; valid keys under run: claim_batch, heartbeat_s, instances, judge, label, "
            "lease_s, models, progress, seed, worker",
        ),
        (
            ["nonsense.x=1"],
            "nonsense: no such key; valid keys: drift, export, models, naming, providers, report, run, scheduler, "
            "sharding, status, storage, suite",
        ),
        (
            ["storage.urll=x"],
            "storage.urll: no such key; valid keys under storage ('sql'): "
            "busy_timeout_s, echo, idle_transaction_timeout_s, url",
        ),
        # Another override is broken too: the valid keys come from the typed schema, where a plugin section has none.
        (["storage.urll=x", "run.seedd=2"], "storage.urll: no such key; valid keys under storage: (none)"),
        (
            ["sharding=dynamic", "sharding.failovr=true"],
            "sharding.failovr: no such key; sharding 'dynamic' takes no options (`sharding=NAME` picks another plugin)",
        ),
        (
            ["run.instances=many"],
            "run.instances: expected an integer, got 'many'; must be from 1 to 10,000,000 units per cell",
        ),
        (["scheduler.ramp_step_s=soon"], "scheduler.ramp_step_s: expected a number, got 'soon'; must be from 0 to 60"),
        (["storage.busy_timeout_s=long"], "storage.busy_timeout_s: expected a number, got 'long'"),
        (["storage.echo=loud"], "storage.echo: expected true or false, got 'loud'"),
    ],
)
def test_composition_failures_become_one_line_naming_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(overrides)
    assert str(raised.value) == message


def test_an_unparsable_override_is_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(["run.models=["])
    assert str(raised.value).startswith("run.models: the override 'run.models=[' does not parse (no viable alternative")
    assert "\n" not in str(raised.value)


def test_an_unparsable_override_holding_a_secret_is_named_without_its_value() -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(["models.sim_agent.deployments.1.endpoint=http://u:pw-SECRET-1@h/?key=sk-SECRET-2"])
    assert "SECRET" not in str(raised.value)
    assert str(raised.value).startswith("models.sim_agent.deployments.1.endpoint: the override does not parse (its")


def test_a_value_the_lexer_refuses_names_its_key_and_how_to_quote_it() -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(["run.label=ü🙂"])
    assert str(raised.value) == (
        "run.label: the override 'run.label=ü🙂' does not parse; quote a value holding characters other than "
        "letters, digits and _-./:, e.g. run.label='ü🙂'"
    )


@pytest.mark.parametrize(
    "value", ["it's mine", "a(b'c\"d", "(ends in \\", "x\\'y", "'\\'", "a'b,c", 'don\'t, "quote" me']
)
def test_the_quoting_a_refusal_suggests_gives_back_the_value_typed(value: str) -> None:
    """Quotes and backslashes inside the value: the suggested spelling is the one Hydra reads as the value itself."""
    with pytest.raises(ConfigError) as raised:
        compose_config([f"run.label={value}"])
    suggested = str(raised.value).rsplit("e.g. ", 1)[1].removesuffix(" or sweep over it with -m")
    suggested = suggested.split("), write a list")[0].removeprefix("(")
    assert suggested.startswith("run.label=") and suggested != f"run.label={value}"
    assert compose_config([suggested]).run.label == value


def test_translate_keeps_config_errors_and_leaves_unknown_exceptions_alone() -> None:
    error = ConfigError("x: y")
    assert translate(error) is error
    bug = RuntimeError("a bug")
    assert translate(bug) is bug


def test_translate_makes_hydra_and_omegaconf_errors_one_line() -> None:
    translated = translate(HydraException("first line\n\nsecond line\nthird line"))
    assert isinstance(translated, ConfigError)
    assert str(translated) == "first line; second line"
    keyless = translate(ValidationError("bad value\n    full_key: \n    object_type=X"))
    assert isinstance(keyless, ConfigError) and str(keyless) == "bad value"
    assert str(translate(HydraException(""))) == "HydraException"
