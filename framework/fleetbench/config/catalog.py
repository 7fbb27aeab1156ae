"""The model catalog: declared structure (names, aliases, limits) and, for selected models only, resolved lanes.

Endpoints and keys are `${oc.env:...}` interpolations; they are resolved only when a model is selected for a run, so an
unset variable of a model nobody asked for never matters, and one of a selected model fails with the key's name.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from fleetbench.config.schema import MAX_CONCURRENCY
from fleetbench.errors import ConfigError, choices_text
from fleetbench.limits import name_problem
from fleetbench.types import Catalog, DeploymentSpec, GenerationSettings, Lane, LaneSource, ModelSpec

TOOL_CALLING_MODES = ("text", "native")
ENV_REFERENCE = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)")
"""The variable named by an `${oc.env:NAME}` or `${oc.env:NAME,default}` interpolation."""


def build_catalog(models: DictConfig) -> Catalog:
    """Validate the structure of every catalog entry and return the catalog (no secrets are resolved)."""
    specs = [_model_spec(handle, node) for handle, node in models.items()]
    declared: dict[str, ModelSpec] = {}
    for spec in specs:
        # Names are matched whatever their case, so `sim-agent` and `Sim-Agent` are one base model: two entries under
        # it were both accepted, and which one a run called depended on the catalog's order.
        first = declared.setdefault(spec.name.casefold(), spec)
        if first is not spec:
            raise ConfigError(
                f"models.{spec.handle}.name: {spec.name!r} is also the name of models.{first.handle}; a base model is "
                "declared once (give it more deployments there, or this entry a name of its own)"
            )
    return Catalog(tuple(specs))


def _model_spec(handle: Any, node: DictConfig) -> ModelSpec:
    key = f"models.{handle}"
    name = _plain_str(node, "name", key)
    tool_calling = _plain_str(node, "tool_calling", key)
    if tool_calling not in TOOL_CALLING_MODES:
        raise ConfigError(
            f"{key}.tool_calling: {tool_calling!r} is not valid; choices: {choices_text(TOOL_CALLING_MODES)}"
        )
    deployments = tuple(_deployment_spec(f"{key}.deployments[{i}]", d) for i, d in enumerate(node.deployments))
    if not deployments:
        deployments = (DeploymentSpec(name=name),)
    seen: set[str] = set()
    for dep in deployments:
        if dep.name in seen:
            raise ConfigError(f"{key}.deployments: deployment {dep.name!r} is declared twice")
        seen.add(dep.name)
    aliases = tuple(str(a) for a in node.aliases)
    return ModelSpec(
        name=name,
        provider=_plain_str(node, "provider", key),
        deployments=deployments,
        aliases=aliases,
        route=node.route,
        tool_calling=tool_calling,
        handle=str(handle),
        generation=_generation(node.generation, f"{key}.generation"),
    )


def _generation(node: DictConfig, key: str) -> GenerationSettings:
    values = _resolve_container(node, key)
    for name in ("temperature", "top_p"):
        value = values.get(name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{key}.{name}: must be a finite number >= 0 or null, got {value}")
    if values.get("max_tokens") is not None and values["max_tokens"] < 1:
        raise ConfigError(f"{key}.max_tokens: must be at least 1 or null, got {values['max_tokens']}")
    return GenerationSettings(**{**values, "stop": tuple(str(s) for s in values.get("stop") or ())})


def _resolve_container(node: DictConfig, key: str) -> dict[str, Any]:
    try:
        value = OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from None
    assert isinstance(value, dict)
    return {str(k): v for k, v in value.items()}


def _deployment_spec(key: str, node: DictConfig) -> DeploymentSpec:
    name = _plain_str(node, "name", key)
    if not 1 <= node.max_concurrency <= MAX_CONCURRENCY:
        limit = f"from 1 to {MAX_CONCURRENCY:,} requests in flight"
        raise ConfigError(f"{key}.max_concurrency: must be {limit}, got {node.max_concurrency}")
    if node.rpm is not None and not (math.isfinite(node.rpm) and node.rpm > 0):
        raise ConfigError(f"{key}.rpm: must be a positive number of requests per minute or null, got {node.rpm}")
    if node.weight is not None and not (math.isfinite(node.weight) and node.weight > 0):
        raise ConfigError(f"{key}.weight: must be a positive finite number or null, got {node.weight}")
    _check_api_keys(node, f"{key}.api_keys")
    return DeploymentSpec(
        name=name,
        credential_count=max(1, len(node.api_keys)),
        max_concurrency=int(node.max_concurrency),
        rpm=None if node.rpm is None else float(node.rpm),
        weight=None if node.weight is None else float(node.weight),
    )


def _check_api_keys(node: DictConfig, key: str) -> None:
    """`api_keys` is a list of strings (`${oc.env:...}` references). The message never shows a value: it may be a
    key typed on the command line."""
    container = OmegaConf.to_container(node, resolve=False)  # unresolved: references stay references
    raw = container.get("api_keys") if isinstance(container, dict) else None
    if not isinstance(raw, list):
        raise ConfigError(f"{key}: must be a list of strings (${{oc.env:VAR}} references), got a {type(raw).__name__}")
    for i, entry in enumerate(raw):
        if not isinstance(entry, str):
            raise ConfigError(
                f"{key}[{i}]: must be a string (an ${{oc.env:VAR}} reference), got a {type(entry).__name__}"
            )


def _plain_str(node: DictConfig, field: str, key: str) -> str:
    value = _resolve(node, field, f"{key}.{field}")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}.{field}: must be a non-empty string, got {value!r}")
    problem = name_problem(value)
    if problem is not None:
        raise ConfigError(f"{key}.{field}: {problem}")
    return value


def _resolve(node: DictConfig | ListConfig, field: Any, key: str) -> Any:
    try:
        return node[field]
    except InterpolationResolutionError as exc:
        raise ConfigError(f"{key}: {_interpolation_message(exc)}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from None


def _interpolation_message(exc: InterpolationResolutionError) -> str:
    text = str(exc).splitlines()[0]
    if "Environment variable" in text:
        return text.replace("Environment variable", "environment variable", 1) + " (set it or override this key)"
    return text


def model_node(models: DictConfig, spec: ModelSpec) -> DictConfig:
    """The config node a catalog entry came from."""
    node = models[spec.handle]
    assert isinstance(node, DictConfig)
    return node


def build_lanes(
    models: DictConfig,
    spec: ModelSpec,
    model_params: Mapping[str, Any],
    deployment_params: Mapping[str, Mapping[str, Any]],
) -> tuple[Lane, ...]:
    """Resolve endpoints and credentials of one selected model into lanes: one per (deployment, API key)."""
    node = model_node(models, spec)
    key = f"models.{spec.handle}"
    deployments = node.deployments if len(node.deployments) else [None]
    lanes: list[Lane] = []
    for index, (dep_spec, dep_node) in enumerate(zip(spec.deployments, deployments, strict=True)):
        dep_key = f"{key}.deployments[{index}]"
        keys = _credentials(dep_node, dep_key)
        for cred_index, api_key in enumerate(keys):
            lane_id = dep_spec.name if len(keys) == 1 else f"{dep_spec.name}#key{cred_index}"
            problem = name_problem(lane_id)
            if problem is not None:  # a deployment name that fits, plus the `#keyN` suffix of its lanes
                raise ConfigError(f"{dep_key}.name: lane id {problem}")
            lanes.append(
                Lane(
                    lane_id=lane_id,
                    base_model=spec.name,
                    deployment=dep_spec.name,
                    provider=spec.provider,
                    credential_id=f"key{cred_index}",
                    max_concurrency=dep_spec.max_concurrency,
                    rpm=dep_spec.rpm,
                    weight=dep_spec.weight,
                    route=spec.route,
                    endpoint=None if dep_node is None else _endpoint(dep_node, dep_key),
                    api_version=None
                    if dep_node is None
                    else _resolve(dep_node, "api_version", f"{dep_key}.api_version"),
                    api_key=api_key,
                    params=deployment_params.get(dep_spec.name, {}),
                    model_params=model_params,
                    source=_lane_source(dep_node, dep_key, cred_index if api_key is not None else None),
                )
            )
    return tuple(lanes)


def _endpoint(dep_node: DictConfig, dep_key: str) -> str | None:
    """The deployment's endpoint; one that carries credentials (`user:password@host`) is refused: HTTP clients will not
    combine them with the API key's header, and every request would fail as if the endpoint were down."""
    resolved = _resolve(dep_node, "endpoint", f"{dep_key}.endpoint")
    endpoint = None if resolved is None else str(resolved)
    if endpoint is not None and "@" in urlsplit(endpoint).netloc:
        named = _lane_source(dep_node, dep_key, None).endpoint_env
        where = f" (from {', '.join(named)})" if named else ""
        raise ConfigError(
            f"{dep_key}.endpoint{where}: carries credentials (user:password@host); give the host alone and the key "
            "in api_keys, from the environment"
        )
    return endpoint


def _lane_source(dep_node: DictConfig | None, dep_key: str, cred_index: int | None) -> LaneSource:
    """Catalog keys and referenced environment variable names of one lane, read from the unresolved configuration
    (so no secret is ever read for it)."""
    if dep_node is None:
        return LaneSource(dep_key)
    raw = OmegaConf.to_container(dep_node, resolve=False)
    assert isinstance(raw, dict)
    endpoint_env = tuple(ENV_REFERENCE.findall(str(raw.get("endpoint") or "")))
    if cred_index is None:
        return LaneSource(dep_key, endpoint_env=endpoint_env)
    credential = str(raw["api_keys"][cred_index])
    return LaneSource(
        dep_key, f"{dep_key}.api_keys[{cred_index}]", tuple(ENV_REFERENCE.findall(credential)), endpoint_env
    )


def _credentials(dep_node: DictConfig | None, key: str) -> list[str | None]:
    if dep_node is None or not len(dep_node.api_keys):
        return [None]
    return [_resolve(dep_node.api_keys, i, f"{key}.api_keys[{i}]") for i in range(len(dep_node.api_keys))]


def raw_params(node: DictConfig, key: str) -> dict[str, Any]:
    """A `params` block as plain data (interpolations resolved)."""
    return _resolve_container(node.params, f"{key}.params")


def as_dict(options: Any) -> dict[str, Any]:
    """A validated params dataclass as a plain dict (lanes carry plain data)."""
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return dataclasses.asdict(options)
    return dict(options)
