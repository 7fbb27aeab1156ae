"""What every storage must hold: names of at most 255 characters, identifier-like factor and metric names."""

from __future__ import annotations

import pytest

from fleetbench.limits import NAME_MAX_CHARS, SEED_MAX, SEED_MIN, checked_name, first_unstorable, name_problem


def test_the_limits_are_those_of_the_sql_columns() -> None:
    assert (NAME_MAX_CHARS, SEED_MIN, SEED_MAX) == (255, -(2**63), 2**63 - 1)


@pytest.mark.parametrize("length", [0, 1, 254, 255])
def test_a_name_up_to_the_limit_can_be_stored(length: int) -> None:
    assert name_problem("n" * length) is None


def test_a_longer_name_is_refused_quoting_its_start_and_both_lengths() -> None:
    name = "a" * 40 + "b" * 216
    assert name_problem(name) == f"{'a' * 40!r}… has 256 characters; at most 255 can be stored"


@pytest.mark.parametrize("name", ["level", "_private", "rate.0", "tool-success", "A9_.-", "x"])
def test_identifier_like_names_are_accepted_as_they_are(name: str) -> None:
    assert checked_name(name, "factor") == name


@pytest.mark.parametrize("name", ["", "9lives", "-x", ".x", "with space", "quote'", "a/b", "é"])
def test_other_names_are_refused_naming_what_and_the_rule(name: str) -> None:
    with pytest.raises(ValueError) as raised:
        checked_name(name, "metric")
    assert str(raised.value) == f"metric {name!r}: names must match ^[A-Za-z_][A-Za-z0-9_.-]*$"


def test_the_first_unstorable_text_of_a_configuration_is_named_by_its_key() -> None:
    """Anywhere in it, keys included: the run's configuration is stored with the run."""
    assert first_unstorable({"run": {"label": "ok", "models": ["a", "b"], "seed": 3}}) is None
    assert first_unstorable({"run": {"models": ["a", "b\x00"]}}) == (
        "run.models.1",
        "holds a NUL character (at 1), which a database cannot store as text",
    )
    key, why = first_unstorable({"suite": {"x\udc80": 1}}) or ("", "")
    assert key == "suite.x\udc80" and why.startswith("its name holds a lone surrogate")
