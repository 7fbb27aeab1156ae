"""What `fleetbench serve` serves: deployments by exact name, each with its base model, latency, limit and faults.

A served deployment answers as a simulated model (`model` is the base model the simulated provider plays, `profile`
its competence). Per deployment it has a latency distribution, a concurrency limit beyond which it answers 429 with
Retry-After, and injectable faults, each a probability per request, plus keys it refuses with 401.

The configuration file (YAML or JSON) holds `defaults:` (applied to every deployment) and `deployments:` (by exact
name; a name not served by the catalog is added). Every key is checked: a typo fails with one line naming the file,
the key and the valid keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleetbench import registry
from fleetbench.errors import ConfigError, choices_text

LATENCY_DISTRIBUTIONS = ("fixed", "uniform", "normal", "exponential")
PROTOCOL_AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class Latency:
    """Seconds before a deployment answers: `fixed` = mean; `uniform` = mean ± spread; `normal` = N(mean, spread)
    clipped at 0; `exponential` = Exp(mean)."""

    mean_s: float = 0.0
    spread_s: float = 0.0
    distribution: str = "fixed"


@dataclasses.dataclass(frozen=True)
class Faults:
    """Probabilities per request (they are drawn in this order, so they add up; their sum must not exceed 1)."""

    error_500: float = 0.0
    rate_limited: float = 0.0
    reset: float = 0.0
    hang: float = 0.0
    empty: float = 0.0
    malformed_json: float = 0.0
    truncated: float = 0.0
    absurd_usage: float = 0.0
    """A reply whose usage claims 5,000,000,000 prompt tokens (more than any real request, or a 32-bit count)."""

    def total(self) -> float:
        return float(sum(dataclasses.astuple(self)))


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How one deployment answers."""

    model: str | None = None
    """The base model the simulated provider plays (default: the catalog's base model, else the deployment name)."""
    profile: str = "strong"
    qa_accuracy: float | None = None
    protocol: str = PROTOCOL_AUTO
    """The protocol played when a request carries no X-Fleetbench-Protocol header (`auto`: the header is required)."""
    latency: Latency = dataclasses.field(default_factory=Latency)
    max_concurrency: int | None = None
    retry_after_s: float = 1.0
    hang_s: float = 3600.0
    faults: Faults = dataclasses.field(default_factory=Faults)
    reject_keys: tuple[str, ...] = ()
    """Keys answered 401: literal keys or their fingerprints as the request log shows them (`sha256:...`)."""
    context_tokens: int | None = None
    """A context window: a request of more words than this is answered 400 `context_length_exceeded`."""
    reasoning_only: bool = False
    """Answer in `reasoning_content` with an empty `content` (as some gateways serve reasoning models)."""

    def refuses(self, key: str | None) -> bool:
        """True when this deployment answers `key` with 401."""
        return key is not None and (key in self.reject_keys or key_fingerprint(key) in self.reject_keys)


def key_fingerprint(key: str | None) -> str | None:
    """What the request log shows of a key: a short hash, never the key."""
    if key is None:
        return None
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Every served deployment's behaviour, by exact deployment name."""

    deployments: Mapping[str, Behaviour]
    seed: int = 0
    """Seeds the fault draws and latencies (not the answers)."""
    model_seed: int = 0
    """The simulated provider's seed (`providers.simulated.seed`): the same answers as an in-process run with it."""


def load_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON configuration file as a mapping (one-line errors naming the file)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"serve --config: cannot read {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"serve --config: {path}: not YAML or JSON: {str(exc).splitlines()[0]}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"serve --config: {path}: must be a mapping with `defaults` and `deployments`")
    _check_keys(data, {"defaults", "deployments", "seed", "model_seed"}, f"serve --config {path}")
    return data


def build_config(
    catalog: Mapping[str, Mapping[str, Any]], file_data: Mapping[str, Any], overrides: Mapping[str, Any], where: str
) -> ServeConfig:
    """Served deployments: every catalog deployment (name -> its base model, and its profile for a simulated one)
    plus those the file adds, each with the file's `defaults`, the command line's `overrides` and its own section
    applied in that order."""
    file_defaults = file_data.get("defaults") or {}
    if not isinstance(file_defaults, dict):
        raise ConfigError(f"{where}: defaults: must be a mapping")
    behaviour(file_defaults, f"{where}: defaults")  # a typo there is named where it is, not in the first deployment
    defaults = {**file_defaults, **overrides}
    sections = file_data.get("deployments") or {}
    if not isinstance(sections, dict):
        raise ConfigError(f"{where}: deployments: must be a mapping of deployment name to its section")
    names = list(catalog) + [name for name in sections if name not in catalog]
    deployments = {}
    for name in names:
        section = sections.get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: deployments.{name}: must be a mapping")
        merged = {**catalog.get(name, {"model": name}), **_deep_merge(defaults, section)}
        deployments[name] = behaviour(merged, f"{where}: deployments.{name}")
    seeds = {name: file_data.get(name, 0) for name in ("seed", "model_seed")}
    for name, value in seeds.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}: {name}: must be an integer, got {value!r}")
    return ServeConfig(deployments, **seeds)


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = (
            _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def behaviour(values: Mapping[str, Any], key: str) -> Behaviour:
    """One deployment's section, validated."""
    fields = {f.name for f in dataclasses.fields(Behaviour)}
    _check_keys(values, fields, key)
    latency = _nested(Latency, values.get("latency") or {}, f"{key}.latency")
    faults = _nested(Faults, values.get("faults") or {}, f"{key}.faults")
    plain = {k: v for k, v in values.items() if k not in ("latency", "faults")}
    plain["reject_keys"] = _keys(plain.get("reject_keys"), f"{key}.reject_keys")
    result = Behaviour(**plain, latency=latency, faults=faults)
    _check(result, key)
    return result


def _keys(values: Any, key: str) -> tuple[str, ...]:
    """`reject_keys`: a list of keys (a bare string would be refused character by character)."""
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(k, str | int) and not isinstance(k, bool) for k in values):
        raise ConfigError(f"{key}: must be a list of keys or their sha256: fingerprints, got {values!r}")
    return tuple(str(k) for k in values)


def _nested(cls: type[Any], values: Any, key: str) -> Any:
    if isinstance(values, int | float) and cls is Latency:
        values = {"mean_s": values}  # `latency: 0.5` is a fixed latency
    if not isinstance(values, dict):
        raise ConfigError(f"{key}: must be a mapping, got {values!r}")
    _check_keys(values, {f.name for f in dataclasses.fields(cls)}, key)
    return cls(**values)


def _check_keys(values: Mapping[str, Any], valid: set[str], key: str) -> None:
    for name in values:
        if name not in valid:
            raise ConfigError(f"{key}: unknown key {name!r}; valid keys: {choices_text(sorted(valid))}")


def _check(b: Behaviour, key: str) -> None:
    problems = []
    for name, value in dataclasses.asdict(b.faults).items():
        if not _number(value) or not 0 <= value <= 1:
            problems.append(f"faults.{name}: must be a probability within [0, 1], got {value!r}")
    if b.faults.total() > 1 + 1e-9:
        problems.append(f"faults: probabilities add up to {b.faults.total():g}, more than 1")
    if b.latency.distribution not in LATENCY_DISTRIBUTIONS:
        problems.append(
            f"latency.distribution: {b.latency.distribution!r} is not valid; "
            f"choices: {choices_text(LATENCY_DISTRIBUTIONS)}"
        )
    for name, value in (
        ("latency.mean_s", b.latency.mean_s),
        ("latency.spread_s", b.latency.spread_s),
        ("retry_after_s", b.retry_after_s),
        ("hang_s", b.hang_s),
    ):
        if not _number(value) or value < 0:
            problems.append(f"{name}: must be a number of seconds >= 0, got {value!r}")
    if b.model is not None and not isinstance(b.model, str):
        problems.append(f"model: must be a base model name, got {b.model!r}")
    if not isinstance(b.protocol, str) or b.protocol not in protocols():
        problems.append(f"protocol: {b.protocol!r} is not valid; choices: {choices_text(protocols())}")
    if not isinstance(b.reasoning_only, bool):
        problems.append(f"reasoning_only: must be true or false, got {b.reasoning_only!r}")
    for name, count in (("max_concurrency", b.max_concurrency), ("context_tokens", b.context_tokens)):
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            problems.append(f"{name}: must be a positive integer or null, got {count!r}")
    if problems:
        raise ConfigError(f"{key}.{problems[0]}")


def protocols() -> list[str]:
    """What a deployment's `protocol` may be: `auto`, or a protocol an installed simulated player speaks."""
    return [PROTOCOL_AUTO, *registry.installed_names("simulators")]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
