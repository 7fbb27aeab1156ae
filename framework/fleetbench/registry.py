"""The only stevedore wrapper: find, validate and construct plugins; list the installed ones.

Built-in plugins are registered in `pyproject.toml` exactly as third-party ones are, so this module never names one.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError
from stevedore import DriverManager, ExtensionManager
from stevedore.exception import NoMatches

from fleetbench import interfaces
from fleetbench.errors import ConfigError, PluginLoadError, PluginNotFoundError, choices_text

KINDS: dict[str, type[interfaces.Plugin]] = {
    "providers": interfaces.Provider,
    "storage": interfaces.Storage,
    "suites": interfaces.Suite,
    "sharding": interfaces.ShardingStrategy,
    "naming": interfaces.NamingPolicy,
}

P = TypeVar("P", bound=interfaces.Plugin)


def namespace(kind: str) -> str:
    """The entry-point group of a plugin kind, e.g. `fleetbench.storage`."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds: {choices_text(KINDS)}")
    return f"fleetbench.{kind}"


def installed_names(kind: str) -> list[str]:
    """Names registered in a group, read from entry-point metadata without importing anything."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=namespace(kind))})


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """One row of `fleetbench plugins`."""

    kind: str
    name: str
    target: str
    error: str | None = None


def listing() -> list[PluginInfo]:
    """Every installed plugin of every kind; a broken one is reported with its error instead of breaking the list."""
    rows: list[PluginInfo] = []
    for kind in KINDS:
        failures: dict[str, str] = {}

        def on_failure(
            _manager: Any, entry_point: Any, exc: BaseException, failures: dict[str, str] = failures
        ) -> None:
            failures[entry_point.name] = f"{type(exc).__name__}: {exc}"

        manager = ExtensionManager(namespace(kind), on_load_failure_callback=on_failure)
        for entry_point in manager.list_entry_points():
            error = failures.get(entry_point.name)
            if error is None and entry_point.name in manager.names():
                error = _contract_problem(kind, manager[entry_point.name].plugin)
            rows.append(PluginInfo(kind, entry_point.name, entry_point.value, error))
    return sorted(rows, key=lambda r: (r.kind, r.name))


def _contract_problem(kind: str, obj: Any) -> str | None:
    base = KINDS[kind]
    if not (isinstance(obj, type) and issubclass(obj, base)):
        return f"{obj!r} is not a subclass of fleetbench.interfaces.{base.__name__}"
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if missing:
        return f"{obj.__name__} does not implement {', '.join(missing)} of {base.__name__}"
    for attribute in ("Options", "ModelParams", "DeploymentParams"):
        problem = _options_problem(obj, attribute)
        if problem:
            return problem
    return None


def _options_problem(cls: type[Any], attribute: str) -> str | None:
    """Every options field says whether it changes results; a deployment's params never may (any lane runs any unit)."""
    options_cls: Any = getattr(cls, attribute, None)
    if options_cls is None:
        return None
    if not (isinstance(options_cls, type) and dataclasses.is_dataclass(options_cls)):
        return f"{cls.__name__}.{attribute} is not a dataclass"
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
    problem = _contract_problem(kind, cls)
    if problem:
        raise PluginLoadError(f"plugin {name!r} in group {group} breaks the contract: {problem}")
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
        """Construct the plugin with its options and the kind's context arguments."""
        try:
            return self.cls(self.options, **context)
        except (ValueError, TypeError, KeyError) as exc:
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
