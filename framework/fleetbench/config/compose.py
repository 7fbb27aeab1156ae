"""Compose the configuration with Hydra's compose API and turn Hydra/OmegaConf failures into one-line `ConfigError`s."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from fleetbench.config.schema import register
from fleetbench.errors import ConfigError, choices_text

CONFIG_MODULE = "fleetbench_conf"
CONFIG_NAME = "config"


@contextmanager
def hydra_context() -> Iterator[None]:
    """Initialise Hydra on the packaged configs (clearing any earlier global state)."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        yield


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """Compose `conf/config.yaml` with command-line style overrides; bad input raises `ConfigError`."""
    with hydra_context():
        try:
            cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides))
        except Exception as exc:  # Hydra wraps everything; translate() re-raises what it cannot explain
            raise translate(exc) from None
    return cfg


def translate(exc: BaseException) -> BaseException:
    """A one-line `ConfigError` for a Hydra/OmegaConf composition failure (or the exception itself if unknown)."""
    if isinstance(exc, ConfigError):
        return exc
    if isinstance(exc, MissingConfigException) and exc.options is not None:
        group = exc.config_name or "?"
        missing = str(exc).split("'")[1] if "'" in str(exc) else group
        return ConfigError(f"{group}: no config {missing!r}; valid choices: {choices_text(exc.options)}")
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, ConfigCompositionException) and isinstance(cause, ConfigKeyError):
        return ConfigError(_unknown_key_message(cause))
    if isinstance(cause, ConfigKeyError):
        return ConfigError(_unknown_key_message(cause))
    if isinstance(exc, ConfigKeyError):
        return ConfigError(_unknown_key_message(exc))
    if isinstance(exc, OverrideParseException | HydraException | OmegaConfBaseException):
        return ConfigError(_one_line(exc))
    return exc


def _unknown_key_message(exc: ConfigKeyError) -> str:
    full_key = str(getattr(exc, "full_key", "") or "")
    parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
    valid = _keys_at(parent)
    where = full_key or "?"
    return f"{where}: no such key; valid keys{f' under {parent}' if parent else ''}: {choices_text(valid)}"


def _keys_at(path: str) -> list[str]:
    from fleetbench.config.schema import FleetbenchConf

    node = OmegaConf.structured(FleetbenchConf)
    selected = OmegaConf.select(node, path) if path else node
    if isinstance(selected, DictConfig):
        return [str(k) for k in selected]
    return []


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("full_key", "object_type", "reference_type"))]
    return "; ".join(useful[:2]) if useful else type(exc).__name__
