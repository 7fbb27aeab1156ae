"""Plugin contracts, checked when a plugin loads: a plugin that breaks one is refused with a message naming the plugin,
the method (or attribute) and the mismatch, instead of failing later in the middle of a run.

Checked: the plugin subclasses its kind's ABC; every abstract method is implemented with a compatible signature
(same async-ness; accepts every parameter the contract passes; requires nothing more); a suite names itself and its
version; every options field is classified with `option(...)`; no options field is called `plugin` (the config
groups use that key); a deployment's params never claim to change results.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from fleetbench import interfaces

OPTION_CLASSES = ("Options", "ModelParams", "DeploymentParams")


def contract_problem(base: type[Any], obj: Any) -> str | None:
    """What is wrong with `obj` as a plugin of the kind whose ABC is `base` (None when nothing is)."""
    if not (isinstance(obj, type) and issubclass(obj, base)):
        return f"{obj!r} is not a subclass of fleetbench.interfaces.{base.__name__}"
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if missing:
        return f"{obj.__name__} does not implement {', '.join(missing)} of {base.__name__}"
    for check in (_signature_problem, _identity_problem, _options_problems):
        problem = check(base, obj)
        if problem:
            return problem
    return None


def _signature_problem(base: type[Any], cls: type[Any]) -> str | None:
    for name in sorted(_abstract_methods(base)):
        expected, actual = inspect.getattr_static(base, name), inspect.getattr_static(cls, name)
        if isinstance(expected, property) or isinstance(actual, property):
            continue
        mismatch = _mismatch(expected, actual)
        if mismatch:
            return f"{cls.__name__}.{name}{_signature(actual)} does not match {base.__name__}.{name}" + (
                f"{_signature(expected)}: {mismatch}"
            )
    return None


def _abstract_methods(base: type[Any]) -> set[str]:
    return {name for klass in base.__mro__ for name in getattr(klass, "__abstractmethods__", ())}


def _signature(function: Any) -> str:
    try:
        return str(inspect.signature(function))
    except (TypeError, ValueError):
        return "(...)"


def _mismatch(expected: Any, actual: Any) -> str | None:
    if inspect.iscoroutinefunction(expected) != inspect.iscoroutinefunction(actual):
        return "it must be 'async def'" if inspect.iscoroutinefunction(expected) else "it must not be 'async def'"
    try:
        wanted, offered = inspect.signature(expected), inspect.signature(actual)
    except (TypeError, ValueError):
        return None
    params = list(offered.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    needed = [p for p in wanted.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < len(needed):
        return f"missing parameter '{needed[len(positional)].name}'"
    extra = [p.name for p in positional[len(needed) :] if p.default is inspect.Parameter.empty]
    extra += [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is inspect.Parameter.empty]
    if extra:
        return f"it requires parameter '{extra[0]}' that the contract never passes"
    return None


def _identity_problem(base: type[Any], cls: type[Any]) -> str | None:
    if not issubclass(base, interfaces.Suite):
        return None
    for attribute in ("name", "version"):
        value = getattr(cls, attribute, None)
        if not isinstance(value, str) or not value.strip():
            return f"{cls.__name__}.{attribute} must be a non-empty string class attribute (part of every unit key)"
    return None


def _options_problems(base: type[Any], cls: type[Any]) -> str | None:
    for attribute in OPTION_CLASSES:
        problem = options_problem(cls, attribute)
        if problem:
            return problem
    return None


def options_problem(cls: type[Any], attribute: str) -> str | None:
    """Every options field says whether it changes results; a deployment's params never may (any lane runs any unit)."""
    options_cls: Any = getattr(cls, attribute, None)
    if options_cls is None:
        return None
    if not (isinstance(options_cls, type) and dataclasses.is_dataclass(options_cls)):
        return f"{cls.__name__}.{attribute} is not a dataclass"
    if attribute == "Options" and "plugin" in {f.name for f in dataclasses.fields(options_cls)}:
        return f"{cls.__name__}.Options must not have a field named 'plugin' (the config group's key for the plugin)"
    unclassified = interfaces.unclassified_fields(options_cls)
    if unclassified:
        return (
            f"{cls.__name__}.{attribute} field(s) {', '.join(unclassified)} must be declared with "
            "fleetbench.interfaces.option(..., affects_result=True|False)"
        )
    if attribute == "DeploymentParams" and interfaces.result_fields(options_cls):
        return (
            f"{cls.__name__}.DeploymentParams field(s) {', '.join(interfaces.result_fields(options_cls))} are declared "
            "affects_result=True, but any lane may run any unit: move them to ModelParams"
        )
    return None
