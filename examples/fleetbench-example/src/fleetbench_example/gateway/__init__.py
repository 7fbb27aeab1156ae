"""The `gateway` provider: talks to a small HTTP JSON gateway (`POST {endpoint}/v1/generate`, see `wire.py`).

A catalog deployment names the gateway's base URL as its `endpoint` and its key in `api_keys` (sent as
`Authorization: Bearer <key>`); the deployment's exact name is the request's `model`. Retries, timeouts, rate limits
and concurrency are fleetbench's scheduler's job: the provider sends one request and classifies what went wrong.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import time
from typing import TYPE_CHECKING, Any

from fleetbench.interfaces import Provider, option
from fleetbench.types import CallStatus, Completion, ErrorClass, Lane, Request

from .wire import MalformedReply, completion_of, error_of, request_body

if TYPE_CHECKING:
    import aiohttp

STATUSES: dict[int, CallStatus] = {
    401: CallStatus.AUTH,
    403: CallStatus.AUTH,
    404: CallStatus.NOT_FOUND,
    408: CallStatus.TRANSIENT,
    409: CallStatus.TRANSIENT,
    429: CallStatus.RATE_LIMITED,
}
"""HTTP statuses with a verdict of their own; other 5xx are transient and other 4xx permanent."""


@dataclasses.dataclass
class GatewayOptions:
    """`path`: the generate route under each deployment's endpoint; `connect_timeout_s`: how long to wait for a TCP
    connection (the whole request's timeout is `scheduler.request_timeout_s`)."""

    path: str = option("/v1/generate", affects_result=False, help="the generate route under the endpoint")
    connect_timeout_s: float = option(10.0, affects_result=False, help="TCP connect timeout")

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"path: must start with '/', got {self.path!r}")
        if not (math.isfinite(self.connect_timeout_s) and self.connect_timeout_s > 0):
            raise ValueError(f"connect_timeout_s: must be a positive number of seconds, got {self.connect_timeout_s}")


class GatewayError(Exception):
    """The gateway answered with an error status (or could not be asked at all: `status` None)."""

    def __init__(self, status: int | None, error_type: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{status if status is not None else 'no request'} {error_type}: {message}".strip())
        self.status = status
        self.error_type = error_type
        self.retry_after_s = retry_after_s


class GatewayProvider(Provider):
    """One aiohttp session per event loop, shared by every lane; closed by `aclose`.

    aiohttp is imported when the first request is sent, not with this module: every fleetbench command imports every
    installed plugin to register its options, and importing aiohttp costs about a tenth of a second.
    """

    Options = GatewayOptions
    options: GatewayOptions

    def __init__(self, options: GatewayOptions) -> None:
        super().__init__(options)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            # No connection cap of aiohttp's own: the scheduler limits requests in flight per lane.
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.options.connect_timeout_s)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    async def complete(self, lane: Lane, request: Request) -> Completion:
        if not lane.endpoint:
            raise GatewayError(None, "no_endpoint", f"deployment {lane.deployment!r} declares no endpoint")
        url = lane.endpoint.rstrip("/") + self.options.path
        headers = {"Authorization": f"Bearer {lane.api_key}"} if lane.api_key else {}
        async with self._client().post(url, json=request_body(lane.deployment, request), headers=headers) as reply:
            try:
                payload: Any = await reply.json(content_type=None)
            except ValueError:
                payload = None
            if reply.status != 200:
                error_type, message = error_of(payload)
                retry_after = retry_after_s(reply.headers.get("Retry-After"))
                raise GatewayError(reply.status, error_type or reply.reason or "error", message, retry_after)
        return completion_of(payload)

    def classify(self, exc: BaseException) -> ErrorClass:
        if isinstance(exc, GatewayError):
            return _verdict(exc)
        if isinstance(exc, TimeoutError):
            return ErrorClass(CallStatus.TIMEOUT, detail="request timed out")
        import aiohttp  # already imported by the request that failed

        if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | MalformedReply):
            return ErrorClass(CallStatus.TRANSIENT, detail=f"{type(exc).__name__}: {exc}")
        return ErrorClass(CallStatus.PERMANENT, detail=f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _verdict(exc: GatewayError) -> ErrorClass:
    if exc.status is None:
        return ErrorClass(CallStatus.PERMANENT, detail=str(exc))
    if exc.status == 400 and exc.error_type == "context_length_exceeded":
        status = CallStatus.CONTEXT_LENGTH
    else:
        status = STATUSES.get(exc.status, CallStatus.TRANSIENT if exc.status >= 500 else CallStatus.PERMANENT)
    retry_after = exc.retry_after_s if status is CallStatus.RATE_LIMITED else None
    return ErrorClass(status, retry_after_s=retry_after, http_status=exc.status, detail=str(exc))


def retry_after_s(header: str | None) -> float | None:
    """A Retry-After header in seconds: delta-seconds or an HTTP date (None when absent or unreadable)."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


__all__ = ["GatewayError", "GatewayOptions", "GatewayProvider"]
