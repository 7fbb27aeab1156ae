"""The simulated models behind the served deployments: the `simulated` provider (loaded through the registry, like
any plugin), one lane per deployment playing that deployment's base model and profile."""

from __future__ import annotations

from collections.abc import Mapping

from fleetbench import registry
from fleetbench.interfaces import Provider
from fleetbench.types import Completion, Lane, Request

from .config import ServeConfig


class SimulatedModels:
    """Answers a request as the simulated base model a deployment is mapped to."""

    def __init__(self, config: ServeConfig) -> None:
        ref = registry.load("providers", {"plugin": "simulated", "seed": config.model_seed}, "serve.model_seed")
        self._provider: Provider = ref.create()
        self._lanes: Mapping[str, Lane] = {
            name: self._lane(ref.cls, name, behaviour.model or name, behaviour.profile, behaviour.qa_accuracy)
            for name, behaviour in config.deployments.items()
        }

    @staticmethod
    def _lane(cls: type[Provider], name: str, model: str, profile: str, qa_accuracy: float | None) -> Lane:
        values = {"profile": profile, "qa_accuracy": qa_accuracy}
        params = registry.validate_options(cls.ModelParams, values, f"serve: deployments.{name}", "serve")
        return Lane(
            lane_id=name,
            base_model=model,
            deployment=name,
            provider="simulated",
            credential_id="served",
            max_concurrency=1,
            model_params=registry.plain_dict(vars(params)),
        )

    async def answer(self, deployment: str, request: Request) -> Completion:
        """The simulated model's reply (its latency and faults are the server's, not the provider's)."""
        return await self._provider.complete(self._lanes[deployment], request)
