"""Configuration: structured schema, composition with one-line errors, and validation into a `RunSpec`."""

from fleetbench.config.compose import compose_config, hydra_context, translate
from fleetbench.config.schema import FleetbenchConf, register
from fleetbench.config.spec import NamingSpec, RunSpec, resolve_common, resolve_run
from fleetbench.secrets import redact

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
