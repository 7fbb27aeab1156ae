"""The `litellm` provider: one `litellm.acompletion` per request, bound to one lane's exact deployment and key.

Routes come from the catalog (`route:` of a model): `azure` (Azure OpenAI: `azure/<deployment>` with the lane's
endpoint and `api_version`), `azure_ai` (Azure AI Foundry), `openai` (OpenAI or any OpenAI-compatible server:
`openai/<model>` with `api_base`), or any other litellm route. The deployment name is sent exactly as the catalog
spells it. litellm is imported lazily and offline (its bundled cost map); its retries are off and no Router is
used, because the scheduler owns retries, timeouts and limits. litellm keeps one HTTP client per (endpoint, key),
so connections are reused across the requests of a lane.

Every failure is classified (`classify.py`); its detail has the lane's key and every URL secret removed before it
leaves this module, so a call row, a log line or a transcript never holds a key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fleetbench.interfaces import NoOptions, Provider, option
from fleetbench.types import CallStatus, Completion, ErrorClass, Lane, Request
from fleetbench_plugins.providers.litellm import classify, loader, wire


@dataclasses.dataclass
class LitellmOptions:
    """How requests are sent (nothing here changes what a model answers, except `drop_params`)."""

    protocol_headers: bool = option(
        True,
        affects_result=False,
        help="send X-Fleetbench-Protocol / X-Fleetbench-Purpose headers (fleetbench serve picks its player by them; "
        "real APIs ignore them)",
    )
    drop_params: bool = option(
        False, affects_result=True, help="let litellm drop generation settings a route does not support"
    )


@dataclasses.dataclass
class LitellmModelParams:
    """Per base model: what a call costs. By default litellm's bundled cost map prices the call; these override it."""

    input_cost_per_token: float | None = option(None, affects_result=False, help="USD per prompt token")
    output_cost_per_token: float | None = option(None, affects_result=False, help="USD per completion token")
    cost_model: str | None = option(
        None, affects_result=False, help="price calls as this cost-map model (e.g. azure/gpt-4o-mini)"
    )

    def __post_init__(self) -> None:
        for name in ("input_cost_per_token", "output_cost_per_token"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name}: must be a price >= 0 in USD per token or null, got {value}")


class ProviderCallError(Exception):
    """A failed request, already classified with its redacted detail (the original exception is not kept, so
    nothing can print its unredacted text later)."""

    def __init__(self, verdict: ErrorClass) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict


class LitellmProvider(Provider):
    """Real LLM APIs through litellm (see the module docstring)."""

    Options = LitellmOptions
    ModelParams = LitellmModelParams
    DeploymentParams = NoOptions

    def __init__(self, options: LitellmOptions) -> None:
        super().__init__(options)
        loader.prefetch()

    async def ready(self) -> None:
        """Wait for the background import of litellm (seconds), so that the first calls' latencies hold none of it;
        `PluginLoadError` when it cannot be imported: the run stops with one line before any request."""
        await loader.loaded()

    async def complete(self, lane: Lane, request: Request) -> Completion:
        module = await loader.loaded()
        if lane.api_key:
            loader.secret_filter.secrets.add(lane.api_key)
        arguments = wire.call_arguments(
            lane, request, protocol_headers=self.options.protocol_headers, drop_params=self.options.drop_params
        )
        failure: ErrorClass | None = None
        try:
            response = await module.acompletion(**arguments)
            return wire.completion_of(response, self._cost(response))
        except (ImportError, NameError, AttributeError, TypeError, AssertionError):
            raise  # bugs (ours or litellm's) stop the run loudly
        except Exception as exc:  # classified here, where the lane's key is known, then raised without the original
            failure = classify.verdict(exc, (lane.api_key or "",))
        raise ProviderCallError(failure)

    @staticmethod
    def _cost(response: Any) -> float | None:
        """What litellm priced the call at (see `wire.pricing`); None when it knows no price."""
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        return float(cost) if isinstance(cost, int | float) else None

    def classify(self, exc: BaseException) -> ErrorClass:
        if isinstance(exc, ProviderCallError):
            return exc.verdict
        if isinstance(exc, TimeoutError):
            return ErrorClass(CallStatus.TIMEOUT, detail="request timed out")
        return classify.verdict(exc)
