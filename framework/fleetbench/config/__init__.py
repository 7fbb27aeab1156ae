"""Configuration: structured schema, composition with one-line errors, and validation into a `RunSpec`."""

from fleetbench.config.compose import compose_config, hydra_context, translate
from fleetbench.config.schema import FleetbenchConf, register
from fleetbench.config.spec import NamingSpec, RunSpec, redact, resolve_common, resolve_run

__all__ = [
    "FleetbenchConf",
    "NamingSpec",
    "RunSpec",
    "compose_config",
    "hydra_context",
    "redact",
    "register",
    "resolve_common",
    "resolve_run",
    "translate",
]
