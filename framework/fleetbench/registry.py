"""The only stevedore wrapper: find, validate and construct plugins; list the installed ones.

Built-in plugins are registered in `pyproject.toml` exactly as third-party ones are, so this module never names one.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError
from stevedore import DriverManager
from stevedore.exception import NoMatches

from fleetbench import interfaces
from fleetbench.contracts import contract_problem
from fleetbench.errors import (
    ConfigError,
    FleetbenchError,
    PluginLoadError,
    PluginNotFoundError,
    UserError,
    choices_text,
)

KINDS: dict[str, type[interfaces.Plugin]] = {
    "providers": interfaces.Provider,
    "storage": interfaces.Storage,
    "suites": interfaces.Suite,
    "sharding": interfaces.ShardingStrategy,
    "naming": interfaces.NamingPolicy,
    "simulators": interfaces.SimulatedPlayer,
}

P = TypeVar("P", bound=interfaces.Plugin)


def namespace(kind: str) -> str:
    """The entry-point group of a plugin kind, e.g. `fleetbench.storage`."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds: {choices_text(KINDS)}")
    return f"fleetbench.{kind}"


def installed_names(kind: str) -> list[str]:
    """Names registered in a group, read from entry-point metadata without importing anything."""
    return sorted({ep.name for ep in _entry_points(namespace(kind))})


@functools.cache
def _all_entry_points() -> Any:
    """Every entry point of the environment, read once per process: each reading scans every installed distribution
    (about 7 ms here), and composing a configuration asks for each plugin kind. (Python 3.11 returns its
    `SelectableGroups`, later versions `EntryPoints`; both `select` by group.)"""
    return importlib.metadata.entry_points()


def _entry_points(group: str) -> importlib.metadata.EntryPoints:
    selected: importlib.metadata.EntryPoints = _all_entry_points().select(group=group)
    return selected


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """One option of a plugin, as `fleetbench plugins` lists it."""

    name: str
    type: str
    default: str
    affects_result: bool


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """One row of `fleetbench plugins`."""

    kind: str
    name: str
    target: str
    distribution: str = "?"
    version: str = "?"
    options: tuple[OptionInfo, ...] = ()
    error: str | None = None


def listing() -> list[PluginInfo]:
    """Every installed plugin of every kind, with the distribution that installed it and its options; a broken one
    is reported with its error instead of breaking the list."""
    rows: list[PluginInfo] = []
    for kind in KINDS:
        for entry_point in _entry_points(namespace(kind)):
            rows.append(_info(kind, entry_point))
    return sorted(rows, key=lambda r: (r.kind, r.name))


def _info(kind: str, entry_point: importlib.metadata.EntryPoint) -> PluginInfo:
    dist = entry_point.dist
    row = PluginInfo(kind, entry_point.name, entry_point.value)
    if dist is not None:
        row = dataclasses.replace(row, distribution=dist.name, version=dist.version)
    try:
        cls = plugin_class(kind, entry_point.name, f"{kind}.plugin")
    except FleetbenchError as exc:
        return dataclasses.replace(row, error=str(exc))
    options = options_of(cls.Options)
    for attribute, prefix in (("ModelParams", "models.*.params."), ("DeploymentParams", "deployments[*].params.")):
        params = getattr(cls, attribute, None)
        if params is not None:
            options += tuple(dataclasses.replace(o, name=prefix + o.name) for o in options_of(params))
    return dataclasses.replace(row, options=options)


def options_of(options_cls: type[Any]) -> tuple[OptionInfo, ...]:
    """The fields of an options dataclass: name, type, default, and whether it changes results."""
    infos = []
    for field in dataclasses.fields(options_cls):
        if field.default is not dataclasses.MISSING:
            default = repr(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            default = repr(field.default_factory())
        else:
            default = "(required)"
        type_name = field.type.__name__ if isinstance(field.type, type) else str(field.type)
        infos.append(OptionInfo(field.name, type_name, default, bool(field.metadata.get(interfaces.AFFECTS_RESULT))))
    return tuple(infos)


def plugin_class(kind: str, name: str, key: str) -> type[interfaces.Plugin]:
    """Import the plugin `name` of `kind`; `key` is the config key that named it, for error messages."""
    group = namespace(kind)
    try:
        manager = DriverManager(group, name, invoke_on_load=False, on_load_failure_callback=_raise_load_failure)
    except NoMatches:
        raise PluginNotFoundError(
            f"{key}: unknown plugin {name!r} in group {group}; installed: {choices_text(installed_names(kind))}"
        ) from None
    except _LoadFailed as exc:
        raise PluginLoadError(f"plugin {name!r} in group {group} failed to load: {exc.reason}") from exc.__cause__
    cls: Any = manager.driver
    problem = contract_problem(KINDS[kind], cls)
    if problem:
        where = f"entry point {group}: {name} = {manager.extensions[0].entry_point.value}"
        raise PluginLoadError(f"plugin {name!r} ({where}) breaks the contract: {problem}")
    plugin: type[interfaces.Plugin] = cls
    return plugin


class _LoadFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _raise_load_failure(_manager: Any, _entry_point: Any, exc: BaseException) -> None:
    raise _LoadFailed(f"{type(exc).__name__}: {exc}") from exc


def validate_options(options_cls: type[Any], values: Mapping[str, Any], key: str, owner: str) -> Any:
    """Build an `options_cls` instance from `values`; a typo or wrong type fails naming `key.<field>`."""
    valid = [f.name for f in dataclasses.fields(options_cls)]
    schema = OmegaConf.structured(options_cls)
    try:
        merged = OmegaConf.merge(schema, dict(values))
        return OmegaConf.to_object(merged)
    except ConfigKeyError as exc:
        bad = str(getattr(exc, "key", "") or "").strip() or _first_unknown(values, valid)
        raise ConfigError(f"{key}.{bad}: not an option of {owner}; valid options: {choices_text(valid)}") from None
    except ValidationError as exc:
        field_name = getattr(exc, "full_key", "") or "?"
        raise ConfigError(f"{key}.{field_name}: {_first_line(exc)} (in {owner})") from None
    except (ValueError, TypeError) as exc:
        # Options' __post_init__ messages start with the field name ("profile: ..."): report the full key.
        field_name, _, rest = str(exc).partition(": ")
        if field_name in valid and rest:
            raise ConfigError(f"{key}.{field_name}: {rest} (in {owner})") from None
        raise ConfigError(f"{key}: {exc} (in {owner})") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {_first_line(exc)} (in {owner})") from None


def _first_unknown(values: Mapping[str, Any], valid: list[str]) -> str:
    return next((k for k in values if k not in valid), "?")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@dataclasses.dataclass(frozen=True)
class PluginRef(Generic[P]):
    """A validated, not yet constructed plugin: class plus options."""

    kind: str
    name: str
    cls: type[P]
    options: Any
    key: str

    def create(self, **context: Any) -> P:
        """Construct the plugin with its options and the kind's context arguments.

        A constructor signals bad options or data with `ValueError("field: message")` or a `UserError`; those
        become one-line configuration errors naming the key. Anything else it raises is a bug in the plugin and
        propagates with its traceback.
        """
        try:
            return self.cls(self.options, **context)
        except UserError:
            raise
        except ValueError as exc:
            field_name, _, rest = str(exc).partition(": ")
            if rest and dataclasses.is_dataclass(self.options) and field_name in _field_names(self.options):
                raise ConfigError(f"{self.key}.{field_name}: {rest}") from None
            raise ConfigError(f"{self.key}: plugin {self.name!r} rejected its configuration: {exc}") from None


def plain_dict(section: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """A config section as a plain dict with interpolations resolved."""
    if isinstance(section, DictConfig):
        container = OmegaConf.to_container(section, resolve=True)
        assert isinstance(container, dict)
        return {str(k): v for k, v in container.items()}
    return dict(section)


def _field_names(options: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(options)}


def load(kind: str, section: Mapping[str, Any] | DictConfig, key: str) -> PluginRef[Any]:
    """Validate a config section `{plugin: NAME, ...options}` into a `PluginRef` (nothing is constructed)."""
    values = plain_dict(section)
    name = values.pop("plugin", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}.plugin: missing; installed: {choices_text(installed_names(kind))}")
    cls = plugin_class(kind, name, f"{key}.plugin")
    options = validate_options(cls.Options, values, key, f"{kind} plugin {name!r}")
    return PluginRef(kind, name, cls, options, key)
