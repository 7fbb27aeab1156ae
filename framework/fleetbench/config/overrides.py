"""Command-line overrides as a user writes them, made into what Hydra composes — before validation and before Hydra.

Two conveniences, both decided from the configuration's own schema, never guessed:
- a scalar given for a list option becomes a one-element list (`run.models=Sim-Weak` → `run.models=[Sim-Weak]`; in a
  sweep, `run.models=A,B` → `run.models=[A],[B]`);
- a catalog `params` key needs no `+`: a model's `params` and its deployments' `params` are typed by the model's
  provider (`ModelParams` / `DeploymentParams`), which Hydra cannot know, so a key the provider declares is added
  (`++`) and any other is refused naming the provider's valid params.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override, OverrideType, ValueType
from omegaconf import AnyNode, DictConfig, ListConfig, Node, OmegaConf

from fleetbench import registry
from fleetbench.errors import ConfigError, FleetbenchError, choices_text

PARAMS_KEY = re.compile(r"^models\.([^.]+)\.(?:deployments\.(\d+)\.)?params\.([^.]+)$")

Compose = Callable[[list[str]], DictConfig]


def normalize(overrides: Sequence[str], compose: Compose) -> list[str]:
    """The overrides with scalars for lists wrapped and catalog params keys added (see the module docstring).

    `compose` composes a configuration from overrides; it is called at most once, with the group selections only
    (they decide which schema each key has), and only when some override might need rewriting.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # Hydra reports an unparsable override itself, naming it, when it composes
        return list(overrides)
    base: DictConfig | None = None
    result = []
    for override in parsed:
        if override.type is not OverrideType.CHANGE or override.package is not None or _selects_a_config(override):
            result.append(str(override.input_line))
            continue
        if base is None:
            base = compose([str(o.input_line) for o in parsed if _selects_a_config(o)])
        result.append(_rewrite(override, base))
    return result


def composed_as_given(overrides: Sequence[str], composed: DictConfig) -> bool:
    """Whether `normalize` would have left `overrides` as they are, judged from the configuration they composed
    unchanged: every plain value set a node the schema types (a scalar type, a list or a mapping) to a value, not an
    interpolation. Only an untyped node might have held a list before a scalar replaced it, and a typed list takes an
    interpolation whatever it resolves to; a scalar for a typed list, and a catalog param without `+`, fail to
    compose instead."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # unparsable: the normalizing path reports it
        return False
    for override in parsed:
        if override.type is not OverrideType.CHANGE or override.package is not None or _selects_a_config(override):
            continue
        if override.is_sweep_override():
            return False
        node = _node(composed, override.key_or_group)
        # An interpolation is accepted by any typed node, a list included: only its value will tell.
        if node is None or isinstance(node, AnyNode) or node._is_interpolation():
            return False
    return True


def _node(config: DictConfig, key: str) -> Node | None:
    """The node at a dotted key (list indexes as numbers), or None."""
    node: Node | None = config
    for part in key.split("."):
        if isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            found = node._get_node(int(part))
        elif isinstance(node, DictConfig):
            found = node._get_node(part, throw_on_missing_key=False)
        else:
            return None
        node = found if isinstance(found, Node) else None
    return node


def _selects_a_config(override: Override) -> bool:
    """A group selection (`suite=workflow`, `experiment=phase5_1`, `providers@providers.x=y`) or a Hydra setting
    (`hydra.searchpath=[...]`): they decide which configs and schemas exist."""
    key = override.key_or_group
    return ("." not in key or key.startswith("hydra.")) and not override.is_sweep_override()


def _rewrite(override: Override, base: DictConfig) -> str:
    key = override.key_or_group
    raw = str(override.input_line).split("=", 1)[1]
    params = PARAMS_KEY.match(key)
    node = OmegaConf.select(base, key, default=None, throw_on_missing=False)
    if params is not None and node is None:
        _check_param(base, *params.groups())
        return f"++{key}={raw}"
    if isinstance(node, ListConfig):
        return f"{key}={_as_lists(override, raw)}"
    return str(override.input_line)


def _as_lists(override: Override, raw: str) -> str:
    if override.value_type is ValueType.ELEMENT:
        return raw if isinstance(override.value(), list) else f"[{raw}]"
    if override.is_choice_sweep():
        sweep = override.value()
        assert isinstance(sweep, ChoiceSweep)
        values = sweep.list
        texts = override.sweep_string_iterator()
        pairs = zip(values, texts, strict=True)
        return ",".join(text if isinstance(value, list) else f"[{text}]" for value, text in pairs)
    return raw


def _check_param(base: DictConfig, handle: str, deployment: str | None, name: str) -> None:
    model = OmegaConf.select(base, f"models.{handle}", default=None)
    if not isinstance(model, DictConfig):
        return  # the key names no catalog entry: Hydra's own error says so
    attribute = "ModelParams" if deployment is None else "DeploymentParams"
    try:
        provider = registry.plugin_class("providers", str(model.provider), f"models.{handle}.provider")
    except FleetbenchError:
        return  # validation names a missing or broken provider
    valid = [field.name for field in dataclasses.fields(getattr(provider, attribute))]
    if name not in valid:
        where = f"models.{handle}" + (f".deployments[{deployment}]" if deployment is not None else "")
        raise ConfigError(
            f"{where}.params.{name}: not a param of provider {model.provider!r}; valid params: {choices_text(valid)}"
        )
