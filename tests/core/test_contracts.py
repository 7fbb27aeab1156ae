"""The load-time contract check (`fleetbench.contracts.contract_problem`), in process: each way a plugin class can
break its kind's contract is named with the class, the method or attribute, and the mismatch."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from fleetbench.contracts import contract_problem, options_problem
from fleetbench.interfaces import NamingPolicy, NoOptions, Provider, ShardingStrategy, Storage, Suite, option
from fleetbench.testing.fakes import ExactNaming, QueueSharding, ScriptedProvider, TinySuite
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.types import Cell, Completion, ErrorClass, Lane, Request


@pytest.mark.parametrize(
    ("base", "cls"),
    [
        (Suite, TinySuite),
        (Provider, ScriptedProvider),
        (NamingPolicy, ExactNaming),
        (Storage, MemoryStorage),
        (ShardingStrategy, QueueSharding),
    ],
)
def test_complete_plugins_keep_their_contract(base: type[Any], cls: type[Any]) -> None:
    assert contract_problem(base, cls) is None


def test_something_that_is_not_a_subclass_of_the_kind_is_refused() -> None:
    assert contract_problem(Suite, ScriptedProvider) == (
        f"{ScriptedProvider!r} is not a subclass of fleetbench.interfaces.Suite"
    )
    assert contract_problem(Suite, "TinySuite") == "'TinySuite' is not a subclass of fleetbench.interfaces.Suite"


def test_unimplemented_abstract_methods_are_listed() -> None:
    class Half(Provider):
        async def complete(self, lane: Lane, request: Request) -> Completion:
            raise NotImplementedError

    class Empty(ShardingStrategy):
        pass

    class Nothing(Provider):
        pass

    assert contract_problem(Provider, Half) == "Half does not implement classify of Provider"
    assert contract_problem(Provider, Nothing) == "Nothing does not implement classify, complete of Provider"
    assert contract_problem(ShardingStrategy, Empty) == "Empty does not implement dispatch of ShardingStrategy"


class _Sync(ScriptedProvider):
    def complete(self, lane: Lane, request: Request) -> Completion:  # type: ignore[override]
        raise NotImplementedError


class _AsyncClassify(ScriptedProvider):
    async def classify(self, exc: BaseException) -> ErrorClass:  # type: ignore[override]
        raise NotImplementedError


class _Missing(ScriptedProvider):
    async def complete(self, lane: Lane) -> Completion:  # type: ignore[override]
        raise NotImplementedError


class _Extra(ScriptedProvider):
    def classify(self, exc: BaseException, verbose: bool) -> ErrorClass:  # type: ignore[override]
        raise NotImplementedError


class _KeywordOnly(ScriptedProvider):
    def classify(self, exc: BaseException, *, verbose: bool) -> ErrorClass:  # type: ignore[override]
        raise NotImplementedError


class _Optional(ScriptedProvider):
    def classify(self, exc: BaseException, verbose: bool = False, *, more: int = 0) -> ErrorClass:
        raise NotImplementedError


class _Builtin(ScriptedProvider):
    complete = max  # type: ignore[assignment]  # a builtin without an introspectable signature


class _VarArgs(ScriptedProvider):
    async def complete(self, *args: Any) -> Completion:  # type: ignore[override]
        raise NotImplementedError


@pytest.mark.parametrize(
    ("cls", "problem"),
    [
        (_Sync, "_Sync.complete(self, lane: 'Lane', request: 'Request') -> 'Completion' does not match "
         "Provider.complete(self, lane: 'Lane', request: 'Request') -> 'Completion': it must be 'async def'"),
        (_AsyncClassify, "_AsyncClassify.classify(self, exc: 'BaseException') -> 'ErrorClass' does not match "
         "Provider.classify(self, exc: 'BaseException') -> 'ErrorClass': it must not be 'async def'"),
        (_Missing, "_Missing.complete(self, lane: 'Lane') -> 'Completion' does not match "
         "Provider.complete(self, lane: 'Lane', request: 'Request') -> 'Completion': missing parameter 'request'"),
        (_Extra, "_Extra.classify(self, exc: 'BaseException', verbose: 'bool') -> 'ErrorClass' does not match "
         "Provider.classify(self, exc: 'BaseException') -> 'ErrorClass': "
         "it requires parameter 'verbose' that the contract never passes"),
        (_KeywordOnly, "_KeywordOnly.classify(self, exc: 'BaseException', *, verbose: 'bool') -> 'ErrorClass' does not "
         "match Provider.classify(self, exc: 'BaseException') -> 'ErrorClass': "
         "it requires parameter 'verbose' that the contract never passes"),
        (_Builtin, "_Builtin.complete(...) does not match "
         "Provider.complete(self, lane: 'Lane', request: 'Request') -> 'Completion': it must be 'async def'"),
        (_Optional, None),
        (_VarArgs, None),
    ],
)  # fmt: skip
def test_signatures_must_accept_what_the_contract_passes(cls: type[Any], problem: str | None) -> None:
    assert contract_problem(Provider, cls) == problem


class _Unnamed(TinySuite):
    name = ""


class _Unversioned(TinySuite):
    version = 2  # type: ignore[assignment]


class _Blank(TinySuite):
    version = "  "


@pytest.mark.parametrize(
    ("cls", "attribute"), [(_Unnamed, "name"), (_Unversioned, "version"), (_Blank, "version")]
)  # fmt: skip
def test_a_suite_must_name_itself_and_its_version(cls: type[Any], attribute: str) -> None:
    assert contract_problem(Suite, cls) == (
        f"{cls.__name__}.{attribute} must be a non-empty string class attribute (part of every unit key)"
    )


class _Nameless(Suite):
    """A suite that never declares `name` (only the contract's annotation has it)."""

    version = "1"

    def cells(self, base_model: str) -> Iterator[Cell]:
        yield from ()

    async def run_episode(self, unit: Any, chat: Any, context: Any) -> Any:
        raise NotImplementedError

    def metrics(self) -> Any:
        return ()


def test_a_suite_without_a_name_attribute_is_refused() -> None:
    assert contract_problem(Suite, _Nameless) == (
        "_Nameless.name must be a non-empty string class attribute (part of every unit key)"
    )


class _LateMismatch(ExactNaming):
    """The contract's `catalog` is a property; `resolutions` after it (alphabetically) requires an extra argument."""

    def resolutions(self, verbose: bool) -> Any:  # type: ignore[override]
        raise NotImplementedError


def test_methods_after_a_property_are_still_checked() -> None:
    problem = contract_problem(NamingPolicy, _LateMismatch)
    assert problem is not None and problem.startswith("_LateMismatch.resolutions(self, verbose: 'bool')")


def test_identity_is_checked_for_suites_only() -> None:
    class Unnamed(QueueSharding):
        name = ""

    assert contract_problem(ShardingStrategy, Unnamed) is None


@dataclasses.dataclass
class _Unclassified:
    level: int = 0
    rate: float = option(0.5, affects_result=True)
    other: str = ""


@dataclasses.dataclass
class _WithPlugin:
    plugin: str = option("x", affects_result=False)


@dataclasses.dataclass
class _ResultRelevantDeployment:
    region: str = option("eu", affects_result=True)
    latency: float = option(0.0, affects_result=False)
    tier: str = option("gold", affects_result=True)


class _NotADataclass:
    level = 0


def _provider_with(**attributes: Any) -> type[Any]:
    return type("Custom", (ScriptedProvider,), attributes)


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        ({"Options": _NotADataclass}, "Custom.Options is not a dataclass"),
        ({"Options": _Unclassified()}, "Custom.Options is not a dataclass"),
        (
            {"Options": _WithPlugin},
            "Custom.Options must not have a field named 'plugin' (the config group's key for the plugin)",
        ),
        (
            {"ModelParams": _Unclassified},
            "Custom.ModelParams field(s) level, other must be declared with "
            "fleetbench.interfaces.option(..., affects_result=True|False)",
        ),
        (
            {"DeploymentParams": _ResultRelevantDeployment},
            "Custom.DeploymentParams field(s) region, tier are declared affects_result=True, but any lane may run any "
            "unit: move them to ModelParams",
        ),
        ({"ModelParams": _ResultRelevantDeployment, "DeploymentParams": _WithPlugin}, None),
        ({"Options": NoOptions}, None),
    ],
)
def test_every_options_class_is_a_classified_dataclass(attributes: dict[str, Any], problem: str | None) -> None:
    assert contract_problem(Provider, _provider_with(**attributes)) == problem


def test_options_problem_of_a_missing_attribute_is_none() -> None:
    assert options_problem(TinySuite, "DeploymentParams") is None


def test_a_suite_method_is_checked_like_a_provider_method() -> None:
    class Odd(TinySuite):
        def cells(self, base_model: str, extra: int) -> Iterator[Cell]:  # type: ignore[override]
            yield from ()

    problem = contract_problem(Suite, Odd)
    assert problem is not None and problem.endswith("it requires parameter 'extra' that the contract never passes")
