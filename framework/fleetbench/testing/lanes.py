"""Lanes for plugin tests: one (deployment, credential) pair, as the runner builds them from the catalog."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetbench.types import Lane


def make_lane(
    deployment: str = "Kit-Model",
    *,
    base_model: str | None = None,
    provider: str = "scripted",
    credential_id: str = "key0",
    max_concurrency: int = 4,
    rpm: float | None = None,
    weight: float | None = None,
    endpoint: str | None = None,
    route: str | None = None,
    api_key: str | None = None,
    params: Mapping[str, Any] | None = None,
    model_params: Mapping[str, Any] | None = None,
) -> Lane:
    """A lane on `deployment` (of `base_model`, by default the deployment's own name). `params` and `model_params`
    are the provider's validated deployment and model params, as plain values."""
    return Lane(
        lane_id=f"{deployment}#{credential_id}",
        base_model=base_model or deployment,
        deployment=deployment,
        provider=provider,
        credential_id=credential_id,
        max_concurrency=max_concurrency,
        rpm=rpm,
        weight=weight,
        endpoint=endpoint,
        route=route,
        api_key=api_key,
        params=dict(params or {}),
        model_params=dict(model_params or {}),
    )
