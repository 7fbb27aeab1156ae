"""Plugins as Hydra config groups: each installed plugin's options dataclass is its config schema.

At start-up every plugin registered under an entry-point group (built-in or third-party, alike) is stored in Hydra's
ConfigStore as `<group>/<plugin name>`, typed by its own `Options` dataclass plus a `plugin` field naming it. So
`suite=workflow` brings exactly the workflow suite's options with their types, `suite.severity=light` needs no `+`, a
typo is refused with the valid keys, and a third-party plugin is selectable the same way after `pip install` alone.
YAML files in a group (e.g. `conf/storage/sqlite.yaml`) are presets: they extend a plugin's schema through their
defaults list and set only the values that differ.

Several plugins of one kind at once (providers) use Hydra's own idiom: a group selected into a package,
`- providers@providers.simulated: simulated` in a defaults list, `providers.simulated.seed=3` on the command line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore

from fleetbench import registry
from fleetbench.errors import ConfigError, FleetbenchError

GROUPS: dict[str, str] = {
    "providers": "providers",
    "storage": "storage",
    "suites": "suite",
    "sharding": "sharding",
    "naming": "naming",
}
"""Plugin kind → the config group (and root key) its sections live in."""

_REGISTERED: set[tuple[str, str]] = set()
PLUGIN_FIELD = "plugin"


@dataclasses.dataclass
class _Named:
    """Puts `plugin` first in every plugin section (a base listed last contributes the first fields)."""

    plugin: str = ""


def schema_node(group: str, name: str, options_cls: type[Any]) -> type[Any]:
    """The config schema of one plugin: `plugin: <name>` and its options dataclass, as a dataclass of its own."""
    return dataclasses.make_dataclass(
        f"{group}.{name}",
        [(PLUGIN_FIELD, str, dataclasses.field(default=name))],
        bases=(options_cls, _Named),
    )


def register_plugin_groups() -> None:
    """Store every installed, loadable plugin's schema in ConfigStore (once per process).

    A plugin that fails to import or breaks its contract is skipped here: it is named, with its reason, when a
    configuration selects it and by `fleetbench plugins`.
    """
    store = ConfigStore.instance()
    for kind, group in GROUPS.items():
        for name in registry.installed_names(kind):
            if (group, name) in _REGISTERED:
                continue
            try:
                cls = registry.plugin_class(kind, name, f"{group}.plugin")
            except FleetbenchError:
                continue
            store.store(group=group, name=name, node=schema_node(group, name, cls.Options))
            _REGISTERED.add((group, name))


def broken_plugin(group: str, name: str) -> FleetbenchError | None:
    """Why a group choice that names an installed plugin has no config: its load or contract error (or None)."""
    kind = next((k for k, g in GROUPS.items() if g == group), None)
    if kind is None or name not in registry.installed_names(kind):
        return None
    try:
        registry.plugin_class(kind, name, f"{group}.plugin")
    except FleetbenchError as exc:
        return exc
    return None


def check_section(node: Any, key: str) -> None:
    """Refuse a section whose `plugin` was changed by hand: its options are still the other plugin's."""
    selected = schema_plugin(node)
    named = node.get(PLUGIN_FIELD) if hasattr(node, "get") else None
    if selected is not None and named != selected:
        group = key.split(".")[0]
        raise ConfigError(
            f"{key}.plugin: {named!r} does not match the options selected for {selected!r}; switch plugins by "
            f"config group so that the options follow: {group}={named}"
            if group != "providers"
            else f"{key}.plugin: {named!r} does not match the options selected for {selected!r}; select "
            f"providers@{key}={named}"
        )


def schema_plugin(node: Any) -> str | None:
    """The plugin whose schema a composed section was built from (None for an untyped section)."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(node, DictConfig):
        return None
    node_type = OmegaConf.get_type(node)
    if not (isinstance(node_type, type) and dataclasses.is_dataclass(node_type)):
        return None
    for field in dataclasses.fields(node_type):
        if field.name == PLUGIN_FIELD and isinstance(field.default, str):
            return field.default
    return None
