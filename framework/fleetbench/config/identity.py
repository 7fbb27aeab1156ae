"""Result identity, defined once: which settings of a suite and of a model can change a unit's result.

The scopes built here are part of every unit key (see `fleetbench.plan`) and are stored with the run, so a report can
say exactly what its units answered. What enters: each plugin's options declared `affects_result=True`, the suite's
data digests (`Suite.identity()`), and the catalog fields of `ModelConf` declared result-relevant. What never enters:
deployments, credentials, concurrency, limits, timeouts, storage, progress, the run itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from fleetbench.interfaces import Suite, result_options
from fleetbench.types import ModelSpec, UnitScope

KEY_BYTES = 16
"""128-bit digests (32 hex characters): collisions are out of reach for any plan size."""


def canonical_json(value: Any) -> bytes:
    """A stable byte encoding: sorted keys, no white space, floats as repr."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest(value: Any) -> str:
    """A 128-bit hex digest of plain data (a scope description or a cell's factors)."""
    return hashlib.blake2b(canonical_json(value), digest_size=KEY_BYTES).hexdigest()


def suite_identity(suite: Suite, options: Any, judge: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a suite contributes: name, version, data digests, result-relevant options, and the judge's identity."""
    identity: dict[str, Any] = {
        "suite": suite.name,
        "version": suite.version,
        "data": dict(suite.identity()),
        "options": result_options(options),
    }
    if judge is not None:
        identity["judge"] = dict(judge)
    return identity


def model_identity(model: ModelSpec, provider_options: Any, model_params: Any) -> dict[str, Any]:
    """What a base model contributes: its name, provider, tool-calling mode, generation settings, and the
    result-relevant options of its provider and of its catalog params."""
    return {
        "model": model.name,
        "provider": model.provider,
        "tool_calling": model.tool_calling,
        "generation": dataclasses.asdict(model.generation),
        "provider_options": result_options(provider_options),
        "params": result_options(model_params),
    }


@dataclasses.dataclass(frozen=True)
class Scopes:
    """The scope of every selected model's units, and what each scope digest stands for."""

    by_model: Mapping[str, UnitScope]
    descriptions: Mapping[str, Mapping[str, Any]]


def build_scopes(suite: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> Scopes:
    """Digest the suite identity and each model identity into the scopes units carry."""
    suite_digest = digest(suite)
    descriptions: dict[str, Mapping[str, Any]] = {suite_digest: {"kind": "suite", **suite}}
    by_model: dict[str, UnitScope] = {}
    for name, identity in models.items():
        model_digest = digest(identity)
        descriptions[model_digest] = {"kind": "model", **identity}
        by_model[name] = UnitScope(suite_digest, model_digest)
    return Scopes(by_model, descriptions)
